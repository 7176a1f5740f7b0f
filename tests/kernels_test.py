"""`videopoet.kernels`: what `impl="auto"` runs, and that each form of each
op gives the numbers of its plain `lax` form.

With the `kernels` extra installed, oneDNN must be built and in use (a
missing or broken build fails here, not a silent fallback); without it the
XLA:CPU forms run. Equality of every oneDNN direction with XLA is in
`dnnl_conv3d_test.py`, of the 3D and 2D convolution forms in
`magvit2_model_test.py` and `conv2d_test.py`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet import kernels
from videopoet.kernels import dnnl_conv3d
from videopoet.kernels import xla_cpu

_CPU = jax.default_backend() == "cpu"


def _conv3d_lax(x, k, strides):  # The oracle: no `kernels` code.
  return jax.lax.conv_general_dilated(
      x, k, strides, "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
  )


@pytest.mark.skipif(not _CPU, reason="the CPU forms' dispatch")
def test_conv3d_runs_onednn_exactly_where_the_extra_is_installed():
  x = jax.random.normal(jax.random.key(0), (1, 5, 6, 6, 4))
  k = jax.random.normal(jax.random.key(1), (3, 3, 3, 4, 8))
  jaxpr = str(jax.make_jaxpr(kernels.conv3d)(x, k))
  state, reason = dnnl_conv3d.status()
  if dnnl_conv3d.extra_installed() and state != "disabled":
    assert state == "ok", f"kernels extra installed but oneDNN {reason}"
    assert kernels.backend("conv3d") == "onednn"
    assert "videopoet_dnnl_conv3d_fwd" in jaxpr
  else:
    assert kernels.backend("conv3d") == "xla_cpu"
    assert "videopoet_dnnl" not in jaxpr
  # The other ops take their XLA:CPU forms on CPU either way.
  assert {kernels.backend(op) for op in kernels.OPS if op != "conv3d"} == {
      "xla_cpu"
  }
  np.testing.assert_allclose(
      jax.jit(kernels.conv3d)(x, k),
      _conv3d_lax(x, k, (1, 1, 1)),
      atol=1e-4,
      rtol=1e-5,
  )


def test_override_and_impl_pick_the_form_traced():
  x = jnp.zeros((1, 5, 6, 6, 4))
  k = jnp.zeros((3, 3, 3, 4, 8))
  jaxpr = lambda **kw: str(
      jax.make_jaxpr(lambda x, k: kernels.conv3d(x, k, **kw))(x, k)
  )
  with kernels.override(conv3d="xla_cpu"):
    assert kernels.backend("conv3d") == "xla_cpu"
    assert "videopoet_dnnl" not in jaxpr()
    # An explicit impl wins over the override.
    assert jaxpr(impl="lax").count("conv_general_dilated") == 1
  with kernels.override(conv3d="lax"):
    assert jaxpr().count("conv_general_dilated") == 1
  with pytest.raises(ValueError, match="impl='cudnn'"):
    kernels.conv3d(x, k, impl="cudnn")
  with pytest.raises(ValueError, match="conv2d: impl='onednn'"):
    kernels.conv2d(x[0], k[0], impl="onednn")


def test_every_form_of_the_small_ops_equals_lax():
  """grouped_conv1d, blur_pool3d, the affine ops, edge_pad and elu: values
  and gradients of their XLA:CPU forms against their lax forms."""
  key = lambda i: jax.random.key(i)
  x1 = jax.random.normal(key(0), (2, 29, 8))
  k1 = jax.random.normal(key(1), (9, 2, 12))
  x3 = jax.random.normal(key(2), (2, 3, 5, 4, 6))
  s, b = jax.random.normal(key(3), (6,)), jax.random.normal(key(4), (6,))
  cases = [
      (lambda x, k, impl: kernels.grouped_conv1d(x, k, 4, 4, impl=impl),
       (x1, k1)),
      (lambda x, impl: kernels.blur_pool3d(x, impl=impl), (x3,)),
      (lambda x, s, b, impl: kernels.scale_and_shift(x, s, b, impl=impl),
       (x3, s, b)),
      (lambda x, b, impl: kernels.shift(x, b, impl=impl), (x3, b)),
      (lambda x, impl: kernels.edge_pad(
          x, ((0, 0), (2, 0), (1, 1), (0, 2), (0, 0)), impl=impl), (x3,)),
      (lambda x, impl: kernels.elu(x, impl=impl), (x3 * 3,)),
  ]  # fmt: skip
  for fn, args in cases:
    ours = lambda *a, fn=fn: fn(*a, impl="xla_cpu")
    ref = lambda *a, fn=fn: fn(*a, impl="lax")
    np.testing.assert_allclose(ours(*args), ref(*args), atol=1e-5, rtol=1e-5)
    loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))
    argnums = tuple(range(len(args)))
    for got, want in zip(
        jax.grad(loss(ours), argnums)(*args),
        jax.grad(loss(ref), argnums)(*args),
    ):
      np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
  assert kernels.grouped_conv1d(x1, k1, 4, 4).shape == (2, 8, 12)


@pytest.mark.skipif(not _CPU, reason="the CPU forms' dispatch")
def test_without_the_extra_the_xla_forms_run(monkeypatch):
  """The wheels' metadata hidden, as where the extra is not installed:
  "not_installed", and conv3d traces the XLA:CPU forms."""
  real = dnnl_conv3d.importlib.metadata

  class _Hidden:  # importlib.metadata without the oneDNN wheels.
    PackageNotFoundError = real.PackageNotFoundError

    @staticmethod
    def _check(dist):
      if dist.startswith("onednn"):
        raise real.PackageNotFoundError(dist)

    def version(self, dist):
      self._check(dist)
      return real.version(dist)

    def files(self, dist):
      self._check(dist)
      return real.files(dist)

    def __getattr__(self, name):
      return getattr(real, name)

  def clear():
    dnnl_conv3d.status.cache_clear()
    dnnl_conv3d.available.cache_clear()

  x = jax.random.normal(jax.random.key(0), (1, 4, 5, 5, 3))
  k = jax.random.normal(jax.random.key(1), (3, 3, 3, 3, 4))
  try:
    with monkeypatch.context() as m:
      m.setattr(dnnl_conv3d.importlib, "metadata", _Hidden())
      clear()
      assert not dnnl_conv3d.extra_installed()
      state, reason = dnnl_conv3d.status()
      assert state == "not_installed" and "kernels" in reason, reason
      assert kernels.backend("conv3d") == "xla_cpu"
      jaxpr = str(jax.make_jaxpr(kernels.conv3d)(x, k))
      assert "videopoet_dnnl" not in jaxpr
      np.testing.assert_allclose(
          kernels.conv3d(x, k), _conv3d_lax(x, k, (1, 1, 1)), atol=1e-4
      )
  finally:
    clear()


@pytest.mark.parametrize(
    "k,s,d",
    [(7, 1, 1), (7, 1, 9), (1, 1, 1), (4, 2, 1), (10, 5, 1), (16, 8, 1),
     (6, 4, 1), (3, 2, 2)],
)  # fmt: skip
def test_causal_conv1d_forms_equal_lax(k, s, d):
  """kernels.causal_conv1d: the codec's convolutions (dilated 7-tap,
  pointwise, strided 2s-tap), a kernel that is no multiple of the stride
  and a strided dilated one, xla_cpu against lax, values and gradients; the
  lax form against a direct `lax.conv` of the past-padded input."""
  x = jax.random.normal(jax.random.key(0), (2, 41, 6))
  w = jax.random.normal(jax.random.key(1), (k, 6, 5))
  bias = jax.random.normal(jax.random.key(2), (5,))
  conv = lambda impl: lambda x, w, b: kernels.causal_conv1d(
      x, w, b, stride=s, dilation=d, impl=impl
  )
  pad = (k - 1) * d + 1 - s
  direct = jax.lax.conv_general_dilated(
      jnp.pad(x, ((0, 0), (pad, 0), (0, 0))), w, (s,), "VALID",
      rhs_dilation=(d,), dimension_numbers=("NWC", "WIO", "NWC"),
  )  # fmt: skip
  assert conv("lax")(x, w, bias).shape == (2, 41 // s, 5)
  np.testing.assert_allclose(conv("lax")(x, w, bias), direct + bias, atol=1e-5)
  _assert_same_values_and_grads(conv("xla_cpu"), conv("lax"), x, w, bias)


@pytest.mark.parametrize("s", [1, 2, 5, 8])
def test_conv_transpose1d_forms_equal_lax(s):
  """kernels.conv_transpose1d (the codec's strides 2, 5, 8): xla_cpu against
  lax, values and gradients; the lax form is `lax.conv_transpose`'s first
  t * s outputs, the last frame's spill past the end dropped."""
  x = jax.random.normal(jax.random.key(0), (2, 9, 6))
  w = jax.random.normal(jax.random.key(1), (2 * s, 6, 5))
  bias = jax.random.normal(jax.random.key(2), (5,))
  conv = lambda impl: lambda x, w, b: kernels.conv_transpose1d(
      x, w, b, stride=s, impl=impl
  )
  full = jax.lax.conv_transpose(
      x, w, (s,), "VALID", dimension_numbers=("NWC", "WIO", "NWC")
  )  # [2, (9 + 1) * s, 5]
  np.testing.assert_allclose(
      conv("lax")(x, w, bias), full[:, : 9 * s] + bias, atol=1e-5
  )
  _assert_same_values_and_grads(conv("xla_cpu"), conv("lax"), x, w, bias)
  # No bias: the bare convolution.
  np.testing.assert_allclose(
      kernels.conv_transpose1d(x, w, stride=s, impl="xla_cpu"),
      full[:, : 9 * s], atol=1e-5,
  )  # fmt: skip


@pytest.mark.skipif(not _CPU, reason="the xla_cpu form's layout")
def test_conv_transpose1d_bias_gradient_is_summed_per_frame():
  """On CPU the transposed conv's bias gradient is summed over [b, t] rows
  of s * f (the bias tiled per frame, as the matmul writes its outputs),
  bit for bit: summed over [b, t * s] rows of f instead, the same numbers
  up to rounding sent `make demo`'s codec training on another trajectory
  from step 20 (mel distance 6.88 vs 5.83 at step 600)."""
  from videopoet.kernels import affine, conv1d_xla  # pylint: disable=g-import-not-at-top

  s = 5
  x = jax.random.normal(jax.random.key(0), (4, 50, 16))
  w = jax.random.normal(jax.random.key(1), (2 * s, 16, 8))
  bias = jax.random.normal(jax.random.key(2), (8,))
  probe = jax.random.normal(jax.random.key(3), (4, 50 * s, 8))

  def frames(b):
    y = affine.shift(
        conv1d_xla.conv_transpose_matmul(x, w, s), jnp.tile(b, s)
    )  # [4, 50, s * 8]
    return jnp.sum(y.reshape(4, 50 * s, 8) * probe)

  ours = lambda b: jnp.sum(kernels.conv_transpose1d(x, w, b, stride=s) * probe)
  np.testing.assert_array_equal(
      jax.jit(jax.grad(ours))(bias), jax.jit(jax.grad(frames))(bias)
  )


def _assert_same_values_and_grads(ours, ref, *args):
  np.testing.assert_allclose(ours(*args), ref(*args), atol=1e-5, rtol=1e-5)
  probe = jax.random.normal(jax.random.key(9), ref(*args).shape)
  loss = lambda f: lambda *a: jnp.sum(f(*a) * probe)
  argnums = tuple(range(len(args)))
  for got, want in zip(
      jax.grad(loss(ours), argnums)(*args), jax.grad(loss(ref), argnums)(*args)
  ):
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_codec_convs_dispatch_and_check_shapes():
  """On CPU "auto" picks the matmul forms (no convolution in the strided
  and transposed jaxprs), elsewhere lax; bad shapes name the op."""
  x, w = jnp.zeros((1, 16, 3)), jnp.zeros((4, 3, 2))
  want = "xla_cpu" if _CPU else "lax"
  assert kernels.backend("causal_conv1d") == want
  assert kernels.backend("conv_transpose1d") == want
  strided = lambda: str(jax.make_jaxpr(
      lambda x, w: kernels.causal_conv1d(x, w, stride=2))(x, w))  # fmt: skip
  up = lambda: str(jax.make_jaxpr(
      lambda x, w: kernels.conv_transpose1d(x, w, stride=2))(x, w))  # fmt: skip
  for jaxpr in (strided(), up()):
    assert ("conv_general_dilated" not in jaxpr) == _CPU, jaxpr
  with kernels.override(causal_conv1d="lax", conv_transpose1d="lax"):
    assert "conv_general_dilated" in strided()
    assert "conv_general_dilated" in up()
  with pytest.raises(ValueError, match="causal_conv1d: kernel 4 .* stride 5"):
    kernels.causal_conv1d(x, w, stride=5)
  with pytest.raises(ValueError, match="conv_transpose1d: kernel 4 .* 3"):
    kernels.conv_transpose1d(x, w, stride=3)


def test_init_key_is_an_rbg_key_drawn_from_threefry():
  """Both derivations: 'rbg' keys, deterministic in the threefry key and
  different per key; "bits" wraps four threefry words as the key data."""
  rng = jax.random.key(0)
  bits = kernels.init_key(rng)
  seeded = kernels.init_key(rng, "int32_seed")
  for key in (bits, seeded):
    assert jax.random.key_impl(key) == jax.random.key_impl(
        jax.random.key(0, impl="rbg")
    )
  np.testing.assert_array_equal(
      jax.random.key_data(bits), jax.random.bits(rng, (4,), jnp.uint32)
  )
  seed = jax.random.randint(rng, (), 0, jnp.iinfo(jnp.int32).max)
  np.testing.assert_array_equal(
      jax.random.key_data(seeded),
      jax.random.key_data(jax.random.key(seed, impl="rbg")),
  )
  other = kernels.init_key(jax.random.key(1), "int32_seed")
  assert not np.array_equal(
      jax.random.key_data(seeded), jax.random.key_data(other)
  )
  with pytest.raises(ValueError, match="derivation='x'"):
    kernels.init_key(rng, "x")


def test_step_compiler_options_are_for_cpu_only(monkeypatch):
  assert xla_cpu.step_compiler_options("cpu") == xla_cpu.TREE_REDUCTION_OFF
  assert xla_cpu.step_compiler_options("tpu") == {}
  assert xla_cpu.step_compiler_options("gpu") == {}
  monkeypatch.setenv("VIDEOPOET_XLA_CPU_DEFAULTS", "0")
  assert xla_cpu.step_compiler_options("cpu") == {}


def test_without_tree_reduction_a_softmax_fuses_its_reductions():
  # XLA's default splits the row reductions into reduce-windows (separate
  # kernels); the step options leave them whole, with the same values.
  x = jax.random.normal(jax.random.key(0), (4, 324, 324)) * 4.0
  f = lambda x: jax.nn.softmax(x, axis=-1)
  default = jax.jit(f).lower(x).compile()
  off = jax.jit(f, compiler_options=xla_cpu.step_compiler_options("cpu"))
  off = off.lower(x).compile()
  assert "reduce-window" in default.as_text()
  assert "reduce-window" not in off.as_text()
  np.testing.assert_allclose(off(x), default(x), rtol=1e-6, atol=1e-7)
