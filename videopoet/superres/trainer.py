"""Trains the SR transformer: its `train_lib.family` (`FAMILY`).

`family.run(FAMILY, config, workdir)` (`experiments.train_superres`) reads
pairs of token grids of the same clips (`tokenize_data` with
`superres_factor=2`: `video` and `video_low`, `superres/data.py`) and
trains with MaskGIT's objective:

  * masking: per example r ~ U(0, 1), ceil(n cos(pi r / 2)) of the n
    high-resolution tokens masked (at least one), uniformly at random;
  * noise augmentation of the condition: a fraction ~ U(0, noise_max) of
    the low-resolution tokens resampled uniformly (VideoPoet: "a random
    subset of LR tokens resampled");
  * the text and the low-resolution condition each dropped for
    `drop_text` / `drop_low` (VideoPoet: 10%) of the examples, for guidance;
  * the loss: the factorized heads' summed cross-entropy, averaged over
    the masked tokens (`model.factorized_loss`).

The tokens' `tokens.json` gives the code bits, the text size and length and
the grids, and is copied to `<workdir>/tokens.json`, which `load` and the
sampler read (the video tokenizer that decodes the SR output is the one it
names). Metrics: `train/loss`, `train/accuracy` (every digit right, on
masked tokens), `train/grad_norm`.
"""

import dataclasses
import json
import os
import shutil
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from videopoet import config_lib
from videopoet import lm_data
from videopoet import token_spec
from videopoet.superres import data as data_lib
from videopoet.superres import model as model_lib
from videopoet.train_lib import data as pipeline
from videopoet.train_lib import family
from videopoet.train_lib import harness
from videopoet.train_lib import loading
from videopoet.train_lib import optim
from videopoet.train_lib import workdir as workdir_lib

NAME = "superres"


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """`config.data`.

  Attributes:
    source: 'arrayrecord' (tokens of `tokenize_data` with
      `superres_factor=2` under `data_dir`) or 'random' (tests).
    data_dir: the tokens' directory (`tokenize_data`'s workdir).
    split: the split trained on.
    batch_size: global batch size.
    random: the random records of `source='random'`.
  """

  source: Literal["arrayrecord", "random"] = "arrayrecord"
  data_dir: str = ""
  split: str = "train"
  batch_size: int = 8
  random: data_lib.RandomRecordsConfig = data_lib.RandomRecordsConfig()


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
  """`config.masking`: the training corruptions (module docstring)."""

  noise_max: float = 0.2
  drop_text: float = 0.1
  drop_low: float = 0.1


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """`config.optimizer`: AdamW, warm-up then cosine decay to 10%."""

  learning_rate: float = 1e-3
  warmup_steps: int = 100
  weight_decay: float = 0.01
  b2: float = 0.98
  grad_clip: float = 1.0


@dataclasses.dataclass(frozen=True)
class TokenFacts:
  """What the model needs of the tokens (from tokens.json or `random`)."""

  visual_bits: int
  text_size: int
  max_text_len: int
  grid: tuple[int, int, int]
  low_grid: tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class SRTrainConfig:
  """A `configs/superres.py` config, checked."""

  trainer: harness.TrainerConfig
  data: DataConfig
  masking: MaskingConfig
  optimizer: OptimizerConfig
  model: model_lib.SRModelConfig
  tokens: TokenFacts


def _spec(data: DataConfig) -> token_spec.TokenSpec:
  return token_spec.read_config_dir(
      data.data_dir,
      "tokens of experiments.tokenize_data with --config.superres_factor=2",
  )


def token_facts(spec: token_spec.TokenSpec) -> TokenFacts:
  """The facts of tokens with low-resolution codes (named error if none)."""
  if data_lib.low_factor(spec) != 2:
    raise config_lib.ConfigError(
        f"the tokens ({spec.dataset}) have superres_factor="
        f"{data_lib.low_factor(spec)} in tokens.json; the SR transformer"
        " doubles the resolution: tokenize with --config.superres_factor=2"
    )
  return TokenFacts(
      visual_bits=spec.visual_bits, text_size=spec.text_size,
      max_text_len=spec.max_text_len, grid=spec.latent_grid,
      low_grid=data_lib.low_grid(spec),
  )  # fmt: skip


