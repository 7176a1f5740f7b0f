"""'SAME' 2D convolutions with input gradients that XLA:CPU runs fast.

Forward, XLA:CPU's 2D convolution is as fast as oneDNN's; its input
gradient is not, in two cases that SoundStream's STFT discriminator has:

* strided convolutions (the (3, 4) / (4, 4) kernels with strides (1, 2) /
  (2, 2)): the input gradient is an input-dilated convolution, several
  times the forward's time. Through `conv3d_xla.space_to_depth` it is an
  unstrided one, while the kernel gradient stays the native one (there,
  the space-to-depth form is slower);
* few input channels (the 7x7 stem on the 2 channels of a complex STFT):
  the input gradient is a convolution with 2 output channels. Here it runs
  the kernel's rows as a convolution and its columns as stacked output
  channels, then sums the columns at their shifts.

`conv2d_same` picks the form (`kernels.conv2d`'s on CPU). Tensors are [b,
h, w, c] (channels last), kernels [kh, kw, c, f]; the numbers are
`lax.conv_general_dilated(..., 'SAME')`'s up to summation order.
"""

import functools

import jax
import jax.numpy as jnp

from videopoet.kernels import conv3d_xla

# Stride-1 convolutions with kw * c input channels up to this take the
# stacked-columns input gradient.
_STACKED_COLUMNS_MAX = 16

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x, kernel, strides=(1, 1), padding="VALID"):
  return jax.lax.conv_general_dilated(
      x, kernel, strides, padding, dimension_numbers=_DIMENSIONS
  )


def same_padding(
    size: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int]
) -> tuple[tuple[int, int], ...]:
  """`lax`'s 'SAME' padding: ceil(n / s) outputs, the odd pixel after."""
  pads = []
  for n, k, s in zip(size, kernel, strides):
    total = max((-(-n // s) - 1) * s + k - n, 0)
    pads.append((total // 2, total - total // 2))
  return tuple(pads)


def conv2d_same(
    x: jax.Array, kernel: jax.Array, strides: tuple[int, int] = (1, 1)
) -> jax.Array:
  """'SAME' 2D convolution of x [b, h, w, c] with kernel [kh, kw, c, f].

  Returns [b, ceil(h / sh), ceil(w / sw), f].
  """
  kh, kw, c, _ = kernel.shape
  strides = tuple(strides)
  pads = same_padding(x.shape[1:3], (kh, kw), strides)
  x = jnp.pad(x, ((0, 0), *pads, (0, 0)))  # [b, h + ph, w + pw, c]
  if strides != (1, 1) and kh % strides[0] == 0 and kw % strides[1] == 0:
    return _strided(x, kernel, strides)
  if strides == (1, 1) and kw > 1 and kw * c <= _STACKED_COLUMNS_MAX:
    return _few_channels(x, kernel)
  return _conv(x, kernel, strides)


# ------------------------------------------------ Strided: s2d input grad.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _strided(x, kernel, strides):
  """VALID strided convolution; input gradient through space-to-depth."""
  return _conv(x, kernel, strides)


def _strided_fwd(x, kernel, strides):
  return _conv(x, kernel, strides), (x, kernel)


def _space_to_depth_conv(x, kernel, strides):
  x2, k2 = conv3d_xla.space_to_depth(x[:, None], kernel[None], (1, *strides))
  return _conv(x2[:, 0], k2[0])


def _strided_bwd(strides, res, g):
  x, kernel = res
  (dx,) = jax.vjp(lambda x: _space_to_depth_conv(x, kernel, strides), x)[1](g)
  (dk,) = jax.vjp(lambda k: _conv(x, k, strides), kernel)[1](g)
  return dx, dk


_strided.defvjp(_strided_fwd, _strided_bwd)


# ----------------------------------- Few input channels: stacked columns.
@jax.custom_vjp
def _few_channels(x, kernel):
  """VALID stride-1 convolution; input gradient with stacked columns."""
  return _conv(x, kernel)


def _few_channels_fwd(x, kernel):
  return _conv(x, kernel), (x, kernel)


def _few_channels_bwd(res, g):
  x, kernel = res
  kh, kw, c, f = kernel.shape
  b, h, w, _ = x.shape
  # z[i, j, col] = sum_row g[i - row, j] kernel[row, col]: the kernel's
  # rows as a full convolution in h, its kw columns as kw * c outputs.
  rows = kernel[::-1].transpose(0, 3, 1, 2).reshape(kh, 1, f, kw * c)
  z = _conv(g, rows, padding=((kh - 1, kh - 1), (0, 0)))
  z = z.reshape(b, h, g.shape[2], kw, c)  # [b, h, w - kw + 1, kw, c]
  # dx[:, :, j] = sum_col z[:, :, j - col, col].
  dx = None
  for col in range(kw):
    term = jnp.pad(
        z[:, :, :, col], ((0, 0), (0, 0), (col, kw - 1 - col), (0, 0))
    )
    dx = term if dx is None else dx + term
  (dk,) = jax.vjp(lambda k: _conv(x, k), kernel)[1](g)
  return dx, dk


_few_channels.defvjp(_few_channels_fwd, _few_channels_bwd)
