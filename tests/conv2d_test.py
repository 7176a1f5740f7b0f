"""`kernels.conv2d`: every CPU form equals lax's 'SAME' convolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet import kernels


def _lax(x, kernel, strides):  # The oracle: no `kernels` code.
  return jax.lax.conv_general_dilated(
      x, kernel, strides, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


@pytest.mark.parametrize(
    "shape,kernel,strides,custom",
    [
        ((2, 7, 13, 2), (7, 7, 2, 5), (1, 1), True),  # the STFT stem
        ((1, 1, 5, 2), (7, 7, 2, 3), (1, 1), True),  # fewer rows than taps
        ((2, 9, 17, 3), (3, 4, 3, 4), (1, 2), True),  # odd width
        ((2, 9, 16, 3), (4, 4, 3, 4), (2, 2), True),  # odd height
        ((2, 8, 15, 3), (4, 4, 3, 4), (2, 2), True),
        ((2, 3, 3, 3), (4, 4, 3, 4), (2, 2), True),  # smaller than the kernel
        ((2, 8, 15, 3), (1, 1, 3, 4), (2, 2), False),  # 1x1 strided skip
        ((2, 6, 11, 8), (3, 3, 8, 4), (1, 1), False),  # 24 input columns
        ((2, 6, 11, 3), (3, 3, 3, 4), (1, 1), True),  # 9 input columns
    ],
)
def test_conv2d_equals_lax_same_conv(shape, kernel, strides, custom):
  """Values and both gradients, on odd sizes; `custom` says whether the
  form with its own input gradient must have been taken."""
  x = jax.random.normal(jax.random.key(0), shape)
  k = jax.random.normal(jax.random.key(1), kernel)
  ours = lambda x, k: kernels.conv2d(x, k, strides, impl="xla_cpu")
  theirs = lambda x, k: _lax(x, k, strides)
  y = theirs(x, k)
  np.testing.assert_allclose(ours(x, k), y, rtol=1e-5, atol=1e-5)
  probe = jax.random.normal(jax.random.key(2), y.shape)
  grads = lambda f: jax.grad(lambda x, k: jnp.sum(f(x, k) * probe), (0, 1))
  for a, b in zip(grads(ours)(x, k), grads(theirs)(x, k)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-5)
  jaxpr = str(jax.make_jaxpr(ours)(x, k))
  assert ("custom_vjp_call" in jaxpr) == custom, jaxpr
