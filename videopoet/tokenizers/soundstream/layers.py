"""Causal 1-D convolution layers of the SoundStream encoder and decoder.

All convolutions are causal: output frame i depends on inputs up to the last
sample of frame i only. A strided conv pads `kernel - stride` zeros on the
past side, so `n` samples give exactly `n // stride` outputs; a transposed
conv keeps the first `t * stride` of its `(t + 1) * stride` outputs (the
rest would be the next frame's). Activations are `[b, t, c]`.
"""

import flax.linen as nn
import jax

from videopoet import kernels

ACTIVATION_AXES = (
    "activation_batch",
    "activation_length",
    "activation_channels",
)


def _kernel_init():
  return nn.with_logical_partitioning(
      nn.initializers.lecun_normal(), ("conv_window", "conv_in", "conv_out")
  )


def elu(x: jax.Array) -> jax.Array:
  """ELU (alpha 1), through `kernels.elu`."""
  return kernels.elu(x)


def constrain(x: jax.Array) -> jax.Array:
  """Names the axes of a `[b, t, c]` activation at a block boundary."""
  return nn.with_logical_constraint(x, ACTIVATION_AXES)


def conv_params(module: nn.Module, shape: tuple[int, int, int]):
  """`module`'s kernel [window, in, out] and bias [out], created as flax's
  `nn.Conv` creates them (same names, initializers and tree)."""
  kernel = module.param("kernel", _kernel_init(), shape)
  bias = module.param("bias", nn.initializers.zeros, shape[-1:])
  return kernel, bias


class _Kernel(nn.Module):
  """The parameters of a 1-D conv under this module's name (`conv`), so the
  tree matches the `nn.Conv` / `nn.ConvTranspose` submodule it replaced."""

  shape: tuple[int, int, int]

  @nn.compact
  def __call__(self):
    return conv_params(self, self.shape)


class CausalConv(nn.Module):
  """Conv1D padded on the past side; `n` samples -> `n // stride` outputs
  (`kernels.causal_conv1d`), plus a bias."""

  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, n, c]
    c = x.shape[-1]
    kernel, bias = _Kernel((self.kernel_size, c, self.features), name="conv")()
    return kernels.causal_conv1d(
        x, kernel, bias, stride=self.stride, dilation=self.dilation
    )  # [b, n // stride, features]


class CausalConvTranspose(nn.Module):
  """Transposed conv, kernel 2 * stride; t frames -> t * stride samples.

  Output frame i is the first half of input frame i's 2 * stride samples
  plus the second half of input i - 1's (the overlap-add of
  `lax.conv_transpose`); the second half of the last input frame belongs
  to frame t and is dropped (`kernels.conv_transpose1d`).
  """

  features: int
  stride: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, c]
    c = x.shape[-1]
    kernel, bias = _Kernel((2 * self.stride, c, self.features), name="conv")()
    return kernels.conv_transpose1d(
        x, kernel, bias, stride=self.stride
    )  # [b, t * stride, features]


class ResidualUnit(nn.Module):
  """x + Conv1x1(ELU(CausalConv_k,dilation(ELU(x)))) (SoundStream Fig. 3)."""

  features: int
  dilation: int
  kernel_size: int = 7

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, c]
    y = CausalConv(
        self.features, self.kernel_size, dilation=self.dilation, name="dilated"
    )(elu(x))
    y = CausalConv(self.features, 1, name="pointwise")(elu(y))
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
    )(elu(x))
    return constrain(x)  # [b, t // stride, features]


class DecoderBlock(nn.Module):
  """A transposed (upsampling) conv, then residual units."""

  features: int
  stride: int
  dilations: tuple[int, ...] = (1, 3, 9)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, 2 * features]
    x = CausalConvTranspose(self.features, self.stride, name="up")(elu(x))
    for i, d in enumerate(self.dilations):
      x = ResidualUnit(self.features, d, name=f"res{i}")(x)
    return constrain(x)  # [b, t * stride, features]
