"""Encodes a TFDS dataset into the LM's token records (`tokenize_data`).

  cfg = config_lib.from_config(TokenizeConfig, config, "config")
  tokenizers = load_tokenizers(cfg)           # video, audio codec, text
  tokenize_split(cfg, tokenizers, "train", out_dir, process_index=0,
                 process_count=1)

Each example becomes one record (msgpack, `lm_data.serialize`) with the
fields the task builders read (`tasks/builders.py`):

  video      int32 [t', h', w']  visual codes of the RGB clip,
  structure  int32 [t', h', w']  visual codes of the structure video: optical
             flow (dx, dy) and depth as 3 channels in [-1, 1], encoded by the
             same video tokenizer (VideoPoet: RAFT flow + MiDaS depth; here
             the dataset's own flow and depth maps when it has them, else
             OpenCV Farneback flow and the `depth_model` network's depth:
             `videopoet/data/structure.py`),
  audio      int32 [levels, f]   the first `audio_levels` RVQ levels,
  text       int32 [max_text]    sentencepiece ids, -1 after the caption,
  text_mask  bool  [max_text],
  text_embeddings       bf16 [max_text, d]  the caption's frozen T5
             encoder states, zero at padding (only with
             `config.text_encoder.path`; `videopoet.text_encoder`),
  text_embeddings_mask  bool [max_text]     their valid positions,
  index      int32 []            the example's index in its split,

plus ground truth for evaluation: `caption` (str) and, for `synth_av`,
`gt_<field>` copies of the object attributes, positions, velocities and
bounces.

Shards: split `s` of N examples is cut into `num_shards` contiguous ranges;
shard i is `<out>/<s>-%05d-of-%05d.array_record` and process p of P writes
the shards i with i % P == p. A shard is written to `<name>.tmp` and renamed
when complete, so a rerun skips finished shards and redoes a killed one.
`<out>/tokens.json` (`token_spec.TokenSpec`, plus the split sizes) records
what made the tokens and their shapes: the tokenizers, their codebook
(visual bits), time and space factors, the clips' frames, size and rates,
the audio levels, codebook, hop and frames, the text tokenizer and length.
The LM reads its vocabulary from it.

Provenance: before a shard is renamed into place, `<shard>.json` records
what made it (`shard_provenance`: the tokenizers' `metadata`, i.e. the
`TokenSpec` with trained workdirs and checkpoint steps or the random
config, the text tokenizer's hash, the record-shaping settings, and the
split, limit, shard layout and example range). A rerun reuses a finished
shard only when its record equals the one this run would write; a shard or
`tokens.json` made differently, or a shard with no record (written before
records existed), makes the run refuse before it writes anything
(`check_out_dir`, `StaleTokensError`, naming each differing key) unless
`overwrite=True` (`tokenize_data --overwrite`), which replaces them.
"""

import dataclasses
import json
import math
import os
import re
import time
from typing import Any

from absl import logging
from array_record.python import array_record_module
import jax
import numpy as np

from videopoet import config_lib
from videopoet import lm_data
from videopoet import sharding
from videopoet import text_encoder as text_encoder_lib
from videopoet import text_tokenizer
from videopoet import token_spec
from videopoet.data import datasets
from videopoet.data import structure as structure_lib
from videopoet.sampling import models as models_lib
from videopoet.train_lib import renames

# `<shard>` + this: what made the shard (`shard_provenance`).
PROVENANCE_SUFFIX = ".json"
_SHARD_NAME = re.compile(
    r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.array_record$"
)
# Keys of a shard's provenance record beyond the tokenizers' metadata.
_SHARD_KEYS = ("split", "split_size", "limit", "num_shards", "shard",
               "examples")  # fmt: skip
