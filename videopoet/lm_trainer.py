"""Trains the VideoPoet LM on a task mixture through the shared harness.

`run(config, workdir)` builds the vocabulary, the model, the per-task
pipelines and the AGD mixture, and hands the harness a `Program` whose
`groups` are the tasks: one fixed batch shape per task, each step compiled
ahead of time. Metrics: `train/loss`, `train/<task>/{loss,accuracy}` and,
every `eval_every` steps, `val/<task>/{loss,accuracy}` on fixed validation
batches.
"""

import dataclasses
from typing import Literal

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from videopoet import config_lib
from videopoet import lm_data
from videopoet import tasks as tasks_lib
from videopoet import vocab as vocab_lib
from videopoet.model import transformer
from videopoet.tasks import layout
from videopoet.train_lib import data as data_lib
from videopoet.train_lib import harness


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where token records come from (`config.data`).

  Attributes:
    source: 'arrayrecord' (shards of `tokenize_data` under `path`) or
      'random' (random token grids of `video_shape`/`audio_frames`).
    path: the tokenized data directory.
    batch_size: global batch size of every task.
    eval_batches: validation batches per task.
    video_shape: latent (t', h', w') of 'random' records.
    audio_frames: audio frames of 'random' records.
    random_size: records in a 'random' split.
  """

  source: Literal["arrayrecord", "random"] = "arrayrecord"
  path: str = ""
  batch_size: int = 8
  eval_batches: int = 2
  video_shape: tuple[int, int, int] = (5, 8, 8)
  audio_frames: int = 106
  random_size: int = 64

  def __post_init__(self):
    for name in ("batch_size", "random_size"):
      if getattr(self, name) < 1:
        raise config_lib.ConfigError(
            f"config.data.{name}={getattr(self, name)} must be >= 1"
        )
    if self.eval_batches < 0:
      raise config_lib.ConfigError(
          f"config.data.eval_batches={self.eval_batches} must be >= 0 (0: no"
          " validation)"
      )


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """AdamW with linear warm-up and cosine decay (`config.optimizer`)."""

  learning_rate: float = 1e-3
  warmup_steps: int = 100
  weight_decay: float = 0.01
  b2: float = 0.98
  grad_clip: float = 1.0
  microbatches: int = 1  # Gradient accumulation: the batch in this many parts.


def make_vocab(config) -> vocab_lib.Vocab:
  return vocab_lib.Vocab(
      config_lib.from_config(
          vocab_lib.VocabConfig, config.vocab, "config.vocab"
      )
  )


def make_model_config(config, vocab) -> transformer.ModelConfig:
  """`config.model` plus the vocabulary-derived fields."""
  section = dict(config.model.to_dict())
  section.update(
      vocab_size=vocab.padded_size,
      num_valid_ids=vocab.size,
      text_token_id=vocab.special("<text_emb>"),
      text_offset=layout.TEXT_OFFSET,
      pad_id=vocab.pad,
  )
  return config_lib.from_config(
      transformer.ModelConfig, section, "config.model"
  )


def _source(data: DataConfig, split, vocab, task_config):
  if data.source == "random":
    return lm_data.RandomSource(
        vocab, task_config, data.random_size, data.video_shape,
        data.audio_frames,
    )  # fmt: skip
  if not data.path:
    raise config_lib.ConfigError(
        "config.data.path is empty: point it at the output of"
        " experiments.tokenize_data (or set config.data.source='random')"
    )
  check_token_metadata(data.path, vocab, task_config)
  return lm_data.ArrayRecordSource(data.path, split)


def check_token_metadata(path: str, vocab, task_config) -> None:
  """Fails early when the LM's id ranges do not fit the tokenized data."""
  from videopoet import tokenize  # pylint: disable=g-import-not-at-top

  meta = tokenize.read_metadata(path)
  if meta is None:
    return
  c = vocab.config
  wanted = [
      ("vocab.visual_bits", c.visual_bits, meta["visual_bits"]),
      ("tasks.max_text_len", task_config.max_text_len, meta["max_text_len"]),
  ]
  if meta.get("audio_levels"):
    wanted += [
        ("vocab.audio_levels", c.audio_levels, meta["audio_levels"]),
        ("vocab.audio_codebook", c.audio_codebook, meta["audio_codebook"]),
    ]
  for key, have, need in wanted:
    if have != need:
      raise config_lib.ConfigError(
          f"config.{key}={have} but the tokens in {path} were made with"
          f" {need} (tokens.json); pass --config.{key}={need}"
      )
  if task_config.text_mode == "ids" and c.text_size < meta["text_size"]:
    raise config_lib.ConfigError(
        f"config.vocab.text_size={c.text_size} is smaller than the text"
        f" tokenizer's {meta['text_size']} pieces (tokens.json in {path})"
    )


def _stack(examples):
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def make_program(config, total_steps: int) -> harness.Program:
  vocab = make_vocab(config)
  task_config = config_lib.from_config(
      tasks_lib.TaskConfig, config.tasks, "config.tasks"
  )
  mixture = config_lib.from_config(
      lm_data.MixtureConfig, config.mixture, "config.mixture"
  )
  data = config_lib.from_config(DataConfig, config.data, "config.data")
  opt = config_lib.from_config(
      OptimizerConfig, config.optimizer, "config.optimizer"
  )
  if data.batch_size % opt.microbatches:
    raise config_lib.ConfigError(
        f"config.optimizer.microbatches={opt.microbatches} must divide"
        f" config.data.batch_size={data.batch_size}"
    )
  model = transformer.VideoPoetLM(make_model_config(config, vocab))
  schedule = optax.warmup_cosine_decay_schedule(
      0.0,
      opt.learning_rate,
      opt.warmup_steps,
      max(total_steps, opt.warmup_steps + 1),
  )
  tx = optax.chain(
      optax.clip_by_global_norm(opt.grad_clip),
      optax.adamw(schedule, b2=opt.b2, weight_decay=opt.weight_decay),
  )
  seed = config.trainer.seed
  train_src = _source(data, "train", vocab, task_config)
  iters = lm_data.task_iterators(
      train_src, mixture, vocab, task_config, data.batch_size, seed
  )
  groups = {}
  for t in mixture.tasks:  # One example batch per task: its step's shape.
    ex = lm_data.TaskSource(train_src, t, vocab, task_config, seed)[0]
    groups[t] = data_lib.example_batch(ex, data.batch_size)

  def init(rng):
    params = model.init(rng, groups[mixture.tasks[0]], method="loss")["params"]
    return {"params": params, "opt_state": tx.init(params)}

  def weighted_sums(params, batch):  # (sum w * loss, (sum w * correct, sum w))
    loss, correct = model.apply({"params": params}, batch, method="loss")
    w = batch["weights"]
    return (loss * w).sum(), ((correct * w).sum(), w.sum())

  def loss_fn(params, batch):  # Mean loss and accuracy over target weights.
    total, (hits, n) = weighted_sums(params, batch)
    n = jnp.maximum(n, 1.0)
    return total / n, hits / n

  def loss_and_grads(params, batch):
    """Mean loss, accuracy and gradients over the batch's target weights.

    With `microbatches` m > 1 the batch is taken in m parts (example i goes
    to part i mod m, so every device keeps its own rows) and the weighted
    sums are accumulated: the same numbers as one pass, with 1/m of the
    activations (and, on CPU, each part's activations stay in cache).
    """
    m = opt.microbatches
    grad_fn = jax.value_and_grad(weighted_sums, has_aux=True)
    if m == 1:
      (total, (hits, n)), grads = grad_fn(params, batch)
    else:
      parts = jax.tree.map(
          lambda x: jnp.moveaxis(
              x.reshape(x.shape[0] // m, m, *x.shape[1:]), 1, 0
          ),
          batch,
      )  # Each leaf [m, b / m, ...].

      def add(acc, part):
        out = grad_fn(params, part)
        return jax.tree.map(jnp.add, acc, out), None

      zero = jax.tree.map(
          jnp.zeros_like, jax.eval_shape(grad_fn, params, batch)
      )
      ((total, (hits, n)), grads), _ = jax.lax.scan(add, zero, parts)
    n = jnp.maximum(n, 1.0)
    grads = jax.tree.map(lambda g: g / n, grads)
    return total / n, hits / n, grads

  def step(state, batch, rng, group):
    del rng
    loss, acc, grads = loss_and_grads(state["params"], batch)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {
        "train/loss": loss,
        "train/grad_norm": optax.global_norm(grads),
        f"train/{group}/loss": loss,
        f"train/{group}/accuracy": acc,
    }
    return {"params": params, "opt_state": opt_state}, metrics

  # Fixed validation batches per task (no shuffle, same draws every time).
  val_batches = {}
  if data.eval_batches:
    val_src = _source(data, "validation", vocab, task_config)
    bs = data.batch_size
    if not len(val_src):
      raise config_lib.ConfigError(
          f"the validation split of config.data.path={data.path!r} is empty;"
          " tokenize a validation split or set --config.data.eval_batches=0"
      )
    if len(val_src) < bs:
      logging.warning(
          "The validation split holds %d records, fewer than"
          " config.data.batch_size=%d: validating on one batch of %d.",
          len(val_src), bs, len(val_src),
      )  # fmt: skip
    for t in mixture.tasks:
      src = lm_data.TaskSource(
          val_src, t, vocab, task_config, seed + 1, copies=1
      )
      # Whole batches, or the one partial batch there is (never none: an
      # empty mean is NaN).
      rows = [
          range(lo, min(lo + bs, len(src)))
          for lo in range(0, len(src), bs)[: data.eval_batches]
      ]
      rows = [r for r in rows if len(r) == bs] or rows[:1]
      val_batches[t] = [_stack([src[i] for i in r]) for r in rows]

  eval_fn = jax.jit(lambda params, batch: loss_fn(params, batch))

  def evaluate(state, step_):
    del step_
    out = {}
    for t, batches in val_batches.items():
      vals = [eval_fn(state["params"], b) for b in batches]
      out[f"val/{t}/loss"] = float(np.mean([v[0] for v in vals]))
      out[f"val/{t}/accuracy"] = float(np.mean([v[1] for v in vals]))
    return out

  it = lm_data.TaskMixture(iters, mixture, total_steps, seed)
  return harness.Program(
      init=init,
      step=step,
      data=it,
      evaluate=evaluate if val_batches else None,
      groups=groups,
  )


def run(config, workdir: str):
  """Trains (or resumes) in `workdir`; returns the final state."""
  trainer, mesh = harness.setup(config, workdir)
  return harness.train(
      trainer, mesh, workdir, make_program(config, trainer.total_steps)
  )
