"""Tests of `videopoet/model/attention.py`: the blockwise (flash-style) and
the cuDNN-order forms equal the materialized reference in values and
gradients under prefix-LM masks with padding and GQA (also sharded on 8
fake devices), and `attention_impl` reaches the model."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import videopoet as videopoet_config
from videopoet import config_lib
from videopoet.model import attention
from videopoet.model import transformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Batch rows: no prefix, a short and a long one, all prefix; padding inside
# (as text padding is) and at the end.
B, S, H, KV, D = 4, 37, 4, 2, 8
PREFIX = (0, 5, 20, S)


def inputs(seed=0, head_dim=D):
  """q, k, v, mask and a cotangent that is zero on rows seeing no key."""
  r = np.random.default_rng(seed)
  q = jnp.asarray(r.normal(size=(B, S, H, head_dim)), jnp.float32)
  k = jnp.asarray(r.normal(size=(B, S, KV, head_dim)), jnp.float32)
  v = jnp.asarray(r.normal(size=(B, S, KV, head_dim)), jnp.float32)
  valid = r.random((B, S)) > 0.2
  valid[:, S - 4 :] = False  # Trailing padding.
  mask = attention.Mask(jnp.array(PREFIX, jnp.int32), jnp.asarray(valid))
  sees = attention.seen(mask, S).any(-1)[:, :, None, None]  # [b, s, 1, 1]
  cot = jnp.asarray(r.normal(size=(B, S, H, head_dim)), jnp.float32) * sees
  return q, k, v, mask, cot


def value_and_grads(fn, q, k, v, cot):
  """(out, (dq, dk, dv)) of sum(fn(q, k, v) * cot), jitted."""
  loss = lambda q, k, v: (fn(q, k, v) * cot).sum()
  out = jax.jit(fn)(q, k, v)
  return out * (cot != 0), jax.jit(jax.grad(loss, (0, 1, 2)))(q, k, v)


@functools.cache
def reference(head_dim=D):
  """value_and_grads of the 'xla' form on `inputs()` (shared)."""
  q, k, v, mask, cot = inputs(head_dim=head_dim)
  return value_and_grads(
      lambda q, k, v: attention.attend(q, k, v, mask, impl="xla"), q, k, v, cot
  )


def assert_close(a, b, atol=1e-5):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)


@pytest.mark.parametrize("block_q,block_k", [(8, 16), (16, 8)])
def test_blockwise_equals_reference(block_q, block_k):
  q, k, v, mask, cot = inputs()
  ref = reference()
  got = value_and_grads(
      lambda q, k, v: attention.attend(
          q, k, v, mask, impl="blockwise", block_q=block_q, block_k=block_k
      ),
      q, k, v, cot,
  )  # fmt: skip
  assert_close(got, ref)
  assert float(jnp.abs(ref[1][1]).max()) > 1e-2  # Gradients are not zero.


def test_blockwise_without_mask_is_full_attention():
  q, k, v, _, _ = inputs(1)
  logits = jnp.einsum("bshd,bthd->bhst", q, jnp.repeat(k, 2, 2)) * D**-0.5
  probs = jax.nn.softmax(logits, -1)
  want = jnp.einsum("bhst,bthd->bshd", probs, jnp.repeat(v, 2, 2))
  got = attention.attend(q, k, v, impl="blockwise", block_q=8, block_k=8)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_cudnn_reordering_equals_reference():
  """The cuDNN form's reordering, run by jax.nn's own XLA implementation,
  is exact on every non-padding query row."""
  q, k, v, mask, cot = inputs(2)
  cot = cot * mask.key_valid[:, :, None, None]
  scale = D**-0.5
  ref = value_and_grads(
      lambda q, k, v: attention.attend(q, k, v, mask, impl="xla"), q, k, v, cot
  )
  got = value_and_grads(
      lambda q, k, v: attention._permuted(q * scale, k, v, mask, "xla"),  # pylint: disable=protected-access
      q, k, v, cot,
  )  # fmt: skip
  assert_close(got, ref)


def test_resolve_by_platform_and_length():
  assert jax.default_backend() == "cpu"
  n = attention.BLOCKWISE_MIN_KEYS
  assert attention.resolve("auto", n - 1, n - 1) == "xla"
  assert attention.resolve("auto", n, n) == "blockwise"
  assert attention.resolve("blockwise", 1, n) == "xla"  # Decode.
  assert attention.resolve("cudnn", 16, 16) == "cudnn"
  with pytest.raises(ValueError, match="impl='flash'"):
    attention.resolve("flash", 4, 4)


def test_attention_impl_reaches_the_model():
  section = videopoet_config.get_config("tiny").model
  assert section["attention_impl"] == "auto"
  with pytest.raises(config_lib.ConfigError, match="attention_impl='flash'"):
    transformer.ModelConfig(
        vocab_size=64, num_valid_ids=60, attention_impl="flash"
    )
  kw = dict(
      vocab_size=64, num_valid_ids=60, num_layers=2, embed_dim=32,
      num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64,
  )  # fmt: skip
  r = np.random.default_rng(0)
  ids = jnp.asarray(r.integers(0, 60, (2, 12)), jnp.int32)  # 0 = padding.
  prefix = jnp.array([4, 0])
  xla = transformer.VideoPoetLM(transformer.ModelConfig(**kw))
  blockwise = transformer.VideoPoetLM(
      transformer.ModelConfig(**kw, attention_impl="blockwise")
  )
  params = jax.jit(xla.init)(jax.random.key(0), ids, prefix)
  want = jax.jit(xla.apply)(params, ids, prefix)
  got = jax.jit(blockwise.apply)(params, ids, prefix)
  np.testing.assert_allclose(got, want, atol=1e-5)
  # Each really ran its own implementation: the flash custom VJP is in the
  # blockwise model's program only.
  jaxpr = lambda m: str(jax.make_jaxpr(m.apply)(params, ids, prefix))
  assert "custom_vjp_call" in jaxpr(blockwise)
  assert "custom_vjp_call" not in jaxpr(xla)


@pytest.mark.parametrize(
    "impl",
    # The splash kernel in the Pallas interpreter, one per device under
    # shard_map (a Mosaic kernel is not partitioned automatically).
    ["blockwise", pytest.param("splash", marks=pytest.mark.slow)],
)
def test_on_8_devices_equals_reference(impl):
  env = dict(os.environ)
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run(
      [sys.executable, "-m", "tests.attention_sharding_check", impl],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-4000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["max_diff"] < 1e-5, out
  assert out["max_grad"] > 1e-2, out
  # The inputs really were split: batch over data x fsdp, heads on tensor.
  assert out["q_spec"] == "P(('data', 'fsdp'), None, 'tensor', None)", out
  assert out["dq_spec"] == out["q_spec"], out
  assert out["shard_map"] == (impl == "splash"), out


@pytest.mark.slow  # The Pallas interpreter: ~1 min on 2 cores.
def test_splash_in_the_pallas_interpreter_equals_reference():
  """The splash form (TPU kernel, here interpreted on the CPU) is exact on
  every non-padding query row; head_dim 128 as the kernel's lanes want."""
  r = np.random.default_rng(3)
  b, s, h, kv, d = 2, 100, 2, 1, 128
  q = jnp.asarray(r.normal(size=(b, s, h, d)), jnp.float32)
  k = jnp.asarray(r.normal(size=(b, s, kv, d)), jnp.float32)
  v = jnp.asarray(r.normal(size=(b, s, kv, d)), jnp.float32)
  valid = r.random((b, s)) > 0.2
  valid[:, -5:] = False
  mask = attention.Mask(jnp.array([0, 40]), jnp.asarray(valid))
  cot = jnp.asarray(r.normal(size=(b, s, h, d)), jnp.float32)
  cot = cot * valid[:, :, None, None]
  ref = value_and_grads(
      lambda q, k, v: attention.attend(q, k, v, mask, impl="xla"), q, k, v, cot
  )
  got = value_and_grads(
      lambda q, k, v: attention._splash(  # pylint: disable=protected-access
          q * d**-0.5, k, v, mask, interpret=True
      ),
      q, k, v, cot,
  )  # fmt: skip
  assert_close(got, ref)


