"""Spatial masks for inpainting and outpainting (True = hidden token).

Masks cover the same [h', w'] region in every latent frame, as in MAGVIT's
in/outpainting tasks; their size is drawn per example from the config range.
"""

import numpy as np

SIDES = ("left", "right", "top", "bottom")


def _extent(n: int, fraction: float) -> int:
  return int(np.clip(round(n * fraction), 1, n - 1))


def preset(name: str, shape: tuple[int, int], fraction: float) -> np.ndarray:
  """A named mask [h', w']: 'box' (centred, sides `fraction` of the frame's)
  or a band along 'left'/'right'/'top'/'bottom' `fraction` of it wide."""
  h, w = shape
  mask = np.zeros((h, w), bool)
  if name == "box":
    bh, bw = _extent(h, fraction), _extent(w, fraction)
    top, left = (h - bh) // 2, (w - bw) // 2
    mask[top : top + bh, left : left + bw] = True
  elif name == "left":
    mask[:, : _extent(w, fraction)] = True
  elif name == "right":
    mask[:, w - _extent(w, fraction) :] = True
  elif name == "top":
    mask[: _extent(h, fraction)] = True
  elif name == "bottom":
    mask[h - _extent(h, fraction) :] = True
  else:
    raise ValueError(f"unknown mask {name!r}: box, {', '.join(SIDES)}")
  return mask  # [h', w']


def central_box(shape: tuple[int, int], ctx) -> np.ndarray:
  """A centred box whose sides are a random fraction of the frame's."""
  h, w = shape
  lo, hi = ctx.config.inpaint_fraction
  bh = _extent(h, ctx.rng.uniform(lo, hi))
  bw = _extent(w, ctx.rng.uniform(lo, hi))
  mask = np.zeros((h, w), bool)
  top, left = (h - bh) // 2, (w - bw) // 2
  mask[top : top + bh, left : left + bw] = True
  return mask  # [h', w']


def one_side(shape: tuple[int, int], ctx) -> np.ndarray:
  """A band along a random side (left/right/top/bottom) of random width."""
  lo, hi = ctx.config.outpaint_fraction
  side = SIDES[int(ctx.rng.integers(len(SIDES)))]
  return preset(side, shape, ctx.rng.uniform(lo, hi))
