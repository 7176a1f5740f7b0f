"""MAGVIT-v2 encoder, decoder and the tokenizer that joins them with LFQ.

The layer list follows google/praxis `praxis/layers/video/vqvae.py` (the
port of the official videogvt MAGVIT-v2): a causal 3D CNN encoder whose
strided 4x4x4 convolutions halve space at every level but the last and time
only at the last levels, and a decoder that mirrors it with adaptive
GroupNorm conditioned on the quantized latent and depth-to-space upsampling
that drops the duplicated first frame. With 17 frames at 128x128 and the
`base` config: 17x128x128x3 -> 5x16x16 codes of 18 bits; an image (1 frame)
-> 1x16x16, equal to the first latent frame of any video starting with it.
"""

import dataclasses
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet.tokenizers.magvit2 import layers
from videopoet.tokenizers.magvit2 import quantizers


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """`config.model`: encoder/decoder shape.

  Attributes:
    filters: channels of the first level.
    channel_multipliers: channels of level i = filters * multipliers[i];
      space halves between levels (len - 1 times).
    num_res_blocks: residual blocks per level (and in the middle).
    temporal_downsample: per downsampling (len(multipliers) - 1), whether
      it also halves time.
    num_groups: GroupNorm groups (capped at the channel count).
    dtype: compute dtype of activations; parameters are float32.
  """

  filters: int = 128
  channel_multipliers: tuple[int, ...] = (1, 2, 2, 4)
  num_res_blocks: int = 4
  temporal_downsample: tuple[bool, ...] = (False, True, True)
  num_groups: int = 32
  dtype: Literal["float32", "bfloat16"] = "float32"

  def __post_init__(self):
    if len(self.temporal_downsample) != len(self.channel_multipliers) - 1:
      raise ValueError(
          f"temporal_downsample={self.temporal_downsample} needs one entry per"
          f" downsampling ({len(self.channel_multipliers) - 1})"
      )
    if self.num_res_blocks < 1:
      raise ValueError("num_res_blocks must be >= 1")

  @property
  def time_factor(self) -> int:
    return 2 ** sum(self.temporal_downsample)

  @property
  def space_factor(self) -> int:
    return 2 ** (len(self.channel_multipliers) - 1)

  def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
    """(t', h', w') of the codes of a [t, h, w] clip; checks divisibility."""
    if (t - 1) % self.time_factor:
      raise ValueError(
          f"a causal tokenizer needs 1 + k * {self.time_factor} frames, got"
          f" {t}"
      )
    if h % self.space_factor or w % self.space_factor:
      raise ValueError(
          f"height and width must divide by {self.space_factor},"
          f" got {h}x{w}"
      )
    return (
        (t - 1) // self.time_factor + 1,
        h // self.space_factor,
        w // self.space_factor,
    )


class Encoder(nn.Module):
  """Video [b, t, h, w, 3] -> latents [b, t', h', w', embedding_dim]."""

  config: ModelConfig
  embedding_dim: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    x = layers.CausalConv(
        cfg.filters, use_bias=False, dtype=dtype, name="conv_first"
    )(
        x
    )  # [b, t, h, w, filters]
    levels = len(cfg.channel_multipliers)
    for i, mult in enumerate(cfg.channel_multipliers):
      for j in range(cfg.num_res_blocks):
        x = layers.ResBlock(
            cfg.filters * mult, cfg.num_groups, dtype, name=f"res_{i}_{j}"
        )(x)
      if i < levels - 1:
        ts = 2 if cfg.temporal_downsample[i] else 1
        x = layers.CausalConv(
            cfg.filters * mult,
            (4, 4, 4),
            (ts, 2, 2),
            dtype=dtype,
            name=f"down_{i}",
        )(x)
    for j in range(cfg.num_res_blocks):
      x = layers.ResBlock(
          x.shape[-1], cfg.num_groups, dtype, name=f"res_mid_{j}"
      )(x)
    x = layers.swish(
        layers.GroupNormSpatial(cfg.num_groups, dtype, name="norm")(x)
    )
    x = layers.CausalConv(
        self.embedding_dim, (1, 1, 1), dtype=jnp.float32, name="conv_last"
    )(x)
    return x  # [b, t', h', w', embedding_dim] float32


