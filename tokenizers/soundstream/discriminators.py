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

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet_tokenizers.soundstream import layers
from videopoet_tokenizers.soundstream import losses


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
  """

  wave_scales: int = 3
  wave_channels: int = 16
  wave_max_channels: int = 1024
  wave_downsamples: int = 4
  stft_channels: int = 32
  stft_window: int = 1024
  stft_hop: int = 256


def _conv(features, kernel, strides=1, groups=1, name=None):
  return nn.Conv(
      features,
      kernel,
      strides=strides,
      padding="SAME",
      feature_group_count=groups,
      name=name,
      kernel_init=nn.with_logical_partitioning(
          nn.initializers.lecun_normal(),
          # A name may appear once: 2-D windows name one axis.
          (None,) * (len(kernel) - 1) + ("conv_window", "conv_in", "conv_out"),
      ),
  )


class GroupedStridedConv(nn.Module):
  """`nn.Conv(features, (k,), stride, padding='SAME', feature_group_count=
  groups)` on [b, n, c] as one batched matmul over the groups.

  XLA:CPU differentiates grouped convolutions very slowly (the 1024-channel
  MelGAN layer: 2.5 s for 32 ms of forward). Here the kernel is padded with
  zero taps to a multiple of the stride, the input cut into frames of
  `stride` samples, and output i reads frames i .. i + k'/stride - 1: a
  [groups] batch of [b * t, k' * c / groups] @ [k' * c / groups, out /
  groups] matmuls. Same parameters and numbers as the `nn.Conv`.
  """

  features: int
  kernel_size: int
  stride: int
  groups: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, n, c]
    b, n, c = x.shape
    k, s, g = self.kernel_size, self.stride, self.groups
    cg, og = c // g, self.features // g
    kernel, bias = layers.conv_params(self, (k, cg, self.features))
    t = -(-n // s)  # SAME: ceil(n / s) outputs.
    lo = max((t - 1) * s + k - n, 0) // 2
    taps = -(-k // s) * s  # k' >= k, a multiple of s.
    frames = t + taps // s - 1
    x = jnp.pad(x, ((0, 0), (lo, frames * s - n - lo), (0, 0)))
    x = x.reshape(b, frames, s * c)  # [b, frames, s * c]
    cols = jnp.stack([x[:, m : m + t] for m in range(taps // s)], 2)
    cols = cols.reshape(b * t, taps, g, cg).transpose(2, 0, 1, 3)
    cols = cols.reshape(g, b * t, taps * cg)  # [g, b * t, k' * c / g]
    w = jnp.pad(kernel, ((0, taps - k), (0, 0), (0, 0)))  # [k', c / g, out]
    w = w.reshape(taps, cg, g, og).transpose(2, 0, 1, 3)
    y = jnp.einsum("gnk,gko->ngo", cols, w.reshape(g, taps * cg, og))
    return y.reshape(b, t, self.features) + bias  # [b, ceil(n / s), out]


class WaveDiscriminator(nn.Module):
  """One MelGAN scale on audio [b, n] -> logits [b, n / 4^downsamples]."""

  channels: int
  max_channels: int
  downsamples: int

  @nn.compact
  def __call__(self, audio: jax.Array):
    x = audio[..., None]  # [b, n, 1]
    features = []
    x = nn.leaky_relu(_conv(self.channels, (15,), name="stem")(x), 0.2)
    features.append(x)
    c = self.channels
    for i in range(self.downsamples):
      out = min(c * 4, self.max_channels)
      groups = c // 4 if c >= 4 else 1
      x = GroupedStridedConv(out, 41, 4, groups, name=f"down{i}")(x)
      x = nn.leaky_relu(x, 0.2)
      features.append(x)
      c = out
    x = nn.leaky_relu(_conv(c, (5,), name="post")(x), 0.2)
    features.append(x)
    logits = _conv(1, (3,), name="logits")(x)[..., 0]  # [b, t]
    return logits, features


class STFTDiscriminator(nn.Module):
  """Complex-STFT discriminator on audio [b, n] -> logits [b, frames / 8]."""

  channels: int
  window: int
  hop: int

  @nn.compact
  def __call__(self, audio: jax.Array):
    spec = losses.stft(audio, self.window, self.hop)  # [b, t, f] complex
    x = jnp.stack([spec.real, spec.imag], -1)  # [b, t, f, 2]
    x = _conv(self.channels, (7, 7), name="stem")(x)
    features = [x]
    strides = ((1, 2), (2, 2)) * 3
    for i, (mult, s) in enumerate(zip((1, 2, 4, 4, 8, 8), strides)):
      out = self.channels * mult
      y = _conv(out, (3, 3), name=f"block{i}_conv")(nn.leaky_relu(x, 0.2))
      y = _conv(out, (s[0] + 2, s[1] + 2), s, name=f"block{i}_down")(
          nn.leaky_relu(y, 0.2)
      )
      x = y + _conv(out, (1, 1), s, name=f"block{i}_skip")(x)
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
            c.stft_channels, c.stft_window, c.stft_hop, name="stft"
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
              name=f"wave{k}",
          )(x)
      )
    return outputs
