"""The unified vocabulary: the one place that knows where each id range is.

Ids, in order (VideoPoet, arXiv 2312.14125, Sec. 3.1):

  [0, 256)                      special and task tokens (`SPECIALS`, then one
                                `<task_X>` per registered task),
  [256, 256 + 2^K)              visual codes (MAGVIT-v2 LFQ, K bits),
  [.., + levels x codebook)     audio codes (SoundStream RVQ, one disjoint
                                range per level, level-major),
  [.., + text_size)             text (sentencepiece ids), when text is
                                tokenized rather than given as embeddings.

`Vocab.size` is the number of real ids; `Vocab.padded_size` rounds it up to a
multiple of `pad_to` (so the `vocab` axis shards evenly); ids in the padding
are never valid targets.
"""

import dataclasses

import numpy as np

from videopoet import config_lib

NUM_SPECIAL = 256

# Layout tokens (docs/design.md). `<pad>` fills fixed-length segments (text) and
# is never attended to; `<mask>` replaces hidden visual tokens (in/outpaint);
# `<text_emb>` marks a position whose input is a projected text embedding.
SPECIALS = (
    "<pad>", "<bos>", "<eos>",
    "<bot_i>", "<eot_i>", "<bov_i>", "<eov_i>", "<boa_i>", "<eoa_i>",
    "<source>", "<res>",
    "<bov_o>", "<eov_o>", "<boa_o>", "<eoa_o>",
    "<mask>", "<text_emb>",
)  # fmt: skip

# Task tokens follow the layout tokens, in the order of `tasks.TASKS`.
TASK_NAMES = (
    "unconditional_video",
    "text_to_video",
    "text_to_image",
    "image_to_video",
    "frame_continuation",
    "inpainting",
    "outpainting",
    "stylization",
    "video_to_audio",
    "audio_to_video",
    "audio_video_continuation",
)


@dataclasses.dataclass(frozen=True)
class VocabConfig:
  """Sizes of the id ranges.

  The LM reads them from its tokens (`token_spec.TokenSpec.vocab_config`,
  i.e. `tokens.json`); only `pad_to` is the LM's choice (`config.vocab`).

  Attributes:
    visual_bits: K of the LFQ tokenizer: 2^K visual codes.
    audio_levels: RVQ levels kept (VideoPoet: 4).
    audio_codebook: codes per RVQ level (VideoPoet: 1,024).
    text_size: sentencepiece vocabulary size; 0 when text is given as
      embeddings.
    pad_to: `padded_size` is a multiple of this.
  """

  visual_bits: int = 18
  audio_levels: int = 4
  audio_codebook: int = 1024
  text_size: int = 0
  pad_to: int = 128

  def __post_init__(self):
    for name in ("visual_bits", "audio_levels", "audio_codebook", "pad_to"):
      if getattr(self, name) < 1:
        raise config_lib.ConfigError(
            f"vocabulary {name}={getattr(self, name)} must be >= 1"
        )
    if self.text_size < 0:
      raise config_lib.ConfigError(
          f"vocabulary text_size={self.text_size} must be >= 0"
      )


