"""Tests of the VideoPoet LM: prefix-LM mask by gradients, RoPE, GQA,
chunked cross-entropy, text-embedding projection, remat/scan equivalence."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet.model import attention
from videopoet.model import layers
from videopoet.model import loss as loss_lib
from videopoet.model import transformer

S, PREFIX = 12, 5


def _config(**kw):
  base = dict(
      vocab_size=256, num_valid_ids=250, num_layers=2, embed_dim=32,
      num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64,
  )  # fmt: skip
  return transformer.ModelConfig(**{**base, **kw})


@functools.cache
def _params():
  """Parameters of `_config()`, shared by the tests (init is the slow part)."""
  model = transformer.VideoPoetLM(_config())
  return jax.jit(model.init)(
      jax.random.key(0), jnp.zeros((1, S), jnp.int32), jnp.array([1])
  )


def _jacobian_pattern(config, prefix_len):
  """dependence[i, j]: does output i's hidden state depend on input j?"""
  model = transformer.VideoPoetLM(config)
  inputs = jnp.arange(10, 10 + S)[None]  # Distinct ids: row = position.
  params = _params()

  probe = jax.random.normal(jax.random.key(1), (config.embed_dim,))

  def hidden(emb):  # A random projection of each position's output: [s].
    p = jax.tree.map(lambda x: x, params)
    p["params"]["embedding"] = p["params"]["embedding"].replace_boxed(emb)
    return model.apply(p, inputs, jnp.array([prefix_len]))[0] @ probe

  emb = params["params"]["embedding"].unbox()
  jac = jax.jit(jax.jacrev(hidden))(emb)  # [s, V, d]
  rows = jnp.abs(jac[:, 10 : 10 + S]).sum(-1)  # [s, s]
  return np.asarray(rows > 0)


@pytest.mark.parametrize("remat", ["none", "full"])
def test_prefix_lm_mask_by_gradients(remat):
  dep = _jacobian_pattern(_config(remat=remat), PREFIX)
  i, j = np.meshgrid(np.arange(S), np.arange(S), indexing="ij")
  expected = (j <= i) | (j < PREFIX)
  np.testing.assert_array_equal(dep, expected)
  # The two properties the issue names, spelled out.
  assert not dep[PREFIX:, PREFIX:][np.triu_indices(S - PREFIX, 1)].any()
  assert dep[0, PREFIX - 1]  # A prefix position sees later prefix tokens.
  assert not dep[PREFIX - 1, PREFIX]  # ...but not the outputs.


def test_prefix_len_is_per_example():
  config = _config()
  model = transformer.VideoPoetLM(config)
  inputs = jnp.tile(jnp.arange(10, 10 + S), (2, 1))
  prefix = jnp.array([2, 8])
  apply = jax.jit(model.apply)
  out = apply(_params(), inputs, prefix)
  changed = inputs.at[:, 6].set(99)
  out2 = apply(_params(), changed, prefix)
  diff = np.abs(np.asarray(out2 - out)).sum(-1)  # [2, s]
  assert np.all(diff[0, :6] == 0) and np.all(diff[0, 6:] > 0)
  assert np.all(diff[1] > 0)  # Position 6 is inside example 1's prefix.


def test_padding_keys_are_ignored():
  config = _config()
  model = transformer.VideoPoetLM(config)
  inputs = jnp.arange(10, 10 + S)[None]
  params, apply = _params(), jax.jit(model.apply)
  padded = inputs.at[0, 3].set(config.pad_id)
  a = apply(params, padded, jnp.array([PREFIX]))
  b = apply(params, padded.at[0, 3].set(0), jnp.array([PREFIX]))
  np.testing.assert_array_equal(a[:, 4:], b[:, 4:])
  # A pad contributes nothing: zeroing its embedding row changes nothing.
  p2 = jax.tree.map(lambda x: x, params)
  e = p2["params"]["embedding"]
  p2["params"]["embedding"] = e.replace_boxed(e.unbox().at[0].set(7.0))
  c = apply(p2, padded, jnp.array([PREFIX]))
  np.testing.assert_allclose(a[:, 4:], c[:, 4:], atol=1e-6)


def test_rope_is_relative():
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
  dot = lambda m, n: float(
      (
          layers.rope(q, jnp.array([[m]]), 1e4)
          * layers.rope(k, jnp.array([[n]]), 1e4)
      ).sum()
  )
  assert dot(3, 1) == pytest.approx(dot(10, 8), rel=1e-5)
  assert dot(3, 1) != pytest.approx(dot(3, 2), rel=1e-3)


def test_gqa_equals_mha_with_repeated_kv_heads():
  rng = jax.random.key(1)
  x = jax.random.normal(rng, (2, S, 32))
  mask = attention.Mask(jnp.array([3, 6]), jnp.ones((2, S), bool))
  pos = jnp.broadcast_to(jnp.arange(S), (2, S))
  gqa = layers.Attention(num_heads=4, num_kv_heads=2, head_dim=8)
  mha = layers.Attention(num_heads=4, num_kv_heads=4, head_dim=8)
  p = gqa.init(rng, x, mask, pos)["params"]
  rep = lambda w: jnp.repeat(w.unbox(), 2, axis=1)
  pm = dict(p, key=p["key"].replace_boxed(rep(p["key"])),
            value=p["value"].replace_boxed(rep(p["value"])))  # fmt: skip
  np.testing.assert_allclose(
      gqa.apply({"params": p}, x, mask, pos),
      mha.apply({"params": pm}, x, mask, pos), atol=1e-5,
  )  # fmt: skip


