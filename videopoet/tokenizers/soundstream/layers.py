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


def _windows(x: jax.Array, taps: int, t: int):
  """[b, t + taps - 1, c] -> [b, t, taps * c]: each output's taps side by
  side (tap-major, as the kernel reshapes)."""
  return jnp.concatenate([x[:, j : j + t] for j in range(taps)], -1)


class CausalConv(nn.Module):
  """Conv1D padded on the past side; `n` samples -> `n // stride` outputs.

  Pointwise and strided convolutions are matmuls: a strided one reads
  frames of `stride` samples, output i the k / stride frames from i on
  ([b, t, k * c] @ [k * c, out]). Dilated stride-1 ones stay XLA
  convolutions (on CPU a gathered-taps matmul is 2-4x slower for them).
  Same numbers as `lax.conv` (tests compare outputs and gradients).
  """

  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, c]
    b, n, c = x.shape
    k, s, d = self.kernel_size, self.stride, self.dilation
    effective = (k - 1) * d + 1
    pad = effective - s
    if pad < 0:
      raise ValueError(f"kernel {k} shorter than stride {s}")
    kernel, bias = _Kernel((k, c, self.features), name="conv")()
    t = n // s
    if s == 1 and k > 1:  # XLA's own conv: fastest here, both directions.
      x = jnp.pad(x, ((0, 0), (pad, 0), (0, 0)))
      y = jax.lax.conv_general_dilated(
          x, kernel, (1,), "VALID", rhs_dilation=(d,),
          dimension_numbers=("NWC", "WIO", "NWC"),
      )  # fmt: skip
      return kernels.shift(y, bias)  # [b, n, out]
    if s == 1:  # Pointwise.
      cols = x
    else:
      if d != 1 or k % s:
        raise ValueError(
            f"strided conv needs dilation 1 and a kernel ({k}) that is a"
            f" multiple of the stride ({s})"
        )
      # Frames of `s` samples; output i reads frames i .. i + k/s - 1.
      x = jnp.pad(x[:, : t * s], ((0, 0), (pad, 0), (0, 0)))
      frames = x.reshape(b, t + pad // s, s * c)  # [b, t + k/s - 1, s * c]
      cols = _windows(frames, k // s, t)  # [b, t, k * c]
    y = cols.reshape(b * t, -1) @ kernel.reshape(k * c, self.features)
    y = kernels.shift(y, bias)
    return y.reshape(b, t, self.features)  # [b, n // stride, out]


class CausalConvTranspose(nn.Module):
  """Transposed conv, kernel 2 * stride; t frames -> t * stride samples.

  One matmul gives each input frame's 2 * stride output samples; output
  frame i is the first half of input i's plus the second half of input
  i - 1's (the overlap-add of `lax.conv_transpose`, same numbers). The
  second half of the last input frame belongs to frame t and is dropped.
  """

  features: int
  stride: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, c]
    b, t, c = x.shape
    s, f = self.stride, self.features
    kernel, bias = _Kernel((2 * s, c, f), name="conv")()
    # [c, 2s * f]: `lax.conv_transpose` (flax's, transpose_kernel=False)
    # correlates the stride-dilated input with the kernel, so tap j writes
    # output sample 2s - 1 - j of the input frame's 2s.
    w = kernel[::-1].transpose(1, 0, 2).reshape(c, 2 * s * f)
    y = (x.reshape(b * t, c) @ w).reshape(b, t, 2, s * f)
    first, second = y[:, :, 0], y[:, :, 1]  # [b, t, s * f] each
    second = jnp.pad(second[:, :-1], ((0, 0), (1, 0), (0, 0)))
    y = kernels.shift(first + second, jnp.tile(bias, s))  # [b, t, s * f]
    return y.reshape(b, t * s, f)


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
