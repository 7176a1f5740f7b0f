"""MAGVIT-v2 model: shapes, causality, image == first frame, index API."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet import kernels
from videopoet.kernels import affine
from videopoet.kernels import conv3d_xla
from videopoet.kernels import pad_xla
from videopoet.train_lib import data as data_lib

from videopoet.tokenizers.magvit2 import layers
from videopoet.tokenizers.magvit2 import model as model_lib
from videopoet.tokenizers.magvit2 import quantizers

CFG = model_lib.ModelConfig(
    filters=8, channel_multipliers=(1, 1, 2, 2), num_res_blocks=1, num_groups=4
)
LFQ = quantizers.LFQ(num_bits=6)


@functools.lru_cache(maxsize=None)
def _setup(dtype="float32"):
  tok = model_lib.Tokenizer(
      model_lib.ModelConfig(**{**CFG.__dict__, "dtype": dtype}), LFQ
  )
  video = jax.random.uniform(
      jax.random.key(0), (2, 9, 16, 16, 3), minval=-1, maxval=1
  )
  params = jax.jit(lambda r, v: tok.init(kernels.init_key(r), v))(
      jax.random.key(1), video[:, :1]
  )
  encoder = jax.jit(
      lambda p, v: tok.apply(p, v, method=lambda m, x: m.encoder(x))
  )
  decoder = jax.jit(lambda p, z: tok.apply(p, z, method=tok.decode))
  return tok, params, video, encoder, decoder


def _apply(tok, method):
  return jax.jit(lambda p, x: tok.apply(p, x, method=getattr(tok, method)))


def test_shapes_video_and_image():
  tok, params, video, encoder, decoder = _setup()
  assert CFG.latent_shape(17, 32, 32) == (5, 4, 4)
  assert CFG.latent_shape(1, 64, 64) == (1, 8, 8)
  z = encoder(params, video)
  chex.assert_shape(z, (2, 3, 2, 2, 6))
  chex.assert_shape(encoder(params, video[:, :1]), (2, 1, 2, 2, 6))
  chex.assert_shape(decoder(params, jnp.sign(z)), (2, 9, 16, 16, 3))
  chex.assert_shape(decoder(params, jnp.sign(z[:, :1])), (2, 1, 16, 16, 3))
  ids = _apply(tok, "encode_to_indices")(params, video[:, 0])
  chex.assert_shape(ids, (2, 2, 2))
  chex.assert_shape(
      _apply(tok, "decode_from_indices")(params, ids), (2, 16, 16, 3)
  )


def test_image_latents_equal_first_latent_frame():
  tok, params, video, encoder, _ = _setup()
  np.testing.assert_allclose(
      encoder(params, video[:, :1])[:, 0],
      encoder(params, video)[:, 0],
      atol=1e-5,
  )
  to_ids = _apply(tok, "encode_to_indices")
  np.testing.assert_array_equal(
      to_ids(params, video[:, 0]), to_ids(params, video)[:, 0]
  )


def test_encoder_and_decoder_are_causal():
  _, params, video, encoder, decoder = _setup()
  # Frames 5.. changed: latents 0..1 (frames <= 4) must not move, 2 must.
  other = video.at[:, 5:].set(-video[:, 5:])
  z, z2 = encoder(params, video), encoder(params, other)
  np.testing.assert_allclose(z[:, :2], z2[:, :2], atol=1e-5)
  assert np.abs(z[:, 2:] - z2[:, 2:]).max() > 1e-3
  # Latent 2 changed: frames 0..4 must not move, 5.. must.
  codes = jnp.sign(z)
  v, v2 = decoder(params, codes), decoder(params, codes.at[:, 2:].mul(-1))
  np.testing.assert_allclose(v[:, :5], v2[:, :5], atol=1e-5)
  assert np.abs(v[:, 5:] - v2[:, 5:]).max() > 1e-4


def test_indices_round_trip_and_training_call():
  tok, params, video, _, decoder = _setup()
  out = _apply(tok, "encode")(params, video)
  ids = _apply(tok, "encode_to_indices")(params, video)
  np.testing.assert_array_equal(ids, out.indices)
  np.testing.assert_allclose(
      _apply(tok, "decode_from_indices")(params, ids),
      decoder(params, out.quantized),
      atol=1e-5,
  )
  recon, qout = jax.jit(tok.apply)(params, video)
  chex.assert_shape(recon, video.shape)
  chex.assert_tree_all_finite((recon, qout.loss))
  assert set(qout.metrics) >= {"per_sample_entropy", "batch_entropy"}


def test_bfloat16_compute():
  tok, params, video, _, _ = _setup("bfloat16")
  recon, out = jax.jit(tok.apply)(params, video[:1, :5])
  assert recon.dtype == jnp.float32  # conv_last runs in float32
  chex.assert_tree_all_finite((recon, out.loss))


def test_bad_inputs_have_clear_errors():
  tok, params, video, _, _ = _setup()
  with pytest.raises(ValueError, match="1 \\+ k \\* 4 frames"):
    tok.apply(params, video[:, :8], method=tok.encode)
  with pytest.raises(ValueError, match="divide by 8"):
    tok.apply(params, video[:, :, :12, :12], method=tok.encode)
  with pytest.raises(ValueError, match="expected a video"):
    tok.apply(params, video[..., :2], method=tok.encode)
  with pytest.raises(ValueError, match="temporal_downsample"):
    model_lib.ModelConfig(temporal_downsample=(True,))


def test_base_config_is_the_paper():
  cfg = model_lib.ModelConfig()
  assert cfg.latent_shape(17, 128, 128) == (5, 16, 16)
  tok = model_lib.Tokenizer(cfg, quantizers.LFQ())
  shapes = jax.eval_shape(
      tok.init, jax.random.key(0), jnp.zeros((1, 1, 128, 128, 3))
  )
  n = sum(x.size for x in jax.tree.leaves(shapes))
  assert 360e6 < n < 390e6, n  # About 376M (reference note, praxis list).


# Each case takes one path of conv3d_as_2d (6 input channels: more than
# _FRAMES_AS_CHANNELS_MAX / 3; under _WIDENING x 6 output features unless
# the case says so).
@pytest.mark.parametrize(
    "kernel,strides,features,t,channels",
    [
        ((3, 3, 3), (1, 1, 1), 7, 9, 6),  # Kernel frames stacked as outputs.
        ((3, 3, 3), (1, 1, 1), 40, 9, 24),  # Stacked; kernel grad per frame.
        ((3, 3, 3), (1, 1, 1), 12, 9, 6),  # Widening: frames as channels.
        ((3, 3, 3), (1, 2, 2), 12, 9, 6),  # The same, strided in space.
        ((2, 3, 1), (1, 1, 1), 7, 5, 6),  # Stacked.
        ((3, 3, 3), (1, 1, 1), 7, 3, 6),  # Too few frames: per kernel frame.
        ((3, 3, 3), (1, 1, 1), 7, 9, 3),  # RGB: kernel frames as channels.
        ((4, 4, 4), (2, 2, 2), 7, 9, 6),  # Space-to-depth in time and space.
        ((4, 4, 4), (1, 2, 2), 7, 9, 6),
        ((2, 4, 2), (1, 2, 2), 7, 9, 6),  # Space-to-depth, odd height cropped.
        ((1, 1, 1), (1, 1, 1), 7, 9, 6),  # Matmul.
        ((1, 1, 1), (2, 1, 2), 7, 9, 6),
        ((3, 1, 2), (2, 1, 1), 7, 9, 6),  # Strided per kernel frame.
        ((3, 3, 3), (1, 2, 2), 7, 9, 6),  # Kernel not a multiple: strided 2D.
    ],
)
def test_conv3d_as_2d_equals_3d_convolution(
    kernel, strides, features, t, channels
):
  x = jax.random.normal(jax.random.key(0), (2, t, 11, 12, channels))
  k = jax.random.normal(jax.random.key(1), (*kernel, channels, features))
  want = jax.lax.conv_general_dilated(
      x, k, strides, "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
  )
  got = conv3d_xla.conv3d_as_2d(x, k, strides)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)
  # Gradients too (the reformulation exists for their speed).
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))
  ref = lambda x, k: jax.lax.conv_general_dilated(
      x, k, strides, "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
  )
  ours = lambda x, k: conv3d_xla.conv3d_as_2d(x, k, strides)
  for g_ours, g_ref in zip(
      jax.grad(loss(ours), (0, 1))(x, k), jax.grad(loss(ref), (0, 1))(x, k)
  ):
    np.testing.assert_allclose(g_ours, g_ref, atol=1e-3, rtol=1e-4)


def _eqns(fn, *args):
  """fn's jaxpr equations, custom-VJP calls replaced by their bodies."""
  return [
      e
      for eq in jax.make_jaxpr(fn)(*args).jaxpr.eqns
      for e in (
          eq.params["call_jaxpr"].jaxpr.eqns
          if eq.primitive.name == "custom_vjp_call"
          else [eq]
      )
  ]


