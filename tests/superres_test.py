"""The SR transformer: windowed attention, factorized heads, MaskGIT
sampling and guidance. Its trainer runs, is refused, resumes and loads in
tests/trainer_contract_test.py."""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import eval_superres as eval_config
from configs import superres as superres_config
from videopoet import config_lib
from videopoet.eval import superres as eval_lib
from videopoet.superres import model as model_lib
from videopoet.superres import sample as sample_lib
from videopoet.superres import trainer


@pytest.fixture(autouse=True)
def fast_compile():
  # XLA:CPU's optimizing passes dominate these tiny programs' time.
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


def _tiny_model(**kw):
  c = model_lib.SRModelConfig(
      width=24, num_blocks=1, num_heads=2, mlp_dim=32,
      windows=((1, 4, 2), (1, 2, 4), (2, 2, 2)), factor_heads=2,
      visual_bits=4, text_size=16, max_text_len=4, **kw,
  )  # fmt: skip
  return model_lib.SRTransformer(c)


def _inputs(b=2, grid=(2, 4, 4), seed=0):
  rng = np.random.default_rng(seed)
  t, h, w = grid
  low = rng.integers(0, 16, (b, t, h // 2, w // 2)).astype(np.int32)
  text = rng.integers(0, 16, (b, 4)).astype(np.int32)
  mask = np.array([[True, True, False, False]] * b)
  return jnp.asarray(low), jnp.asarray(text), jnp.asarray(mask)


@pytest.mark.parametrize(
    "window,kv_window",
    [((1, 4, 2), None), ((2, 2, 2), None), ((1, 2, 4), (1, 1, 2))],
)
def test_windowed_attention_equals_full_attention_with_block_mask(
    window, kv_window
):
  grid, d = (2, 4, 4), 8
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, *grid, d)), jnp.float32)
  kv_grid = grid if kv_window is None else (2, 2, 2)
  kv = None if kv_window is None else jnp.asarray(
      rng.normal(size=(2, *kv_grid, d)), jnp.float32
  )  # fmt: skip
  mod = model_lib.WindowAttention(2, window, kv_window)
  params = mod.init(jax.random.key(0), x, kv)
  windowed = mod.apply(params, x, kv)  # [b, t, h, w, d]
  # The same attention over the whole flattened grid, masked to windows.
  full = model_lib.MultiHeadAttention(2)
  bias = model_lib.window_block_bias(
      grid, window, kv_grid, kv_window or window
  )
  keys = x if kv is None else kv
  out = full.apply(
      {"params": params["params"]["attention"]},
      x.reshape(2, -1, d), keys.reshape(2, -1, d), bias[None, None],
  )  # fmt: skip
  np.testing.assert_allclose(
      np.asarray(windowed).reshape(2, -1, d), np.asarray(out), atol=1e-5
  )
  # And the mask matters: unmasked full attention differs.
  unmasked = full.apply(
      {"params": params["params"]["attention"]},
      x.reshape(2, -1, d), keys.reshape(2, -1, d),
  )  # fmt: skip
  assert np.abs(np.asarray(unmasked) - np.asarray(out)).max() > 1e-3


def test_factorized_loss_is_the_product_vocabulary_cross_entropy():
  k, bits = 3, 2  # K = 6: 64 codes as 3 digits of 4 classes.
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(5, k, 2**bits)) * 3, jnp.float32)
  tokens = jnp.asarray(rng.integers(0, 2 ** (k * bits), 5), jnp.int32)
  # The product distribution's logits over all 64 codes: code c's digits
  # d_i(c) -> sum_i log_softmax(logits_i)[d_i(c)].
  codes = jnp.arange(2 ** (k * bits))
  digits = model_lib.to_digits(codes, k, bits)  # [64, k]
  logp = jax.nn.log_softmax(logits, -1)  # [5, k, 4]
  product = jnp.stack(
      [logp[:, i, digits[:, i]] for i in range(k)], 0
  ).sum(0)  # [5, 64]
  want = optax.softmax_cross_entropy_with_integer_labels(product, tokens)
  got = model_lib.factorized_loss(logits, tokens)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5)
  np.testing.assert_array_equal(
      model_lib.from_digits(model_lib.to_digits(codes, k, bits), bits), codes
  )
  # The product distribution is normalized (the heads are a factorization).
  np.testing.assert_allclose(
      jax.scipy.special.logsumexp(product, -1), 0.0, atol=1e-5
  )