# synth_av's ground truth, copied into the records as `gt_<name>`.
GROUND_TRUTH = (
    "num_objects", "object_mask", "shape", "colour", "size", "motion",
    "velocity", "positions", "bounces",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RandomInitConfig:
  """Tiny randomly initialized tokenizers (`config.random`): tests, demo.

  The architectures are written into tokens.json (its `random` record), so
  the sampler rebuilds the same tokenizers from it alone.
  `experiments.tokenize_data` fills them from the config presets that
  `config.random` names (`configs/tokenize_data.py:random_tokenizers`).

  Attributes:
    video_model: the video tokenizer's architecture (the fields of
      `videopoet.tokenizers.magvit2.model.ModelConfig`).
    visual_bits: LFQ bits of the random video tokenizer (2^K codes).
    codec_model: the codec's (`videopoet.tokenizers.soundstream.model.
      ModelConfig`).
    seed: initialization seed.
  """

  video_model: dict = dataclasses.field(default_factory=dict)
  visual_bits: int = 10
  codec_model: dict = dataclasses.field(default_factory=dict)
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class TokenizeConfig:
  """`configs/tokenize_data.py`.

  Attributes:
    data: the dataset (`data.dataset`: TFDS name such as 'synth_av/tiny')
      and its TFDS data directory (`data.data_dir`, where
      `experiments.build_data` built it).
    splits: splits to encode.
    limit: encode only the first `limit` examples of each split (0: all).
    video_tokenizer: workdir of `experiments.train_video_tokenizer`.
    audio_codec: workdir of `experiments.train_audio_codec` ('' with
      `audio_levels=0`: no audio).
    text_tokenizer: `.model` of `experiments.train_text_tokenizer`.
    random_init: use tiny *randomly initialized* video/audio tokenizers
      (`random`) instead of trained ones: only for tests and the demo.
    random: their shape.
    num_frames: frames per clip (1 + time_factor * k, at most the stored
      length).
    audio_levels: RVQ levels kept (VideoPoet: 4; 0: no audio).
    max_text_len: text ids per record (tokens.json; the LM reads it there),
      and T5 tokens per caption embedding.
    text_encoder: the local frozen T5 encoder whose caption embeddings the
      records carry (`text_encoder.path`; '' writes none).
    structure: encode a flow + depth `structure` clip per example: the
      dataset's own maps (synth_av) or, for any other dataset, OpenCV
      Farneback flow and `depth_model`'s depth.
    depth_model: local TorchScript depth network (e.g. MiDaS exported with
      torch.jit.trace) for datasets without depth maps; '' leaves the depth
      channel at 0 (flow-only structure), said once in the log.
    depth_input_size: the depth network's input side (multiple of 32).
    flow_scale: flow of this many pixels per frame maps to +-1.
    batch_size: clips per encoder call (the last batch is padded).
    num_shards: shards per split (0: one per process).
    superres_factor: f > 0 also encodes each clip bicubic-downsampled by f
      (`superres.data.resize_clips`) into `video_low` [t', h'/f, w'/f],
      the SR transformer's condition (`_superres_low_codes`); 0: none.
  """

  data: datasets.DataConfig = datasets.DataConfig()
  splits: tuple[str, ...] = ("train", "validation", "test")
  limit: int = 0
  video_tokenizer: str = ""
  audio_codec: str = ""
  text_tokenizer: str = ""
  random_init: bool = False
  random: RandomInitConfig = RandomInitConfig()
  num_frames: int = 17
  audio_levels: int = 4
  max_text_len: int = 16
  text_encoder: text_encoder_lib.TextEncoderConfig = (
      text_encoder_lib.TextEncoderConfig()
  )
  structure: bool = True
  depth_model: str = ""
  depth_input_size: int = 256
  flow_scale: float = 4.0
  batch_size: int = 8
  num_shards: int = 0
  superres_factor: int = 0

  def __post_init__(self):
    if not self.data.data_dir:
      raise config_lib.ConfigError(
          "config.data.data_dir is empty: build the data first (python -m"
          " experiments.build_data --config.data.data_dir=DIR) and pass"
          " --config.data.data_dir=DIR"
      )
    if self.text_encoder.path:  # Named now, before the tokenizers load.
      text_encoder_lib.check_path(self.text_encoder.path)
    if self.random_init and not (
        self.random.video_model and self.random.codec_model
    ):
      raise config_lib.ConfigError(
          "config.random_init=True needs the random tokenizers'"
          " architectures (config.random.video_model, codec_model):"
          " experiments.tokenize_data fills them from configs presets"
      )
    if not self.random_init:
      for name, job in (
          ("video_tokenizer", "train_video_tokenizer"),
          ("audio_codec", "train_audio_codec"),
      ):
        if name == "audio_codec" and not self.audio_levels:
          continue
        if not getattr(self, name):
          raise config_lib.ConfigError(
              f"config.{name} is empty: train one with `python -m"
              f" experiments.{job}` and pass its workdir, or set"
              " --config.random_init=True for tiny RANDOMLY INITIALIZED"
              " tokenizers (tests and demos only)"
          )
    if not self.text_tokenizer:
      raise config_lib.ConfigError(
          "config.text_tokenizer is empty: train one with `python -m"
          " experiments.train_text_tokenizer` and pass its text.model"
      )
    if not self.splits:
      raise config_lib.ConfigError("config.splits is empty: name a split")
    if self.superres_factor < 0 or self.superres_factor == 1:
      raise config_lib.ConfigError(
          f"config.superres_factor={self.superres_factor} must be 0 (none)"
          " or >= 2"
      )
    if self.batch_size < 1 or self.num_shards < 0 or self.limit < 0:
      raise config_lib.ConfigError(
          "config.batch_size must be >= 1, num_shards and limit >= 0"
      )


class StaleTokensError(config_lib.ConfigError):
  """The output directory holds tokens that this run would not have made."""


@dataclasses.dataclass
class Tokenizers:
  """What `tokenize_split` encodes with, and what the records will be.

  `spec` (-> `tokens.json`; as JSON, `metadata`, in every shard's
  provenance record) names what the records depend on: the tokenizers
  (trained workdirs with their checkpoint steps, or the `random` config),
  their codebook and time and space factors, the clips' shape and rates, the
  audio codec's levels, codebook and hop, the text tokenizer's path, hash
  and size, and the record-shaping settings (`_settings`; those that are no
  `TokenSpec` field are in `spec.extra`).
  """

  encode_video: Any  # float [b, t, h, w, 3] in [-1, 1] -> int [b, t', h', w']
  encode_audio: Any  # float [b, n] -> int [b, levels, f]; None: no audio
  text: Any  # sentencepiece processor
  spec: token_spec.TokenSpec
  depth: Any = None  # structure_lib.DepthEstimator or None
  text_encoder: Any = None  # text_encoder.TextEncoder or None

  @property
  def metadata(self) -> dict:
    """`spec` as JSON values (no split sizes)."""
    return json.loads(json.dumps(self.spec.to_json()))

  @property
  def visual_bits(self) -> int:
    return self.spec.visual_bits

  @property
  def audio_codebook(self) -> int:
    return self.spec.audio_codebook


def _random_video_tokenizer(rcfg: RandomInitConfig):
  """The random tokenizer; one home with the sampler, which rebuilds it
  from the `random` record of tokens.json to decode the LM's output."""
  return models_lib.random_video_tokenizer(dataclasses.asdict(rcfg))


def _random_codec(rcfg: RandomInitConfig):
  return models_lib.random_codec(dataclasses.asdict(rcfg))


def _settings(cfg: TokenizeConfig) -> dict:
  """The settings of `cfg` that change what a record holds."""
  depth = cfg.structure and bool(cfg.depth_model)
  return {
      "dataset": cfg.data.dataset,
      "num_frames": cfg.num_frames,
      "audio_levels": cfg.audio_levels,
      "max_text_len": cfg.max_text_len,
      "structure": cfg.structure,
      "flow_scale": float(cfg.flow_scale),
      "depth_model": os.path.abspath(cfg.depth_model) if depth else "",
      "depth_input_size": cfg.depth_input_size if depth else 0,
      **_superres_settings(cfg),
  }


def _load_trained(kind: str, flag: str, load, path: str):
  """`load(path)`, with a missing or wrong workdir named as `config.<flag>`."""
  try:
    return load(path)
  except (FileNotFoundError, config_lib.ConfigError) as e:
    raise config_lib.ConfigError(
        f"config.{flag}={path!r} cannot be loaded as the {kind}: {e}"
    ) from e


def _clip_shape(source, what: str) -> tuple[int, int, int, int | None]:
  """(frames, height, width, audio samples or None) of the split's clips."""
  features = source.dataset_info.features
  shape = tuple(features["video"].shape) if "video" in features else ()
  samples = tuple(features["audio"].shape)[0] if "audio" in features else None
  if len(shape) != 4 or None in shape[:3]:  # Not fixed: the first clip's.
    if not len(source):
      raise config_lib.ConfigError(
          f"{what} is empty and its clips' shape is not fixed by the"
          " dataset's features"
      )
    row = source[0]
    shape = np.asarray(row["video"]).shape
    samples = len(np.asarray(row["audio"])) if "audio" in row else None
  return int(shape[0]), int(shape[1]), int(shape[2]), samples


def load_tokenizers(cfg: TokenizeConfig) -> Tokenizers:
  """The trained tokenizers of `cfg` (or random ones with `random_init`).

  Their `spec` is filled from them (codebook size -> visual bits, the video
  model's time and space factors, the codec's codebook, hop and sample
  rate), from the dataset (clip size, fps: `datasets.media_rates`, audio
  samples per clip) and from `cfg` (frames, audio levels, text length).

  Raises:
    config_lib.ConfigError: `config.video_tokenizer` or `config.audio_codec`
      is missing, has no checkpoint or is another kind of workdir; the clips
      do not fit the video tokenizer (`config.num_frames` is not 1 +
      time_factor * k or longer than the clips, or their size does not
      divide by the space factor); the dataset has no audio or another
      sample rate than the codec's.
  """
  if cfg.random_init:
    logging.warning(
        "*** config.random_init=True: the video tokenizer and audio codec are"
        " RANDOMLY INITIALIZED (%s), not trained. The tokens carry the"
        " data's statistics through random projections only; use them for"
        " tests and demos, never for results. ***",
        cfg.random,
    )
    video = _random_video_tokenizer(cfg.random)
    codec = _random_codec(cfg.random) if cfg.audio_levels else None
    made_by = dict(
        video_tokenizer="random",
        video_tokenizer_step=0,
        audio_codec="random" if codec else "",
        audio_codec_step=0,
        random=dataclasses.asdict(cfg.random),
    )
  else:
    from videopoet.tokenizers.magvit2 import program  # pylint: disable=g-import-not-at-top
    from videopoet.tokenizers.soundstream import codec as codec_lib  # pylint: disable=g-import-not-at-top

    video = _load_trained(
        "video tokenizer", "video_tokenizer", program.load_tokenizer,
        cfg.video_tokenizer,
    )  # fmt: skip
    codec = None
    if cfg.audio_levels:
      codec = _load_trained(
          "audio codec", "audio_codec", codec_lib.load_codec, cfg.audio_codec
      )
    made_by = dict(
        video_tokenizer=os.path.abspath(cfg.video_tokenizer),
        video_tokenizer_step=int(video.step),
        audio_codec=os.path.abspath(cfg.audio_codec) if codec else "",
        audio_codec_step=int(codec.step) if codec else 0,
        random=None,
    )
  size = video.tokenizer.quantizer.codebook_size
  bits = int(round(math.log2(size)))
  if 2**bits != size:
    raise ValueError(
        f"the video tokenizer has {size} codes; the LM vocabulary needs 2^K"
    )
  model = video.tokenizer.model  # Its ModelConfig.
  source = _source(cfg, cfg.splits[0])
  rates = datasets.media_rates(source.dataset_info)
  frames, height, width, samples = _clip_shape(
      source, f"split {cfg.splits[0]!r} of {cfg.data.dataset}"
  )
  if frames < cfg.num_frames:
    raise config_lib.ConfigError(
        f"config.num_frames={cfg.num_frames} exceeds the {frames} frames of"
        f" the clips of {cfg.data.dataset}"
    )
  encode_audio, audio = None, dict(
      audio_levels=0, audio_codebook=0, sample_rate=rates.sample_rate,
      audio_hop=0, audio_frames=0,
  )  # fmt: skip
  if codec is not None:
    if cfg.audio_levels > codec.num_levels:
      raise config_lib.ConfigError(
          f"config.audio_levels={cfg.audio_levels} > the codec's"
          f" {codec.num_levels} levels"
      )
    if samples is None:
      raise config_lib.ConfigError(
          f"{cfg.data.dataset} has no audio; pass --config.audio_levels=0"
      )
    if codec.config.sample_rate != rates.sample_rate:
      raise config_lib.ConfigError(
          f"the audio codec works at {codec.config.sample_rate} Hz but the"
          f" audio of {cfg.data.dataset} is at {rates.sample_rate} Hz"
          f" ({rates.origin})"
      )
    audio = dict(
        audio_levels=cfg.audio_levels,
        audio_codebook=codec.config.rvq.codebook_size,
        sample_rate=codec.config.sample_rate,
        audio_hop=codec.hop,
        audio_frames=samples // codec.hop,
    )
    encode_audio = lambda a: codec.encode(a, cfg.audio_levels)
  sp = text_tokenizer.load(cfg.text_tokenizer)
  depth = None
  if cfg.structure and cfg.depth_model:
    depth = structure_lib.DepthEstimator(
        cfg.depth_model, cfg.depth_input_size, cfg.batch_size
    )
  encoder, embedded = _load_text_encoder(cfg)
  settings = _settings(cfg)
  fields = {f.name for f in dataclasses.fields(token_spec.TokenSpec)}
  try:
    spec = token_spec.TokenSpec(
        **made_by,
        **audio,
        visual_bits=bits,
        time_factor=model.time_factor,
        space_factor=model.space_factor,
        height=height,
        width=width,
        fps=float(rates.fps),
        text_tokenizer=os.path.abspath(cfg.text_tokenizer),
        text_tokenizer_sha256=token_spec.file_sha256(cfg.text_tokenizer),
        text_size=sp.get_piece_size(),
        **embedded,
        **{k: v for k, v in settings.items() if k in fields and k not in audio},
        extra=dict(
            {k: v for k, v in settings.items() if k not in fields},
            random_init=cfg.random_init,
        ),
    )
  except ValueError as e:
    raise config_lib.ConfigError(
        f"the clips of {cfg.data.dataset} (config.num_frames={cfg.num_frames},"
        f" {height}x{width}) do not fit the video tokenizer: {e}"
    ) from e
  return Tokenizers(
      encode_video=video.encode_to_indices,
      encode_audio=encode_audio,
      text=sp,
      spec=spec,
      depth=depth,
      text_encoder=encoder,
  )


# ------------------------------------------------- Text embeddings.
def _load_text_encoder(cfg: TokenizeConfig):
  """(the T5 encoder of `config.text_encoder`, or None; its tokens.json
  fields: `text_encoder`, `text_encoder_sha256`, `text_embed_dim`)."""
  ec = cfg.text_encoder
  if not ec.path:
    return None, {}
  mesh = sharding.create_mesh(sharding.MeshConfig(), jax.local_devices())
  enc = text_encoder_lib.load(
      ec.path, cfg.max_text_len, ec.dtype, ec.batch_size, mesh
  )
  logging.info(
      "tokenize: caption embeddings from the T5 encoder %s (%s, d=%d, %d"
      " tokens)", enc.path, ec.dtype, enc.width, cfg.max_text_len,
  )  # fmt: skip
  return enc, dict(
      text_encoder=enc.path,
      text_encoder_sha256=enc.sha256,
      text_embed_dim=enc.width,
  )


def _caption_embeddings(tok: Tokenizers, captions: list[str]) -> list[dict]:
  """Per caption, the record fields of its embeddings ({} without an
  encoder): `text_embeddings` bf16 [max_text, d] and its mask."""
  if tok.text_encoder is None:
    return [{} for _ in captions]
  emb, mask = tok.text_encoder.encode(captions)
  return [
      {"text_embeddings": e, "text_embeddings_mask": m}
      for e, m in zip(emb, mask)
  ]


def shard_ranges(num_examples: int, num_shards: int) -> list[range]:
  """Contiguous, near-equal ranges covering [0, num_examples)."""
  return [
      range(
          i * num_examples // num_shards, (i + 1) * num_examples // num_shards
      )
      for i in range(num_shards)
  ]


def shard_path(out_dir: str, split: str, i: int, n: int) -> str:
  return os.path.join(out_dir, f"{split}-{i:05d}-of-{n:05d}.array_record")


def provenance_path(shard: str) -> str:
  """`<shard>.json`, the record of what made `shard`."""
  return shard + PROVENANCE_SUFFIX


def shard_provenance(
    cfg: TokenizeConfig,
    tok: Tokenizers,
    split: str,
    split_size: int,
    num_shards: int,
    index: int,
) -> dict:
  """The provenance record of shard `index` of `split`, as JSON values.

  Args:
    cfg: the run's config (`limit`).
    tok: its tokenizers (`metadata`).
    split: the split.
    split_size: examples in the split before `limit`.
    num_shards: shards of the split.
    index: which shard.
  """
  n = min(cfg.limit, split_size) if cfg.limit else split_size
  examples = shard_ranges(n, num_shards)[index]
  record = dict(
      tok.metadata,
      split=split,
      split_size=split_size,
      limit=cfg.limit,
      num_shards=num_shards,
      shard=index,
      examples=[examples.start, examples.stop],
  )
  return json.loads(json.dumps(record))


_ABSENT = "<absent>"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict) and tree:
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def _differences(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
  """`{dotted key: (old, new)}` for every key whose value differs."""
  a, b = _flatten(old), _flatten(new)
  return {
      k: (a.get(k, _ABSENT), b.get(k, _ABSENT))
      for k in sorted(set(a) | set(b))
      if a.get(k, _ABSENT) != b.get(k, _ABSENT)
  }


def _show(value: Any) -> str:
  return value if value is _ABSENT else json.dumps(value)


@dataclasses.dataclass(frozen=True)
class _Stale:
  """A file in the output directory that this run would not have made.

  Attributes:
    path: the shard or tokens.json.
    diffs: {key: (recorded, this run's)}.
    reason: why, when not `diffs`: its provenance record is 'missing',
      'unreadable (...)' or 'not a JSON object'.
    owner: the shard's index in this run's layout of its split (the process
      that writes that shard replaces it), or None (process 0 removes it).
  """

  path: str
  diffs: dict
  reason: str = ""
  owner: int | None = None


def _read_provenance(shard: str) -> tuple[dict | None, str]:
  """(record, '') or (None, why there is none)."""
  path = provenance_path(shard)
  try:
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
  except FileNotFoundError:
    return None, "missing"
  except (OSError, ValueError) as e:
    return None, f"unreadable ({e})"
  if not isinstance(record, dict):
    return None, "not a JSON object"
  return renames.upgrade_tokens_record(record), ""


def _scan(
    cfg: TokenizeConfig | None,
    tok: Tokenizers,
    out_dir: str,
    layouts: dict[str, tuple[int, int]],
    whole_dir: bool,
) -> list[_Stale]:
  """What in `out_dir` this run would not have made.

  Args:
    cfg: the run's config (None with no `layouts`).
    tok: its tokenizers.
    out_dir: the output directory.
    layouts: {split: (split_size, num_shards)} of the splits this run
      writes: their shards must equal `shard_provenance`.
    whole_dir: also check `tokens.json` and the shards of other splits
      (their tokenizer metadata must be this run's).
  """
  if not os.path.isdir(out_dir):
    return []
  stale = []
  if whole_dir:
    old = _read_record(out_dir)
    if old is not None:
      old = {k: v for k, v in old.items() if k != "splits"}
      diffs = _differences(old, json.loads(json.dumps(tok.metadata)))
      if diffs:
        stale.append(_Stale(token_spec.path_in(out_dir), diffs))
  meta = json.loads(json.dumps(tok.metadata))
  for name in sorted(os.listdir(out_dir)):
    match = _SHARD_NAME.match(name)
    if not match or (match["split"] not in layouts and not whole_dir):
      continue
    split = match["split"]
    index, count = int(match["index"]), int(match["count"])
    path = os.path.join(out_dir, name)
    ours = split in layouts and count == layouts[split][1] and index < count
    owner = index if ours else None
    record, why = _read_provenance(path)
    if record is None:
      stale.append(_Stale(path, {}, why, owner))
      continue
    if ours:
      want = shard_provenance(cfg, tok, split, *layouts[split], index)
    elif split in layouts:  # Another shard layout of a split we write.
      size, num_shards = layouts[split]
      want = shard_provenance(cfg, tok, split, size, num_shards, 0)
      drop = ("shard", "examples")
      record = {k: v for k, v in record.items() if k not in drop}
      want = {k: v for k, v in want.items() if k not in drop}
    else:  # Another split: it must have been made with these tokenizers.
      record = {k: v for k, v in record.items() if k not in _SHARD_KEYS}
      want = meta
    diffs = _differences(record, want)
    if diffs:
      stale.append(_Stale(path, diffs, "", owner))
  return stale


def _names(stale: list[_Stale], most: int = 3) -> str:
  names = [os.path.basename(s.path) for s in stale]
  more = f", ... ({len(names) - most} more)" if len(names) > most else ""
  return ", ".join(names[:most]) + more


def _refusal(out_dir: str, stale: list[_Stale]) -> str:
  """The message of a `StaleTokensError` for `stale` files of `out_dir`."""
  differing = [s for s in stale if s.diffs]
  unknown = [s for s in stale if not s.diffs]
  parts = []
  if differing:
    diffs = {}
    for s in differing:
      for k, v in s.diffs.items():
        diffs.setdefault(k, v)
    shown = "; ".join(f"{k}: {_show(a)} -> {_show(b)}" for k, (a, b) in
                      diffs.items())  # fmt: skip
    parts.append(
        f"{_names(differing)} were made with other tokenizers or settings"
        f" ({shown})"
    )
  if unknown:
    first = os.path.basename(provenance_path(unknown[0].path))
    parts.append(
        f"{_names(unknown)} have no provenance record ({first} is"
        f" {unknown[0].reason}; shards written before tokenize_data recorded"
        " what made each shard have none), so the tokenizers and settings"
        " that made them are unknown"
    )
  return (
      f"{os.path.abspath(out_dir)} holds tokens this run would not make: "
      + "; ".join(parts)
      + ". Refusing to mix them with new shards or to rewrite tokens.json"
      " over them; nothing was written. Use a new --workdir, or rerun with"
      " --overwrite (overwrite=True) to replace the stale shards and"
      " tokens.json"
  )


def _remove(path: str) -> None:
  for p in (path, provenance_path(path)):
    try:
      os.remove(p)
    except FileNotFoundError:
      pass


def _resolve(
    out_dir: str,
    stale: list[_Stale],
    overwrite: bool,
    process_index: int,
    process_count: int,
) -> None:
  """Raises for `stale` or, with `overwrite`, removes this process's share."""
  if not stale:
    return
  if not overwrite:
    raise StaleTokensError(_refusal(out_dir, stale))
  for s in stale:
    mine = (
        s.owner % process_count == process_index
        if s.owner is not None
        else process_index == 0
    )
    if mine:
      logging.warning(
          "overwrite: removing %s (%s)",
          s.path,
          "; ".join(f"{k}: {_show(a)} -> {_show(b)}" for k, (a, b) in
                    s.diffs.items()) or f"provenance record {s.reason}",
      )  # fmt: skip
      _remove(s.path)


def _split_size(cfg: TokenizeConfig, source) -> tuple[int, int]:
  """(examples to encode, examples in the split)."""
  size = len(source)
  return (min(cfg.limit, size) if cfg.limit else size), size


def check_out_dir(
    cfg: TokenizeConfig,
    tok: Tokenizers,
    out_dir: str,
    process_index: int = 0,
    process_count: int = 1,
    overwrite: bool = False,
) -> None:
  """Checks, before anything is written, that `out_dir` fits this run.

  Every finished shard of `cfg.splits` must have the provenance record this
  run would write, every other shard this run's tokenizer metadata, and
  `tokens.json` (if any) this run's metadata.

  Args:
    cfg: the run's config.
    tok: its tokenizers.
    out_dir: the output directory.
    process_index: this process (removes its own stale shards and, process
      0, the rest with `overwrite`).
    process_count: processes.
    overwrite: remove what does not fit instead of refusing.

  Raises:
    StaleTokensError: something does not fit and not `overwrite`; the
      message names the files, each differing key (old -> new) and the
      directory.
  """
  num_shards = cfg.num_shards or process_count
  layouts = {
      split: (_split_size(cfg, _source(cfg, split))[1], num_shards)
      for split in cfg.splits
  }
  stale = _scan(cfg, tok, out_dir, layouts, whole_dir=True)
  _resolve(out_dir, stale, overwrite, process_index, process_count)


def _source(cfg: TokenizeConfig, split: str):
  """The built split; a missing build is an error naming build_data."""
  return datasets.open_split(cfg.data.dataset, cfg.data.data_dir, split)


def _as_str(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


class _Progress:
  """Logs examples/s and the ETA of this process's work."""

  def __init__(self, split: str, total: int):
    self.split, self.total, self.done = split, total, 0
    self.start = self.last = time.time()

  def update(self, n: int, force: bool = False):
    self.done += n
    now = time.time()
    if force or now - self.last > 10:
      self.last = now
      rate = self.done / max(now - self.start, 1e-9)
      eta = (self.total - self.done) / max(rate, 1e-9)
      logging.info(
          "tokenize %s: %d/%d examples, %.2f examples/s, ETA %.0fs",
          self.split, self.done, self.total, rate, eta,
      )  # fmt: skip
    return self.done / max(now - self.start, 1e-9)


def _pad_batch(x: np.ndarray, b: int) -> np.ndarray:
  return (
      np.concatenate([x, np.repeat(x[-1:], b - len(x), 0)]) if len(x) < b else x
  )


def _structure(row, video, depth_model, cfg) -> np.ndarray:
  """The structure clip [t, h, w, 3] of one example (`structure_lib`)."""
  t = cfg.num_frames
  if "flow" in row and "depth" in row:  # The dataset's own maps (synth_av).
    flow, depth = np.asarray(row["flow"])[:t], np.asarray(row["depth"])[:t]
  else:
    flow = structure_lib.farneback_flow(video)
    depth = (
        depth_model(video)
        if depth_model is not None
        else np.zeros(video.shape[:3], np.float32)
    )
  return structure_lib.structure_video(flow, depth, cfg.flow_scale)


# ----------------------------------------- Low-resolution codes (SR).
def _superres_settings(cfg: TokenizeConfig) -> dict:
  """The record-shaping setting of the SR's low-resolution codes: only when
  on, so the records (and provenance) of tokens without them are as
  before."""
  from videopoet.superres import data as superres_data  # pylint: disable=g-import-not-at-top

  if not cfg.superres_factor:
    return {}
  return {superres_data.FACTOR_KEY: cfg.superres_factor}


def _superres_low_codes(cfg: TokenizeConfig, tok: "Tokenizers", clips):
  """Codes [b, t', h'/f, w'/f] of clips [b, t, h, w, 3] in [-1, 1]
  bicubic-downsampled by `cfg.superres_factor` (None when 0)."""
  from videopoet.superres import data as superres_data  # pylint: disable=g-import-not-at-top

  f = cfg.superres_factor
  if not f:
    return None
  h, w = clips.shape[2:4]
  if h % (f * tok.spec.space_factor) or w % (f * tok.spec.space_factor):
    raise config_lib.ConfigError(
        f"config.superres_factor={f}: {h}x{w} clips downsampled by {f} do"
        f" not divide by the video tokenizer's space factor"
        f" {tok.spec.space_factor}"
    )
  small = superres_data.resize_clips(clips, h // f, w // f)
  codes = np.asarray(
      tok.encode_video(_pad_batch(small, cfg.batch_size))
  )[: len(clips)]
  want = superres_data.low_grid(tok.spec)
  if tuple(codes.shape[1:]) != want:
    raise ValueError(
        f"low-resolution codes have shape {codes.shape[1:]}, tokens.json"
        f" would say {want}"
    )
  return codes


def _check_shapes(spec: token_spec.TokenSpec, codes, audio) -> None:
  """The encoded grids are the shapes `tokens.json` will claim."""
  got = {"video": tuple(codes.shape[1:])}
  want = {"video": spec.latent_grid}
  if audio is not None:
    got["audio"] = tuple(audio.shape[1:])
    want["audio"] = (spec.audio_levels, spec.audio_frames)
  if got != want:
    raise ValueError(
        f"encoded clips have shapes {got}, tokens.json would say {want}"
    )


def _encode_shard(
    cfg, tok: Tokenizers, source, indices, path, progress, provenance
):
  """Writes the records of `indices` to `path` (via `path.tmp`).

  `provenance` goes to `<path>.json` before the shard is renamed into
  place, so a finished shard always has its record.
  """
  tmp = path + ".tmp"
  writer = array_record_module.ArrayRecordWriter(tmp, "group_size:1")
  has_structure = cfg.structure
  for lo in range(0, len(indices), cfg.batch_size):
    batch_idx = indices[lo : lo + cfg.batch_size]
    rows = [source[int(i)] for i in batch_idx]
    t = cfg.num_frames
    video = np.stack([np.asarray(r["video"])[:t] for r in rows])
    if video.shape[1] < t:
      raise ValueError(
          f"clips have {video.shape[1]} frames, fewer than config.num_frames={t}"
      )
    clips = video.astype(np.float32) / 127.5 - 1.0  # [b, t, h, w, 3]
    low = _superres_low_codes(cfg, tok, clips)  # [b, t', h'/f, w'/f] or None
    if has_structure:
      struct = np.stack(
          [_structure(r, v, tok.depth, cfg) for r, v in zip(rows, video)]
      )  # [b, t, h, w, 3]
      clips = np.concatenate([clips, struct])
    codes = np.asarray(
        tok.encode_video(
            _pad_batch(clips, cfg.batch_size * (1 + has_structure))
        )
    )
    audio = None
    if tok.encode_audio is not None and "audio" in rows[0]:
      wave = np.stack([np.asarray(r["audio"], np.float32) for r in rows])
      audio = np.asarray(tok.encode_audio(_pad_batch(wave, cfg.batch_size)))
    _check_shapes(tok.spec, codes, audio)
    embedded = _caption_embeddings(
        tok, [_as_str(r.get("caption", "")) for r in rows]
    )
    for j, (i, row) in enumerate(zip(batch_idx, rows)):
      caption = _as_str(row.get("caption", ""))
      text = text_tokenizer.encode(tok.text, caption, cfg.max_text_len)
      record = {
          "index": np.int32(i),
          "video": codes[j].astype(np.int32),
          "text": text,
          "text_mask": text >= 0,
          "caption": caption,
          **embedded[j],
      }
      if has_structure:
        record["structure"] = codes[len(rows) + j].astype(np.int32)
      if low is not None:
        record["video_low"] = low[j].astype(np.int32)
      if audio is not None:
        record["audio"] = audio[j].astype(np.int32)
      for name in GROUND_TRUTH:
        if name in row:
          record[f"gt_{name}"] = np.asarray(row[name])
      writer.write(lm_data.serialize(record))
    progress.update(len(rows))
  writer.close()
  record = provenance_path(path)
  with open(record + ".tmp", "w", encoding="utf-8") as f:
    json.dump(provenance, f, indent=2, sort_keys=True)
  os.replace(record + ".tmp", record)
  os.replace(tmp, path)


def tokenize_split(
    cfg: TokenizeConfig,
    tok: Tokenizers,
    split: str,
    out_dir: str,
    process_index: int = 0,
    process_count: int = 1,
    overwrite: bool = False,
) -> dict:
  """Writes this process's shards of `split`; returns counts and throughput.

  A finished shard is skipped when its provenance record is the one this
  call would write (`shard_provenance`).

  Args:
    cfg: the run's config.
    tok: its tokenizers (`load_tokenizers(cfg)`).
    split: the split to encode.
    out_dir: the output directory.
    process_index: this process; it writes the shards i with
      i % process_count == process_index.
    process_count: processes.
    overwrite: replace shards of `split` made differently (or of unknown
      provenance) instead of refusing.

  Returns:
    {'examples': total in the split (after `limit`), 'encoded': examples
    this call encoded, 'skipped_shards': finished shards it left alone,
    'examples_per_s': its encoding rate}.

  Raises:
    StaleTokensError: `out_dir` holds shards of `split` made differently
      and not `overwrite` (nothing is written).
  """
  settings = _settings(cfg)
  loaded = {k: tok.metadata.get(k, _ABSENT) for k in settings}
  if json.loads(json.dumps(settings)) != json.loads(json.dumps(loaded)):
    raise ValueError(
        "tok was loaded with another config than cfg: "
        + "; ".join(
            f"{k}: {_show(a)} -> {_show(b)}"
            for k, (a, b) in _differences(loaded, settings).items()
        )
    )
  source = _source(cfg, split)
  n, size = _split_size(cfg, source)
  num_shards = cfg.num_shards or process_count
  stale = _scan(cfg, tok, out_dir, {split: (size, num_shards)}, False)
  _resolve(out_dir, stale, overwrite, process_index, process_count)
  if cfg.structure and n:
    first = source[0]
    if "flow" in first and "depth" in first:
      how = "the dataset's flow and depth maps"
    elif tok.depth is not None:
      how = f"OpenCV Farneback flow + depth from {tok.depth.path}"
    else:
      how = (
          "OpenCV Farneback flow; depth channel 0 (no config.depth_model"
          " given: pass a TorchScript depth network for depth)"
      )
    logging.info("tokenize %s: structure clips from %s", split, how)
  ranges = shard_ranges(n, num_shards)
  mine = [i for i in range(num_shards) if i % process_count == process_index]
  todo, skipped = [], 0
  for i in mine:
    path = shard_path(out_dir, split, i, num_shards)
    if os.path.exists(path):  # Its record was checked above.
      logging.info("tokenize %s: %s is complete, skipping", split, path)
      skipped += 1
    else:
      todo.append(i)
  progress = _Progress(split, sum(len(ranges[i]) for i in todo))
  os.makedirs(out_dir, exist_ok=True)
  for i in todo:
    path = shard_path(out_dir, split, i, num_shards)
    provenance = shard_provenance(cfg, tok, split, size, num_shards, i)
    _encode_shard(cfg, tok, source, ranges[i], path, progress, provenance)
    logging.info("tokenize %s: wrote %s (%d examples)", split, path,
                 len(ranges[i]))  # fmt: skip
  rate = progress.update(0, force=bool(todo))
  return {
      "examples": n,
      "encoded": progress.done,
      "skipped_shards": skipped,
      "examples_per_s": rate if todo else 0.0,
  }


def write_metadata(
    out_dir: str, tok: Tokenizers, split_sizes: dict, overwrite: bool = False
) -> str:
  """`<out>/tokens.json`: `tok.spec` and the split sizes (`extra['splits']`).

  Splits already recorded there by a run with the same tokenizers are kept
  (so splits can be tokenized by separate runs). It never describes tokens
  that are not there: a `tokens.json` with other metadata, or a shard made
  with other tokenizers or of unknown provenance, is refused unless
  `overwrite` (then `tokens.json` is replaced with this run's splits).

  Raises:
    StaleTokensError: see above; `tokens.json` is left as it was.
  """
  old = _read_record(out_dir)
  meta = tok.metadata
  if not overwrite:
    stale = _scan(None, tok, out_dir, {}, whole_dir=True)
    if stale:
      raise StaleTokensError(_refusal(out_dir, stale))
  splits = dict(split_sizes)
  if (
      old is not None
      and {k: v for k, v in old.items() if k != "splits"} == meta
  ):
    splits = {**old.get("splits", {}), **splits}
  spec = dataclasses.replace(
      tok.spec, extra=dict(tok.spec.extra, splits=splits)
  )
  return token_spec.write(out_dir, spec)


def _read_record(out_dir: str) -> dict | None:
  """`<out>/tokens.json` (maybe from an older run, in today's key names),
  or None."""
  path = token_spec.path_in(out_dir)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return renames.upgrade_tokens_record(json.load(f))
