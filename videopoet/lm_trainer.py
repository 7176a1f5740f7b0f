"""Trains the VideoPoet LM on a task mixture: the LM's `train_lib.family`.

`family.run(FAMILY, config, workdir)` (`experiments.train`) parses the
config with its tokens' vocabulary (`parse`), checks the workdir's tokens,
and hands the harness the `Program` of `make_program`: the model, the
per-task pipelines and the AGD mixture, with the tasks as its `groups`: one fixed batch shape per task, each step compiled
ahead of time. Metrics: `train/loss`, `train/<task>/{loss,accuracy}` and,
every `eval_every` steps, `val/<task>/{loss,accuracy}` on fixed validation
batches.

The tokens decide the vocabulary: their `tokens.json` (`token_spec`; for
`config.data.source='random'`, `config.data.random`) gives the id ranges
(visual bits, audio levels and codebook, text pieces) and the text length;
`config.vocab` holds only the LM's own choice (`pad_to`). The run copies
`tokens.json` into `<workdir>/tokens.json` (what the sampler reads), and a
rerun refuses tokens that differ from that copy (`check_workdir_tokens`).
"""

import dataclasses
import functools
import json
import os
import shutil
from typing import Literal

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from videopoet import config_lib
from videopoet import lm_data
from videopoet import tasks as tasks_lib
from videopoet import text_encoder
from videopoet import token_spec
from videopoet import vocab as vocab_lib
from videopoet.kernels import xla_cpu
from videopoet.model import transformer
from videopoet.train_lib import data as data_lib
from videopoet.train_lib import family
from videopoet.train_lib import harness
from videopoet.train_lib import loading
from videopoet.train_lib import optim
from videopoet.train_lib import renames
from videopoet.train_lib import workdir as workdir_lib

