"""VideoPoet's super-resolution (SR) transformer, in token space.

A bidirectional masked-token model over the high-resolution token grid
[t, H, W] (MaskGIT), conditioned on the low-resolution tokens [t, H/2, W/2]
of the same clip and on the caption's text ids. VideoPoet section 3.3 (the
reference's section 1.9):

  * blocks of three layers, each attending inside a local window along one
    axis (MaxViT-style): vertical (1, H-ish, small), horizontal
    (1, small, W-ish) and temporal (t, small, small);
  * each layer: windowed self-attention, cross-attention to the
    low-resolution tokens in the matching window (half its spatial size, so
    both grids have the same windows), cross-attention to the text, MLP;
  * the 2^K-way output factorized into k heads of 2^(K/k) classes: token
    id = sum_i digit_i * 2^(i K/k), the digits predicted independently, the
    loss the sum of the heads' cross-entropies (`factorized_loss`).

Windowed attention is a reshape of the grid into windows followed by
ordinary attention (`window_partition`), so it equals full attention under
a block-diagonal mask (`window_block_bias`; tests/superres_test.py).

Modules name logical axes like the LM's (`videopoet/sharding.py`): 'embed',
'heads', 'kv', 'mlp', 'vocab' for parameters and 'activation_*' for
activations, so the model shards on the same mesh by the same rules.
"""

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from videopoet import config_lib
from videopoet.model import layers

Dtype = Any
Window = tuple[int, int, int]
NEG_INF = layers.NEG_INF
# Names of a block's three layers, in order (one window each).
AXES = ("vertical", "horizontal", "temporal")
_ACT = ("activation_batch", "activation_length", "activation_embed")


@dataclasses.dataclass(frozen=True)
class SRModelConfig:
  """The SR transformer's shape (`config.model`, plus the tokens' facts).

  Attributes:
    width: model width d.
    num_blocks: blocks of three layers (vertical, horizontal, temporal).
    num_heads: attention heads (head dim = width / num_heads).
    mlp_dim: SwiGLU hidden size.
    windows: (t, h, w) windows on the high-resolution grid of the three
      layers of a block, in `AXES` order; h and w even (the low-resolution
      windows are (t, h/2, w/2)).
    low_input: also add each high-resolution token's low-resolution token's
      embedding (nearest-upsampled) to its input, beside the windowed
      cross-attention (VideoPoet conditions by cross-attention only).
    factor_heads: k, the output heads; visual_bits divides by it.
    visual_bits: K, the tokens' code bits (from tokens.json).
    text_size: sentencepiece pieces (from tokens.json; 0: no text input).
    max_text_len: text ids per example.
    dtype: 'float32' or 'bfloat16' compute dtype.
  """

  width: int = 128
  num_blocks: int = 2
  num_heads: int = 4
  mlp_dim: int = 256
  windows: tuple[Window, ...] = ((1, 8, 2), (1, 2, 8), (5, 2, 2))
  low_input: bool = True
  factor_heads: int = 2
  visual_bits: int = 10
  text_size: int = 512
  max_text_len: int = 16
  dtype: str = "float32"

  def __post_init__(self):
    if len(self.windows) != len(AXES):
      raise config_lib.ConfigError(
          f"config.model.windows={self.windows} must hold {len(AXES)}"
          f" windows ({', '.join(AXES)})"
      )
    for axis, w in zip(AXES, self.windows):
      if len(w) != 3 or min(w) < 1 or w[1] % 2 or w[2] % 2:
        raise config_lib.ConfigError(
            f"config.model.windows ({axis})={w} must be (t, h, w) >= 1 with"
            " h and w even (the low-resolution window is (t, h/2, w/2))"
        )
    if self.visual_bits % self.factor_heads:
      raise config_lib.ConfigError(
          f"config.model.factor_heads={self.factor_heads} must divide the"
          f" tokens' visual_bits={self.visual_bits}"
      )
    if self.width % self.num_heads:
      raise config_lib.ConfigError(
          f"config.model.num_heads={self.num_heads} must divide"
          f" config.model.width={self.width}"
      )

  @property
  def codebook(self) -> int:
    return 2**self.visual_bits

  @property
  def mask_id(self) -> int:
    """The id of a masked (high-res) or dropped (low-res) token."""
    return self.codebook

  @property
  def digit_bits(self) -> int:
    return self.visual_bits // self.factor_heads

  @property
  def compute_dtype(self):
    return jnp.bfloat16 if self.dtype == "bfloat16" else jnp.float32

  def check_grid(self, grid: tuple[int, int, int]) -> None:
    """Raises ValueError unless every window tiles the high-res `grid`."""
    for axis, w in zip(AXES, self.windows):
      if any(g % n for g, n in zip(grid, w)):
        raise ValueError(
            f"the {axis} window {w} does not tile the token grid {grid}"
        )