_STEPS = 5


@pytest.fixture(scope="module")
def tiny():
  """A tiny model, its parameters, inputs and unguided sampler."""
  model = _tiny_model()
  low, text, mask = _inputs()
  params = model.init(jax.random.key(0), jnp.zeros((2, 2, 4, 4), jnp.int32),
                      low, text, mask)["params"]  # fmt: skip
  plain = sample_lib.SRSamplingConfig(steps=_STEPS, guidance_text=1.0,
                                      guidance_low=1.0)  # fmt: skip
  return model, params, (low, text, mask), sample_lib.make_sampler(model, plain)


def test_maskgit_unmasks_the_scheduled_count_and_ends_unmasked(tiny):
  model, params, inputs, run = tiny
  del model
  tokens, masked = run(params, *inputs, jax.random.key(3))
  want = sample_lib.masked_counts(32, _STEPS)
  assert want[0] < 32 and want[-1] == 0 and np.all(np.diff(want) < 0)
  np.testing.assert_array_equal(np.asarray(masked), np.stack([want] * 2, 1))
  tokens = np.asarray(tokens)
  assert tokens.shape == (2, 2, 4, 4)
  assert tokens.min() >= 0 and tokens.max() < 16  # No mask id left.
  # Deterministic for a seed; another seed samples otherwise.
  again, _ = run(params, *inputs, jax.random.key(3))
  np.testing.assert_array_equal(np.asarray(again), tokens)
  other, _ = run(params, *inputs, jax.random.key(4))
  assert (np.asarray(other) != tokens).any()


def test_guidance_scales_one_equal_no_guidance(tiny):
  model, params, (low, text, mask), run = tiny
  tokens = jnp.full((2, 2, 4, 4), model.config.mask_id, jnp.int32)
  three_pass = lambda s_text, s_low: sample_lib.guided_logits_fn(
      model, params, low, text, mask, s_text, s_low
  )  # fmt: skip
  cond = model.apply({"params": params}, tokens, low, text, mask)
  # Scales 1/1 through the three-pass path: the conditional logits (up to
  # the rounding of a 3x batch's matmuls), and exactly so from the terms.
  np.testing.assert_allclose(
      np.asarray(three_pass(1.0, 1.0)(tokens)), np.asarray(cond), atol=1e-5
  )
  np.testing.assert_array_equal(
      sample_lib.guided_logits(cond, cond + 1.0, cond - 2.0, 1.0, 1.0), cond
  )
  assert np.abs(np.asarray(three_pass(2.0, 3.0)(tokens) - cond)).max() > 1e-4
  # The paper's form: l0 + s_low (l_low - l0) + s_text (l_both - l_low).
  text_free = model.apply({"params": params}, tokens, low, text, 0 * mask)
  uncond = model.apply(
      {"params": params}, tokens, jnp.full_like(low, 16), text, 0 * mask
  )
  np.testing.assert_allclose(
      np.asarray(three_pass(4.0, 2.0)(tokens)),
      np.asarray(uncond + 2.0 * (text_free - uncond)
                 + 4.0 * (cond - text_free)),
      rtol=1e-4, atol=1e-4,
  )  # fmt: skip
  # The whole sampler at scales 1 through the three-pass path samples the
  # tokens of the unguided sampler.
  key = jax.random.key(5)
  a, _ = run(params, low, text, mask, key)
  forced = jax.jit(
      lambda p, r: sample_lib.maskgit_loop(
          sample_lib.guided_logits_fn(model, p, low, text, mask, 1.0, 1.0),
          (2, 2, 4, 4), 16, r, sample_lib.SRSamplingConfig(steps=_STEPS),
      )  # fmt: skip
  )
  b, _ = forced(params, key)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_configs_name_the_tokens_data_dir():
  c = superres_config.get_config("synth")
  with pytest.raises(config_lib.ConfigError, match="config.data.data_dir"):
    trainer.parse(c)
  e = config_lib.from_config(
      eval_lib.EvalConfig, eval_config.get_config(), "config"
  )
  assert isinstance(e.sampling, sample_lib.SRSamplingConfig)
  assert (e.data.data_dir, e.tokens, e.split) == ("", "", "test")
