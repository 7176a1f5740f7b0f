"""Causal 3D CNN building blocks of MAGVIT-v2 (praxis `enc_dec_3dcnn.py`).

Every layer keeps the model causal in time: convolutions pad the past only
(replicating the first frame, `edge` padding, as praxis does), and group norms
take their statistics per frame. So output frame t depends on input frames
<= t, and a single image (T = 1) goes through the same weights as a video.
Tensors are [b, t, h, w, c] (channels last).
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet_tokenizers.common import affine

Dtype = Any
_KERNEL_INIT = nn.initializers.lecun_normal()


def init_key(rng: jax.Array) -> jax.Array:
  """An 'rbg' key drawn from `rng`, for initializing parameters.

  XLA:CPU takes tens of seconds to compile threefry draws for a model's
  hundred parameter tensors; the RngBitGenerator behind 'rbg' compiles in
  seconds. Initialization stays deterministic in `rng`.
  """
  return jax.random.wrap_key_data(
      jax.random.bits(rng, (4,), jnp.uint32), impl="rbg"
  )


def swish(x: jax.Array) -> jax.Array:
  return x * jax.nn.sigmoid(x)


def constrain(x: jax.Array) -> jax.Array:
  """Logical axes of a [b, t, h, w, c] activation at a block boundary."""
  return nn.with_logical_constraint(
      x,
      (
          "activation_batch",
          "activation_time",
          "activation_height",
          "activation_width",
          "activation_channels",
      ),
  )


def causal_pad(x: jax.Array, kernel: Sequence[int]) -> jax.Array:
  """Edge-pads time by (k - 1, 0) and space by ((k - 1) // 2, k // 2)."""
  kt, kh, kw = kernel
  pads = (
      (0, 0),
      (kt - 1, 0),
      ((kh - 1) // 2, kh // 2),
      ((kw - 1) // 2, kw // 2),
      (0, 0),
  )
  return edge_pad(x, pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def edge_pad(x: jax.Array, pads: tuple[tuple[int, int], ...]) -> jax.Array:
  """`jnp.pad(x, pads, mode='edge')` with a gradient that folds the edges.

  Autodiff of jnp's edge pad adds, per padded side, a zero tensor of the
  full padded size holding the edge slice's gradient (XLA materializes each:
  a dozen 17 MB zero-fills per tokenizer_speed step). The gradient of an
  edge pad is the cropped gradient with each padded border summed onto the
  edge it copies: one pass per padded axis.
  """
  return jnp.pad(x, pads, mode="edge")


def _edge_pad_fwd(x, pads):
  return jnp.pad(x, pads, mode="edge"), None


def _edge_pad_bwd(pads, _, g):
  for axis, (lo, hi) in enumerate(pads):
    if lo == hi == 0:
      continue
    m = g.shape[axis]
    n = m - lo - hi
    take = lambda a, b, g=g, axis=axis: jax.lax.slice_in_dim(g, a, b, axis=axis)
    if n == 1:
      g = jnp.sum(g, axis=axis, keepdims=True)
      continue
    g = jnp.concatenate(
        [
            jnp.sum(take(0, lo + 1), axis=axis, keepdims=True),
            take(lo + 1, lo + n - 1),
            jnp.sum(take(lo + n - 1, m), axis=axis, keepdims=True),
        ],
        axis=axis,
    )
  return (g,)


edge_pad.defvjp(_edge_pad_fwd, _edge_pad_bwd)


class CausalConv(nn.Module):
  """3D convolution that sees the past only.

  Attributes:
    features: output channels.
    kernel: (kt, kh, kw).
    strides: (st, sh, sw).
    use_bias: add a bias.
    dtype: compute dtype (parameters stay float32).
  """

  features: int
  kernel: tuple[int, int, int] = (3, 3, 3)
  strides: tuple[int, int, int] = (1, 1, 1)
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, h, w, c]
    kernel = self.param(
        "kernel",
        nn.with_logical_partitioning(
            _KERNEL_INIT,
            (
                "conv_window",
                None,
                None,
                "conv_in",
                "conv_out",
            ),
        ),
        (*self.kernel, x.shape[-1], self.features),
    )
    x = causal_pad(x.astype(self.dtype), self.kernel)
    y = conv3d(x, kernel.astype(self.dtype), self.strides)
    if self.use_bias:
      bias = self.param(
          "bias",
          nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",)),
          (self.features,),
      )
      y = affine.shift(y, bias.astype(self.dtype))
    return y


def conv3d(
    x: jax.Array, kernel: jax.Array, strides: tuple[int, int, int]
) -> jax.Array:
  """VALID 3D convolution in the form that is fast on the current backend.

  XLA:CPU: `conv3d_as_2d`. GPU and TPU: one `conv_general_dilated` (cuDNN
  or the TPU's convolution unit); the CPU form there costs memory, e.g. 40
  GiB of temporaries for a 128-filter train step on 4 x 17 x 128 x 128 clips
  on an H100, where the 3D convolution needs a fraction of it.
  """
  if jax.default_backend() == "cpu":
    return conv3d_as_2d(x, kernel, strides)
  return jax.lax.conv_general_dilated(
      x,
      kernel,
      strides,
      "VALID",
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
  )


def conv3d_as_2d(
    x: jax.Array, kernel: jax.Array, strides: tuple[int, int, int]
) -> jax.Array:
  """VALID 3D convolution as 2D convolutions over the frames of the batch.

  out[t] = sum_a conv2d(x[t * st + a], kernel[a]). Same numbers as one
  `conv_general_dilated` (up to summation order), but XLA:CPU runs 2D
  convolutions and their gradients (with `videopoet.xla_cpu` flags) several
  times faster than its 3D convolution. In order:

  * 1x1x1 kernels: a [rows, c] x [c, f] matmul (its kernel gradient is then
    one plain matmul too, 3x faster than an einsum's on 64x64 frames);
  * strides that divide the kernel (MAGVIT-v2's 4x4x4 downsampling):
    `space_to_depth` makes them unit strides;
  * few input channels (the RGB input layer): the kernel frames are gathered
    as channels, one 2D convolution of kt * c channels per output frame;
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
  if st == 1 and kt * c <= _FRAMES_AS_CHANNELS_MAX:
    frames = jnp.concatenate(
        [x[:, a : a + t_out] for a in range(kt)], axis=-1
    )  # [b, t_out, h, w, kt * c]
    k2 = kernel.transpose(1, 2, 0, 3, 4).reshape(kh, kw, kt * c, f)
    y = _conv2d(frames.reshape(b * t_out, h, w, kt * c), k2, (sh, sw))
    return y.reshape(b, t_out, *y.shape[1:3], f)
  if st == 1 and kt > 1 and (sh, sw) == (1, 1) and t <= 1.5 * t_out:
    return conv3d_time_stacked(x, kernel)
  y = None
  for a in range(kt):
    frames = x[:, a : a + st * (t_out - 1) + 1 : st]  # [b, t_out, h, w, c]
    ya = _conv2d(frames.reshape(b * t_out, h, w, c), kernel[a], (sh, sw))
    y = ya if y is None else y + ya  # [b * t_out, h', w', f]
  return y.reshape(b, t_out, *y.shape[1:3], f)


# Input layers with kt * c channels up to this gather their kernel frames as
# channels (RGB, 3x3x3: 8.8 -> 5.1 ms forward, 11.8 -> 6.6 ms kernel
# gradient on 34 frames of 64x64).
_FRAMES_AS_CHANNELS_MAX = 16


def _conv2d(x, kernel, strides=(1, 1), padding="VALID"):
  """NHWC x HWIO 2D convolution."""
  return jax.lax.conv_general_dilated(
      x,
      kernel,
      strides,
      padding,
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )


def _shift_sum(y: jax.Array, t_out: int, lo: int) -> jax.Array:
  """Sums the kt stacked slots of y at their frame shifts (time col2im).

  y: [b, t_in, h, w, kt, c] -> [b, t_out, h, w, c]. lo = 0 (forward):
  out[t] = sum_a y[t + a, a]. lo = 1 (transpose, t_out = t_in + kt - 1):
  out[t] = sum_a y[t - a, a], terms outside y being zero.
  """
  kt = y.shape[4]
  out = None
  for a in range(kt):
    if lo == 0:
      ya = y[:, a : a + t_out, :, :, a]
    else:
      pad = ((0, 0), (a, t_out - y.shape[1] - a), (0, 0), (0, 0), (0, 0))
      ya = jnp.pad(y[:, :, :, :, a], pad)
    out = ya if out is None else out + ya
  return out


@jax.custom_vjp
def conv3d_time_stacked(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Unit-stride VALID 3D convolution as one 2D convolution per direction.

  Every input frame is convolved with all kt kernel frames at once (kt * f
  output channels, [b * t, h', w', kt, f]), and output frame t sums slot a
  of frame t + a. Against one 2D convolution per kernel frame this computes
  t / t_out more (why `conv3d_as_2d` takes it only for t <= 1.5 t_out), but
  XLA:CPU runs the wider convolution 1.3-2.3x faster and copies no frame
  slices: MAGVIT-v2's first 3x3x3 layer (34 frames of 64x64x16) 23 -> 10 ms
  forward. The input gradient is the same trick transposed (one full
  convolution of the output gradient with kt * c output channels, then
  shifted sums: 24 -> 11 ms), and the kernel gradient is one 2D weight
  gradient against the output gradient shifted into kt slots (40 -> 31 ms)
  where kt * f is small, else per kernel frame.

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
  return _shift_sum(y, t - kt + 1, lo=0)  # [b, t_out, h', w', f]


# Kernel gradients with kt * f output channels up to this run as one 2D
# weight gradient; wider ones per kernel frame (MAGVIT-v2 shapes on XLA:CPU:
# 16 -> 16 and 32 -> 32 channels 1.3-1.5x faster stacked, 128 -> 128 1.6x
# slower).
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
  dx = _shift_sum(z.reshape(b, t_out, h, w, kt, c), t, lo=1)
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

    def per_frame(k):
      y = None
      for a in range(kt):
        frames = x[:, a : a + t_out].reshape(b * t_out, h, w, c)
        ya = _conv2d(frames, k[a])
        y = ya if y is None else y + ya
      return y

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
  input-dilated gradient took ~27 ms per kernel frame of the first
  downsampling, about 3x the whole layer's forward), and the time-strided
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


def group_norm_per_frame(
    x: jax.Array, num_groups: int, eps: float = 1e-6
) -> jax.Array:
  """GroupNorm with statistics over (h, w, channels of a group) per frame."""
  b, t, h, w, c = x.shape
  if c % num_groups:
    raise ValueError(f"{c} channels do not split into {num_groups} groups")
  xf = x.astype(jnp.float32).reshape(b, t, h, w, num_groups, c // num_groups)
  # One pass for both moments (XLA fuses the two reductions), as flax's
  # GroupNorm(use_fast_variance=True); activations are O(1), so f32
  # E[x^2] - E[x]^2 loses nothing that matters here.
  mean = jnp.mean(xf, axis=(2, 3, 5), keepdims=True)
  mean_sq = jnp.mean(jnp.square(xf), axis=(2, 3, 5), keepdims=True)
  var = jnp.maximum(mean_sq - jnp.square(mean), 0.0)
  xf = (xf - mean) * jax.lax.rsqrt(var + eps)
  return xf.reshape(b, t, h, w, c)  # float32


class GroupNormSpatial(nn.Module):
  """Per-frame GroupNorm with a learned scale and bias (causal).

  Attributes:
    num_groups: channel groups (divides the channels).
    dtype: output dtype.
  """

  num_groups: int = 32
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    scale = self.param(
        "scale",
        nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
        (c,),
    )
    bias = self.param(
        "bias",
        nn.with_logical_partitioning(nn.initializers.zeros, ("norm",)),
        (c,),
    )
    y = group_norm_per_frame(x, min(self.num_groups, c))  # float32
    return affine.scale_and_shift(y, scale, bias).astype(self.dtype)


class ResBlock(nn.Module):
  """GN -> swish -> conv3 -> GN -> swish -> conv3, plus a 1x1x1 shortcut.

  Attributes:
    features: output channels.
    num_groups: GroupNorm groups.
    dtype: compute dtype.
  """

  features: int
  num_groups: int = 32
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, h, w, c]
    conv = lambda k, name: CausalConv(  # pylint: disable=g-long-lambda
        self.features, (k, k, k), use_bias=False, dtype=self.dtype, name=name
    )
    residual = x
    y = swish(GroupNormSpatial(self.num_groups, self.dtype, name="norm_0")(x))
    y = conv(3, "conv_0")(y)
    y = swish(GroupNormSpatial(self.num_groups, self.dtype, name="norm_1")(y))
    y = conv(3, "conv_1")(y)
    if x.shape[-1] != self.features:
      residual = conv(1, "conv_shortcut")(x)
    return constrain(y + residual)  # [b, t, h, w, features]


class CondNorm(nn.Module):
  """Adaptive GroupNorm: per-frame GN modulated by the quantized latent.

  `x * (1 + gamma(cond)) + beta(cond)`, with gamma and beta linear in the
  latent `cond` resized to x's (t, h, w) by nearest-neighbour upsampling; so
  the modulation varies per location and stays causal. gamma and beta are
  computed on the latent grid and then upsampled (a per-location linear map
  commutes with repeating locations: same numbers, 4-100x fewer rows than
  projecting the upsampled latent).

  Attributes:
    num_groups: GroupNorm groups.
    dtype: compute dtype.
  """

  num_groups: int = 32
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(
      self, x: jax.Array, cond: jax.Array, time_strides: Sequence[int] = ()
  ) -> jax.Array:
    """Modulates x by the latent.

    Args:
      x: [b, t, h, w, c].
      cond: [b, t', h', w', d], the quantized latent.
      time_strides: the decoder's upsamplings between cond's grid and x's,
        in order (`upsample_latent`).

    Returns:
      [b, t, h, w, c] in `dtype`.
    """
    c = x.shape[-1]
    dense = lambda name: nn.Dense(  # pylint: disable=g-long-lambda
        c,
        dtype=self.dtype,
        name=name,
        kernel_init=nn.with_logical_partitioning(
            _KERNEL_INIT, ("conv_in", "conv_out")
        ),
        bias_init=nn.with_logical_partitioning(
            nn.initializers.zeros, ("conv_out",)
        ),
    )
    y = group_norm_per_frame(x, min(self.num_groups, c)).astype(self.dtype)
    cond = cond.astype(self.dtype)
    gamma = upsample_latent(dense("gamma")(cond), time_strides)
    beta = upsample_latent(dense("beta")(cond), time_strides)
    return y * (1.0 + gamma) + beta


def depth_to_space(x: jax.Array, t_stride: int) -> jax.Array:
  """[b, t, h, w, ts*2*2*c] -> [b, t*ts, 2h, 2w, c], channels as [ts,2,2,c]."""
  b, t, h, w, c = x.shape
  c //= t_stride * 4
  x = x.reshape(b, t, h, w, t_stride, 2, 2, c)
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return x.reshape(b, t * t_stride, 2 * h, 2 * w, c)


def upsample_nearest(cond: jax.Array, t_stride: int) -> jax.Array:
  """Repeats [b, t, h, w, c] by (t_stride, 2, 2): nearest-neighbour resize."""
  cond = jnp.repeat(cond, t_stride, axis=1)
  return jnp.repeat(jnp.repeat(cond, 2, axis=2), 2, axis=3)


def upsample_latent(v: jax.Array, time_strides: Sequence[int]) -> jax.Array:
  """Follows the decoder's upsamplings: per stride ts, (ts, 2, 2) nearest
  repeats, then frame 0's first ts - 1 copies dropped (as depth-to-space)."""
  for ts in time_strides:
    v = upsample_nearest(v, ts)[:, ts - 1 :]
  return v
