"""The SoundStream codec: causal encoder -> residual VQ -> causal decoder.

Frame rule: `n` samples give `n // hop` frames (hop = prod(strides) = 320 at
16 kHz, 50 frames/s), because each causal strided conv floors; the last
`n % hop` samples (< one frame, 80 samples = 5 ms for 2.125 s) are not
encoded. 34,000 samples (2.125 s) -> 106 frames. The decoder gives
`frames * hop` samples; `Codec.decode(codes, num_samples=n)` pads the tail to
`n` (see codec.py), so decode(encode(x)) has x's length.
"""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet import kernels
from videopoet.tokenizers.soundstream import layers
from videopoet.tokenizers.soundstream import rvq as rvq_lib


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Codec architecture (`config.model`).

  Attributes:
    channels: C; the encoder goes C -> mults[-1] * C (paper: 32).
    channel_multipliers: channels of the blocks in units of C (paper: 2, 4,
      8, 16).
    strides: downsampling of the blocks (paper: 2, 4, 5, 8 -> hop 320).
    dilations: of the residual units in each block (paper: 1, 3, 9).
    embed_dim: D, the quantized latent's width.
    sample_rate: Hz (VideoPoet: 16,000 -> 50 frames/s).
    rvq: the residual quantizer.
  """

  channels: int = 32
  channel_multipliers: tuple[int, ...] = (2, 4, 8, 16)
  strides: tuple[int, ...] = (2, 4, 5, 8)
  dilations: tuple[int, ...] = (1, 3, 9)
  embed_dim: int = 256
  sample_rate: int = 16000
  rvq: rvq_lib.RVQConfig = rvq_lib.RVQConfig()

  def __post_init__(self):
    if len(self.channel_multipliers) != len(self.strides):
      raise ValueError(
          f"channel_multipliers {self.channel_multipliers} and strides "
          f"{self.strides} must have the same length"
      )

  @property
  def hop(self) -> int:
    """Samples per latent frame."""
    return math.prod(self.strides)

  def num_frames(self, num_samples: int) -> int:
    """Frames of a clip of `num_samples` samples (floor; see module doc)."""
    return num_samples // self.hop


class Encoder(nn.Module):
  """Waveform [b, n] -> latent [b, n // hop, embed_dim]."""

  config: ModelConfig

  @nn.compact
  def __call__(self, audio: jax.Array) -> jax.Array:
    c = self.config
    x = layers.CausalConv(c.channels, 7, name="stem")(audio[..., None])
    for i, (mult, s) in enumerate(zip(c.channel_multipliers, c.strides)):
      x = layers.EncoderBlock(
          c.channels * mult, s, c.dilations, name=f"block{i}"
      )(x)
    x = layers.CausalConv(c.embed_dim, 3, name="proj")(layers.elu(x))
    return layers.constrain(x)  # [b, frames, d]


class Decoder(nn.Module):
  """Latent [b, t, embed_dim] -> waveform [b, t * hop]."""

  config: ModelConfig

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    c = self.config
    x = layers.CausalConv(
        c.channels * c.channel_multipliers[-1], 7, name="stem"
    )(z)
    mults = (1,) + tuple(c.channel_multipliers[:-1])
    for i, (mult, s) in enumerate(zip(mults[::-1], c.strides[::-1])):
      x = layers.DecoderBlock(
          c.channels * mult, s, c.dilations, name=f"block{i}"
      )(x)
    x = layers.CausalConv(1, 7, name="out")(layers.elu(x))
    return x[..., 0]  # [b, t * hop]


class SoundStream(nn.Module):
  """The codec; `__call__` is the training forward pass."""

  config: ModelConfig

  def setup(self):
    self.encoder = Encoder(self.config)
    self.quantizer = rvq_lib.ResidualVQ(self.config.rvq, self.config.embed_dim)
    self.decoder = Decoder(self.config)

  def _check(self, audio):
    if audio.ndim != 2:
      raise ValueError(f"audio must be [batch, samples], got {audio.shape}")
    if audio.shape[1] < self.config.hop:
      raise ValueError(
          f"audio of {audio.shape[1]} samples is shorter than"
          f" one frame ({self.config.hop} samples)"
      )

  def __call__(
      self,
      audio: jax.Array,
      *,
      train: bool = False,
      level_mask: jax.Array | None = None,
  ):
    """Encodes, quantizes and decodes audio [b, n].

    Returns:
      (reconstruction [b, frames * hop], codes [b, L, frames], aux of the
      quantizer).
    """
    self._check(audio)
    z = self.encoder(audio)  # [b, frames, d]
    z_q, codes, aux = self.quantizer(z, train=train, level_mask=level_mask)
    return self.decoder(z_q), codes, aux

  def encode(self, audio: jax.Array, n_levels: int | None = None):
    """Codes [b, n_levels, n // hop] of audio [b, n]."""
    self._check(audio)
    return self.quantizer.encode(self.encoder(audio), n_levels)

  def decode(self, codes: jax.Array) -> jax.Array:
    """Audio [b, frames * hop] from codes [b, levels, frames]."""
    return self.decoder(self.quantizer.decode(codes))


# How `kernels.init_key` draws the codec's parameter-init key (kept so
# initial values, and the runs made from them, stay as they were).
INIT_KEY_DERIVATION = "int32_seed"


def init_variables(model: SoundStream, rng: jax.Array):
  """`{'params', 'quantizer'}` of `model` (they do not depend on length)."""
  audio = jnp.zeros((1, model.config.hop), jnp.float32)
  key = lambda r: kernels.init_key(r, INIT_KEY_DERIVATION)
  return jax.jit(lambda r: model.init({"params": key(r)}, audio))(rng)
