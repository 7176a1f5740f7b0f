"""SoundStream codec: frame rule, lengths, causality, codec API, tokens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flax.linen as nn

from videopoet.tokenizers.soundstream import codec as codec_lib
from videopoet.tokenizers.soundstream import layers
from videopoet.tokenizers.soundstream import model as model_lib
from videopoet.tokenizers.soundstream import rvq

# The paper's geometry (strides 2, 4, 5, 8 at 16 kHz) at a tiny width.
CONFIG = model_lib.ModelConfig(
    channels=2, embed_dim=8, rvq=rvq.RVQConfig(num_levels=3, codebook_size=32)
)
CLIP = 34000  # 2.125 s at 16 kHz


@pytest.fixture(scope="module")
def codec():
  model = model_lib.SoundStream(CONFIG)
  variables = model_lib.init_variables(model, jax.random.key(0))
  return codec_lib.Codec(CONFIG, variables)


def _audio(n, seed=0, batch=2):
  rng = np.random.default_rng(seed)
  return (0.3 * rng.standard_normal((batch, n))).astype(np.float32)


def test_frame_rule_and_lengths(codec):
  assert CONFIG.hop == 320 and CONFIG.sample_rate // CONFIG.hop == 50
  assert CONFIG.num_frames(CLIP) == 106
  x = _audio(CLIP)
  codes = codec.encode(x)
  assert codes.shape == (2, 3, 106) and codes.dtype == jnp.int32
  assert codec.decode(codes).shape == (2, 106 * 320)
  y = codec.decode(codec.encode(x), num_samples=CLIP)
  assert y.shape == x.shape
  assert codec.reconstruct(x).shape == x.shape
  assert np.all(np.asarray(y)[:, 106 * 320 :] == 0)  # the unencoded tail
  for n in (320, 639, 640, 16000):
    assert codec.encode(_audio(n)).shape[-1] == n // 320
  with pytest.raises(ValueError, match="shorter than one frame"):
    codec.encode(_audio(100))
  with pytest.raises(ValueError, match="num_samples=34400"):
    codec.decode(codes, num_samples=34400)


def test_encoder_is_causal(codec):
  x = _audio(CLIP, batch=1)
  t = 20000  # inside frame 62 (62 * 320 = 19840)
  y = x.copy()
  y[:, t:] = _audio(CLIP - t, seed=9, batch=1)
  model = codec.model
  z_x = model.apply(
      codec.variables, jnp.asarray(x), method=lambda m, a: m.encoder(a)
  )
  z_y = model.apply(
      codec.variables, jnp.asarray(y), method=lambda m, a: m.encoder(a)
  )
  frame = t // 320
  np.testing.assert_array_equal(
      np.asarray(z_x)[:, :frame], np.asarray(z_y)[:, :frame]
  )
  assert not np.allclose(np.asarray(z_x)[:, frame:], np.asarray(z_y)[:, frame:])
  np.testing.assert_array_equal(
      np.asarray(codec.encode(x))[..., :frame],
      np.asarray(codec.encode(y))[..., :frame],
  )


def test_decoder_is_causal(codec):
  codes = np.asarray(codec.encode(_audio(CLIP, batch=1)))
  other = codes.copy()
  other[..., 50:] = (other[..., 50:] + 7) % 32
  a = np.asarray(codec.decode(codes))
  b = np.asarray(codec.decode(other))
  np.testing.assert_array_equal(a[:, : 50 * 320], b[:, : 50 * 320])
  assert not np.allclose(a[:, 50 * 320 :], b[:, 50 * 320 :])


def test_decode_with_fewer_levels(codec):
  codes = codec.encode(_audio(3200))
  assert codec.encode(_audio(3200), n_levels=1).shape == (2, 1, 10)
  full, one = codec.decode(codes), codec.decode(codes[:, :1])
  assert full.shape == one.shape and not np.allclose(full, one)
  with pytest.raises(ValueError, match="n_levels=4"):
    codec.decode(jnp.zeros((1, 4, 10), jnp.int32))
  with pytest.raises(ValueError, match="codebook_size"):
    codec.decode(jnp.full((1, 1, 10), 32))


def test_tokens_roundtrip_level_major():
  codes = np.array([[[1, 2, 3], [4, 5, 6]]], np.int32)  # [b=1, L=2, t=3]
  ids = np.asarray(codec_lib.codes_to_tokens(codes, base=1000))
  np.testing.assert_array_equal(ids, [[1001, 1002, 1003, 2028, 2029, 2030]])
  np.testing.assert_array_equal(
      codec_lib.tokens_to_codes(ids, 2, base=1000), codes
  )
  with pytest.raises(ValueError, match="not an audio id of level 1"):
    codec_lib.tokens_to_codes(
        np.array([[1001, 1002, 1003, 1004, 5, 6]]), 2, base=1000
    )
  with pytest.raises(ValueError, match="do not split"):
    codec_lib.tokens_to_codes(ids[:, :5], 2, base=1000)


def _assert_same_function(ours, theirs, params, x, atol, grad_atol):
  """Equal outputs, and equal gradients (params and input) of a random
  projection of the outputs."""
  np.testing.assert_allclose(ours(params, x), theirs(params, x), atol=atol)
  probe = jax.random.normal(jax.random.key(2), ours(params, x).shape)
  g = lambda f: jax.grad(lambda p, x: (f(p, x) * probe).sum(), (0, 1))
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, atol=grad_atol),
      g(ours)(params, x), g(theirs)(params, x),
  )  # fmt: skip


def _lax_conv(p, x, k, s, d):
  """The direct causal convolution `layers.CausalConv` computes."""
  x = jnp.pad(x, ((0, 0), ((k - 1) * d + 1 - s, 0), (0, 0)))
  y = jax.lax.conv_general_dilated(
      x, p["kernel"], (s,), "VALID", rhs_dilation=(d,),
      dimension_numbers=("NWC", "WIO", "NWC"),
  )  # fmt: skip
  return y + p["bias"]


def _flax_conv_transpose(p, x, s):
  y = nn.ConvTranspose(p["kernel"].shape[-1], (2 * s,), strides=(s,),
                       padding="VALID").apply({"params": p}, x)  # fmt: skip
  return y[:, : x.shape[1] * s]


@pytest.mark.parametrize(
    "kind,k,s,d",
    [("conv", 7, 1, 9), ("conv", 1, 1, 1), ("conv", 16, 8, 1),
     ("transpose", 0, 5, 1)],
)  # fmt: skip
def test_causal_convs_equal_lax_convs(kind, k, s, d):
  """The layers give the direct convolutions' outputs and gradients, on the
  parameter tree of flax's nn.Conv / nn.ConvTranspose (every form and
  stride of `kernels.causal_conv1d` / `conv_transpose1d`: kernels_test)."""
  x = jax.random.normal(jax.random.key(0), (2, 40, 6))
  if kind == "conv":
    mod = layers.CausalConv(5, k, s, d)
    ref = lambda p, x: _lax_conv(p, x, k, s, d)
  else:
    mod = layers.CausalConvTranspose(5, s)
    ref = lambda p, x: _flax_conv_transpose(p, x, s)
  params = nn.unbox(mod.init(jax.random.key(1), x))["params"]
  params = jax.tree.map(lambda a: a + 0.1, params)  # A non-zero bias.
  ours = lambda p, x: mod.apply({"params": p}, x)
  theirs = lambda p, x: ref(p["conv"], x)
  _assert_same_function(ours, theirs, params, x, atol=2e-6, grad_atol=1e-5)


@pytest.mark.parametrize(
    "n,c,out,groups",
    [(64, 16, 64, 4), (61, 8, 32, 2), (40, 4, 16, 1), (43, 68, 68, 17)],
)
def test_grouped_strided_conv_equals_flax_conv(n, c, out, groups):
  """The MelGAN layer (a grouped convolution of 4-sample frames) == nn.Conv
  with feature groups (SAME padding, stride 4, kernel 41), outputs and
  gradients, on the same parameter tree; also for lengths that are not a
  multiple of the stride, and with 17 groups (the batched-matmul kernel
  gradient; up to 16, the dense one)."""
  from videopoet.tokenizers.soundstream import discriminators  # pylint: disable=g-import-not-at-top

  x = jax.random.normal(jax.random.key(0), (2, n, c))
  mod = discriminators.GroupedStridedConv(out, 41, 4, groups)
  ref_mod = nn.Conv(out, (41,), 4, padding="SAME", feature_group_count=groups)
  params = nn.unbox(mod.init(jax.random.key(1), x))["params"]
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(
      jnp.shape, ref_mod.init(jax.random.key(1), x)["params"]
  )
  params = jax.tree.map(lambda a: a + 0.1, params)
  ours = lambda p, x: mod.apply({"params": p}, x)
  theirs = lambda p, x: ref_mod.apply({"params": p}, x)
  _assert_same_function(ours, theirs, params, x, atol=2e-5, grad_atol=1e-4)


def test_elu_equals_flax_elu():
  """The exp-based ELU: flax's values within 2e-7 and its gradient,
  including 1 at exactly 0 (flax's expm1 form)."""
  x = jnp.concatenate([jnp.linspace(-20.0, 20.0, 4001), jnp.zeros(1)])
  np.testing.assert_allclose(layers.elu(x), nn.elu(x), rtol=0, atol=2e-7)
  grad = lambda f: jax.vmap(jax.grad(f))(x)
  np.testing.assert_allclose(grad(layers.elu), grad(nn.elu), atol=2e-7)
  assert float(grad(layers.elu)[-1]) == 1.0