class Decoder(nn.Module):
  """Codes [b, t', h', w', embedding_dim] -> video [b, t, h, w, 3]."""

  config: ModelConfig
  out_channels: int = 3

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    cfg = self.config
    dtype = jnp.dtype(cfg.dtype)
    time_strides = []  # Upsamplings so far, from z's grid to x's.
    channels = cfg.filters * cfg.channel_multipliers[-1]
    x = layers.CausalConv(channels, dtype=dtype, name="conv_first")(z)
    for j in range(cfg.num_res_blocks):
      x = layers.ResBlock(channels, cfg.num_groups, dtype, name=f"res_mid_{j}")(
          x
      )
    for i in reversed(range(len(cfg.channel_multipliers))):
      x = layers.CondNorm(cfg.num_groups, dtype, name=f"cond_norm_{i}")(
          x, z, time_strides
      )
      channels = cfg.filters * cfg.channel_multipliers[i]
      for j in range(cfg.num_res_blocks):
        x = layers.ResBlock(
            channels, cfg.num_groups, dtype, name=f"res_{i}_{j}"
        )(x)
      if i > 0:
        ts = 2 if cfg.temporal_downsample[i - 1] else 1
        x = layers.CausalConv(channels * 4 * ts, dtype=dtype, name=f"up_{i}")(x)
        # Depth-to-space doubles every frame; frame 0 has no past, so its
        # first ts - 1 copies go: 1 + k frames -> 1 + k * ts.
        x = layers.depth_to_space(x, ts)[:, ts - 1 :]  # [b, t*, 2h, 2w, c]
        time_strides.append(ts)
        x = layers.constrain(x)
    x = layers.swish(
        layers.GroupNormSpatial(cfg.num_groups, dtype, name="norm")(x)
    )
    x = layers.CausalConv(
        self.out_channels, dtype=jnp.float32, name="conv_last"
    )(x)
    return x  # [b, t, h, w, 3] float32


class Tokenizer(nn.Module):
  """MAGVIT-v2: encoder -> quantizer -> decoder, on videos or images.

  Videos are [b, t, h, w, 3] floats in [-1, 1] with t = 1 + k * time_factor;
  images are [b, h, w, 3] (one frame; results then have no time axis).

  Attributes:
    model: encoder/decoder config.
    quantizer: an `LFQ` or `FSQ`.
  """

  model: ModelConfig
  quantizer: quantizers.Quantizer

  def setup(self):
    self.encoder = Encoder(self.model, self.quantizer.dim)
    self.decoder = Decoder(self.model)

  def _as_video(self, x: jax.Array) -> tuple[jax.Array, bool]:
    if x.ndim == 4:
      return x[:, None], True
    if x.ndim != 5 or x.shape[-1] != 3:
      raise ValueError(
          f"expected a video [b, t, h, w, 3] or images [b, h, w, 3], got"
          f" shape {x.shape}"
      )
    self.model.latent_shape(*x.shape[1:4])
    return x, False

  def encode(
      self, video: jax.Array, step=None, with_loss: bool = False
  ) -> quantizers.QuantizerOutput:
    """Quantizes; `.quantized` [b, t', h', w', dim] is the continuous code."""
    video, image = self._as_video(video)
    out = self.quantizer(self.encoder(video), step=step, with_loss=with_loss)
    if image:
      out = out._replace(
          quantized=out.quantized[:, 0], indices=out.indices[:, 0]
      )
    return out

  def decode(self, codes: jax.Array) -> jax.Array:
    """[b, t', h', w', dim] (or [b, h', w', dim]) codes -> video (image)."""
    image = codes.ndim == 4
    video = self.decoder(codes[:, None] if image else codes)
    return video[:, 0] if image else video

  def encode_to_indices(self, video: jax.Array) -> jax.Array:
    """Video [b, t, h, w, 3] -> int32 [b, t', h', w'] (images: [b, h', w'])."""
    return self.encode(video).indices

  def decode_from_indices(self, indices: jax.Array) -> jax.Array:
    """int [b, t', h', w'] (or [b, h', w']) -> video [b, t, h, w, 3]."""
    return self.decode(self.quantizer.indices_to_codes(indices))

  def __call__(self, video: jax.Array, step=None):
    """Reconstruction and quantizer output (with losses) for training."""
    out = self.encode(video, step=step, with_loss=True)
    return self.decode(out.quantized), out
