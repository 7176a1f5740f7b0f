"""Causal 3D CNN building blocks of MAGVIT-v2 (praxis `enc_dec_3dcnn.py`).

Every layer keeps the model causal in time: convolutions pad the past only
(replicating the first frame, `edge` padding, as praxis does), and group norms
take their statistics per frame. So output frame t depends on input frames
<= t, and a single image (T = 1) goes through the same weights as a video.
Tensors are [b, t, h, w, c] (channels last).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet import kernels

Dtype = Any
_KERNEL_INIT = nn.initializers.lecun_normal()


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
  return kernels.edge_pad(x, pads)


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
    y = kernels.conv3d(x, kernel.astype(self.dtype), self.strides)
    if self.use_bias:
      bias = self.param(
          "bias",
          nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",)),
          (self.features,),
      )
      y = kernels.shift(y, bias.astype(self.dtype))
    return y


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
    return kernels.scale_and_shift(y, scale, bias).astype(self.dtype)


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
