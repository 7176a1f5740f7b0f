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

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet.tokenizers.common import conv2d
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
  """

  wave_scales: int = 3
  wave_channels: int = 16
  wave_max_channels: int = 1024
  wave_downsamples: int = 4
  stft_channels: int = 32
  stft_window: int = 1024
  stft_hop: int = 256


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
  c] through `conv2d.conv2d` (same parameter tree and numbers; on CPU the
  strided and the 2-channel convolutions get faster input gradients)."""

  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, h, w, c]
    kernel = self.param(
        "kernel",
        _kernel_init(2),
        (*self.kernel_size, x.shape[-1], self.features),
    )
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    y = conv2d.conv2d(x, kernel, self.strides)  # [b, h / sh, w / sw, f]
    return y + bias


class GroupedStridedConv(nn.Module):
  """`nn.Conv(features, (k,), stride, padding='SAME', feature_group_count=
  groups)` on [b, n, c], in forms XLA:CPU runs fast.

  XLA:CPU's strided grouped convolution is slow in every direction (the
  1024-channel MelGAN layer: 2.5 s of gradients for 32 ms of forward). Here
  the kernel is padded with zero taps to a multiple k' of the stride and the
  input cut into frames of `stride` samples, output i reading frames i .. i
  + k' / stride - 1: an unstrided grouped convolution of the frames
  (`_grouped_frames_conv`), whose forward and input gradient XLA:CPU runs
  fast, with a kernel gradient of its own. Same parameters and numbers as
  the `nn.Conv` (tests compare both).
  """

  features: int
  kernel_size: int
  stride: int
  groups: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, n, c]
    b, n, c = x.shape
    k, s, g = self.kernel_size, self.stride, self.groups
    cg = c // g
    kernel, bias = layers.conv_params(self, (k, cg, self.features))
    t = -(-n // s)  # SAME: ceil(n / s) outputs.
    lo = max((t - 1) * s + k - n, 0) // 2
    taps = -(-k // s) * s  # k' >= k, a multiple of s.
    frames = t + taps // s - 1
    x = jnp.pad(x, ((0, 0), (lo, frames * s - n - lo), (0, 0)))
    w = jnp.pad(kernel, ((0, taps - k), (0, 0), (0, 0)))  # [k', c / g, out]
    x = x.reshape(b, frames, s, g, cg).transpose(0, 1, 3, 2, 4)
    x = x.reshape(b, frames, g * s * cg)  # channels (group, sample, c)
    w = w.reshape(taps // s, s * cg, self.features)  # [k' / s, s c / g, out]
    return _grouped_frames_conv(x, w, g) + bias  # [b, ceil(n / s), out]


# Up to this many groups the kernel gradient of `_grouped_frames_conv` is
# the dense convolution's, which computes groups x the products it needs
# (MelGAN's layers with 4 and 16 groups, whole layer forward + backward on 8
# x 1 s: 91 -> 40 ms and 112 -> 74 ms); with more groups that waste
# outgrows batched matmuls over the groups.
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


def conv2d_reference(features, kernel_size, strides=(1, 1), name=None):
  """`Conv2D` as flax's `nn.Conv` (the reference form; same parameters)."""
  return nn.Conv(features, kernel_size, strides, padding="SAME", name=name)


def grouped_strided_conv_reference(
    features, kernel_size, stride, groups, name=None
):
  """`GroupedStridedConv` as flax's `nn.Conv` (the reference form)."""
  return nn.Conv(
      features,
      (kernel_size,),
      stride,
      padding="SAME",
      feature_group_count=groups,
      name=name,
  )


class WaveDiscriminator(nn.Module):
  """One MelGAN scale on audio [b, n] -> logits [b, n / 4^downsamples]."""

  channels: int
  max_channels: int
  downsamples: int

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
      x = GroupedStridedConv(out, 41, 4, groups, name=f"down{i}")(x)
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

  @nn.compact
  def __call__(self, audio: jax.Array):
    spec = losses.stft(audio, self.window, self.hop)  # [b, t, f] complex
    x = jnp.stack([spec.real, spec.imag], -1)  # [b, t, f, 2]
    x = Conv2D(self.channels, (7, 7), name="stem")(x)
    features = [x]
    strides = ((1, 2), (2, 2)) * 3
    for i, (mult, s) in enumerate(zip((1, 2, 4, 4, 8, 8), strides)):
      out = self.channels * mult
      y = Conv2D(out, (3, 3), name=f"block{i}_conv")(nn.leaky_relu(x, 0.2))
      y = Conv2D(out, (s[0] + 2, s[1] + 2), s, name=f"block{i}_down")(
          nn.leaky_relu(y, 0.2)
      )
      x = y + Conv2D(out, (1, 1), s, name=f"block{i}_skip")(x)
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
