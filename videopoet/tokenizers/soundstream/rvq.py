"""Residual vector quantizer (SoundStream, Algorithm 1) with EMA codebooks.

Each of `num_levels` codebooks of `codebook_size` vectors quantizes what the
previous levels left over: r_0 = z; e_q = C_q[argmin_k |r_{q-1} - C_q[k]|];
r_q = r_{q-1} - e_q; z_hat = sum_q e_q.

Training (`__call__(..., train=True)` with `mutable=['quantizer']`) follows
the paper and fixes the known defects of EnCodec's quantizer code:

  * k-means initialization on the first batch, level after level on the
    residuals; the EMA sums start at `means * counts`, so the first EMA step
    keeps the k-means codes (EnCodec starts them at the means).
  * EMA codebooks (`decay`): N_k <- g N_k + (1 - g) n_k, m_k <- g m_k +
    (1 - g) sum_{t -> k} r_t, C_k = m_k / laplace(N)_k.
  * Dead codes: after the EMA update of a step, a code whose EMA count is
    below `dead_code_threshold` becomes a random frame of the batch, and its
    EMA sums are reset to that frame (`count = threshold`), so the next EMA
    step does not undo the replacement (EnCodec loses it).
  * Quantizer dropout per example: example b uses levels 0..n_b - 1 with
    n_b uniform in [1, num_levels] (a mask, so shapes stay static); with
    `dropout_prob` < 1 the other examples use every level. Levels an example
    does not use neither quantize it nor update the EMA.
  * Straight-through estimator; the residual subtracts stop_gradient(e_q), so
    every level's commitment loss reaches the encoder (EnCodec blocks all
    but the first).

The non-trainable state lives in the flax collection `quantizer`:
`codebook [L, K, D]`, `cluster_size [L, K]`, `embed_sum [L, K, D]` and
`initialized []`.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

COLLECTION = "quantizer"
_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class RVQConfig:
  """Residual quantizer fields (`config.model.rvq`).

  Attributes:
    num_levels: codebooks (quantizer depth N_q).
    codebook_size: codes per level.
    decay: EMA decay of the codebooks (paper: 0.99).
    dead_code_threshold: EMA assignment count below which a code is
      replaced (paper: 2; scale it with frames per batch / codebook_size).
    kmeans_init: k-means on the first training batch (else random codes).
    kmeans_iters: Lloyd iterations of that k-means.
    dropout_prob: fraction of examples that draw n_q in [1, num_levels]
      (paper: 1.0; DAC: 0.5); the others use all levels.
    eps: Laplace smoothing of the EMA counts.
  """

  num_levels: int = 8
  codebook_size: int = 1024
  decay: float = 0.99
  dead_code_threshold: float = 2.0
  kmeans_init: bool = True
  kmeans_iters: int = 10
  dropout_prob: float = 1.0
  eps: float = 1e-5


def nearest_code(x: jax.Array, codebook: jax.Array) -> jax.Array:
  """Index of the nearest code (squared L2) for each row of x [n, d]."""
  dots = jnp.dot(x, codebook.T, precision=_HIGHEST)  # [n, k]
  dist = (
      jnp.sum(codebook**2, -1)[None]
      - 2 * dots
      + jnp.sum(x**2, -1, keepdims=True)
  )
  return jnp.argmin(dist, axis=-1)  # [n]


def _weighted_sample(key, x, weights, num):
  """`num` rows of x [n, d], drawn with probability proportional to weights.

  Inverse-CDF sampling: `num` uniforms located in the weights' cumulative
  sum, O(n + num log n) (`jax.random.categorical` would draw a Gumbel per
  row and sample, [num, n]: 1,024 codes x the batch's frames per level and
  step). All-zero weights give row n - 1 (callers ignore it).
  """
  cdf = jnp.cumsum(weights)  # [n]
  u = jax.random.uniform(key, (num,), cdf.dtype) * cdf[-1]  # [num]
  idx = jnp.searchsorted(cdf, u, side="right")  # first row with cdf > u
  return x[jnp.minimum(idx, x.shape[0] - 1)]  # [num, d]


def kmeans(
    key: jax.Array, x: jax.Array, weights: jax.Array, k: int, iters: int
) -> tuple[jax.Array, jax.Array]:
  """Lloyd's k-means on the rows of x [n, d] with weight 0/1 [n].

  Returns:
    (means [k, d], counts [k]): empty clusters keep their previous mean.
  """
  means = _weighted_sample(key, x, weights, k)

  def body(_, means):
    counts, sums = _stats(x, weights, nearest_code(x, means), k)
    return jnp.where(
        counts[:, None] > 0, sums / jnp.maximum(counts, 1e-12)[:, None], means
    )

  means = jax.lax.fori_loop(0, iters, body, means)
  counts, _ = _stats(x, weights, nearest_code(x, means), k)
  return means, counts


def _stats(x, weights, idx, k):
  """Assignment counts [k] and sums [k, d] of the weighted rows."""
  counts = jax.ops.segment_sum(weights, idx, num_segments=k)
  sums = jax.ops.segment_sum(weights[:, None] * x, idx, num_segments=k)
  return counts, sums


def ema_update(cluster_size, embed_sum, x, weights, idx, decay, eps):
  """One EMA step of one codebook; returns (cluster_size, embed_sum, codes)."""
  k = cluster_size.shape[0]
  counts, sums = _stats(x, weights, idx, k)
  cluster_size = decay * cluster_size + (1 - decay) * counts
  embed_sum = decay * embed_sum + (1 - decay) * sums
  total = jnp.sum(cluster_size)
  smoothed = (cluster_size + eps) / (total + k * eps) * total
  return cluster_size, embed_sum, embed_sum / smoothed[:, None]


def replace_dead(key, cluster_size, embed_sum, codebook, x, weights, threshold):
  """Replaces codes with EMA count < threshold by random frames of x."""
  # No frame of the batch reaches this level (quantizer dropout): no samples.
  dead = (cluster_size < threshold) & (jnp.sum(weights) > 0)  # [k]
  samples = _weighted_sample(key, x, weights, codebook.shape[0])  # [k, d]
  codebook = jnp.where(dead[:, None], samples, codebook)
  cluster_size = jnp.where(dead, threshold, cluster_size)
  embed_sum = jnp.where(dead[:, None], samples * threshold, embed_sum)
  return cluster_size, embed_sum, codebook, jnp.sum(dead)


def dropout_mask(
    key: jax.Array, batch: int, num_levels: int, prob: float
) -> jax.Array:
  """[b, L] bool: example b uses levels < n_b, n_b ~ U{1..L} w.p. `prob`."""
  k1, k2 = jax.random.split(key)
  n = jax.random.randint(k1, (batch,), 1, num_levels + 1)  # [b], 1..L
  n = jnp.where(jax.random.uniform(k2, (batch,)) < prob, n, num_levels)
  return jnp.arange(num_levels)[None] < n[:, None]


class ResidualVQ(nn.Module):
  """RVQ over the last axis of z [b, t, d]; see the module docstring."""

  config: RVQConfig
  dim: int

  def setup(self):
    c = self.config
    shape = (c.num_levels, c.codebook_size)
    self.codebook = self.variable(
        COLLECTION,
        "codebook",
        lambda: jax.random.normal(self.make_rng("params"), shape + (self.dim,)),
    )
    self.cluster_size = self.variable(
        COLLECTION, "cluster_size", lambda: jnp.ones(shape)
    )
    self.embed_sum = self.variable(
        COLLECTION, "embed_sum", lambda: self.codebook.value
    )
    self.initialized = self.variable(
        COLLECTION, "initialized", lambda: jnp.array(not c.kmeans_init)
    )

  def encode(self, z: jax.Array, n_levels: int | None = None) -> jax.Array:
    """Codes [b, n_levels, t] of z [b, t, d] (eval mode, no state change)."""
    n_levels = self._check_levels(n_levels)
    b, t, d = z.shape
    r = z.reshape(b * t, d)
    codes = []
    for q in range(n_levels):
      idx = nearest_code(r, self.codebook.value[q])  # [b*t]
      r = r - self.codebook.value[q][idx]
      codes.append(idx.reshape(b, t))
    return jnp.stack(codes, axis=1).astype(jnp.int32)  # [b, n, t]

  def decode(self, codes: jax.Array) -> jax.Array:
    """z_hat [b, t, d] from codes [b, n, t] (n <= num_levels levels)."""
    n = self._check_levels(codes.shape[1])
    gathered = jax.vmap(lambda cb, c: cb[c], in_axes=(0, 1))(
        self.codebook.value[:n], codes
    )  # [n, b, t, d]
    return jnp.sum(gathered, axis=0)

  def _check_levels(self, n_levels):
    n_levels = self.config.num_levels if n_levels is None else n_levels
    if not 1 <= n_levels <= self.config.num_levels:
      raise ValueError(
          f"n_levels={n_levels} must be in 1.." f"{self.config.num_levels}"
      )
    return n_levels

  def __call__(
      self, z: jax.Array, *, train: bool, level_mask: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array, dict[str, Any]]:
    """Quantizes z [b, t, d].

    Args:
      z: encoder output.
      train: update the codebooks (needs `mutable=['quantizer']` and an
        rng named 'quantizer' for k-means and dead-code sampling).
      level_mask: [b, L] bool, which levels each example uses (quantizer
        dropout, see `dropout_mask`); None uses every level.

    Returns:
      (z_q [b, t, d] with the straight-through gradient, codes [b, L, t]
      (-1 where masked), aux): aux holds `commit_loss` (sum over levels of
      the masked mean |r - sg(e)|^2) and, per level, `usage` (fraction of
      codes used in the batch) and `dead` (codes replaced, train only).
    """
    c = self.config
    b, t, d = z.shape
    if level_mask is None:
      level_mask = jnp.ones((b, c.num_levels), bool)
    weights = jnp.repeat(level_mask.astype(z.dtype), t, axis=0)  # [b*t, L]
    r = z.reshape(b * t, d)
    if train:
      self._maybe_kmeans_init(jax.lax.stop_gradient(r))
    z_q = jnp.zeros_like(r)
    commit, codes, usage, dead = [], [], [], []
    for q in range(c.num_levels):
      w = weights[:, q]  # [b*t]
      codebook = self.codebook.value[q]  # [k, d]
      idx = nearest_code(jax.lax.stop_gradient(r), codebook)  # [b*t]
      e = codebook[idx] * w[:, None]  # [b*t, d]
      commit.append(
          jnp.sum(w[:, None] * (r - jax.lax.stop_gradient(e)) ** 2)
          / (jnp.maximum(jnp.sum(w), 1.0) * d)
      )
      used = jax.ops.segment_sum(w, idx, num_segments=c.codebook_size) > 0
      usage.append(jnp.mean(used))
      if train:
        dead.append(self._update_level(q, jax.lax.stop_gradient(r), w, idx))
      z_q = z_q + e
      r = r - jax.lax.stop_gradient(e)
      codes.append(jnp.where(w > 0, idx, -1).reshape(b, t))
    z_flat = z.reshape(b * t, d)
    z_q = z_flat + jax.lax.stop_gradient(z_q - z_flat)  # straight-through
    aux = {"commit_loss": jnp.sum(jnp.stack(commit)), "usage": jnp.stack(usage)}
    if train:
      aux["dead"] = jnp.stack(dead)
    return (
        z_q.reshape(b, t, d),
        jnp.stack(codes, axis=1).astype(jnp.int32),
        aux,
    )

  def _update_level(self, q, r, w, idx):
    """EMA step, then dead-code replacement, of level q; returns #dead."""
    c = self.config
    cluster_size, embed_sum, codebook = ema_update(
        self.cluster_size.value[q],
        self.embed_sum.value[q],
        r,
        w,
        idx,
        c.decay,
        c.eps,
    )
    cluster_size, embed_sum, codebook, n_dead = replace_dead(
        self.make_rng(COLLECTION),
        cluster_size,
        embed_sum,
        codebook,
        r,
        w,
        c.dead_code_threshold,
    )
    self.cluster_size.value = self.cluster_size.value.at[q].set(cluster_size)
    self.embed_sum.value = self.embed_sum.value.at[q].set(embed_sum)
    self.codebook.value = self.codebook.value.at[q].set(codebook)
    return n_dead

  def _maybe_kmeans_init(self, r):
    """k-means on the first batch, level by level on the residuals.

    Every frame counts, whatever its dropout mask: a level that no example
    of the first batch reaches still gets codes from the data.
    """
    c = self.config
    weights = jnp.ones(r.shape[:1], r.dtype)  # [b*t]
    key = self.make_rng(COLLECTION)

    def init(state):
      codebook, cluster_size, embed_sum = state
      res = r
      for q in range(c.num_levels):
        means, counts = kmeans(
            jax.random.fold_in(key, q),
            res,
            weights,
            c.codebook_size,
            c.kmeans_iters,
        )
        codebook = codebook.at[q].set(means)
        cluster_size = cluster_size.at[q].set(counts)
        embed_sum = embed_sum.at[q].set(means * counts[:, None])
        res = res - means[nearest_code(res, means)]
      return codebook, cluster_size, embed_sum

    state = (self.codebook.value, self.cluster_size.value, self.embed_sum.value)
    state = jax.lax.cond(self.initialized.value, lambda s: s, init, state)
    self.codebook.value, self.cluster_size.value, self.embed_sum.value = state
    self.initialized.value = jnp.array(True)
