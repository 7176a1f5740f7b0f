"""Lookup-free (LFQ) and finite scalar (FSQ) quantizers of MAGVIT-v2.

Both quantizers have no parameters and share one interface:

  q = LFQ(num_bits=18)                    # or FSQ(levels=(8, 8, 4, ...))
  out = q(z, step=step)                   # z: [..., q.dim] float
  out.quantized, out.indices, out.loss, out.metrics
  q.indices_to_codes(out.indices)         # == out.quantized (forward value)

LFQ (Yu et al., arXiv 2310.05737, Sec. 3.1): `q = sign(z)` per channel with a
straight-through gradient; the index of a token is `sum_i 2^i [z_i > 0]`
(channel 0 is the least significant bit, the paper's and praxis's order;
vector-quantize-pytorch uses the reverse). Its loss is

  commitment_weight * mean((sg(q) - z)^2)
  + entropy_weight * anneal(step) * (E_n[H(p_n)] - diversity_weight H(E_n p_n))

with `p_n = softmax(2 z_n . c / T)` over the 2^K codes c in {-1, 1}^K,
T = 1 / inv_temperature = 0.01. That softmax is a product of independent
Bernoullis, P(bit_i = 1) = sigmoid(4 z_i / T), so

  * the per-sample entropy is exactly the sum of per-bit binary entropies;
  * the batch distribution over all 2^K codes is exactly
    `P_hi^T @ P_lo / N`, where P_hi [N, 2^(K//2)] and P_lo [N, 2^(K-K//2)] are
    the distributions over the two halves of the bits. For K = 18 that is one
    [512, N] @ [N, 512] matmul instead of an [N, 262144] softmax.

Entropies are computed in float32 whatever the input dtype.
"""

import dataclasses
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

LogMode = Literal["exact", "add_eps", "clamp_eps"]
_EPS = 1e-5  # The eps of praxis ('add_eps') and vector-quantize-pytorch.


class QuantizerOutput(NamedTuple):
  """What a quantizer returns.

  Attributes:
    quantized: [..., dim] codes in the input dtype; straight-through gradient
      to the input.
    indices: [...] int32 code indices in [0, codebook_size).
    loss: scalar float32 auxiliary loss (already weighted).
    metrics: scalar float32 diagnostics (per_sample_entropy, batch_entropy,
      commitment, entropy_loss).
  """

  quantized: jax.Array
  indices: jax.Array
  loss: jax.Array
  metrics: dict[str, jax.Array]


def bit_matrix(num_bits: int) -> np.ndarray:
  """[2^num_bits, num_bits] 0/1 bits of every index, LSB (bit 0) first."""
  codes = np.arange(2**num_bits)[:, None]
  return ((codes >> np.arange(num_bits)) & 1).astype(np.float32)


def _xlogx_sum(p: jax.Array, mode: LogMode) -> jax.Array:
  """-sum p log p over all entries, with the chosen log convention."""
  if mode == "add_eps":  # praxis / Open-MAGVIT2: log(p + eps).
    logp = jnp.log(p + _EPS)
  elif mode == "clamp_eps":  # vector-quantize-pytorch: log(max(p, eps)).
    logp = jnp.log(jnp.maximum(p, _EPS))
  else:  # Exact, with 0 log 0 = 0 (and a finite gradient at p = 0).
    logp = jnp.log(jnp.where(p > 0, p, 1.0))
  return -jnp.sum(p * logp)


def per_sample_entropy(z: jax.Array, inv_temperature: float) -> jax.Array:
  """Mean over tokens of H(p_n), exactly, as a sum of per-bit entropies.

  Args:
    z: [n, k] float32 latents.
    inv_temperature: 1 / T.

  Returns:
    Scalar, nats.
  """
  logit = 4.0 * inv_temperature * z  # [n, k] logit of P(bit = 1)
  p = jax.nn.sigmoid(logit)
  h = -(p * jax.nn.log_sigmoid(logit) + (1 - p) * jax.nn.log_sigmoid(-logit))
  return jnp.mean(jnp.sum(h, axis=-1))


def _half_code_probs(logit: jax.Array) -> jax.Array:
  """[n, g] bit logits -> [n, 2^g] distribution over the g-bit codes."""
  bits = jnp.asarray(bit_matrix(logit.shape[-1]))  # [2^g, g]
  hp = jax.lax.Precision.HIGHEST
  logp = jnp.dot(jax.nn.log_sigmoid(logit), bits.T, precision=hp) + jnp.dot(
      jax.nn.log_sigmoid(-logit), 1 - bits.T, precision=hp
  )
  return jnp.exp(logp)  # [n, 2^g]


