"""`tokens.json`: the one record of what produced a directory of tokens.

`experiments.tokenize_data` writes it beside its shards; the LM trainer
reads its vocabulary from it and copies it into the LM's workdir; the
sampler reads it there to know which tokenizer and codec decode the LM's
output, on what grid, at what frame and sample rate. Nothing else holds
these facts: a config never repeats them.

    spec = token_spec.read(tokens_dir_or_lm_workdir)
    spec.vocab_config(pad_to=128)     # the LM's id ranges
    spec.latent_grid                  # (t', h', w') of one clip's codes
    spec.pixel_frames(latent_frames)  # 1 + time_factor * (n - 1)

The file is flat JSON (old keys stay readable); `TokenSpec` is its typed
view. Unknown keys are kept in `extra` (e.g. `splits`).
"""

import dataclasses
import hashlib
import json
import os
from typing import Any

from videopoet import config_lib
from videopoet import vocab as vocab_lib
from videopoet.train_lib import renames

FILE = "tokens.json"
# Written only when the records carry text embeddings.
_TEXT_ENCODER_KEYS = ("text_encoder", "text_encoder_sha256", "text_embed_dim")


@dataclasses.dataclass(frozen=True)
class TokenSpec:
  """What made a set of token records, and the shapes they have.

  Attributes:
    video_tokenizer: absolute workdir of the trained video tokenizer,
      'random' (a randomly initialized one; see `random`), or '' (none: the
      LM's random records of `config.data.random`, `lm_data.RandomConfig`).
    video_tokenizer_step: its checkpoint step (0 when random).
    random: the random tokenizers {video_model, visual_bits, codec_model,
      seed} (their architectures: `pretokenize.RandomInitConfig`) when the
      tokenizers are random, else None.
    visual_bits: K: the video tokenizer has 2^K codes (LFQ or FSQ).
    time_factor: pixel frames per latent frame after the first.
    space_factor: pixels per latent cell along each side.
    num_frames: pixel frames per clip (1 + time_factor * k).
    height: pixel height of a clip.
    width: pixel width.
    fps: video frames per second.
    audio_codec: absolute workdir of the codec, 'random', or '' (no audio).
    audio_codec_step: its checkpoint step (0 when random or none).
    audio_levels: RVQ levels kept (0: no audio).
    audio_codebook: codes per level.
    sample_rate: audio samples per second.
    audio_hop: samples per audio frame.
    audio_frames: audio frames per clip.
    text_tokenizer: the sentencepiece `.model` path.
    text_tokenizer_sha256: its hash (first 16 hex digits).
    text_size: its number of pieces.
    max_text_len: text ids per record (and T5 tokens per embedded caption).
    text_encoder: absolute directory of the frozen T5 encoder whose
      caption embeddings the records carry ('' : none; `text_encoder`).
    text_encoder_sha256: its weights' and sentencepiece model's hashes.
    text_embed_dim: the embeddings' width (0: none).
    dataset: the TFDS dataset the clips came from.
    structure: records carry a `structure` (flow + depth) grid.
    extra: every other key of the file (settings, splits), kept as read.
  """

  video_tokenizer: str
  visual_bits: int
  time_factor: int
  space_factor: int
  num_frames: int
  height: int
  width: int
  fps: float
  max_text_len: int
  video_tokenizer_step: int = 0
  random: dict | None = None
  audio_codec: str = ""
  audio_codec_step: int = 0
  audio_levels: int = 0
  audio_codebook: int = 0
  sample_rate: int = 16000
  audio_hop: int = 320
  audio_frames: int = 0
  text_tokenizer: str = ""
  text_tokenizer_sha256: str = ""
  text_size: int = 0
  text_encoder: str = ""
  text_encoder_sha256: str = ""
  text_embed_dim: int = 0
  dataset: str = ""
  structure: bool = False
  extra: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if (self.num_frames - 1) % self.time_factor:
      raise ValueError(
          f"num_frames={self.num_frames} is not 1 + {self.time_factor} * k"
      )
    for name in ("height", "width"):
      if getattr(self, name) % self.space_factor:
        raise ValueError(
            f"{name}={getattr(self, name)} does not divide by"
            f" space_factor={self.space_factor}"
        )

  # ----------------------------------------------------------- Shapes.
  @property
  def latent_grid(self) -> tuple[int, int, int]:
    """(t', h', w') of one clip's visual codes."""
    return (
        self.latent_frames(self.num_frames),
        self.height // self.space_factor,
        self.width // self.space_factor,
    )

  def pixel_frames(self, latent_frames: int) -> int:
    """Pixel frames of `latent_frames` causal latent frames."""
    return 1 + self.time_factor * (latent_frames - 1) if latent_frames else 0

  def latent_frames(self, pixel_frames: int) -> int:
    """Latent frames of `pixel_frames` (1 + time_factor * k) pixel frames."""
    if pixel_frames < 1 or (pixel_frames - 1) % self.time_factor:
      raise ValueError(
          f"{pixel_frames} frames is not 1 + {self.time_factor} * k"
      )
    return 1 + (pixel_frames - 1) // self.time_factor

  def audio_frames_for(
      self,
      latent_frames: int,
      audio_frames: int | None = None,
      clip_latent_frames: int | None = None,
  ) -> int:
    """Audio frames lasting as long as the first `latent_frames` latents.

    A clip's audio spans its pixel frames; latent frame 0 covers 1 pixel
    frame and each later one `time_factor`.

    Args:
      latent_frames: the leading latent frames.
      audio_frames: the clip's audio frames (default this spec's
        `audio_frames`): pass a record's own count.
      clip_latent_frames: the clip's latent frames (default `latent_grid`'s):
        pass a record's own count.
    """
    if audio_frames is None:
      audio_frames = self.audio_frames
    if clip_latent_frames is None:
      clip_latent_frames = self.latent_grid[0]
    return round(
        audio_frames
        * self.pixel_frames(latent_frames)
        / self.pixel_frames(clip_latent_frames)
    )

  @property
  def has_audio(self) -> bool:
    return self.audio_levels > 0

  @property
  def seconds(self) -> float:
    """Duration of one clip."""
    return self.num_frames / self.fps

  # ------------------------------------------------------------ Vocab.
  def vocab_config(
      self, pad_to: int, text_mode: str = "ids"
  ) -> vocab_lib.VocabConfig:
    """The LM's id ranges for these tokens.

    Text ids take a range only in text_mode 'ids'; without audio the audio
    range keeps one level of one code (never produced, never a target).
    """
    return vocab_lib.VocabConfig(
        visual_bits=self.visual_bits,
        audio_levels=max(self.audio_levels, 1),
        audio_codebook=max(self.audio_codebook, 1),
        text_size=self.text_size if text_mode == "ids" else 0,
        pad_to=pad_to,
    )

  # ------------------------------------------------------------- JSON.
  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out.update(out.pop("extra"))
    if not self.text_embed_dim:  # No encoder: the file as before them.
      for k in _TEXT_ENCODER_KEYS:
        out.pop(k)
    return out

  @classmethod
  def from_json(cls, record: dict[str, Any], origin: str = "") -> "TokenSpec":
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: v for k, v in record.items() if k in names}
    extra = {k: v for k, v in record.items() if k not in names}
    missing = sorted(
        f.name
        for f in dataclasses.fields(cls)
        if f.name in names
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in known
    )
    if missing:
      raise config_lib.ConfigError(
          f"{origin or FILE} lacks {', '.join(missing)}: it was written by an"
          " older experiments.tokenize_data; tokenize again (with"
          " --overwrite) to record them"
      )
    try:
      return cls(**known, extra=extra)
    except (TypeError, ValueError) as e:
      raise config_lib.ConfigError(f"{origin or FILE}: {e}") from e


