"""Per-channel affine ops whose parameter gradients are matmuls.

A bias's or a norm scale's gradient is a sum over every axis but channels.
Written as a reduce, XLA:CPU fuses the whole expression producing the
activation gradient into it and evaluates it on one thread, column by
column (a large share of MAGVIT-v2's train step). These custom VJPs take
those sums as a product with rows of ones instead: the forms of
`kernels.shift` and `kernels.scale_and_shift` on CPU. Same values as
autodiff (tests), on any backend.
"""

import jax
import jax.numpy as jnp


def channel_sums(*xs: jax.Array) -> list[jax.Array]:
  """Sums of each [..., c] array over all axes but the last, as matmuls.

  The activation gradient is then computed once, in parallel, and the sum
  runs in YNNPACK (two rows of ones: one would be an Eigen matrix-vector
  product). Accumulates in float32.
  """
  out = []
  for x in xs:
    rows = x.reshape(-1, x.shape[-1])  # [n, c]
    ones = jnp.ones((2, rows.shape[0]), rows.dtype)
    out.append(
        jnp.dot(
            ones,
            rows,
            precision=jax.lax.Precision.HIGHEST,
            preferred_element_type=jnp.float32,
        )[0]
    )
  return out


@jax.custom_vjp
def scale_and_shift(x: jax.Array, scale: jax.Array, bias: jax.Array):
  """x * scale + bias over the last axis; parameter gradients as matmuls."""
  return x * scale + bias


def _scale_and_shift_fwd(x, scale, bias):
  return x * scale + bias, (x, scale, bias)


def _scale_and_shift_bwd(res, g):
  x, scale, bias = res
  d_scale, d_bias = channel_sums(g * x, g)
  return (
      (g * scale).astype(x.dtype),
      d_scale.astype(scale.dtype),
      d_bias.astype(bias.dtype),
  )


scale_and_shift.defvjp(_scale_and_shift_fwd, _scale_and_shift_bwd)


@jax.custom_vjp
def shift(x: jax.Array, bias: jax.Array) -> jax.Array:
  """x + bias over the last axis; the bias gradient as a matmul."""
  return x + bias


def _shift_fwd(x, bias):
  return x + bias, bias


def _shift_bwd(bias, g):
  (d_bias,) = channel_sums(g)
  return g, d_bias.astype(bias.dtype)


shift.defvjp(_shift_fwd, _shift_bwd)
