"""3D convolutions written as 2D ones, the form XLA:CPU runs fast.

XLA:CPU runs its native 3D convolution, and worse its gradients, several
times slower than its 2D convolutions (through YNNPACK with the flags of
`videopoet.kernels.xla_cpu`). `conv3d_as_2d` computes the same VALID 3D
convolution from 2D ones, choosing among several forms by shape; it is
`kernels.conv3d`'s form on CPU where oneDNN is not built, and for other
dtypes than float32. Tensors are [b, t, h, w, c] (channels last), kernels
[kt, kh, kw, c, f].
"""

import jax
import jax.numpy as jnp


def conv3d_as_2d(
    x: jax.Array, kernel: jax.Array, strides: tuple[int, int, int]
) -> jax.Array:
  """VALID 3D convolution as 2D convolutions over the frames of the batch.

  out[t] = sum_a conv2d(x[t * st + a], kernel[a]). Same numbers as one
  `conv_general_dilated` (up to summation order), but XLA:CPU runs 2D
  convolutions and their gradients (with the flags of `xla_cpu`) several
  times faster than its 3D convolution. In order:

  * 1x1x1 kernels: a [rows, c] x [c, f] matmul (its kernel gradient is then
    one plain matmul too, faster than an einsum's);
  * strides that divide the kernel (MAGVIT-v2's 4x4x4 downsampling):
    `space_to_depth` makes them unit strides;
  * few input channels (the RGB input layer) or outputs at least twice as
    wide as inputs (the decoder's convolutions before depth-to-space): the
    kernel frames are gathered as channels, one 2D convolution of kt * c
    channels per output frame;
  * unit time stride with enough frames: `conv3d_time_stacked`;
  * otherwise one 2D convolution per kernel frame.

  Args:
    x: [b, t, h, w, c], already padded.
    kernel: [kt, kh, kw, c, f].
    strides: (st, sh, sw).

  Returns:
    [b, (t - kt) // st + 1, (h - kh) // sh + 1, (w - kw) // sw + 1, f].
  """
  kt, kh, kw, c, f = kernel.shape
  if (kt, kh, kw) == (1, 1, 1):
    x = x[:, :: strides[0], :: strides[1], :: strides[2]]
    y = x.reshape(-1, c) @ kernel[0, 0, 0]  # [b * t * h * w, f]
    return y.reshape(*x.shape[:4], f)
  if strides != (1, 1, 1) and all(
      k % s == 0 for k, s in zip(kernel.shape[:3], strides)
  ):
    x, kernel = space_to_depth(x, kernel, strides)
    return conv3d_as_2d(x, kernel, (1, 1, 1))
  st, sh, sw = strides
  b, t, h, w, _ = x.shape
  t_out = (t - kt) // st + 1
  if st == 1 and (kt * c <= _FRAMES_AS_CHANNELS_MAX or f >= _WIDENING * c):
    frames = jnp.concatenate(
        [x[:, a : a + t_out] for a in range(kt)], axis=-1
    )  # [b, t_out, h, w, kt * c]
    k2 = kernel.transpose(1, 2, 0, 3, 4).reshape(kh, kw, kt * c, f)
    y = _conv2d(frames.reshape(b * t_out, h, w, kt * c), k2, (sh, sw))
    return y.reshape(b, t_out, *y.shape[1:3], f)
  if st == 1 and kt > 1 and (sh, sw) == (1, 1) and t <= 1.5 * t_out:
    return conv3d_time_stacked(x, kernel)
  y = _per_kernel_frame(x, kernel, strides)  # [b * t_out, h', w', f]
  return y.reshape(b, t_out, *y.shape[1:3], f)


# Input layers with kt * c channels up to this gather their kernel frames as
# channels (the RGB input layer: faster forward and kernel gradient).
_FRAMES_AS_CHANNELS_MAX = 16
# Layers that widen channels by at least this factor gather their kernel
# frames as channels too: the time-stacked form's kt * f outputs per input
# frame would be the widest tensor of the layer (research/tokenizer_ab.py
# --change=widening). At equal widths the stacked form stays faster.
_WIDENING = 2