class Vocab:
  """Offsets and conversions of the unified vocabulary."""

  def __init__(self, config: VocabConfig):
    self.config = config
    names = SPECIALS + tuple(f"<task_{t}>" for t in TASK_NAMES)
    assert len(names) <= NUM_SPECIAL
    self._special = {n: i for i, n in enumerate(names)}
    self.visual_start = NUM_SPECIAL
    self.visual_size = 2**config.visual_bits
    self.audio_start = self.visual_start + self.visual_size
    self.audio_size = config.audio_levels * config.audio_codebook
    self.text_start = self.audio_start + self.audio_size
    self.text_size = config.text_size
    self.size = self.text_start + self.text_size
    self.padded_size = -(-self.size // config.pad_to) * config.pad_to

  # ------------------------------------------------------------- Specials.
  def special(self, name: str) -> int:
    """The id of a layout token (`'<bos>'`) or task token (`'<task_X>'`)."""
    if name not in self._special:
      raise KeyError(f"unknown special token {name!r}")
    return self._special[name]

  def task(self, task_name: str) -> int:
    """The id of `<task_{task_name}>`."""
    return self.special(f"<task_{task_name}>")

  @property
  def pad(self) -> int:
    return self._special["<pad>"]

  # ------------------------------------------------------------- Ranges.
  def _to_ids(self, codes, start: int, size: int, what: str) -> np.ndarray:
    codes = np.asarray(codes)
    if not np.issubdtype(codes.dtype, np.integer):
      raise TypeError(f"{what} codes must be integers, got {codes.dtype}")
    if codes.size and (codes.min() < 0 or codes.max() >= size):
      raise ValueError(
          f"{what} codes must lie in [0, {size}), got"
          f" [{codes.min()}, {codes.max()}]"
      )
    return codes.astype(np.int32) + start

  def _from_ids(self, ids, start: int, size: int, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.size and (ids.min() < start or ids.max() >= start + size):
      raise ValueError(
          f"ids [{ids.min()}, {ids.max()}] are not all in the {what} range"
          f" [{start}, {start + size})"
      )
    return (ids - start).astype(np.int32)

  def visual_to_ids(self, codes) -> np.ndarray:
    """Visual codes in [0, 2^K), any shape -> ids (flatten it yourself)."""
    return self._to_ids(codes, self.visual_start, self.visual_size, "visual")

  def ids_to_visual(self, ids) -> np.ndarray:
    return self._from_ids(ids, self.visual_start, self.visual_size, "visual")

  def audio_to_ids(self, codes) -> np.ndarray:
    """`[levels, frames]` RVQ codes -> level-major flat ids `[levels*frames]`.

    Level l uses its own range `audio_start + l * codebook + code`.
    """
    codes = np.asarray(codes)
    levels, cb = self.config.audio_levels, self.config.audio_codebook
    if codes.ndim != 2 or codes.shape[0] != levels:
      raise ValueError(
          f"audio codes must be [{levels} levels, frames], got {codes.shape}"
      )
    ids = self._to_ids(codes, 0, cb, "audio")  # [levels, frames]
    ids = (
        ids
        + (self.audio_start + cb * np.arange(levels, dtype=np.int32))[:, None]
    )
    return ids.reshape(-1)

  def ids_to_audio(self, ids) -> np.ndarray:
    """Level-major flat ids -> `[levels, frames]` codes (inverse of above)."""
    levels, cb = self.config.audio_levels, self.config.audio_codebook
    flat = self._from_ids(ids, self.audio_start, self.audio_size, "audio")
    if flat.size % levels:
      raise ValueError(f"{flat.size} audio ids do not split into {levels}")
    codes = flat.reshape(levels, -1) - cb * np.arange(levels)[:, None]
    if codes.min() < 0 or codes.max() >= cb:
      raise ValueError("audio ids are not in level-major order")
    return codes.astype(np.int32)

  def text_to_ids(self, pieces) -> np.ndarray:
    """Sentencepiece ids in [0, text_size) -> vocabulary ids."""
    if not self.text_size:
      raise ValueError("this vocabulary has no text range (text_size=0)")
    return self._to_ids(pieces, self.text_start, self.text_size, "text")

  def ids_to_text(self, ids) -> np.ndarray:
    return self._from_ids(ids, self.text_start, self.text_size, "text")

  def range_of(self, name: str) -> tuple[int, int]:
    """`[start, stop)` of 'special', 'visual', 'audio' or 'text'."""
    return {
        "special": (0, NUM_SPECIAL),
        "visual": (self.visual_start, self.audio_start),
        "audio": (self.audio_start, self.text_start),
        "text": (self.text_start, self.size),
    }[name]

  def validate(self, ids) -> None:
    """Raises ValueError if any id is outside [0, size)."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= self.size):
      raise ValueError(
          f"ids [{ids.min()}, {ids.max()}] outside the vocabulary [0,"
          f" {self.size})"
      )