def _plain_ce(hidden, kernel, targets, num_valid):
  logits = hidden @ kernel
  logits = jnp.where(jnp.arange(kernel.shape[1]) < num_valid, logits, -jnp.inf)
  loss = -jnp.take_along_axis(
      jax.nn.log_softmax(logits), targets[..., None], -1
  )
  return loss[..., 0], jnp.argmax(logits, -1) == targets


@pytest.mark.parametrize("chunks", [1, 4, 16])
def test_chunked_cross_entropy_equals_plain(chunks):
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.normal(size=(2, 7, 16)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(16, 64)), jnp.float32)
  t = jnp.asarray(rng.integers(0, 60, (2, 7)))
  t = t.at[0, :3].set(jnp.argmax(h[0, :3] @ w[:, :60], -1))  # Some correct.
  loss, ok = loss_lib.chunked_cross_entropy(h, w, t, 60, chunks)
  ref, ref_ok = _plain_ce(h, w, t, 60)
  np.testing.assert_allclose(loss, ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(ok, ref_ok)
  assert ok[0, :3].all()
  f = lambda fn: jax.grad(lambda h, w: fn(h, w).sum(), argnums=(0, 1))
  g = f(lambda h, w: loss_lib.chunked_cross_entropy(h, w, t, 60, chunks)[0])(
      h, w
  )
  gr = f(lambda h, w: _plain_ce(h, w, t, 60)[0])(h, w)
  for a, b in zip(g, gr):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_chunked_ce_never_materializes_full_logits():
  """The compiled loss+grad holds no [b, n, V] f32 buffer."""
  h = jax.ShapeDtypeStruct((2, 512, 16), jnp.float32)
  w = jax.ShapeDtypeStruct((16, 32768), jnp.float32)
  t = jax.ShapeDtypeStruct((2, 512), jnp.int32)

  def fn(chunks):
    g = jax.grad(lambda h, w, t: loss_lib.chunked_cross_entropy(
        h, w, t, 32768, chunks)[0].sum(), argnums=(0, 1))  # fmt: skip
    mem = jax.jit(g).lower(h, w, t).compile().memory_analysis()
    return mem.temp_size_in_bytes

  full = 2 * 512 * 32768 * 4  # 134 MB of f32 logits.
  assert fn(1) >= full
  assert fn(32) < full / 4


def test_embedding_lookup_in_chunks_equals_take():
  """The vocabulary-sliced lookup gives table[ids] and the same (f32,
  scatter-added) gradient, for ids in every slice and on its edges."""
  table = jax.random.normal(jax.random.key(0), (64, 8))
  ids = jnp.array([[0, 15, 16, 63, 63], [31, 32, 47, 48, 0]])
  cot = jax.random.normal(jax.random.key(1), (2, 5, 8))

  def run(chunks):
    f = lambda t: transformer.embedding_lookup(t, ids, chunks, jnp.float32)
    out, vjp = jax.vjp(f, table)
    return out, vjp(cot)[0]

  ref, ref_g = run(1)
  np.testing.assert_array_equal(ref, table[ids])
  out, g = run(4)
  np.testing.assert_array_equal(out, ref)
  np.testing.assert_allclose(g, ref_g, atol=1e-6)
  assert jnp.abs(g[63]).max() > 0 and jnp.abs(g[1]).max() == 0


def test_text_embeddings_are_projected_into_text_positions():
  config = _config(text_embed_dim=6, text_token_id=7, text_offset=3)
  model = transformer.VideoPoetLM(config)
  inputs = jnp.array([[1, 2, 3, 7, 7, 0, 4, 10, 11, 12]])
  emb = jnp.ones((1, 3, 6))
  params = jax.jit(model.init)(jax.random.key(0), inputs, jnp.array([7]), emb)
  apply = jax.jit(model.apply)
  out = apply(params, inputs, jnp.array([7]), emb)
  out2 = apply(params, inputs, jnp.array([7]), emb.at[0, 0].set(2.0))
  assert np.abs(out - out2).max() > 1e-4  # Position 3 reads embedding 0.
  out3 = apply(params, inputs, jnp.array([7]), emb.at[0, 2].set(2.0))
  np.testing.assert_array_equal(out, out3)  # Position 5 is <pad>.
  chex.assert_tree_all_finite(out)


def test_loss_bf16_and_remat_match_f32():
  batch = dict(
      inputs=jnp.arange(10, 10 + S)[None].repeat(2, 0),
      prefix_len=jnp.array([3, 5]),
      target_positions=jnp.array([[5, 6, 7], [8, 9, 10]]),
      targets=jnp.array([[1, 2, 3], [4, 5, 6]]),
  )
  params = _params()
  loss = lambda m: jax.jit(functools.partial(m.apply, method="loss"))
  ref = loss(transformer.VideoPoetLM(_config()))(params, batch)[0]
  for kw, tol in [(dict(remat="dots", vocab_chunks=4), 1e-5),
                  (dict(dtype="bfloat16"), 0.1)]:  # fmt: skip
    m = transformer.VideoPoetLM(_config(**kw))
    np.testing.assert_allclose(loss(m)(params, batch)[0], ref, atol=tol)


def test_nested_remat_equals_full_remat():
  """remat='nested' (4 blocks as 2 groups of 2) gives the same loss and
  gradients as 'full' on the same [L, ...] parameters."""
  assert transformer.nested_groups(24) == 4  # 4 + 6 inputs kept, not 24.
  assert transformer.nested_groups(32) == 4  # 4 + 8 (8 + 4 ties: fewer).
  assert transformer.nested_groups(7) == 1  # A prime depth: one group.
  batch = dict(
      inputs=jnp.arange(10, 10 + S)[None].repeat(2, 0),
      prefix_len=jnp.array([3, 5]),
      target_positions=jnp.array([[5, 6, 7], [8, 9, 10]]),
      targets=jnp.array([[1, 2, 3], [4, 5, 6]]),
  )
  config = functools.partial(_config, num_layers=4)
  init = lambda remat: nn.unbox(
      jax.jit(transformer.VideoPoetLM(config(remat=remat)).init)(
          jax.random.key(1), batch["inputs"], batch["prefix_len"]
      )
  )
  params = init("full")
  chex.assert_trees_all_equal(init("nested"), params)  # Same [L, ...] layout.

  def loss(remat):
    model = transformer.VideoPoetLM(config(remat=remat))
    return lambda p: jnp.mean(model.apply(p, batch, method="loss")[0])

  ref, ref_g = jax.jit(jax.value_and_grad(loss("full")))(params)
  got, got_g = jax.jit(jax.value_and_grad(loss("nested")))(params)
  np.testing.assert_allclose(got, ref, rtol=1e-6)
  chex.assert_trees_all_close(got_g, ref_g, atol=1e-6)
  assert jnp.abs(ref_g["params"]["blocks"]["mlp"]["wi_0"]).max() > 0
  # Both levels rematerialized: one checkpoint (remat2) more than 'full'
  # (whose blocks have one; one vocabulary chunk is not rematerialized).
  count = lambda remat: str(jax.make_jaxpr(loss(remat))(params)).count(
      "remat2["
  )
  assert count("nested") == count("full") + 1


@pytest.mark.parametrize("remat", ["full", "nested"])
def test_mlp_chunks_equal_whole_sequence(remat):
  """mlp_chunks=4 (hidden slices of 16) gives the loss and gradients of the
  whole SwiGLU, under both training remats."""
  batch = dict(
      inputs=jnp.arange(10, 10 + S)[None].repeat(2, 0),
      prefix_len=jnp.array([3, 5]),
      target_positions=jnp.array([[5, 6, 7], [8, 9, 11]]),
      targets=jnp.array([[1, 2, 3], [4, 5, 6]]),
  )
  params = nn.unbox(_params())

  def loss(chunks):
    model = transformer.VideoPoetLM(_config(remat=remat, mlp_chunks=chunks))
    return lambda p: jnp.mean(model.apply(p, batch, method="loss")[0])

  ref, ref_g = jax.jit(jax.value_and_grad(loss(1)))(params)
  got, got_g = jax.jit(jax.value_and_grad(loss(4)))(params)
  np.testing.assert_allclose(got, ref, rtol=1e-6)
  chex.assert_trees_all_close(got_g, ref_g, atol=1e-6)
  assert jnp.abs(got_g["params"]["blocks"]["mlp"]["wo"]).max() > 0


def test_mlp_chunks_bound_the_hidden_activations():
  """Differentiating a chunked SwiGLU keeps [b, s, f / chunks] hidden
  activations, not [b, s, f]: the compiled temporaries shrink."""
  b, s, d, f = 2, 512, 64, 1024
  x = jax.random.normal(jax.random.key(0), (b, s, d))

  def temp_bytes(chunks):
    mlp = layers.MLP(f, chunks=chunks)
    params = mlp.init(jax.random.key(1), x[:, :8])
    step = jax.jit(jax.grad(lambda p, x: jnp.sum(mlp.apply(p, x) ** 2)))
    return step.lower(params, x).compile().memory_analysis().temp_size_in_bytes

  whole = b * s * f * 4  # One f32 [b, s, f] activation.
  assert temp_bytes(1) > 2 * whole
  assert temp_bytes(16) < whole


def test_bad_config_is_a_clear_error():
  with pytest.raises(ValueError, match="num_kv_heads"):
    _config(num_heads=4, num_kv_heads=3)
  with pytest.raises(ValueError, match="mlp_chunks"):
    _config(mlp_chunks=3)
  with pytest.raises(ValueError, match="vocab_chunks"):
    _config(vocab_chunks=3)
