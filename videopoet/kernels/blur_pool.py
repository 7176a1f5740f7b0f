"""The [1, 2, 1]^3 / 64 blur pool (stride 2, 'SAME') of the StyleGAN
discriminator, as separable slices and as one depthwise convolution.

The depthwise 3D convolution (`depthwise`, the "lax" form) is what XLA:CPU
runs, and differentiates, far slower than `separable` (the "xla_cpu" form):
one [1, 2, 1] / 4 pass per axis, each as three strided slices of the
zero-padded input. Same numbers. Tensors are [b, t, h, w, c]; odd sizes
round up, as 'SAME' does.
"""

import jax
import jax.numpy as jnp
import numpy as np


def separable(x: jax.Array) -> jax.Array:
  """Blur pool as three strided slices per axis: [b, t, h, w, c] -> halves."""
  for axis in (1, 2, 3):
    n = x.shape[axis]
    out = -(-n // 2)
    pad = max(2 * (out - 1) + 3 - n, 0)  # 'SAME': low side gets the floor.
    widths = [(0, 0)] * x.ndim
    widths[axis] = (pad // 2, pad - pad // 2)
    xp = jnp.pad(x, widths)
    tap = lambda j, xp=xp, axis=axis, out=out: jax.lax.slice_in_dim(
        xp, j, j + 2 * (out - 1) + 1, stride=2, axis=axis
    )
    x = (tap(0) + 2 * tap(1) + tap(2)) * 0.25
  return x


def depthwise(x: jax.Array) -> jax.Array:
  """Blur pool as one depthwise 3D convolution: [b, t, h, w, c] -> halves."""
  f = np.array([1.0, 2.0, 1.0])
  f = np.einsum("i,j,k->ijk", f, f, f)
  f = (f / f.sum()).astype(np.float32)[..., None, None]
  c = x.shape[-1]
  return jax.lax.conv_general_dilated(
      x,
      jnp.tile(jnp.asarray(f, x.dtype), (1, 1, 1, 1, c)),
      (2, 2, 2),
      "SAME",
      feature_group_count=c,
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
  )