@pytest.mark.parametrize("features,lhs_channels", [(12, 18), (11, 6)])
def test_widening_conv_gathers_kernel_frames_as_channels(
    features, lhs_channels
):
  # 6 -> 12 channels: one 2D convolution over the 3 kernel frames gathered
  # as 18 channels; 6 -> 11: the time-stacked form (6-channel frames).
  x = jnp.zeros((1, 9, 8, 8, 6))
  k = jnp.zeros((3, 3, 3, 6, features))
  eqns = _eqns(lambda x, k: conv3d_xla.conv3d_as_2d(x, k, (1, 1, 1)), x, k)
  convs = [e for e in eqns if e.primitive.name == "conv_general_dilated"]
  assert [e.invars[0].aval.shape[-1] for e in convs] == [lhs_channels]


def test_cond_norm_projects_then_upsamples_as_upsample_then_project():
  z = jax.random.normal(jax.random.key(0), (2, 3, 2, 2, 5))  # Latent grid.
  strides = (2, 1)  # 3 -> 5 -> 5 frames, 2 -> 4 -> 8 pixels.
  x = jax.random.normal(jax.random.key(1), (2, 5, 8, 8, 8))
  norm = layers.CondNorm(num_groups=4)
  params = nn.unbox(norm.init(jax.random.key(2), x, z, strides))
  got = norm.apply(params, x, z, strides)
  p = params["params"]
  up = layers.upsample_latent(z, strides)  # [2, 5, 8, 8, 5]
  assert up.shape[:4] == x.shape[:4]
  dense = lambda name: up @ p[name]["kernel"] + p[name]["bias"]
  want = layers.group_norm_per_frame(x, 4) * (1 + dense("gamma")) + dense(
      "beta"
  )
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "shape,pads",
    [
        ((2, 5, 6, 7, 3), ((0, 0), (2, 0), (1, 1), (1, 2), (0, 0))),
        ((1, 1, 4, 1, 2), ((0, 0), (3, 0), (0, 2), (1, 1), (0, 0))),
        ((1, 4, 3, 2, 2), ((0, 0), (2, 0), (0, 0), (1, 1), (0, 0))),
        ((2, 3), ((0, 0), (0, 0))),
    ],
)
def test_edge_pad_gradient_equals_autodiff_of_jnp_pad(shape, pads):
  x = jax.random.normal(jax.random.key(0), shape)
  want_y = jnp.pad(x, pads, mode="edge")
  np.testing.assert_array_equal(pad_xla.edge_pad(x, pads), want_y)
  # One pass: the only padded-size tensor is a gather's output (jnp's edge
  # pad concatenates once per padded axis).
  eqns = _eqns(lambda x: pad_xla.edge_pad(x, pads), x)
  full = [
      e.primitive.name
      for e in eqns
      if e.outvars[0].aval.shape == want_y.shape
  ]
  assert full == (["gather"] if x.shape != want_y.shape else []), full
  w = jax.random.normal(jax.random.key(1), want_y.shape)
  got = jax.grad(lambda x: jnp.sum(w * pad_xla.edge_pad(x, pads)))(x)
  want = jax.grad(lambda x: jnp.sum(w * jnp.pad(x, pads, mode="edge")))(x)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_affine_with_matmul_parameter_gradients_equals_autodiff(dtype):
  x = jax.random.normal(jax.random.key(0), (2, 3, 4, 5, 6), dtype)
  scale = jax.random.normal(jax.random.key(1), (6,))
  bias = jax.random.normal(jax.random.key(2), (6,))
  loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)).astype(jnp.float32))
  tol = (
      dict(atol=1e-5, rtol=1e-5)
      if dtype == jnp.float32
      else dict(atol=0.1, rtol=0.02)
  )
  for ours, ref, args in (
      (affine.scale_and_shift, lambda x, s, b: x * s + b, (x, scale, bias)),
      (affine.shift, lambda x, b: x + b, (x, bias.astype(dtype))),
  ):
    np.testing.assert_allclose(ours(*args), ref(*args), **tol)
    argnums = tuple(range(len(args)))
    got = jax.grad(loss(ours), argnums)(*args)
    want = jax.grad(loss(ref), argnums)(*args)
    for a, g, w in zip(args, got, want):
      assert g.dtype == a.dtype
      np.testing.assert_allclose(
          np.asarray(g, np.float32), np.asarray(w, np.float32), **tol
      )


def test_random_windows_are_contiguous_windows_of_each_clip():
  video = jnp.arange(3 * 17).reshape(3, 17, 1)  # frame ids per clip
  out = data_lib.random_windows(video, 5, jax.random.key(3))
  assert out.shape == (3, 5, 1)
  for clip, window in zip(np.asarray(video), np.asarray(out)):
    start = int(np.where(clip[:, 0] == window[0, 0])[0][0])
    np.testing.assert_array_equal(window, clip[start : start + 5])
