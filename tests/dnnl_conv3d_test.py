"""oneDNN 3D convolutions (XLA FFI targets) against XLA's own convolution.

Skipped only where the `kernels` extra is not installed: with it, a library
that is not built or does not load fails these tests
(`kernels_test.py` checks the dispatch either way).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet import kernels
from videopoet.kernels import dnnl_conv3d

pytestmark = pytest.mark.skipif(
    not dnnl_conv3d.extra_installed(),
    reason="the `kernels` extra (oneDNN wheels) is not installed",
)


def _reference(strides):
  return lambda x, k: jax.lax.conv_general_dilated(
      x, k, strides, "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
  )


@pytest.mark.parametrize(
    "kernel,strides,x_shape,features",
    [
        ((3, 3, 3), (1, 1, 1), (2, 9, 11, 12, 6), 7),
        ((3, 3, 3), (1, 1, 1), (1, 9, 10, 10, 3), 16),  # RGB input layer.
        ((3, 3, 3), (1, 1, 1), (2, 5, 8, 8, 16), 64),  # Widening.
        ((4, 4, 4), (2, 2, 2), (2, 10, 10, 10, 6), 7),  # Downsampling.
        ((4, 4, 4), (1, 2, 2), (2, 10, 11, 11, 6), 5),  # Odd: row cropped.
        ((3, 1, 2), (2, 1, 1), (1, 8, 5, 6, 4), 3),  # Ragged kernel.
        ((1, 1, 1), (1, 1, 1), (1, 3, 4, 4, 5), 6),
    ],
)
def test_forward_and_both_gradients_equal_xla(
    kernel, strides, x_shape, features
):
  x = jax.random.normal(jax.random.key(0), x_shape)
  k = jax.random.normal(jax.random.key(1), (*kernel, x_shape[-1], features))
  ours = lambda x, k: dnnl_conv3d.conv3d(x, k, strides)
  want = _reference(strides)(x, k)
  got = jax.jit(ours)(x, k)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))
  for g_ours, g_ref in zip(
      jax.jit(jax.grad(loss(ours), (0, 1)))(x, k),
      jax.grad(loss(_reference(strides)), (0, 1))(x, k),
  ):
    assert g_ours.shape == g_ref.shape
    np.testing.assert_allclose(g_ours, g_ref, atol=1e-3, rtol=1e-4)


def test_conv3d_routes_float32_through_onednn_and_bfloat16_through_xla():
  x = jnp.zeros((1, 5, 6, 6, 4))
  k = jnp.zeros((3, 3, 3, 4, 8))
  jaxpr = lambda x, k: str(
      jax.make_jaxpr(lambda x, k: kernels.conv3d(x, k, (1, 1, 1)))(x, k)
  )
  f32 = jaxpr(x, k)
  assert "videopoet_dnnl_conv3d_fwd" in f32
  assert "conv_general_dilated" not in f32
  bf16 = jaxpr(x.astype(jnp.bfloat16), k.astype(jnp.bfloat16))
  assert "videopoet_dnnl" not in bf16
  assert "conv_general_dilated" in bf16


def test_rejects_other_dtypes_and_names_shapes_on_a_bad_call():
  with pytest.raises(TypeError, match="float32"):
    dnnl_conv3d.conv3d(
        jnp.zeros((1, 3, 4, 4, 2), jnp.float16),
        jnp.zeros((3, 3, 3, 2, 2), jnp.float16),
        (1, 1, 1),
    )
  # The C++ side checks shapes itself: an output that does not match.
  call = jax.ffi.ffi_call(
      "videopoet_dnnl_conv3d_fwd",
      jax.ShapeDtypeStruct((1, 2, 2, 2, 2), jnp.float32),
  )
  with pytest.raises(Exception, match=r"x \[1, 3, 4, 4, 2\]"):
    jax.block_until_ready(
        call(
            jnp.zeros((1, 3, 4, 4, 2)),
            jnp.zeros((3, 3, 3, 2, 2)),
            st=np.int64(1),
            sh=np.int64(1),
            sw=np.int64(1),
        )
    )


def test_build_is_cached_under_a_name_that_hashes_source_and_versions():
  path = dnnl_conv3d.build()
  assert path.exists() and path.name.startswith("dnnl_conv3d-")
  assert dnnl_conv3d.build() == path  # Second call: the cached file.
  assert path == dnnl_conv3d.library_path()
  _, cmd = dnnl_conv3d._plan()  # pylint: disable=protected-access
  assert {"-Wall", "-Wextra"} <= set(cmd) and "-w" not in cmd


def test_status_says_why_not_and_compiles_nothing(monkeypatch, tmp_path):
  def fresh_status():
    dnnl_conv3d.status.cache_clear()
    dnnl_conv3d.available.cache_clear()
    return dnnl_conv3d.status()

  try:
    with monkeypatch.context() as m:
      m.setenv("VIDEOPOET_DNNL", "0")
      assert fresh_status()[0] == "disabled"
      assert not dnnl_conv3d.available()
      m.delenv("VIDEOPOET_DNNL")
      # Nothing is compiled on use: an empty cache is "not built".
      m.setenv("VIDEOPOET_CACHE_DIR", str(tmp_path))
      state, reason = fresh_status()
      assert state == "not_built" and "make kernels" in reason, reason
      assert not list(tmp_path.iterdir())
  finally:
    # Registering the targets again is fine.
    assert fresh_status()[0] == "ok" and dnnl_conv3d.available()


@pytest.mark.parametrize("strides", [(1, 1, 1), (2, 2, 2)])
def test_second_order_gradients_equal_xla(strides):
  # An R1-style penalty: the kernel gradient of the squared input gradient
  # (and its input gradient) differentiates both backward directions.
  x = jax.random.normal(jax.random.key(0), (2, 6, 8, 8, 3))
  k = jax.random.normal(jax.random.key(1), (4, 4, 4, 3, 5)) * 0.3

  def penalty(f):
    def fn(x, k):
      dx = jax.grad(lambda x: jnp.sum(jnp.tanh(f(x, k))))(x)
      return jnp.sum(dx**2)

    return fn

  ours = lambda x, k: dnnl_conv3d.conv3d(x, k, strides)
  for g_ours, g_ref in zip(
      jax.jit(jax.grad(penalty(ours), (0, 1)))(x, k),
      jax.grad(penalty(_reference(strides)), (0, 1))(x, k),
  ):
    np.testing.assert_allclose(g_ours, g_ref, atol=1e-3, rtol=1e-4)


def test_concurrent_calls_of_one_cached_primitive_agree_with_xla():
  # Six equal-shaped layers: XLA runs their independent gradients on several
  # threads, all on one cached primitive per direction. Sharing oneDNN's own
  # scratchpad, kernel gradients came out wrong here, and a 30-minute
  # training run hung in a kernel's spin barrier.
  xs = [
      jax.random.normal(jax.random.key(i), (2, 7, 34, 34, 16)) for i in range(6)
  ]
  ks = [
      jax.random.normal(jax.random.key(10 + i), (3, 3, 3, 16, 16)) * 0.1
      for i in range(6)
  ]

  def loss(conv):
    return lambda ks, xs: sum(
        jnp.sum(jnp.sin(conv(x, k))) for x, k in zip(xs, ks)
    )

  ours = jax.jit(
      jax.grad(loss(lambda x, k: dnnl_conv3d.conv3d(x, k, (1, 1, 1))))
  )
  want = jax.grad(loss(_reference((1, 1, 1))))(ks, xs)
  for _ in range(20):
    for got, ref in zip(ours(ks, xs), want):
      np.testing.assert_allclose(got, ref, atol=1e-3, rtol=1e-4)
