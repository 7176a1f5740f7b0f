"""The SR transformer's data: resizing clips, and pairs of token grids.

`resize_clips` is the one bicubic resize of the project's SR data and
evaluation: `tokenize_data` with `superres_factor=f` encodes each clip a
second time at 1/f of its size through it (the record's `video_low`), and
the evaluation upsamples decoded low-resolution clips with it.

A record of the SR trainer is a dict of

  video      int32 [t', H', W']     codes of the clip,
  video_low  int32 [t', H'/f, W'/f] codes of the clip downsampled by f,
  text       int32 [l]              sentencepiece ids, -1 after the caption,
  text_mask  bool  [l],

as `tokenize_data` writes them (or `random_records`, for tests).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from videopoet import token_spec

FIELDS = ("video", "video_low", "text", "text_mask")
# tokens.json's key (in `extra`) of the low-resolution factor.
FACTOR_KEY = "superres_factor"


def resize_clips(video: np.ndarray, height: int, width: int) -> np.ndarray:
  """float [..., t, h, w, c] -> float32 [..., t, height, width, c], bicubic
  (antialiased when shrinking; values are not clipped)."""
  video = jnp.asarray(video, jnp.float32)
  shape = (*video.shape[:-3], height, width, video.shape[-1])
  return np.asarray(
      jax.image.resize(video, shape, "bicubic", antialias=True)
  )


def low_factor(spec: token_spec.TokenSpec) -> int:
  """The tokens' low-resolution factor (0: they have no `video_low`)."""
  return int(spec.extra.get(FACTOR_KEY, 0) or 0)


def low_grid(spec: token_spec.TokenSpec) -> tuple[int, int, int]:
  """(t', h', w') of a record's `video_low`."""
  f = low_factor(spec)
  if not f:
    raise ValueError(
        "these tokens have no low-resolution codes: tokenize with"
        " --config.superres_factor=2"
    )
  t, h, w = spec.latent_grid
  return t, h // f, w // f


@dataclasses.dataclass(frozen=True)
class RandomRecordsConfig:
  """Random records for tests (`config.data.random`).

  Attributes:
    size: records.
    visual_bits: code bits.
    grid: (t', H', W') of `video`; `video_low` is (t', H'/2, W'/2).
    text_size: text pieces.
    max_text_len: text ids per record.
  """

  size: int = 16
  visual_bits: int = 4
  grid: tuple[int, int, int] = (2, 4, 4)
  text_size: int = 32
  max_text_len: int = 8


def random_records(c: RandomRecordsConfig, seed: int) -> list[dict]:
  """`c.size` records whose low codes are a function of the high ones
  (each 2x2 cell's first code), so a model can learn something."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(c.size):
    hi = rng.integers(0, 2**c.visual_bits, c.grid).astype(np.int32)
    n = int(rng.integers(1, c.max_text_len + 1))
    text = np.full((c.max_text_len,), -1, np.int32)
    text[:n] = rng.integers(0, c.text_size, n)
    out.append({
        "video": hi, "video_low": hi[:, ::2, ::2].copy(), "text": text,
        "text_mask": text >= 0,
    })  # fmt: skip
  return out