def _conv2d(x, kernel, strides=(1, 1), padding="VALID"):
  """NHWC x HWIO 2D convolution."""
  return jax.lax.conv_general_dilated(
      x,
      kernel,
      strides,
      padding,
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )


def _per_kernel_frame(
    x: jax.Array, kernel: jax.Array, strides: tuple[int, int, int]
) -> jax.Array:
  """sum_a conv2d(x[t * st + a], kernel[a]): [b * t_out, h', w', f]."""
  kt, _, _, c, _ = kernel.shape
  st, sh, sw = strides
  b, t, h, w, _ = x.shape
  t_out = (t - kt) // st + 1
  y = None
  for a in range(kt):
    frames = x[:, a : a + st * (t_out - 1) + 1 : st]  # [b, t_out, h, w, c]
    ya = _conv2d(frames.reshape(b * t_out, h, w, c), kernel[a], (sh, sw))
    y = ya if y is None else y + ya
  return y


def _shift_sum(y: jax.Array, t_out: int, transpose: bool) -> jax.Array:
  """Sums the kt stacked slots of y at their frame shifts (time col2im).

  y: [b, t_in, h, w, kt, c] -> [b, t_out, h, w, c]. Forward: out[t] =
  sum_a y[t + a, a]. Transpose (t_out = t_in + kt - 1): out[t] = sum_a
  y[t - a, a], terms outside y being zero.
  """
  kt = y.shape[4]
  out = None
  for a in range(kt):
    if transpose:
      pad = ((0, 0), (a, t_out - y.shape[1] - a), (0, 0), (0, 0), (0, 0))
      ya = jnp.pad(y[:, :, :, :, a], pad)
    else:
      ya = y[:, a : a + t_out, :, :, a]
    out = ya if out is None else out + ya
  return out