def _random_facts(r: data_lib.RandomRecordsConfig) -> TokenFacts:
  t, h, w = r.grid
  return TokenFacts(r.visual_bits, r.text_size, r.max_text_len, r.grid,
                    (t, h // 2, w // 2))  # fmt: skip


def model_config(model_section, facts: TokenFacts) -> model_lib.SRModelConfig:
  """`config.model` plus the tokens' bits and text size."""
  section = dict(
      model_section.to_dict() if hasattr(model_section, "to_dict")
      else model_section,
      visual_bits=facts.visual_bits, text_size=facts.text_size,
      max_text_len=facts.max_text_len,
  )  # fmt: skip
  c = config_lib.from_config(model_lib.SRModelConfig, section, "config.model")
  try:
    c.check_grid(facts.grid)
  except ValueError as e:
    raise config_lib.ConfigError(f"config.model.windows: {e}") from None
  return c


def parse(config) -> SRTrainConfig:
  """The typed sections; reads the tokens' tokens.json (no writes)."""
  data = config_lib.from_config(DataConfig, config.data, "config.data")
  facts = (
      _random_facts(data.random) if data.source == "random"
      else token_facts(_spec(data))
  )  # fmt: skip
  masking = config_lib.from_config(MaskingConfig, config.masking,
                                   "config.masking")  # fmt: skip
  for name in ("noise_max", "drop_text", "drop_low"):
    if not 0.0 <= getattr(masking, name) <= 1.0:
      raise config_lib.ConfigError(
          f"config.masking.{name}={getattr(masking, name)} must be in [0, 1]"
      )
  return SRTrainConfig(
      trainer=family.parse_trainer(config),
      data=data,
      masking=masking,
      optimizer=config_lib.from_config(
          OptimizerConfig, config.optimizer, "config.optimizer"
      ),
      model=model_config(config.model, facts),
      tokens=facts,
  )


def _source(data: DataConfig, seed: int):
  if data.source == "random":
    return data_lib.random_records(data.random, seed)
  return lm_data.ArrayRecordSource(data.data_dir, data.split)


def _select(record):
  missing = [k for k in data_lib.FIELDS if k not in record]
  if missing:
    raise KeyError(
        f"a token record lacks {missing}: tokenize with"
        " --config.superres_factor=2"
    )
  return {k: np.asarray(record[k]) for k in data_lib.FIELDS}


def corrupt(batch, rng, c: model_lib.SRModelConfig, m: MaskingConfig):
  """(model inputs, masked bool [b, t, H, W]) of a training batch."""
  hi, lo = batch["video"], batch["video_low"]
  b = hi.shape[0]
  n = int(np.prod(hi.shape[1:]))
  keys = jax.random.split(rng, 7)
  r = jax.random.uniform(keys[0], (b,))
  n_mask = jnp.clip(jnp.ceil(n * jnp.cos(jnp.pi / 2 * r)), 1, n)  # [b]
  score = jax.random.uniform(keys[1], (b, n))
  rank = jnp.argsort(jnp.argsort(score, -1), -1)
  masked = (rank < n_mask[:, None]).reshape(hi.shape)  # [b, t, H, W]
  inputs = jnp.where(masked, c.mask_id, hi)
  frac = jax.random.uniform(keys[2], (b, 1, 1, 1)) * m.noise_max
  noisy = jax.random.uniform(keys[3], lo.shape) < frac
  lo = jnp.where(noisy, jax.random.randint(keys[4], lo.shape, 0, c.codebook),
                 lo)  # fmt: skip
  drop_low = jax.random.uniform(keys[5], (b, 1, 1, 1)) < m.drop_low
  lo = jnp.where(drop_low, c.mask_id, lo)
  drop_text = jax.random.uniform(keys[6], (b, 1)) < m.drop_text
  text_mask = batch["text_mask"] & ~drop_text
  return (inputs, lo, batch["text"], text_mask), masked


def make_program(c: SRTrainConfig, mesh) -> harness.Program:
  """The SR transformer's harness program."""
  del mesh  # The harness shards by the logical axes.
  model = model_lib.SRTransformer(c.model)
  seed = c.trainer.seed
  opt = c.optimizer
  tx = optim.Adam(
      peak=opt.learning_rate, warmup_steps=opt.warmup_steps,
      decay_steps=c.trainer.total_steps, end_fraction=0.1, b2=opt.b2,
      weight_decay=opt.weight_decay, grad_clip=opt.grad_clip,
  ).build()  # fmt: skip
  source = _source(c.data, seed)
  example = pipeline.example_batch(_select(source[0]), c.data.batch_size)

  def init(rng):
    inputs = (example["video"], example["video_low"], example["text"],
              example["text_mask"])  # fmt: skip
    params = model.init(rng, *inputs)["params"]
    return {"params": params, "opt_state": tx.init(params)}

  def loss_fn(params, batch, rng):
    inputs, masked = corrupt(batch, rng, c.model, c.masking)
    logits = model.apply({"params": params}, *inputs)  # [b,t,H,W,k,n]
    per_token = model_lib.factorized_loss(logits, batch["video"])
    w = masked.astype(jnp.float32)
    digits = model_lib.to_digits(batch["video"], c.model.factor_heads,
                                 c.model.digit_bits)  # fmt: skip
    right = jnp.all(jnp.argmax(logits, -1) == digits, -1)
    n = jnp.maximum(w.sum(), 1.0)
    return (per_token * w).sum() / n, (right * w).sum() / n

  def step(state, batch, rng):
    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"], batch, rng
    )
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {
        "train/loss": loss,
        "train/accuracy": acc,
        "train/grad_norm": optax.global_norm(grads),
    }
    return {"params": params, "opt_state": opt_state}, metrics

  it = pipeline.batched_iterator(
      source, global_batch_size=c.data.batch_size, seed=seed,
      transform=_select,
  )  # fmt: skip
  return harness.Program(init=init, step=step, data=it)


def write_workdir_tokens(config, workdir: str) -> str:
  """`<workdir>/tokens.json`: what `load` and the sampler read."""
  path = token_spec.path_in(workdir)
  if jax.process_index() != 0:
    return path
  data = config_lib.from_config(DataConfig, config.data, "config.data")
  os.makedirs(workdir, exist_ok=True)
  if data.source == "random":
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      json.dump({"random_records": dataclasses.asdict(data.random)}, f)
  else:
    shutil.copyfile(token_spec.path_in(data.data_dir), path + ".tmp")
  os.replace(path + ".tmp", path)
  return path


@dataclasses.dataclass(frozen=True)
class LoadedSR:
  """A trained SR transformer: `model.apply({'params': params}, ...)`.

  Attributes:
    step: its checkpoint step.
    params: its parameters.
    model: the module.
    spec: the tokens' spec it was trained on (None for random records):
      the video tokenizer that decodes its output.
    workdir: where it was loaded from.
  """

  step: int
  params: dict
  model: model_lib.SRTransformer
  spec: token_spec.TokenSpec | None
  workdir: str


def load(path: str, step: int | None = None) -> LoadedSR:
  """The SR transformer of a workdir (or one of its `checkpoints/<step>`)."""
  workdir, in_path = loading.find_workdir(
      path, NAME, "experiments.train_superres"
  )
  saved = workdir_lib.read_family_config(workdir, NAME)
  data = config_lib.from_config(DataConfig, saved["data"], "config.data")
  spec = None
  if data.source == "random":
    facts = _random_facts(data.random)
  else:
    spec = token_spec.read(workdir)
    facts = token_facts(spec)
  model = model_lib.SRTransformer(model_config(saved["model"], facts))
  step, trees = loading.restore_params(
      workdir, ("params",), step if step is not None else in_path
  )
  params = nn.meta.unbox(trees["params"])
  return LoadedSR(step=step, params=params, model=model, spec=spec,
                  workdir=workdir)  # fmt: skip


FAMILY = family.Family(
    name=NAME,
    parse=parse,
    make_program=make_program,
    load=load,
    eval_keys=("params",),
    write_workdir=write_workdir_tokens,
)