def batch_code_probs(z: jax.Array, inv_temperature: float) -> jax.Array:
  """Mean over tokens of p_n, as [2^(k//2), 2^(k - k//2)] (row = high bits).

  Entry [hi, lo] is the probability of index `hi * 2^(k - k//2) + lo`, so
  `.reshape(-1)` is the distribution over all 2^k indices.

  Args:
    z: [n, k] float32 latents.
    inv_temperature: 1 / T.
  """
  k = z.shape[-1]
  n_lo = k - k // 2
  logit = 4.0 * inv_temperature * z  # [n, k]
  p_lo = _half_code_probs(logit[:, :n_lo])  # [n, 2^n_lo]
  p_hi = _half_code_probs(logit[:, n_lo:])  # [n, 2^(k - n_lo)]
  return jnp.dot(p_hi.T, p_lo, precision=jax.lax.Precision.HIGHEST) / z.shape[0]


def batch_entropy(
    z: jax.Array, inv_temperature: float, log_mode: LogMode = "exact"
) -> jax.Array:
  """H(E_n p_n) over all 2^k codes, without an [n, 2^k] array."""
  return _xlogx_sum(batch_code_probs(z, inv_temperature), log_mode)


def anneal_factor(step: Any, factor: float, steps: int) -> jax.Array:
  """`1 + factor * max(0, 1 - step / steps)`: x(1 + factor) at step 0 -> x1."""
  if step is None or steps <= 0:
    return jnp.float32(1.0)
  frac = jnp.asarray(step, jnp.float32) / steps
  return 1.0 + factor * jnp.maximum(0.0, 1.0 - frac)


@dataclasses.dataclass(frozen=True)
class LFQ:
  """Lookup-free quantizer (config: `config.quantizer`, kind 'lfq').

  Attributes:
    num_bits: K; the codebook has 2^K codes and latents have K channels.
    commitment_weight: weight of mean((sg(q) - z)^2).
    entropy_weight: weight of the entropy penalty.
    diversity_weight: weight of the batch entropy inside the penalty.
    inv_temperature: 1 / T of the code distribution (paper: 100).
    anneal_factor: the entropy weight starts at x(1 + anneal_factor) ...
    anneal_steps: ... and decays linearly to x1 over this many steps.
    log_mode: how entropies take logs: 'exact'; 'add_eps' log(p + 1e-5)
      (praxis) or 'clamp_eps' log(max(p, 1e-5)) (vector-quantize-pytorch),
      applied to the batch distribution; per-sample entropies are exact.
  """

  num_bits: int = 18
  commitment_weight: float = 0.25
  entropy_weight: float = 0.1
  diversity_weight: float = 1.0
  inv_temperature: float = 100.0
  anneal_factor: float = 3.0
  anneal_steps: int = 2000
  log_mode: LogMode = "exact"

  def __post_init__(self):
    if not 1 <= self.num_bits <= 30:
      raise ValueError(f"num_bits={self.num_bits} must be in [1, 30]")

  @property
  def dim(self) -> int:
    return self.num_bits

  @property
  def codebook_size(self) -> int:
    return 2**self.num_bits

  def _check(self, z: jax.Array) -> None:
    if z.shape[-1] != self.dim:
      raise ValueError(
          f"LFQ expects {self.dim} channels in the last axis,"
          f" got shape {z.shape}"
      )

  def __call__(
      self, z: jax.Array, step: Any = None, with_loss: bool = True
  ) -> QuantizerOutput:
    """Quantizes `z` [..., K]; losses are means over all tokens given."""
    self._check(z)
    positive = z > 0
    q = jnp.where(positive, 1.0, -1.0).astype(z.dtype)
    quantized = z + jax.lax.stop_gradient(q - z)  # straight-through
    indices = self.bits_to_indices(positive)
    if not with_loss:
      return QuantizerOutput(quantized, indices, jnp.float32(0.0), {})
    zf = z.reshape(-1, self.dim).astype(jnp.float32)  # [n, k]
    commitment = jnp.mean(
        (jax.lax.stop_gradient(q.reshape(zf.shape).astype(jnp.float32)) - zf)
        ** 2
    )
    sample_h = per_sample_entropy(zf, self.inv_temperature)
    batch_h = batch_entropy(zf, self.inv_temperature, self.log_mode)
    entropy = sample_h - self.diversity_weight * batch_h
    weight = self.entropy_weight * anneal_factor(
        step, self.anneal_factor, self.anneal_steps
    )
    loss = self.commitment_weight * commitment + weight * entropy
    metrics = dict(
        per_sample_entropy=sample_h,
        batch_entropy=batch_h,
        commitment=commitment,
        entropy_loss=entropy,
    )
    return QuantizerOutput(quantized, indices, loss, metrics)

  def bits_to_indices(self, bits: jax.Array) -> jax.Array:
    """[..., K] bool -> [...] int32, channel 0 least significant."""
    base = jnp.asarray(2 ** np.arange(self.num_bits), jnp.int32)
    return jnp.sum(bits.astype(jnp.int32) * base, axis=-1)

  def indices_to_bits(self, indices: jax.Array) -> jax.Array:
    """[...] int -> [..., K] bool."""
    shifts = jnp.arange(self.num_bits, dtype=jnp.int32)
    return ((indices[..., None].astype(jnp.int32) >> shifts) & 1) > 0

  def indices_to_codes(
      self, indices: jax.Array, dtype: Any = jnp.float32
  ) -> jax.Array:
    """[...] int -> [..., K] codes in {-1, +1}."""
    return jnp.where(self.indices_to_bits(indices), 1.0, -1.0).astype(dtype)