# Splits of the tokens the LM reads; other splits' sizes in tokens.json
# (e.g. a test split tokenized later) do not change what it trained on.
_READ_SPLITS = ("train", "validation")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where token records come from (`config.data`).

  Attributes:
    source: 'arrayrecord' (shards of `tokenize_data` under `data_dir`, with
      their `tokens.json`) or 'random' (random records of the tokens that
      `random` describes: tests, benchmarks).
    data_dir: the tokenized data directory (tokenize_data's --workdir).
    batch_size: global batch size of every task.
    eval_batches: validation batches per task.
    random_size: records in a 'random' split.
    random: what 'random' records stand for (their `TokenSpec`).
  """

  source: Literal["arrayrecord", "random"] = "arrayrecord"
  data_dir: str = ""
  batch_size: int = 8
  eval_batches: int = 2
  random_size: int = 64
  random: lm_data.RandomConfig = lm_data.RandomConfig()

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


@dataclasses.dataclass(frozen=True)
class VocabChoices:
  """The LM's own part of its vocabulary (`config.vocab`).

  The id ranges are the tokens' (`TokenSpec.vocab_config`), never set here.

  Attributes:
    pad_to: the vocabulary is padded to a multiple of this (so the `vocab`
      axis splits evenly into the CE chunks x tensor shards).
  """

  pad_to: int = 128

  def __post_init__(self):
    if self.pad_to < 1:
      raise config_lib.ConfigError(
          f"config.vocab.pad_to={self.pad_to} must be >= 1"
      )


def _data_spec(data: DataConfig) -> token_spec.TokenSpec:
  if data.source == "random":
    return data.random.spec()
  return token_spec.read_config_dir(
      data.data_dir,
      "the output of experiments.tokenize_data (or set"
      " config.data.source='random')",
  )


def data_spec(config) -> token_spec.TokenSpec:
  """What made the LM's tokens: `config.data.data_dir`'s `tokens.json`, or
  the spec of `config.data.random` with `config.data.source='random'`.

  Raises:
    config_lib.ConfigError: no path, no `tokens.json` there, or one written
      by an older `tokenize_data` (the message says to tokenize again).
  """
  return _data_spec(
      config_lib.from_config(DataConfig, config.data, "config.data")
  )


def make_task_config(config) -> tasks_lib.TaskConfig:
  return config_lib.from_config(
      tasks_lib.TaskConfig, config.tasks, "config.tasks"
  )


def make_vocab(config, spec: token_spec.TokenSpec | None = None):
  """The LM's vocabulary: the ranges of `spec` (default `data_spec(config)`),
  padded to `config.vocab.pad_to`; text ids only in text_mode 'ids'."""
  spec = spec or data_spec(config)
  choices = config_lib.from_config(VocabChoices, config.vocab, "config.vocab")
  return vocab_lib.Vocab(
      spec.vocab_config(
          pad_to=choices.pad_to, text_mode=make_task_config(config).text_mode
      )
  )


def make_model_config(
    config, vocab, spec: token_spec.TokenSpec | None = None
) -> transformer.ModelConfig:
  """`config.model` plus the vocabulary-derived fields and, in text_mode
  'embeddings', the tokens' embedding width (`spec`, default
  `data_spec(config)`; `text_encoder.model_text_dim`)."""
  section = config.model.to_dict()
  mode = make_task_config(config).text_mode
  configured = section.get("text_embed_dim", 0)
  if mode == "embeddings" or configured:
    section["text_embed_dim"] = text_encoder.model_text_dim(
        mode, configured, spec or data_spec(config)
    )
  return transformer.config_for_vocab(section, vocab)


def _source(data: DataConfig, split: str, spec: token_spec.TokenSpec):
  if data.source == "random":
    return lm_data.RandomSource(spec, data.random_size)
  return lm_data.ArrayRecordSource(data.data_dir, split)


class WorkdirTokensError(workdir_lib.WorkdirConfigError):
  """A rerun's tokens differ from those its workdir's LM was trained on."""


def _tokens_record(config) -> tuple[dict, str]:
  """(the tokens' tokens.json as JSON values, where it is from)."""
  data = config_lib.from_config(DataConfig, config.data, "config.data")
  if data.source == "random":
    return _data_spec(data).to_json(), "config.data.random"
  _data_spec(data)  # A missing or old tokens.json is named.
  path = token_spec.path_in(data.data_dir)
  with open(path, encoding="utf-8") as f:
    return json.load(f), path


def _compared(record: dict) -> dict:
  """`record` without the sizes of splits the LM does not read, in
  today's key names."""
  record = renames.upgrade_tokens_record(record)
  splits = record.get("splits")
  if not isinstance(splits, dict):
    return record
  return dict(
      record, splits={k: v for k, v in splits.items() if k in _READ_SPLITS}
  )


def check_workdir_tokens(config, workdir: str) -> None:
  """Refuses a rerun of `workdir` on tokens other than its `tokens.json`.

  Checked before anything is written. A workdir without checkpoints (a first
  run that stopped before its first save) takes the new tokens, with a
  warning. Sizes of splits the LM does not read are not compared.

  Raises:
    WorkdirTokensError: the workdir holds checkpoints and its tokens.json
      differs from the tokens' (the message names each key, old -> new), or
      it has none (its tokens are unknown).
    config_lib.ConfigError: the tokens have no usable tokens.json.
  """
  new, origin = _tokens_record(config)
  path = token_spec.path_in(workdir)
  has_checkpoint = workdir_lib.has_checkpoint(workdir)
  if not os.path.exists(path):
    if has_checkpoint:
      raise WorkdirTokensError(
          f"--workdir={workdir} holds checkpoints but no tokens.json, so the"
          " tokens its LM was trained on are unknown (it was trained before"
          " the LM recorded them). Copy the tokens.json of the tokens it was"
          " trained on into it, or use a new --workdir for a new run"
      )
    return
  with open(path, encoding="utf-8") as f:
    try:
      old = json.load(f)
    except json.JSONDecodeError as e:
      raise WorkdirTokensError(
          f"{path} is not valid JSON ({e}); it records the tokens this"
          " workdir's LM was trained on. Restore it or use a new --workdir"
      ) from None
  diffs = workdir_lib.config_differences(_compared(old), _compared(new))
  if not diffs:
    return
  shown = "; ".join(
      f"{k}: {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in diffs.items()
  )
  if not has_checkpoint:
    logging.warning(
        "%s has no checkpoint yet: its tokens.json is replaced by %s (%s)",
        workdir, origin, shown,
    )  # fmt: skip
    return
  raise WorkdirTokensError(
      f"--workdir={workdir} holds an LM trained on other tokens: its"
      f" tokens.json differs from {origin} in {shown}. Refusing to resume it"
      " on these tokens; use a new --workdir for a new run (or point"
      " config.data.data_dir at the tokens it was trained on)"
  )


def write_workdir_tokens(config, workdir: str) -> str:
  """Copies the tokens' tokens.json to `<workdir>/tokens.json` (process 0:
  the file as it is, so the two compare equal byte for byte); returns its
  path."""
  path = token_spec.path_in(workdir)
  if jax.process_index() != 0:
    return path
  data = config_lib.from_config(DataConfig, config.data, "config.data")
  if data.source == "random":
    return token_spec.write(workdir, _data_spec(data))
  os.makedirs(workdir, exist_ok=True)
  shutil.copyfile(token_spec.path_in(data.data_dir), path + ".tmp")
  os.replace(path + ".tmp", path)
  return path


def _stack(examples):
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


@dataclasses.dataclass(frozen=True)
class LMTrainConfig:
  """A `configs/videopoet.py` config, checked, with its tokens' spec."""

  trainer: harness.TrainerConfig
  spec: token_spec.TokenSpec
  vocab: vocab_lib.Vocab
  tasks: tasks_lib.TaskConfig
  mixture: lm_data.MixtureConfig
  data: DataConfig
  optimizer: OptimizerConfig
  model: transformer.ModelConfig


def parse(config) -> LMTrainConfig:
  """The typed sections of an LM config; reads the tokens' `tokens.json`
  (`data_spec`), which decides the vocabulary.

  Raises:
    config_lib.ConfigError: a bad key or value (named), or no usable
      tokens.json.
  """
  spec = data_spec(config)
  vocab = make_vocab(config, spec)
  data = config_lib.from_config(DataConfig, config.data, "config.data")
  opt = config_lib.from_config(
      OptimizerConfig, config.optimizer, "config.optimizer"
  )
  if data.batch_size % opt.microbatches:
    raise config_lib.ConfigError(
        f"config.optimizer.microbatches={opt.microbatches} must divide"
        f" config.data.batch_size={data.batch_size}"
    )
  return LMTrainConfig(
      trainer=family.parse_trainer(config),
      spec=spec,
      vocab=vocab,
      tasks=make_task_config(config),
      mixture=config_lib.from_config(
          lm_data.MixtureConfig, config.mixture, "config.mixture"
      ),
      data=data,
      optimizer=opt,
      model=make_model_config(config, vocab, spec),
  )


def make_program(c: LMTrainConfig, mesh) -> harness.Program:
  """The LM's harness program of a parsed config (`parse`)."""
  # The mesh (None: the default backend) gives the platform only: the
  # harness shards the state and batches by logical axes.
  compiler_options = xla_cpu.step_compiler_options(
      jax.default_backend() if mesh is None else mesh.devices.flat[0].platform
  )
  spec, vocab, task_config, mixture, data, opt = (
      c.spec, c.vocab, c.tasks, c.mixture, c.data, c.optimizer
  )
  total_steps = c.trainer.total_steps
  model = transformer.VideoPoetLM(c.model)
  adamw = optim.Adam(
      peak=opt.learning_rate, warmup_steps=opt.warmup_steps,
      decay_steps=total_steps, b2=opt.b2, weight_decay=opt.weight_decay,
      grad_clip=opt.grad_clip,
  )  # fmt: skip
  schedule, tx = adamw.schedule(), adamw.build()
  seed = c.trainer.seed
  train_src = _source(data, "train", spec)
  iters = lm_data.task_iterators(
      train_src, mixture, vocab, task_config, spec, data.batch_size, seed
  )
  groups = {}
  for t in mixture.tasks:  # One example batch per task: its step's shape.
    ex = lm_data.TaskSource(train_src, t, vocab, task_config, spec, seed)[0]
    groups[t] = data_lib.example_batch(ex, data.batch_size)
  # Most tasks' layouts fix their prefix length. Where it ends in the first
  # half of the sequence, attention is told so (`Mask.max_prefix_len`: it
  # skips the logits no query sees) and every batch is checked for it.
  prefix_bound = {}
  for t, ex in groups.items():
    half = ex["inputs"].shape[1] // 2
    fits = int(ex["prefix_len"].max()) <= half
    drawn = t in tasks_lib.DRAWN_PREFIX_TASKS
    prefix_bound[t] = half if fits and not drawn else None

  def init(rng):
    params = model.init(rng, groups[mixture.tasks[0]], method="loss")["params"]
    return {"params": params, "opt_state": tx.init(params)}

  def weighted_sums(params, batch, max_prefix_len=None):
    """(sum w * loss, (sum w * correct, sum w)) over the target weights w."""
    loss, correct = model.apply(
        {"params": params}, batch, max_prefix_len, method="loss"
    )
    w = batch["weights"]
    return (loss * w).sum(), ((correct * w).sum(), w.sum())

  def loss_fn(params, batch):  # Mean loss and accuracy over target weights.
    total, (hits, n) = weighted_sums(params, batch)
    n = jnp.maximum(n, 1.0)
    return total / n, hits / n

  def loss_and_grads(params, batch, max_prefix_len=None):
    """Mean loss, accuracy and gradients over the batch's target weights.

    With `microbatches` m > 1 the batch is taken in m parts (example i goes
    to part i mod m, so every device keeps its own rows) and the weighted
    sums are accumulated: the same numbers as one pass, with 1/m of the
    activations (and, on CPU, each part's activations stay in cache).
    """
    m = opt.microbatches
    grad_fn = functools.partial(
        jax.value_and_grad(weighted_sums, has_aux=True),
        max_prefix_len=max_prefix_len,
    )
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
    loss, acc, grads = loss_and_grads(
        state["params"], batch, prefix_bound[group]
    )
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
    val_src = _source(data, "validation", spec)
    bs = data.batch_size
    if not len(val_src):
      raise config_lib.ConfigError(
          "the validation split of"
          f" config.data.data_dir={data.data_dir!r} is empty; tokenize a"
          " validation split or set --config.data.eval_batches=0"
      )
    if len(val_src) < bs:
      logging.warning(
          "The validation split holds %d records, fewer than"
          " config.data.batch_size=%d: validating on one batch of %d.",
          len(val_src), bs, len(val_src),
      )  # fmt: skip
    for t in mixture.tasks:
      src = lm_data.TaskSource(
          val_src, t, vocab, task_config, spec, seed + 1, copies=1
      )
      # Whole batches, or the one partial batch there is (never none: an
      # empty mean is NaN).
      rows = [
          range(lo, min(lo + bs, len(src)))
          for lo in range(0, len(src), bs)[: data.eval_batches]
      ]
      rows = [r for r in rows if len(r) == bs] or rows[:1]
      val_batches[t] = [_stack([src[i] for i in r]) for r in rows]

  eval_fn = jax.jit(
      lambda params, batch: loss_fn(params, batch),
      compiler_options=compiler_options,
  )

  def evaluate(state, step_):
    del step_
    out = {}
    for t, batches in val_batches.items():
      vals = [eval_fn(state["params"], b) for b in batches]
      out[f"val/{t}/loss"] = float(np.mean([v[0] for v in vals]))
      out[f"val/{t}/accuracy"] = float(np.mean([v[1] for v in vals]))
    return out

  it = lm_data.TaskMixture(iters, mixture, total_steps, seed, prefix_bound)
  return harness.Program(
      init=init,
      step=step,
      data=it,
      evaluate=evaluate if val_batches else None,
      groups=groups,
      compiler_options=compiler_options,
  )



def load(path: str, step: int | None = None) -> family.Loaded:
  """The LM parameters of a workdir of `experiments.train` (or one of its
  `checkpoints/<step>`), on the first local device; no optimizer state.
  `sampling.models.load_lm` adds the vocabulary, tasks and a mesh."""
  workdir, in_path = loading.find_workdir(path, "lm", "experiments.train")
  step, trees = loading.restore_params(
      workdir, ("params",), step if step is not None else in_path
  )
  return family.Loaded(step=step, params=trees["params"])


FAMILY = family.Family(
    name="lm",
    parse=parse,
    make_program=make_program,
    load=load,
    eval_keys=("params",),
    # Before anything is written, the tokens are checked against the ones
    # the workdir's LM was trained on; after config.json, tokens.json (what
    # the sampler reads) is written beside it.
    check_workdir=check_workdir_tokens,
    write_workdir=write_workdir_tokens,
)