@jax.custom_vjp
def conv3d_time_stacked(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Unit-stride VALID 3D convolution as one 2D convolution per direction.

  Every input frame is convolved with all kt kernel frames at once (kt * f
  output channels, [b * t, h', w', kt, f]), and output frame t sums slot a
  of frame t + a. Against one 2D convolution per kernel frame this computes
  t / t_out more (why `conv3d_as_2d` takes it only for t <= 1.5 t_out), but
  XLA:CPU runs the wider convolution faster and copies no frame slices. The
  input gradient is the same trick transposed (one full convolution of the
  output gradient with kt * c output channels, then shifted sums), and the
  kernel gradient is one 2D weight gradient against the output gradient
  shifted into kt slots where kt * f is small, else per kernel frame.

  Args:
    x: [b, t, h, w, c], already padded.
    kernel: [kt, kh, kw, c, f].

  Returns:
    [b, t - kt + 1, h - kh + 1, w - kw + 1, f].
  """
  return _stacked_fwd(x, kernel)


def _stacked_fwd(x, kernel):
  kt, kh, kw, c, f = kernel.shape
  b, t, h, w, _ = x.shape
  k2 = kernel.transpose(1, 2, 3, 0, 4).reshape(kh, kw, c, kt * f)
  y = _conv2d(x.reshape(b * t, h, w, c), k2)  # [b * t, h', w', kt * f]
  y = y.reshape(b, t, *y.shape[1:3], kt, f)
  return _shift_sum(y, t - kt + 1, transpose=False)  # [b, t_out, h', w', f]


# Kernel gradients with kt * f output channels up to this run as one 2D
# weight gradient; wider ones per kernel frame (on XLA:CPU the stacked
# form wins for narrow layers and loses for wide ones).
_STACKED_KERNEL_GRAD_MAX = 96


def _stacked_vjp_fwd(x, kernel):
  return _stacked_fwd(x, kernel), (x, kernel)


def _stacked_vjp_bwd(res, g):
  x, kernel = res
  kt, kh, kw, c, f = kernel.shape
  b, t, h, w, _ = x.shape
  _, t_out, ho, wo, _ = g.shape
  # Input gradient: full 2D convolution with the flipped kernel, kt * c
  # outputs per output-gradient frame, then out[t] = sum_a z[t - a, a].
  kf = kernel[:, ::-1, ::-1].transpose(1, 2, 4, 0, 3).reshape(kh, kw, f, kt * c)
  z = _conv2d(
      g.reshape(b * t_out, ho, wo, f),
      kf,
      padding=((kh - 1, kh - 1), (kw - 1, kw - 1)),
  )  # [b * t_out, h, w, kt * c]
  dx = _shift_sum(z.reshape(b, t_out, h, w, kt, c), t, transpose=True)
  if kt * f <= _STACKED_KERNEL_GRAD_MAX:
    # dk[a] = sum_t x[t + a] (x) g[t]: g shifted into slot a at frame t + a.
    gs = jnp.stack(
        [
            jnp.pad(g, ((0, 0), (a, t - t_out - a), (0, 0), (0, 0), (0, 0)))
            for a in range(kt)
        ],
        axis=-2,
    ).reshape(b * t, ho, wo, kt * f)
    conv = lambda k: _conv2d(x.reshape(b * t, h, w, c), k)
    (dk,) = jax.vjp(conv, jnp.zeros((kh, kw, c, kt * f), kernel.dtype))[1](gs)
    dk = dk.reshape(kh, kw, c, kt, f).transpose(3, 0, 1, 2, 4)
  else:
    per_frame = lambda k: _per_kernel_frame(x, k, (1, 1, 1))
    (dk,) = jax.vjp(per_frame, kernel)[1](g.reshape(b * t_out, ho, wo, f))
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


conv3d_time_stacked.defvjp(_stacked_vjp_fwd, _stacked_vjp_bwd)


def space_to_depth(
    x: jax.Array, kernel: jax.Array, strides: tuple[int, int, int]
) -> tuple[jax.Array, jax.Array]:
  """A strided VALID convolution as an unstrided one.

  With kernel sizes multiples of the strides (MAGVIT-v2's 4x4x4 kernels with
  strides (1 or 2, 2, 2)), blocks of st x sh x sw voxels become channels and
  the kernel shrinks to (kt / st, kh / sh, kw / sw): same outputs, but no
  strided or input-dilated convolution in either direction (XLA:CPU's
  input-dilated gradients are several times the whole layer's forward),
  and the time-strided
  layers become unit-stride ones that `conv3d_time_stacked` takes.

  Args:
    x: [b, t, h, w, c], already padded.
    kernel: [kt, kh, kw, c, f].
    strides: (st, sh, sw), dividing (kt, kh, kw).

  Returns:
    x: [b, t', h', w', st * sh * sw * c] with t' = (t - kt) // st + kt //
      st and so on (frames and rows no window reaches are cropped), kernel:
      [kt / st, kh / sh, kw / sw, st * sh * sw * c, f], channels ordered
      (dt, dh, dw, c) on both.
  """
  kt, kh, kw, c, f = kernel.shape
  st, sh, sw = strides
  b, t, h, w, _ = x.shape
  # Outputs + kernel blocks - 1, per axis.
  t2, h2, w2 = (
      (n - k) // s + k // s for n, k, s in zip((t, h, w), (kt, kh, kw), strides)
  )
  x = x[:, : t2 * st, : h2 * sh, : w2 * sw]
  x = x.reshape(b, t2, st, h2, sh, w2, sw, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
  x = x.reshape(b, t2, h2, w2, st * sh * sw * c)
  kernel = kernel.reshape(kt // st, st, kh // sh, sh, kw // sw, sw, c, f)
  kernel = kernel.transpose(0, 2, 4, 1, 3, 5, 6, 7)
  return x, kernel.reshape(kt // st, kh // sh, kw // sw, st * sh * sw * c, f)
