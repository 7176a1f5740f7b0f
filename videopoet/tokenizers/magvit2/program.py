"""MAGVIT-v2 as a `train_lib.family.Family`: training, evaluation, loading.

  family.run(FAMILY, config, workdir)  # `experiments.train_video_tokenizer`
  tok = load_tokenizer(workdir)        # = FAMILY.load(workdir)
  ids = tok.encode_to_indices(video)      # [b, t', h', w'] int32
  video = tok.decode_from_indices(ids)    # [b, t, h, w, 3] in [-1, 1]

Data: any TFDS dataset with a uint8 `video` [t, h, w, 3] feature read
through `videopoet.data.datasets.open_split` (`synth_av`, `video_folder`).
"""

import dataclasses
import json
import os

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from videopoet import config_lib
from videopoet import sharding
from videopoet.train_lib import data as data_lib
from videopoet.train_lib import family
from videopoet.train_lib import harness
from videopoet.tokenizers.common import perceptual
from videopoet.tokenizers.magvit2 import loader
from videopoet.tokenizers.magvit2 import metrics as metrics_lib
from videopoet.tokenizers.magvit2 import model as model_lib
from videopoet.tokenizers.magvit2 import quantizers
from videopoet.tokenizers.magvit2 import train as train_lib


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """`config.data`.

  Attributes:
    dataset: TFDS name, with its builder config ('synth_av/tiny').
    data_dir: where `experiments.build_data` wrote it.
    train_split: split to train on.
    eval_split: split to evaluate on.
    batch_size: global clips per step.
    num_frames: frames per clip (1 + 4k, at most the stored length);
      evaluation always sees these.
    train_num_frames: if > 0, each training clip is a random window of
      this many frames (1 + 4k) of the `num_frames` read: shorter clips,
      cheaper steps (the model is convolutional and causal, so it runs on
      any 1 + 4k frames). 0 trains on `num_frames`.
  """

  dataset: str = "synth_av/tiny"
  data_dir: str = ""
  train_split: str = "train"
  eval_split: str = "test"
  batch_size: int = 8
  num_frames: int = 17
  train_num_frames: int = 0

  def __post_init__(self):
    if self.batch_size < 1:
      raise config_lib.ConfigError(
          f"config.data.batch_size={self.batch_size} must be >= 1"
      )


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """`config.eval`: clips per eval batch and how many batches (0: all)."""

  batch_size: int = 8
  num_batches: int = 0

  def __post_init__(self):
    if self.batch_size < 1 or self.num_batches < 0:
      raise config_lib.ConfigError(
          f"config.eval.batch_size={self.batch_size} must be >= 1 and"
          f" config.eval.num_batches={self.num_batches} >= 0 (0: all)"
      )


# Shared with the loader (`loader.trainer_from_config`).
_trainer = loader.trainer_from_config
trainer_from_config = loader.trainer_from_config
LoadedTokenizer = loader.LoadedTokenizer
load_tokenizer = loader.load_tokenizer


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """A `configs/magvit2.py` config, checked (`parse`).

  Attributes:
    trainer: the harness's section (`config.trainer`).
    pieces: the model, quantizer, discriminator, losses, optimizer and
      perceptual net (`train.Trainer`: init, phases and step).
    data: `config.data`.
    eval: `config.eval`.
  """

  trainer: harness.TrainerConfig
  pieces: train_lib.Trainer
  data: DataConfig
  eval: EvalConfig


def parse(config) -> TrainConfig:
  """The typed sections of a `configs/magvit2.py` config (bad keys named)."""
  return TrainConfig(
      trainer=family.parse_trainer(config),
      pieces=_trainer(config),
      data=config_lib.from_config(DataConfig, config.data, "config.data"),
      eval=config_lib.from_config(EvalConfig, config.eval, "config.eval"),
  )


def _source(cfg: DataConfig, split: str):
  if not cfg.data_dir:
    raise config_lib.ConfigError(
        "config.data.data_dir is empty: build the data first with"
        " `python -m experiments.build_data` and pass its"
        " --config.data.data_dir"
    )
  from videopoet.data import datasets  # pylint: disable=g-import-not-at-top

  # Never builds: a missing build names the build_data command.
  return datasets.open_split(cfg.dataset, cfg.data_dir, split)


def _transform(num_frames: int):
  def fn(record):
    video = np.asarray(record["video"])
    if video.shape[0] < num_frames:
      raise ValueError(
          f"clips have {video.shape[0]} frames, fewer than"
          f" config.data.num_frames={num_frames}"
      )
    return {"video": video[:num_frames]}  # [t, h, w, 3] uint8

  return fn


def to_float(video: jax.Array) -> jax.Array:
  """uint8 [..., 3] -> float32 in [-1, 1]."""
  return video.astype(jnp.float32) / 127.5 - 1.0


