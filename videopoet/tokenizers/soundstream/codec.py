"""The codec's user API: load a trained codec, encode, decode, tokens.

  codec = load_codec("runs/codec")          # a workdir or one checkpoint
  codes = codec.encode(audio)               # [b, levels, frames] int32
  audio = codec.decode(codes[:, :4], num_samples=34000)
  ids = codes_to_tokens(codes[:, :4], base)  # [b, 4 * frames], level-major

Token layout (VideoPoet): level by level, the whole clip at level 0, then
level 1, ...; `id = base + codebook_size * level + code`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from videopoet import config_lib
from videopoet.train_lib import loading
from videopoet.train_lib import workdir as workdir_lib
from videopoet.tokenizers.soundstream import model as model_lib


def codes_to_tokens(codes, base: int = 0, codebook_size: int = 1024):
  """Flattens codes [b, L, t] level by level into ids [b, L * t]."""
  codes = jnp.asarray(codes)
  if codes.ndim != 3:
    raise ValueError(
        f"codes must be [batch, levels, frames], got " f"{codes.shape}"
    )
  level = jnp.arange(codes.shape[1])[None, :, None]
  return (base + codebook_size * level + codes).reshape(codes.shape[0], -1)


def tokens_to_codes(
    tokens, n_levels: int, base: int = 0, codebook_size: int = 1024
):
  """The inverse of `codes_to_tokens`: ids [b, L * t] -> codes [b, L, t].

  Raises:
    ValueError: the length does not divide into `n_levels`, or an id is
      outside its level's range.
  """
  tokens = np.asarray(tokens)
  b, n = tokens.shape
  if n % n_levels:
    raise ValueError(f"{n} tokens do not split into {n_levels} levels")
  codes = tokens.reshape(b, n_levels, n // n_levels) - base
  level = np.arange(n_levels)[None, :, None]
  codes = codes - codebook_size * level
  if codes.min() < 0 or codes.max() >= codebook_size:
    bad = np.argwhere((codes < 0) | (codes >= codebook_size))[0]
    raise ValueError(
        f"token {tokens.reshape(b, n_levels, -1)[tuple(bad)]} at"
        f" (batch, level, frame)={tuple(bad)} is not an audio id"
        f" of level {bad[1]} (base {base})"
    )
  return codes.astype(np.int32)


class Codec:
  """A trained SoundStream: jitted encode/decode on numpy or jax arrays."""

  def __init__(self, config: model_lib.ModelConfig, variables):
    self.config = config
    self.model = model_lib.SoundStream(config)
    self.variables = variables
    # Variables are arguments, not constants baked into the program.
    self._encode = jax.jit(
        lambda v, audio, n: self.model.apply(
            v, audio, n, method=self.model.encode
        ),
        static_argnums=2,
    )
    self._decode = jax.jit(
        lambda v, codes: self.model.apply(v, codes, method=self.model.decode)
    )

  @property
  def num_levels(self) -> int:
    return self.config.rvq.num_levels

  @property
  def hop(self) -> int:
    return self.config.hop

  def encode(self, audio, n_levels: int | None = None) -> jax.Array:
    """Codes [b, n_levels, n // hop] (int32) of audio [b, n] or [n]."""
    audio = jnp.asarray(audio, jnp.float32)
    squeeze = audio.ndim == 1
    codes = self._encode(
        self.variables, audio[None] if squeeze else audio, n_levels
    )
    return codes[0] if squeeze else codes

  def decode(self, codes, num_samples: int | None = None) -> jax.Array:
    """Audio [b, num_samples] from codes [b, levels, frames] (any 1..L levels).

    Args:
      codes: the first `levels` levels (fewer levels: lower bitrate).
      num_samples: output length; None is `frames * hop`. The samples past
        the last whole frame (fewer than `hop`, not encoded) are zeros.
    """
    codes = jnp.asarray(codes, jnp.int32)
    squeeze = codes.ndim == 2
    codes = codes[None] if squeeze else codes
    if codes.ndim != 3:
      raise ValueError(
          f"codes must be [batch, levels, frames], got " f"{codes.shape}"
      )
    if (
        int(jnp.min(codes)) < 0
        or int(jnp.max(codes)) >= self.config.rvq.codebook_size
    ):
      raise ValueError("codes must be in [0, codebook_size)")
    audio = self._decode(self.variables, codes)  # [b, frames * hop]
    if num_samples is not None:
      extra = num_samples - audio.shape[1]
      if not 0 <= extra < self.hop:
        raise ValueError(
            f"num_samples={num_samples} does not fit {codes.shape[2]} frames:"
            f" it must be in [{audio.shape[1]}, {audio.shape[1] + self.hop})"
        )
      audio = jnp.pad(audio, ((0, 0), (0, extra)))
    return audio[0] if squeeze else audio

  def reconstruct(self, audio, n_levels: int | None = None) -> jax.Array:
    """decode(encode(audio)), with audio's length."""
    audio = jnp.asarray(audio, jnp.float32)
    return self.decode(self.encode(audio, n_levels), audio.shape[-1])


def load_codec(
    path: str,
    use_ema: bool = True,
    placement: jax.sharding.Sharding | None = None,
    step: int | None = None,
) -> Codec:
  """Loads a codec trained by `experiments.train_audio_codec`.

  Args:
    path: the run's workdir (latest checkpoint) or one of its
      `checkpoints/<step>` directories.
    use_ema: the EMA of the generator's weights (else the raw weights).
    placement: where every array goes (e.g. replicated over the sampler's
      mesh); default the first local device.
    step: which checkpoint; default the one in `path`, else the latest.

  Returns:
    The `Codec`; its `step` attribute is the checkpoint's step. Only the
    generator's weights and the RVQ codebooks are read (never the optimizer
    or discriminator state).

  Raises:
    FileNotFoundError: `path` does not exist or has no `config.json` or no
      checkpoint (the message names the directory and what is missing).
    config_lib.ConfigError: its `config.json` is not an audio codec's (e.g.
      a video tokenizer's or an LM's workdir); the message says which.
  """
  workdir, in_path = loading.find_workdir(
      path, "audio_codec", "experiments.train_audio_codec"
  )
  step = step if step is not None else in_path
  config = workdir_lib.read_family_config(workdir, "audio_codec")
  model_config = config_lib.from_config(
      model_lib.ModelConfig, config["model"], "config.model"
  )
  gen = "ema_params" if use_ema else "params"
  shardings = None
  if placement is not None:
    shardings = lambda _, shapes: jax.tree.map(lambda _: placement, shapes)
  step, trees = loading.restore_params(
      workdir, (gen, "quantizer"), step, shardings
  )
  codec = Codec(
      model_config, {"params": trees[gen], "quantizer": trees["quantizer"]}
  )
  codec.step = int(step)
  return codec
