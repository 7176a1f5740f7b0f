"""Transformer layers: RMSNorm, RoPE, SwiGLU MLP, grouped-query attention.

Every parameter names its logical axes (`nn.with_logical_partitioning`);
`videopoet/sharding.py` maps them onto the mesh. Computation runs in `dtype`
(bf16 or f32), parameters are stored in `param_dtype`.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet.model import attention

Dtype = Any
NEG_INF = attention.NEG_INF


def _param(mod, name, shape, axes, dtype, init=nn.initializers.lecun_normal()):
  return mod.param(name, nn.with_logical_partitioning(init, axes), shape, dtype)


class RMSNorm(nn.Module):
  """x / rms(x) * scale, computed in f32."""

  eps: float = 1e-6
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):  # [..., d]
    scale = _param(
        self, "scale", (x.shape[-1],), ("norm",), self.param_dtype,
        nn.initializers.ones,
    )  # fmt: skip
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32**2, -1, keepdims=True) + self.eps)
    return (y * scale.astype(jnp.float32)).astype(self.dtype)


def rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
  """Rotary position embedding (rotate-half form) of x [b, s, h, d]."""
  d = x.shape[-1]
  freq = theta ** (-jnp.arange(0, d, 2, dtype=jnp.float32) / d)  # [d/2]
  angle = positions[..., None].astype(jnp.float32) * freq  # [b, s, d/2]
  sin, cos = jnp.sin(angle)[:, :, None], jnp.cos(angle)[:, :, None]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)
  return out.astype(x.dtype)  # [b, s, h, d]


class MLP(nn.Module):
  """SwiGLU: wo(silu(x wi_0) * (x wi_1)).

  `chunks` > 1 sums it over that many slices of the hidden width, one after
  the other in a `lax.scan`, each rematerialized. SwiGLU is a sum over its
  hidden units, so the pieces share no weights: each slice's [b, s, f /
  chunks] activations, its (gathered) weights and their gradients exist
  one slice at a time, and only the [b, s, d] output (and its gradient)
  adds up. Slice j holds the strided units {j, j + chunks, ...}, so a
  hidden axis sharded over `tensor` stays sharded in every slice.
  """

  mlp_dim: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  chunks: int = 1

  @nn.compact
  def __call__(self, x):  # [b, s, d]
    d, f, n = x.shape[-1], self.mlp_dim, self.chunks
    w0 = _param(self, "wi_0", (d, f), ("embed", "mlp"), self.param_dtype)
    w1 = _param(self, "wi_1", (d, f), ("embed", "mlp"), self.param_dtype)
    wo = _param(self, "wo", (f, d), ("mlp", "embed"), self.param_dtype)
    w0, w1, wo = (w.astype(self.dtype) for w in (w0, w1, wo))
    if n == 1:
      return self._swiglu(x, w0, w1, wo)
    slices = lambda w, axis: jnp.moveaxis(
        w.reshape(*w.shape[:axis], f // n, n, *w.shape[axis + 1 :]),
        axis + 1,
        0,
    )  # The hidden axis f as [f / n, n], then n first.
    part = jax.checkpoint(self._swiglu, prevent_cse=False)

    def step(y, ws):  # ws: [d, f / n], [d, f / n], [f / n, d]
      return y + part(x, *ws), None

    y, _ = jax.lax.scan(
        step, jnp.zeros_like(x), (slices(w0, 1), slices(w1, 1), slices(wo, 0))
    )
    return y  # [b, s, d]

  def _swiglu(self, x, w0, w1, wo):  # x [b, s, d], w0 [d, f'] -> [b, s, d]
    # The matmuls run on [b * s, d] rows: XLA:CPU differentiates 2-D dots
    # about 2x faster than [b, s, d] ones (the weight gradients contract two
    # axes otherwise; benchmarks/lm_speed.py). Same math; reshapes are free.
    lead, d = x.shape[:-1], x.shape[-1]
    x2 = x.reshape(-1, d)
    h = nn.silu(x2 @ w0) * (x2 @ w1)  # [b * s, f']
    h = nn.with_logical_constraint(
        h.reshape(*lead, w0.shape[1]),
        ("activation_batch", "activation_length", "activation_mlp"),
    )  # [b, s, f']
    return (h.reshape(-1, w0.shape[1]) @ wo).reshape(*lead, d)


# The KV cache's logical axes (`sharding.py` shards them like activations:
# batch over the data axes, kv heads over `tensor`).
CACHE_AXES = ("cache_batch", "cache_length", "cache_kv_heads", "cache_kv")
# How a block runs: 'train' (the whole sequence, no cache), 'prefill' (the
# whole prefix, its keys and values written to the cache) or 'decode' (one
# token per row at `positions`, attending to the cache).
MODES = ("train", "prefill", "decode")


class Attention(nn.Module):
  """Multi-head attention with `num_kv_heads` <= `num_heads` (GQA) and RoPE.

  With `mode` 'prefill' or 'decode' it keeps a KV cache of `cache_len`
  positions in the `cache` collection (`key`, `value`: [b, cache_len, kv,
  hd], kv heads only under GQA). Prefill writes positions [0, s); decode
  writes the one position in `positions` (the same for every row) and
  attends over the whole cache under `mask` (its `q_start` that position).
  `impl` picks the attention implementation (`attention.IMPLS`).
  """

  num_heads: int
  num_kv_heads: int
  head_dim: int
  rope_theta: float = 10_000.0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  mode: str = "train"
  cache_len: int = 0
  impl: str = "auto"

  @nn.compact
  def __call__(self, x, mask: attention.Mask, positions):  # x [b, s, d]
    d, h, kv, hd = x.shape[-1], self.num_heads, self.num_kv_heads, self.head_dim
    pd, cast = self.param_dtype, lambda w: w.astype(self.dtype)
    wq = _param(self, "query", (d, h, hd), ("embed", "heads", "kv"), pd)
    wk = _param(self, "key", (d, kv, hd), ("embed", "kv_heads", "kv"), pd)
    wv = _param(self, "value", (d, kv, hd), ("embed", "kv_heads", "kv"), pd)
    wo = _param(self, "out", (h, hd, d), ("heads", "kv", "embed"), pd)
    q = rope(
        jnp.einsum("bsd,dhk->bshk", x, cast(wq)), positions, self.rope_theta
    )
    k = rope(
        jnp.einsum("bsd,dhk->bshk", x, cast(wk)), positions, self.rope_theta
    )
    v = jnp.einsum("bsd,dhk->bshk", x, cast(wv))  # [b, s, kv, hd]
    axes = attention.HEADS_AXES
    q = nn.with_logical_constraint(q, axes)  # [b, s, h, hd]
    if self.mode != "train":
      k, v = self._cached(k, v, positions)  # [b, cache_len, kv, hd]
    out = attention.attend(q, k, v, mask, impl=self.impl)  # [b, s, h, hd]
    out = nn.with_logical_constraint(out, axes)
    return jnp.einsum("bshk,hkd->bsd", out, cast(wo))  # [b, s, d]

  def _cached(self, k, v, positions):
    """Writes k, v [b, s, kv, hd] into the cache; returns the whole cache."""
    b, s, kv, hd = k.shape
    shape = (b, self.cache_len, kv, hd)
    init = nn.with_logical_partitioning(jnp.zeros, CACHE_AXES)
    key = self.variable("cache", "key", init, shape, self.dtype)
    value = self.variable("cache", "value", init, shape, self.dtype)
    if self.mode == "prefill":
      start = 0
    else:  # 'decode': one position, the same in every row.
      if s != 1:
        raise ValueError(f"decode takes one token per row, got {s}")
      start = positions[0, 0]
    zero = jnp.zeros((), jnp.int32)
    idx = (zero, jnp.asarray(start, jnp.int32), zero, zero)
    write = lambda cache, new: nn.with_logical_constraint(
        jax.lax.dynamic_update_slice(cache, new.astype(self.dtype), idx),
        CACHE_AXES,
    )
    key.value = write(key.value, k)
    value.value = write(value.value, v)
    if self.mode == "prefill":  # The prefix attends to itself only.
      return k, v
    return key.value, value.value
