"""LFQ and FSQ: golden values, exact factorized entropies, torch parity."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet.tokenizers.magvit2 import quantizers


def _brute_force(z, inv_temperature):
  """Per-sample and batch entropies from the full [n, 2^k] softmax (numpy)."""
  z = np.asarray(z, np.float64)
  codes = quantizers.bit_matrix(z.shape[-1]) * 2 - 1  # [2^k, k]
  logits = 2 * inv_temperature * z @ codes.T
  logits -= logits.max(-1, keepdims=True)
  p = np.exp(logits)
  p /= p.sum(-1, keepdims=True)
  logp = np.log(np.where(p > 0, p, 1))
  sample = -(p * logp).sum(-1).mean()
  avg = p.mean(0)
  batch = -(avg * np.log(np.where(avg > 0, avg, 1))).sum()
  return sample, batch, avg


@pytest.mark.parametrize("k", [1, 5, 8, 12])
def test_factorized_entropies_equal_brute_force(k):
  rng = np.random.default_rng(k)
  z = rng.normal(size=(300, k)).astype(np.float32) * 0.02  # soft codes
  sample, batch, avg = _brute_force(z, 100.0)
  zj = jnp.asarray(z)
  np.testing.assert_allclose(
      quantizers.batch_code_probs(zj, 100.0).reshape(-1), avg, atol=1e-7
  )
  np.testing.assert_allclose(
      quantizers.per_sample_entropy(zj, 100.0), sample, rtol=1e-5, atol=1e-6
  )
  np.testing.assert_allclose(
      quantizers.batch_entropy(zj, 100.0), batch, rtol=1e-5, atol=1e-6
  )


def test_batch_entropy_is_not_the_sum_of_bit_entropies():
  # Two perfectly correlated bits: per-bit marginals say 2 ln 2, truth ln 2.
  z = jnp.asarray([[1.0, 1.0], [-1.0, -1.0]])
  np.testing.assert_allclose(
      quantizers.batch_entropy(z, 100.0), np.log(2), rtol=1e-6
  )


def test_k18_never_builds_the_full_distribution():
  z = jax.ShapeDtypeStruct((4096, 18), jnp.float32)
  lfq = quantizers.LFQ()
  hlo = jax.jit(lambda x: lfq(x).loss).lower(z).as_text()
  sizes = [
      np.prod([int(d) for d in s.split("x")[:-1]])
      for s in re.findall(r"tensor<([0-9x]+[a-z0-9]+)>", hlo)
  ]
  assert max(sizes) == 4096 * 512  # [n, 2^9] half-code probabilities


@pytest.mark.parametrize(
    "d,expected",
    [
        (8, (-0.331989, 0.10211816, -0.43410715)),
        (16, (-0.3675179, 0.1005669, -0.46808478)),
    ],
)
def test_praxis_golden_values(d, expected):
  # praxis/layers/video/quantizer_test.py: x ~ N(0, 1) from PRNGKey(123) with
  # the non-partitionable threefry, losses (total, commitment, entropy).
  with jax.threefry_partitionable(False):
    x = jax.random.normal(jax.random.PRNGKey(123), (1, 3, 6, 6, d))
  lfq = quantizers.LFQ(num_bits=d, log_mode="add_eps")
  out = lfq(x)  # No step: no annealing.
  got = (
      out.loss,
      0.25 * out.metrics["commitment"],
      0.1 * out.metrics["entropy_loss"],
  )
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_lfq_codes_indices_and_straight_through():
  lfq = quantizers.LFQ(num_bits=4)
  z = jnp.asarray([[0.5, -0.2, 0.0, 3.0], [-1.0, -1.0, -1.0, 0.1]])
  out = lfq(z)
  np.testing.assert_array_equal(
      out.quantized, [[1, -1, -1, 1], [-1, -1, -1, 1]]
  )
  np.testing.assert_array_equal(out.indices, [1 + 8, 8])  # bit 0 = channel 0
  np.testing.assert_array_equal(
      lfq.indices_to_codes(out.indices), out.quantized
  )
  grad = jax.grad(lambda x: jnp.sum(lfq(x, with_loss=False).quantized * 3.0))
  np.testing.assert_array_equal(grad(z), jnp.full_like(z, 3.0))
  everything = jnp.arange(16)
  np.testing.assert_array_equal(
      lfq.bits_to_indices(lfq.indices_to_bits(everything)), everything
  )


def test_lfq_annealing_and_bad_input():
  lfq = quantizers.LFQ(num_bits=6, commitment_weight=0.0)
  z = jax.random.normal(jax.random.key(0), (64, 6))
  base = lfq(z).loss
  np.testing.assert_allclose(lfq(z, step=0).loss, 4 * base, rtol=1e-6)
  np.testing.assert_allclose(lfq(z, step=1000).loss, 2.5 * base, rtol=1e-6)
  np.testing.assert_allclose(lfq(z, step=5000).loss, base, rtol=1e-6)
  with pytest.raises(ValueError, match="6 channels"):
    lfq(jnp.zeros((2, 5)))


def test_fsq_round_trip_and_size():
  fsq = quantizers.FSQ()
  assert fsq.codebook_size == 2**18 and fsq.dim == 8
  z = jax.random.normal(jax.random.key(1), (4, 5, 8)) * 3
  out = fsq(z)
  assert out.indices.min() >= 0 and out.indices.max() < 2**18
  np.testing.assert_allclose(
      fsq.indices_to_codes(out.indices), out.quantized, atol=1e-6
  )
  # Every index has its own code, on the grid of its channel's levels.
  codes = np.asarray(fsq.indices_to_codes(jnp.arange(2**18)))
  assert len(np.unique(codes, axis=0)) == 2**18
  halfw = np.asarray(fsq.levels) // 2
  np.testing.assert_allclose(codes * halfw, np.round(codes * halfw), atol=1e-5)
  # Latents far out saturate to the outermost levels, not beyond.
  ends = fsq(jnp.stack([jnp.full((8,), -50.0), jnp.full((8,), 50.0)]))
  np.testing.assert_array_equal(ends.indices, [0, 2**18 - 1])


def test_quantizer_config_builds_either():
  cfg = quantizers.QuantizerConfig(kind="fsq")
  assert isinstance(cfg.build(), quantizers.FSQ)
  assert quantizers.QuantizerConfig().build().codebook_size == 2**18


@pytest.mark.parametrize(
    "d,shape", [(8, (2, 3, 4, 5)), (10, (2, 2, 3, 3)), (16, (1, 2, 3, 3))]
)
def test_parity_with_vector_quantize_pytorch(d, shape):
  torch = pytest.importorskip("torch")
  vqp = pytest.importorskip("vector_quantize_pytorch")
  rng = np.random.default_rng(d)
  x_np = rng.normal(size=(shape[0], d) + shape[1:]).astype(np.float32)
  ref = vqp.LFQ(
      dim=d,
      codebook_size=2**d,
      entropy_loss_weight=0.1,
      commitment_loss_weight=0.25,
      diversity_gamma=1.0,
  ).train()
  (q_t, idx_t, aux_t), (ps_t, cb_t, cm_t) = ref(
      torch.from_numpy(x_np), inv_temperature=100.0, return_loss_breakdown=True
  )

  lfq = quantizers.LFQ(num_bits=d, log_mode="clamp_eps")
  z = jnp.moveaxis(jnp.asarray(x_np), 1, -1)  # channels last
  out = lfq(z)
  np.testing.assert_array_equal(np.moveaxis(q_t.numpy(), 1, -1), out.quantized)
  # vector-quantize-pytorch is MSB first: reverse the bits of our indices.
  bits = np.asarray(lfq.indices_to_bits(out.indices))[..., ::-1]
  msb_first = (bits * (1 << np.arange(d))).sum(-1)
  np.testing.assert_array_equal(idx_t.numpy(), msb_first)
  m = out.metrics
  np.testing.assert_allclose(m["per_sample_entropy"], ps_t.item(), atol=1e-5)
  np.testing.assert_allclose(m["batch_entropy"], cb_t.item(), atol=1e-5)
  np.testing.assert_allclose(m["commitment"], cm_t.item(), atol=1e-5)
  np.testing.assert_allclose(out.loss, aux_t.item(), atol=1e-5)