def path_in(directory: str) -> str:
  return os.path.join(directory, FILE)


def read(directory: str) -> TokenSpec:
  """The spec in `directory` (a tokens dir or an LM workdir).

  Raises:
    FileNotFoundError: no tokens.json there (the message says who writes
      it).
    config_lib.ConfigError: it lacks a field (an older file) or is invalid.
  """
  path = path_in(directory)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} does not exist: experiments.tokenize_data writes it beside"
        " the tokens, and experiments.train copies it into the LM's workdir"
    )
  with open(path, encoding="utf-8") as f:
    record = renames.upgrade_tokens_record(json.load(f))  # Older key names.
  return TokenSpec.from_json(record, origin=path)


def write(directory: str, spec: TokenSpec) -> str:
  """Writes `directory/tokens.json` atomically; returns its path."""
  path = path_in(directory)
  os.makedirs(directory, exist_ok=True)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(spec.to_json(), f, indent=2, sort_keys=True)
  os.replace(path + ".tmp", path)
  return path


def file_sha256(path: str) -> str:
  """The first 16 hex digits of a file's SHA-256 (`text_tokenizer_sha256`)."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()[:16]


def read_config_dir(data_dir: str, empty_hint: str) -> TokenSpec:
  """`read(data_dir)` for a job's `config.data.data_dir`, named on error.

  Raises:
    config_lib.ConfigError: `data_dir` is empty (`empty_hint` says what to
      point it at) or holds no tokens.json.
  """
  if not data_dir:
    raise config_lib.ConfigError(
        f"config.data.data_dir is empty: point it at {empty_hint}"
    )
  try:
    return read(data_dir)
  except FileNotFoundError as e:
    raise config_lib.ConfigError(
        f"config.data.data_dir={data_dir!r}: {e}"
    ) from e
