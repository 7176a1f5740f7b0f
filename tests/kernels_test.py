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