@dataclasses.dataclass(frozen=True)
class FSQ:
  """Finite scalar quantization (Mentzer et al., arXiv 2309.15505).

  Attributes:
    levels: levels per channel; codebook size is their product
      ((8, 8, 4, 4, 4, 4, 4, 4) = 2^18, praxis's ScalarQuantizer widths).
    eps: keeps the bound strictly inside the outermost levels.
  """

  levels: tuple[int, ...] = (8, 8, 4, 4, 4, 4, 4, 4)
  eps: float = 1e-3

  def __post_init__(self):
    if not self.levels or min(self.levels) < 2:
      raise ValueError(f"FSQ levels={self.levels} must all be >= 2")

  @property
  def dim(self) -> int:
    return len(self.levels)

  @property
  def codebook_size(self) -> int:
    return int(np.prod(self.levels))

  def _consts(self):
    levels = np.asarray(self.levels, np.float32)
    half = (levels - 1) * (1 + self.eps) / 2
    offset = np.where(levels % 2 == 0, 0.5, 0.0).astype(np.float32)
    shift = np.arctanh(offset / half)
    basis = np.cumprod([1] + list(self.levels[:-1])).astype(np.int32)
    return levels, half, offset, shift, basis

  def __call__(
      self, z: jax.Array, step: Any = None, with_loss: bool = True
  ) -> QuantizerOutput:
    """Quantizes `z` [..., dim] to [-1, 1] grids; no auxiliary loss."""
    del step, with_loss
    if z.shape[-1] != self.dim:
      raise ValueError(
          f"FSQ expects {self.dim} channels in the last axis,"
          f" got shape {z.shape}"
      )
    levels, half, offset, shift, basis = self._consts()
    bounded = jnp.tanh(z.astype(jnp.float32) + shift) * half - offset
    rounded = bounded + jax.lax.stop_gradient(jnp.round(bounded) - bounded)
    halfw = jnp.asarray(levels // 2)
    quantized = (rounded / halfw).astype(z.dtype)  # [..., dim] in [-1, 1]
    digits = jnp.round(jax.lax.stop_gradient(rounded) + halfw).astype(jnp.int32)
    indices = jnp.sum(digits * basis, axis=-1)
    return QuantizerOutput(quantized, indices, jnp.float32(0.0), {})

  def indices_to_codes(
      self, indices: jax.Array, dtype: Any = jnp.float32
  ) -> jax.Array:
    levels, _, _, _, basis = self._consts()
    digits = (indices[..., None] // basis) % levels.astype(np.int32)
    halfw = levels // 2
    return ((digits - halfw) / halfw).astype(dtype)


Quantizer = LFQ | FSQ


@dataclasses.dataclass(frozen=True)
class QuantizerConfig:
  """`config.quantizer`: which quantizer, and the fields of each.

  Attributes:
    kind: 'lfq' (the paper) or 'fsq' (ablation, same vocabulary size).
    lfq: LFQ fields.
    fsq: FSQ fields.
  """

  kind: Literal["lfq", "fsq"] = "lfq"
  lfq: LFQ = LFQ()
  fsq: FSQ = FSQ()

  def build(self) -> Quantizer:
    return self.lfq if self.kind == "lfq" else self.fsq
