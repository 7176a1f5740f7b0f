"""SoundStream's discriminators: 3 waveform scales and one STFT scale.

Each discriminator returns `(logits, features)`: logits `[b, t]` (one per
time step, hinge loss) and the list of its hidden activations (feature
matching). Waveform scale k sees the audio average-pooled by 2^k (MelGAN's
multi-resolution discriminator: a plain conv, grouped strided convs with
groups of 4 channels, two plain convs); the STFT discriminator sees the real
and imaginary parts of a W=1024, H=256 STFT (a 7x7 conv, 6 residual blocks
striding (1, 2) and (2, 2) in turn, then a conv over all remaining
frequencies).
"""

import dataclasses
import functools
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet import kernels
from videopoet.tokenizers.soundstream import layers
from videopoet.tokenizers.soundstream import losses


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
  """Discriminator fields (`config.discriminator`).

  Attributes:
    wave_scales: waveform discriminators (paper: 3: x1, x2, x4 pooled).
    wave_channels: first conv's channels; x4 per strided conv (MelGAN: 16).
    wave_max_channels: channel cap (MelGAN: 1024).
    wave_downsamples: grouped strided convs (MelGAN: 4, stride 4 each).
    stft_channels: first conv of the STFT discriminator (paper: 32); the
      blocks use it times (1, 2, 4, 4, 8, 8).
    stft_window: STFT window W (paper: 1024).
    stft_hop: STFT hop H (paper: 256).
    kernels: form of the convolutions (`videopoet.kernels`): "auto" (the
      fast one for the backend) or "lax" (plain `lax` convolutions, the
      reference the fast forms are compared with).
  """

  wave_scales: int = 3
  wave_channels: int = 16
  wave_max_channels: int = 1024
  wave_downsamples: int = 4
  stft_channels: int = 32
  stft_window: int = 1024
  stft_hop: int = 256
  kernels: Literal["auto", "lax"] = "auto"


def _kernel_init(window_dims: int):
  """lecun_normal with logical axes; a name may appear once, so a 2-D window
  names one of its axes."""
  return nn.with_logical_partitioning(
      nn.initializers.lecun_normal(),
      (None,) * (window_dims - 1) + ("conv_window", "conv_in", "conv_out"),
  )


def _conv(features, kernel_size, name):
  """'SAME' 1-D `nn.Conv` (the waveform discriminators' plain layers)."""
  return nn.Conv(
      features,
      (kernel_size,),
      padding="SAME",
      name=name,
      kernel_init=_kernel_init(1),
  )


class Conv2D(nn.Module):
  """`nn.Conv(features, kernel_size, strides, padding='SAME')` on [b, h, w,
  c] through `kernels.conv2d` (same parameter tree and numbers)."""

  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  impl: kernels.Impl = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, h, w, c]
    kernel = self.param(
        "kernel",
        _kernel_init(2),
        (*self.kernel_size, x.shape[-1], self.features),
    )
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    y = kernels.conv2d(x, kernel, self.strides, impl=self.impl)
    # y: [b, h / sh, w / sw, f]
    return y + bias


class GroupedStridedConv(nn.Module):
  """`nn.Conv(features, (k,), stride, padding='SAME', feature_group_count=
  groups)` on [b, n, c] through `kernels.grouped_conv1d` (same parameter
  tree and numbers).

  Attributes:
    features: output channels.
    kernel_size: k.
    stride: s.
    groups: channel groups.
    impl: `kernels` form ("auto" or "lax", the plain convolution).
  """

  features: int
  kernel_size: int
  stride: int
  groups: int
  impl: kernels.Impl = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, n, c]
    cg = x.shape[-1] // self.groups
    kernel, bias = layers.conv_params(
        self, (self.kernel_size, cg, self.features)
    )
    y = kernels.grouped_conv1d(
        x, kernel, self.stride, self.groups, impl=self.impl
    )  # [b, ceil(n / s), out]
    return y + bias


class WaveDiscriminator(nn.Module):
  """One MelGAN scale on audio [b, n] -> logits [b, n / 4^downsamples]."""

  channels: int
  max_channels: int
  downsamples: int
  impl: kernels.Impl = "auto"

  @nn.compact
  def __call__(self, audio: jax.Array):
    x = audio[..., None]  # [b, n, 1]
    features = []
    x = nn.leaky_relu(_conv(self.channels, 15, name="stem")(x), 0.2)
    features.append(x)
    c = self.channels
    for i in range(self.downsamples):
      out = min(c * 4, self.max_channels)
      groups = c // 4 if c >= 4 else 1
      x = GroupedStridedConv(out, 41, 4, groups, self.impl, name=f"down{i}")(x)
      x = nn.leaky_relu(x, 0.2)
      features.append(x)
      c = out
    x = nn.leaky_relu(_conv(c, 5, name="post")(x), 0.2)
    features.append(x)
    logits = _conv(1, 3, name="logits")(x)[..., 0]  # [b, t]
    return logits, features


class STFTDiscriminator(nn.Module):
  """Complex-STFT discriminator on audio [b, n] -> logits [b, frames / 8]."""

  channels: int
  window: int
  hop: int
  impl: kernels.Impl = "auto"

  @nn.compact
  def __call__(self, audio: jax.Array):
    spec = losses.stft(audio, self.window, self.hop)  # [b, t, f] complex
    x = jnp.stack([spec.real, spec.imag], -1)  # [b, t, f, 2]
    conv = functools.partial(Conv2D, impl=self.impl)
    x = conv(self.channels, (7, 7), name="stem")(x)
    features = [x]
    strides = ((1, 2), (2, 2)) * 3
    for i, (mult, s) in enumerate(zip((1, 2, 4, 4, 8, 8), strides)):
      out = self.channels * mult
      y = conv(out, (3, 3), name=f"block{i}_conv")(nn.leaky_relu(x, 0.2))
      y = conv(out, (s[0] + 2, s[1] + 2), s, name=f"block{i}_down")(
          nn.leaky_relu(y, 0.2)
      )
      x = y + conv(out, (1, 1), s, name=f"block{i}_skip")(x)
      features.append(x)
    # One logit per time step: a conv spanning all remaining frequencies.
    logits = nn.Conv(1, (1, x.shape[2]), padding="VALID", name="logits")(
        nn.leaky_relu(x, 0.2)
    )  # [b, t / 8, 1, 1]
    return logits[..., 0, 0], features


class Discriminators(nn.Module):
  """All discriminators; returns a list of (logits, features), STFT first."""

  config: DiscriminatorConfig

  @nn.compact
  def __call__(self, audio: jax.Array):  # [b, n]
    c = self.config
    outputs = [
        STFTDiscriminator(
            c.stft_channels, c.stft_window, c.stft_hop, c.kernels, name="stft"
        )(audio)
    ]
    x = audio
    for k in range(c.wave_scales):
      if k:  # Average-pool by 2 (kernel 4, as MelGAN).
        x = nn.avg_pool(x[..., None], (4,), (2,), padding="SAME")[..., 0]
      outputs.append(
          WaveDiscriminator(
              c.wave_channels,
              c.wave_max_channels,
              c.wave_downsamples,
              c.kernels,
              name=f"wave{k}",
          )(x)
      )
    return outputs