# ----------------------------------------------------------- Windows.
def window_partition(x: jax.Array, window: Window) -> jax.Array:
  """x [b, t, h, w, d] -> [b * n_windows, wt * wh * ww, d]."""
  b, t, h, w, d = x.shape
  wt, wh, ww = window
  x = x.reshape(b, t // wt, wt, h // wh, wh, w // ww, ww, d)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)  # [b, nt, nh, nw, wt, wh, ww, d]
  return x.reshape(-1, wt * wh * ww, d)


def window_merge(
    x: jax.Array, window: Window, grid: tuple[int, int, int]
) -> jax.Array:
  """The inverse of `window_partition`: -> [b, t, h, w, d]."""
  t, h, w = grid
  wt, wh, ww = window
  d = x.shape[-1]
  x = x.reshape(-1, t // wt, h // wh, w // ww, wt, wh, ww, d)
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return x.reshape(-1, t, h, w, d)


def window_ids(grid: tuple[int, int, int], window: Window) -> np.ndarray:
  """int [t * h * w]: the window of each grid cell (row-major order)."""
  t, h, w = (np.arange(n) // k for n, k in zip(grid, window))
  nh, nw = grid[1] // window[1], grid[2] // window[2]
  return (t[:, None, None] * nh * nw + h[None, :, None] * nw
          + w[None, None, :]).reshape(-1)  # fmt: skip


def window_block_bias(
    q_grid: tuple[int, int, int],
    q_window: Window,
    k_grid: tuple[int, int, int],
    k_window: Window,
) -> np.ndarray:
  """float [q, k] additive mask: 0 where query and key share a window."""
  same = window_ids(q_grid, q_window)[:, None] == window_ids(k_grid, k_window)
  return np.where(same, 0.0, NEG_INF).astype(np.float32)


def low_window(window: Window) -> Window:
  """The low-resolution window matching a high-resolution one."""
  return (window[0], window[1] // 2, window[2] // 2)


def sincos_3d(
    grid: tuple[int, int, int], d: int, stride: tuple[int, int, int] = (1,) * 3
) -> jax.Array:
  """Fixed [t, h, w, d] position code (sin/cos of each axis in d/3 parts),
  defined for any grid, so a model trained on one size runs on another.

  `stride`: cell i of an axis sits at i * s + (s - 1) / 2 (a low-resolution
  cell at the centre of the high-resolution cells it covers)."""
  parts = []
  n = (d // 3) // 2 * 2  # Even channels per axis.
  for axis, (size, st) in enumerate(zip(grid, stride)):
    pos = jnp.arange(size, dtype=jnp.float32) * st + (st - 1) / 2
    freq = 10_000.0 ** (-jnp.arange(0, n, 2, dtype=jnp.float32) / max(n, 1))
    ang = pos[:, None] * freq  # [size, n/2]
    code = jnp.concatenate([jnp.sin(ang), jnp.cos(ang)], -1)  # [size, n]
    shape = [1, 1, 1, n]
    shape[axis] = size
    parts.append(jnp.broadcast_to(code.reshape(shape), (*grid, n)))
  pad = d - 3 * n
  parts.append(jnp.zeros((*grid, pad), jnp.float32))
  return jnp.concatenate(parts, -1)  # [t, h, w, d]


# ------------------------------------------------------------ Layers.
def _param(mod, name, shape, axes, init=nn.initializers.lecun_normal()):
  return mod.param(
      name, nn.with_logical_partitioning(init, axes), shape, jnp.float32
  )


class MultiHeadAttention(nn.Module):
  """Attention of queries x [b, q, d] over keys kv [b, k, d] under bias
  [b or 1, 1, q, k] (additive; None: no mask)."""

  num_heads: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, kv, bias=None):
    d, h = x.shape[-1], self.num_heads
    hd = d // h
    cast = lambda w: w.astype(self.dtype)
    wq = _param(self, "query", (d, h, hd), ("embed", "heads", "kv"))
    wk = _param(self, "key", (kv.shape[-1], h, hd), ("embed", "heads", "kv"))
    wv = _param(self, "value", (kv.shape[-1], h, hd), ("embed", "heads", "kv"))
    wo = _param(self, "out", (h, hd, d), ("heads", "kv", "embed"))
    x, kv = x.astype(self.dtype), kv.astype(self.dtype)
    q = jnp.einsum("bqd,dhk->bhqk", x, cast(wq)) * hd**-0.5
    k = jnp.einsum("bsd,dhk->bhsk", kv, cast(wk))
    v = jnp.einsum("bsd,dhk->bhsk", kv, cast(wv))  # [b, h, k, hd]
    logits = jnp.einsum("bhqk,bhsk->bhqs", q, k).astype(jnp.float32)
    if bias is not None:
      logits = logits + bias
    probs = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqs,bhsk->bqhk", probs, v)  # [b, q, h, hd]
    return jnp.einsum("bqhk,hkd->bqd", out, cast(wo))  # [b, q, d]


class WindowAttention(nn.Module):
  """Attention of grid x [b, t, h, w, d] inside windows of `window`.

  kv: None (self-attention) or a grid [b, t, h', w', d'] of the same window
  count, attended in windows of `kv_window` (cross-attention to the
  low-resolution tokens: half the spatial window).
  """

  num_heads: int
  window: Window
  kv_window: Window | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, kv=None):
    grid = x.shape[1:4]
    q = window_partition(x, self.window)  # [b * n, wt * wh * ww, d]
    if kv is None:
      k = q
    else:
      k = window_partition(kv, self.kv_window)  # [b * n, window', d']
      if k.shape[0] != q.shape[0]:
        raise ValueError(
            f"grids {x.shape[1:4]} and {kv.shape[1:4]} have different window"
            f" counts for windows {self.window} and {self.kv_window}"
        )
    out = MultiHeadAttention(self.num_heads, self.dtype, name="attention")(
        q, k
    )
    return window_merge(out, self.window, grid)


class Layer(nn.Module):
  """One axis's layer: windowed self-attention, windowed cross-attention to
  the low-resolution tokens, cross-attention to the text, MLP (pre-norm)."""

  config: SRModelConfig
  window: Window

  @nn.compact
  def __call__(self, x, low, text, text_bias):
    # x [b, t, h, w, d], low [b, t, h/2, w/2, d], text [b, l, d].
    c, dt = self.config, self.config.compute_dtype
    norm = lambda name: layers.RMSNorm(dtype=dt, name=name)
    x = x + WindowAttention(c.num_heads, self.window, dtype=dt,
                            name="self_attention")(norm("norm_self")(x))  # fmt: skip
    x = x + WindowAttention(
        c.num_heads, self.window, low_window(self.window), dtype=dt,
        name="low_attention",
    )(norm("norm_low")(x), low)  # fmt: skip
    b, t, h, w, d = x.shape
    flat = x.reshape(b, t * h * w, d)
    flat = flat + MultiHeadAttention(c.num_heads, dt, name="text_attention")(
        norm("norm_text")(flat), text, text_bias
    )
    flat = nn.with_logical_constraint(flat, _ACT)
    flat = flat + layers.MLP(c.mlp_dim, dt, name="mlp")(norm("norm_mlp")(flat))
    return nn.with_logical_constraint(flat, _ACT).reshape(b, t, h, w, d)


class SRTransformer(nn.Module):
  """Logits of every high-resolution token's digits.

  __call__(tokens, low, text, text_mask):
    tokens: int [b, t, H, W] high-res codes, `mask_id` where masked.
    low: int [b, t, H/2, W/2] low-res codes, all `mask_id` when the
      condition is dropped.
    text: int [b, l] text ids (anything where `text_mask` is False).
    text_mask: bool [b, l]; all False drops the text.
  Returns float32 [b, t, H, W, k, 2^(K/k)].
  """

  config: SRModelConfig

  @nn.compact
  def __call__(self, tokens, low, text, text_mask):
    c = self.config
    d, dt = c.width, c.compute_dtype
    embed = lambda n, name: self.param(
        name, nn.with_logical_partitioning(
            nn.initializers.normal(0.02), ("vocab", "embed")
        ), (n, d), jnp.float32,
    )  # fmt: skip
    hi_table = embed(c.codebook + 1, "embed_high")  # + the mask id.
    lo_table = embed(c.codebook + 1, "embed_low")  # + the dropped id.
    grid, low_grid = tokens.shape[1:], low.shape[1:]
    x = jnp.take(hi_table, tokens, axis=0) + sincos_3d(grid, d)
    lo = jnp.take(lo_table, low, axis=0)  # [b, t, H/2, W/2, d]
    if c.low_input:  # Each high-res cell's low-res token, nearest-upsampled.
      x = x + jnp.repeat(jnp.repeat(lo, 2, axis=2), 2, axis=3)
    lo = lo + sincos_3d(low_grid, d, stride=(1, 2, 2))
    # Text: its embedding, and one learned "no text" key every query can
    # attend to (so a dropped caption leaves a defined softmax).
    b = tokens.shape[0]
    text_table = embed(max(c.text_size, 1), "embed_text")
    null = self.param(
        "text_null", nn.with_logical_partitioning(
            nn.initializers.normal(0.02), ("norm", "embed")
        ), (1, d), jnp.float32,
    )  # fmt: skip
    ids = jnp.clip(text, 0, max(c.text_size, 1) - 1)
    txt = jnp.take(text_table, ids, axis=0) + sincos_3d(
        (text.shape[1], 1, 1), d
    ).reshape(text.shape[1], d)
    txt = jnp.concatenate([jnp.broadcast_to(null, (b, 1, d)), txt], 1)
    keep = jnp.concatenate([jnp.ones((b, 1), bool), text_mask], 1)
    text_bias = jnp.where(keep, 0.0, NEG_INF)[:, None, None, :]  # [b,1,1,l+1]
    x, lo, txt = (v.astype(dt) for v in (x, lo, txt))
    for i in range(c.num_blocks):
      for axis, window in zip(AXES, c.windows):
        x = Layer(c, window, name=f"block_{i}_{axis}")(x, lo, txt, text_bias)
    x = layers.RMSNorm(dtype=dt, name="norm_out")(x)
    k, n = c.factor_heads, 2**c.digit_bits
    w = _param(self, "heads", (d, k, n), ("embed", "norm", "vocab"))
    logits = jnp.einsum("bthwd,dkn->bthwkn", x, w.astype(dt))
    return logits.astype(jnp.float32)  # [b, t, H, W, k, 2^(K/k)]


# ----------------------------------------------------- Factorized head.
def to_digits(tokens: jax.Array, factor_heads: int, digit_bits: int):
  """int [...] codes -> int [..., k] digits (least significant first)."""
  shifts = jnp.arange(factor_heads) * digit_bits
  return (tokens[..., None] >> shifts) & (2**digit_bits - 1)


def from_digits(digits: jax.Array, digit_bits: int) -> jax.Array:
  """int [..., k] digits -> int [...] codes."""
  shifts = jnp.arange(digits.shape[-1]) * digit_bits
  return jnp.sum(digits << shifts, axis=-1)


def factorized_loss(logits: jax.Array, tokens: jax.Array) -> jax.Array:
  """Per-token loss [...]: the sum over heads of each digit's CE.

  logits [..., k, n] (n = 2^(K/k)), tokens int [...] in [0, n^k). Equals
  the CE over the n^k product vocabulary of independent heads:
  -log prod_i softmax(logits_i)[digit_i].
  """
  k, n = logits.shape[-2:]
  digits = to_digits(tokens, k, int(math.log2(n)))  # [..., k]
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, digits[..., None], -1)[..., 0].sum(-1)