def make_evaluate(trainer, cfg: DataConfig, ecfg: EvalConfig, mesh):
  """`(state, step) -> {eval/...}` over the eval split with EMA params."""
  source = _source(cfg, cfg.eval_split)
  if len(source) < ecfg.batch_size:
    raise config_lib.ConfigError(
        f"the {cfg.eval_split!r} split of {cfg.dataset} holds {len(source)}"
        f" clips, fewer than config.eval.batch_size={ecfg.batch_size}: lower"
        " it or evaluate on a larger split (config.data.eval_split)"
    )
  tok = trainer.tokenizer
  lfq = isinstance(tok.quantizer, quantizers.LFQ)

  @jax.jit
  def batch_stats(params, video):
    video = to_float(video)
    recon, out = tok.apply(params, video)
    return (
        metrics_lib.psnr(video, recon),
        metrics_lib.ssim(video, recon),
        out.indices,
        out.metrics,
    )

  def evaluate(state, step):
    del step
    it = data_lib.batched_iterator(
        source,
        global_batch_size=ecfg.batch_size,
        seed=0,
        shuffle=False,
        num_epochs=1,
        transform=_transform(cfg.num_frames),
    )
    sums, ids, n = {}, [], 0
    for i, batch in enumerate(it):
      if ecfg.num_batches and i >= ecfg.num_batches:
        break
      video = sharding.global_batch(batch, mesh)["video"]
      p, s, idx, m = batch_stats(state["ema_params"], video)
      for k, v in dict(psnr=p, ssim=s, **m).items():
        sums[k] = sums.get(k, 0.0) + float(v)
      ids.append(np.asarray(jax.device_get(idx)).reshape(-1))
      n += 1
    out = {f"eval/{k}": v / max(n, 1) for k, v in sums.items()}
    ids = np.concatenate(ids)
    out["eval/code_usage"] = len(np.unique(ids)) / tok.quantizer.codebook_size
    if lfq:
      bits = (ids[:, None] >> np.arange(tok.quantizer.num_bits)) & 1
      means = bits.mean(0)
      out["eval/bit_mean_min"] = float(means.min())
      out["eval/bit_mean_max"] = float(means.max())
    logging.info("eval: %s", {k: round(float(v), 4) for k, v in out.items()})
    return out

  return evaluate


def make_program(c: TrainConfig, mesh) -> harness.Program:
  """The harness program of a parsed config (`parse`; configs/magvit2.py)."""
  trainer, dcfg, ecfg = c.pieces, c.data, c.eval
  source = _source(dcfg, dcfg.train_split)
  h, w = np.asarray(source[0]["video"]).shape[1:3]
  sample = jnp.zeros((1, dcfg.num_frames, h, w, 3))
  trainer.model.latent_shape(dcfg.num_frames, h, w)  # Fails early if bad.
  window = dcfg.train_num_frames
  if window:
    if window > dcfg.num_frames:
      raise config_lib.ConfigError(
          f"config.data.train_num_frames={window} exceeds"
          f" config.data.num_frames={dcfg.num_frames}"
      )
    trainer.model.latent_shape(window, h, w)
  perc_params = perceptual.load(trainer.perceptual)

  def step(state, batch, rng, phase):
    video = batch["video"]  # [b, num_frames, h, w, 3] uint8
    if window:
      rng, crop_rng = jax.random.split(rng)
      video = data_lib.random_windows(video, window, crop_rng)
    return trainer.step(state, to_float(video), rng, perc_params, phase=phase)

  data = data_lib.batched_iterator(
      source,
      global_batch_size=dcfg.batch_size,
      seed=c.trainer.seed,
      transform=_transform(dcfg.num_frames),
  )
  # One step program per phase (reconstruction only, GAN, GAN + lazy R1),
  # compiled ahead of time; the iterator names each batch's.
  example = data_lib.example_batch(
      _transform(dcfg.num_frames)(source[0]), dcfg.batch_size
  )
  return harness.Program(
      init=lambda rng: trainer.init(rng, sample),
      step=step,
      data=data_lib.PhasedBatches(data, trainer.phase_of),
      groups={phase: example for phase in trainer.phases()},
      evaluate=make_evaluate(trainer, dcfg, ecfg, mesh),
      guard=("train/loss", "train/grad_norm", "train/disc_loss"),
  )


def evaluate_run(config, workdir: str) -> dict[str, float]:
  """Evaluates the latest EMA checkpoint of `workdir` on `config.eval`.

  The data and eval sections come from `config` (so a run can be evaluated
  on another split or dataset); writes `<workdir>/eval_<step>.json`.
  """
  c = parse(config)
  dcfg = c.data
  mesh = family.make_mesh(config)
  tok = load_tokenizer(workdir)
  evaluate = make_evaluate(c.pieces, dcfg, c.eval, mesh)
  with jax.set_mesh(mesh):
    out = {
        k: float(v)
        for k, v in evaluate({"ema_params": tok.params}, tok.step).items()
    }
  out["step"] = tok.step
  if jax.process_index() == 0:
    with open(
        os.path.join(workdir, f"eval_{tok.step}.json"), "w", encoding="utf-8"
    ) as f:
      json.dump(
          {"split": dcfg.eval_split, "dataset": dcfg.dataset, **out},
          f,
          indent=2,
      )
  return out


FAMILY = family.Family(
    name="video_tokenizer",
    parse=parse,
    make_program=make_program,
    phases=lambda c: c.pieces.phases(),
    phase_of=lambda c, step: c.pieces.phase_of(step),
    load=load_tokenizer,
    eval_keys=("ema_params",),
)
