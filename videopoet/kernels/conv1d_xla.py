"""1-D convolutions in forms XLA:CPU runs fast.

XLA:CPU's strided grouped convolution (MelGAN's waveform discriminator
layers) is slow in every direction, its gradients most. `grouped_strided_conv`
pads the kernel with zero taps to a multiple k' of the stride and cuts the
input into frames of `stride` samples, output i reading frames i .. i + k' /
stride - 1: an unstrided grouped convolution of the frames
(`_grouped_frames_conv`), whose forward and input gradient XLA:CPU runs
fast, with a kernel gradient of its own. `kernels.grouped_conv1d`'s form on
CPU; the numbers are `lax.conv_general_dilated(..., 'SAME',
feature_group_count=groups)`'s up to summation order.

The SoundStream codec's causal convolutions (`kernels.causal_conv1d`) and
transposed convolutions (`kernels.conv_transpose1d`) are matmuls here
(`causal_conv_matmul`, `conv_transpose_matmul`): pointwise and strided
convolutions over frames of `stride` samples, and one matmul plus an
overlap-add for the transposed one. Their `lax` forms (`causal_conv_lax`,
`conv_transpose_lax`) are what GPUs and TPUs run and the tests' reference.
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


def _windows(x: jax.Array, taps: int, t: int) -> jax.Array:
  """[b, t + taps - 1, c] -> [b, t, taps * c]: each output's taps side by
  side (tap-major, as a [taps, c, f] kernel reshapes)."""
  return jnp.concatenate([x[:, j : j + t] for j in range(taps)], -1)


def causal_conv_matmul(
    x: jax.Array, kernel: jax.Array, stride: int, dilation: int
) -> jax.Array:
  """Causal conv of x [b, n, c] with kernel [k, c, f]: [b, n // stride, f].

  Pointwise and strided convolutions are one matmul: a strided one reads
  frames of `stride` samples, output i the k' / stride frames from i on
  ([b, t, k' c] @ [k' c, f]), the kernel padded on the past side with zero
  taps to a multiple k' of the stride. XLA:CPU runs these matmuls and
  their gradients faster than its strided convolution. Dilated stride-1
  convolutions stay XLA convolutions (a gathered-taps matmul is 2-4x slower
  for them on CPU), as do strided dilated ones (not in the models).
  """
  b, n, c = x.shape
  k, _, features = kernel.shape
  s, d = stride, dilation
  t = n // s
  if (k > 1 and s == 1) or (s > 1 and d != 1):
    return causal_conv_lax(x, kernel, stride, dilation)
  taps = -(-k // s) * s  # k' >= k, a multiple of s.
  kernel = jnp.pad(kernel, ((taps - k, 0), (0, 0), (0, 0)))
  if s == 1:  # Pointwise.
    cols = x  # [b, n, c]
  else:
    # Frames of `s` samples; output i reads frames i .. i + k'/s - 1.
    x = jnp.pad(x[:, : t * s], ((0, 0), (taps - s, 0), (0, 0)))
    frames = x.reshape(b, t + taps // s - 1, s * c)
    cols = _windows(frames, taps // s, t)  # [b, t, k' * c]
  y = cols.reshape(b * t, taps * c) @ kernel.reshape(taps * c, features)
  return y.reshape(b, t, features)  # [b, n // s, f]


def causal_conv_lax(
    x: jax.Array, kernel: jax.Array, stride: int, dilation: int
) -> jax.Array:
  """The same convolution as one `lax.conv_general_dilated`."""
  k = kernel.shape[0]
  x = jnp.pad(x, ((0, 0), ((k - 1) * dilation + 1 - stride, 0), (0, 0)))
  return jax.lax.conv_general_dilated(
      x, kernel, (stride,), "VALID", rhs_dilation=(dilation,),
      dimension_numbers=("NWC", "WIO", "NWC"),
  )  # fmt: skip


def conv_transpose_matmul(x: jax.Array, kernel: jax.Array, stride: int):
  """Transposed conv of x [b, t, c] with kernel [2s, c, f]: [b, t, s f]
  (input frame i's s output samples side by side; reshape to [b, t s, f]).

  One matmul gives each input frame's 2s output samples; output frame i is
  the first half of input i's plus the second half of input i - 1's (the
  overlap-add of `lax.conv_transpose`). XLA:CPU runs this matmul and its
  gradients faster than its transposed convolution.
  """
  b, t, c = x.shape
  s, f = stride, kernel.shape[-1]
  # [c, 2s * f]: `lax.conv_transpose` (transpose_kernel=False) correlates
  # the stride-dilated input with the kernel, so tap j writes output sample
  # 2s - 1 - j of the input frame's 2s.
  w = kernel[::-1].transpose(1, 0, 2).reshape(c, 2 * s * f)
  y = (x.reshape(b * t, c) @ w).reshape(b, t, 2, s * f)
  first, second = y[:, :, 0], y[:, :, 1]  # [b, t, s * f] each
  second = jnp.pad(second[:, :-1], ((0, 0), (1, 0), (0, 0)))
  return first + second  # [b, t, s * f]


def conv_transpose_lax(x: jax.Array, kernel: jax.Array, stride: int):
  """The same transposed convolution as one `lax.conv_transpose`: the
  stride-dilated input padded 2s - 1 before and s - 1 after, so the last
  frame's second half (frame t's) is never computed."""
  s = stride
  return jax.lax.conv_transpose(
      x, kernel, (s,), ((2 * s - 1, s - 1),),
      dimension_numbers=("NWC", "WIO", "NWC"),
  )  # fmt: skip
