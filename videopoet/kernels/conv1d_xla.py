"""Strided grouped 1-D convolutions in forms XLA:CPU runs fast.

XLA:CPU's strided grouped convolution (MelGAN's waveform discriminator
layers) is slow in every direction, its gradients most. `grouped_strided_conv`
pads the kernel with zero taps to a multiple k' of the stride and cuts the
input into frames of `stride` samples, output i reading frames i .. i + k' /
stride - 1: an unstrided grouped convolution of the frames
(`_grouped_frames_conv`), whose forward and input gradient XLA:CPU runs
fast, with a kernel gradient of its own. `kernels.grouped_conv1d`'s form on
CPU; the numbers are `lax.conv_general_dilated(..., 'SAME',
feature_group_count=groups)`'s up to summation order.
"""

import functools

import jax
import jax.numpy as jnp


def grouped_strided_conv(
    x: jax.Array, kernel: jax.Array, stride: int, groups: int
) -> jax.Array:
  """'SAME' grouped conv of x [b, n, c] with kernel [k, c / groups, f],
  stride s: [b, ceil(n / s), f]."""
  b, n, c = x.shape
  k, _, features = kernel.shape
  s, g = stride, groups
  cg = c // g
  t = -(-n // s)  # SAME: ceil(n / s) outputs.
  lo = max((t - 1) * s + k - n, 0) // 2
  taps = -(-k // s) * s  # k' >= k, a multiple of s.
  frames = t + taps // s - 1
  x = jnp.pad(x, ((0, 0), (lo, frames * s - n - lo), (0, 0)))
  w = jnp.pad(kernel, ((0, taps - k), (0, 0), (0, 0)))  # [k', c / g, f]
  x = x.reshape(b, frames, s, g, cg).transpose(0, 1, 3, 2, 4)
  x = x.reshape(b, frames, g * s * cg)  # channels (group, sample, c)
  w = w.reshape(taps // s, s * cg, features)  # [k' / s, s c / g, f]
  return _grouped_frames_conv(x, w, g)  # [b, ceil(n / s), f]


# Up to this many groups the kernel gradient of `_grouped_frames_conv` is
# the dense convolution's, which computes groups x the products it needs
# (faster for MelGAN's layers with 4 and 16 groups); with more groups that
# waste outgrows batched matmuls over the groups.
_DENSE_KERNEL_GRAD_MAX_GROUPS = 16


def _frames_conv(x, w, groups):
  return jax.lax.conv_general_dilated(
      x,
      w,
      (1,),
      "VALID",
      dimension_numbers=("NWC", "WIO", "NWC"),
      feature_group_count=groups,
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _grouped_frames_conv(x, w, groups):
  """VALID grouped conv of x [b, n, c] with w [k, c / groups, out].

  XLA:CPU's kernel gradient of a grouped convolution (a `batch_group_count`
  convolution) is 4-60x its forward. Here it is the dense convolution's
  kernel gradient (every group against every group) with each group's own
  block taken out, or, past `_DENSE_KERNEL_GRAD_MAX_GROUPS`, a [groups]
  batch of matmuls over the gathered taps.
  """
  return _frames_conv(x, w, groups)


def _grouped_frames_fwd(x, w, groups):
  return _frames_conv(x, w, groups), (x, w)


def _grouped_frames_bwd(groups, res, dy):
  x, w = res
  k, cg, out = w.shape
  og = out // groups
  (dx,) = jax.vjp(lambda x: _frames_conv(x, w, groups), x)[1](dy)
  if groups <= _DENSE_KERNEL_GRAD_MAX_GROUPS:
    dense = jnp.zeros((k, groups * cg, out), w.dtype)
    (dw,) = jax.vjp(lambda d: _frames_conv(x, d, 1), dense)[1](dy)
    dw = dw.reshape(k, groups, cg, groups, og)
    i = jnp.arange(groups)
    dw = dw[:, i, :, i]  # [groups, k, cg, og]: group i's inputs and outputs.
  else:
    b, t, _ = dy.shape
    cols = jnp.stack([x[:, m : m + t] for m in range(k)], 2)
    cols = cols.reshape(b * t, k, groups, cg).transpose(2, 0, 1, 3)
    cols = cols.reshape(groups, b * t, k * cg)  # [groups, b * t, k * cg]
    dy = dy.reshape(b * t, groups, og).transpose(1, 0, 2)
    dw = jnp.einsum("gnk,gno->gko", cols, dy).reshape(groups, k, cg, og)
  return dx, dw.transpose(1, 2, 0, 3).reshape(k, cg, out)


_grouped_frames_conv.defvjp(_grouped_frames_fwd, _grouped_frames_bwd)
