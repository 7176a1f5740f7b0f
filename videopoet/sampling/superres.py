"""Super-resolution stages of the sampling job (`config.superres`).

A video the LM made (at its tokens' resolution) goes through one or more
SR transformers (`videopoet.superres`), each doubling its height and width
in token space: the video's codes (the clip re-encoded by the LM's video
tokenizer) are the low-resolution condition, the request's text the text
condition, and the last stage's codes are decoded by the same tokenizer.
Every stage must have been trained on tokens of that tokenizer
(`load_stages` checks its `tokens.json`). Images (one frame) are left as
they are: the stages' temporal windows span a clip.
"""

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from videopoet import config_lib
from videopoet import text_tokenizer
from videopoet.sampling import generate
from videopoet.superres import sample as sample_lib
from videopoet.superres import trainer as trainer_lib


def parse_paths(value: str) -> list[str]:
  """`config.superres`: comma-separated SR workdirs ('' : none)."""
  return [p.strip() for p in value.split(",") if p.strip()]


def load_stages(paths: list[str], spec) -> list[trainer_lib.LoadedSR]:
  """The SR transformers of `paths`, checked against the LM's tokens.

  Raises:
    config_lib.ConfigError: a path is no SR workdir, or its tokens were made
      by another video tokenizer than the LM's (named).
  """
  stages = []
  for i, path in enumerate(paths):
    try:
      stage = trainer_lib.load(path)
    except (FileNotFoundError, config_lib.ConfigError) as e:
      raise config_lib.ConfigError(
          f"config.superres[{i}]={path!r} cannot be loaded: {e}"
      ) from e
    if stage.spec is None or (
        stage.spec.video_tokenizer, stage.spec.video_tokenizer_step
    ) != (spec.video_tokenizer, spec.video_tokenizer_step):
      made = None if stage.spec is None else stage.spec.video_tokenizer
      raise config_lib.ConfigError(
          f"config.superres[{i}]={path!r} was trained on tokens of the video"
          f" tokenizer {made!r}, not the LM's {spec.video_tokenizer!r}"
          f" (step {spec.video_tokenizer_step})"
      )
    stages.append(stage)
  return stages


def record(stages: list[trainer_lib.LoadedSR]) -> list[dict]:
  """What the manifest and `sampler.json` say of the stages."""
  return [{"workdir": s.workdir, "step": s.step} for s in stages]


def apply(
    stages: list[trainer_lib.LoadedSR],
    gen: Any,
    video: np.ndarray,
    text: str | None,
    seed: int,
    sampling: sample_lib.SRSamplingConfig,
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
  """uint8 videos [n, t, h, w, 3] -> [n, t, h * 2^s, w * 2^s, 3].

  `gen` is the job's `generate.Generator` (its video tokenizer encodes and
  decodes, its text tokenizer encodes `text`). Stage i samples with seed
  `seed + i`. Returns the videos and each stage's output token grid.
  """
  codes = np.stack([gen.encode_video(v) for v in video])  # [n, t', h', w']
  grids = []
  for i, stage in enumerate(stages):
    t, h, w = codes.shape[1:]
    try:
      stage.model.config.check_grid((t, 2 * h, 2 * w))
    except ValueError as e:
      raise generate.RequestError(
          f"super-resolution stage {i} ({stage.workdir}) cannot take this"
          f" video's {t}x{h}x{w} codes: {e}"
      ) from None
    length = stage.model.config.max_text_len
    ids = np.full((len(video), length), -1, np.int32)
    if text and gen.models.text is not None:
      ids[:] = text_tokenizer.encode(gen.models.text, text, length)
    codes = sample_lib.super_resolve(
        stage, codes, ids, ids >= 0, seed + i, sampling
    )
    grids.append(tuple(int(n) for n in codes.shape[1:]))
  return gen.decode_video(jnp.asarray(codes)), grids


def settings(sampling: sample_lib.SRSamplingConfig) -> dict:
  return dataclasses.asdict(sampling)
