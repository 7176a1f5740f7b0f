"""Causal 1-D convolution layers of the SoundStream encoder and decoder.

All convolutions are causal: output frame i depends on inputs up to the last
sample of frame i only. A strided conv pads `kernel - stride` zeros on the
past side, so `n` samples give exactly `n // stride` outputs; a transposed
conv keeps the first `t * stride` of its `(t + 1) * stride` outputs (the
rest would be the next frame's). Activations are `[b, t, c]`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATION_AXES = (
    "activation_batch",
    "activation_length",
    "activation_channels",
)


def _kernel_init():
  return nn.with_logical_partitioning(
      nn.initializers.lecun_normal(), ("conv_window", "conv_in", "conv_out")
  )


def constrain(x: jax.Array) -> jax.Array:
  """Names the axes of a `[b, t, c]` activation at a block boundary."""
  return nn.with_logical_constraint(x, ACTIVATION_AXES)


class CausalConv(nn.Module):
  """Conv1D padded on the past side; `n` samples -> `n // stride` outputs."""

  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, c]
    effective = (self.kernel_size - 1) * self.dilation + 1
    pad = effective - self.stride
    if pad < 0:
      raise ValueError(
          f"kernel {self.kernel_size} shorter than stride " f"{self.stride}"
      )
    x = jnp.pad(x, ((0, 0), (pad, 0), (0, 0)))
    return nn.Conv(
        self.features,
        (self.kernel_size,),
        strides=(self.stride,),
        kernel_dilation=(self.dilation,),
        padding="VALID",
        kernel_init=_kernel_init(),
        name="conv",
    )(
        x
    )  # [b, t // stride, features]


class CausalConvTranspose(nn.Module):
  """Transposed conv, kernel 2 * stride; t frames -> t * stride samples."""

  features: int
  stride: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, c]
    t = x.shape[1]
    y = nn.ConvTranspose(
        self.features,
        (2 * self.stride,),
        strides=(self.stride,),
        padding="VALID",
        kernel_init=_kernel_init(),
        name="conv",
    )(x)
    return y[:, : t * self.stride]  # [b, t * stride, features]


class ResidualUnit(nn.Module):
  """x + Conv1x1(ELU(CausalConv_k,dilation(ELU(x)))) (SoundStream Fig. 3)."""

  features: int
  dilation: int
  kernel_size: int = 7

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, c]
    y = CausalConv(
        self.features, self.kernel_size, dilation=self.dilation, name="dilated"
    )(nn.elu(x))
    y = CausalConv(self.features, 1, name="pointwise")(nn.elu(y))
    return x + y


class EncoderBlock(nn.Module):
  """Residual units at `features // 2` channels, then a strided conv."""

  features: int
  stride: int
  dilations: tuple[int, ...] = (1, 3, 9)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, features // 2]
    for i, d in enumerate(self.dilations):
      x = ResidualUnit(self.features // 2, d, name=f"res{i}")(x)
    x = CausalConv(
        self.features, 2 * self.stride, stride=self.stride, name="down"
    )(nn.elu(x))
    return constrain(x)  # [b, t // stride, features]


class DecoderBlock(nn.Module):
  """A transposed (upsampling) conv, then residual units."""

  features: int
  stride: int
  dilations: tuple[int, ...] = (1, 3, 9)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, 2 * features]
    x = CausalConvTranspose(self.features, self.stride, name="up")(nn.elu(x))
    for i, d in enumerate(self.dilations):
      x = ResidualUnit(self.features, d, name=f"res{i}")(x)
    return constrain(x)  # [b, t * stride, features]