@pytest.mark.parametrize("prefix", [(0, 3, 100, 128), (1, 1, 1, 1)])
def test_xla_halves_equal_the_whole_sequence(prefix, attention_lengths):
  # With `max_prefix_len` at most half the sequence, 'xla' runs the first
  # half of the queries on the first half of the keys: the same values and
  # gradients as the whole [s, s] logits (padding keys, GQA included).
  b, s = len(prefix), attention.HALVES_MIN_KEYS
  r = np.random.default_rng(3)
  q = jnp.asarray(r.normal(size=(b, s, H, D)), jnp.float32)
  k, v = (
      jnp.asarray(r.normal(size=(b, s, KV, D)), jnp.float32) for _ in "kv"
  )
  valid = r.random((b, s)) > 0.2
  valid[:, 0] = True  # Every row sees a key.
  whole = attention.Mask(jnp.array(prefix, jnp.int32), jnp.asarray(valid))
  halves = whole.replace(max_prefix_len=s // 2)
  cot = jnp.asarray(r.normal(size=q.shape), jnp.float32)
  key_lengths = attention_lengths
  want = value_and_grads(
      lambda q, k, v: attention.attend(q, k, v, whole, impl="xla"), q, k, v, cot
  )
  assert key_lengths == [(s, s)] * 2  # Forward and the gradient's trace.
  key_lengths.clear()
  got = value_and_grads(
      lambda q, k, v: attention.attend(q, k, v, halves, impl="xla"),
      q, k, v, cot,
  )  # fmt: skip
  assert key_lengths == [(s // 2, s // 2), (s // 2, s)] * 2
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
  # Short sequences and prefixes past the middle keep the whole logits.
  key_lengths.clear()
  jax.jit(
      lambda q: attention.attend(
          q, k, v, whole.replace(max_prefix_len=s // 2 + 1), impl="xla"
      )
  )(q)
  assert key_lengths == [(s, s)]
