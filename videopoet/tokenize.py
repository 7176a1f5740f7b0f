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
  index      int32 []            the example's index in its split,

plus ground truth for evaluation: `caption` (str) and, for `synth_av`,
`gt_<field>` copies of the object attributes, positions, velocities and
bounces.

Shards: split `s` of N examples is cut into `num_shards` contiguous ranges;
shard i is `<out>/<s>-%05d-of-%05d.array_record` and process p of P writes
the shards i with i % P == p. A shard is written to `<name>.tmp` and renamed
when complete, so a rerun skips finished shards and redoes a killed one.
`<out>/tokens.json` records the id ranges the LM's `config.vocab` must match.
"""

import dataclasses
import json
import math
import os
import time
from typing import Any

from absl import logging
from array_record.python import array_record_module
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from videopoet import config_lib
from videopoet import lm_data
from videopoet import text_tokenizer
from videopoet.data import structure as structure_lib

METADATA = "tokens.json"
# synth_av's ground truth, copied into the records as `gt_<name>`.
GROUND_TRUTH = (
    "num_objects", "object_mask", "shape", "colour", "size", "motion",
    "velocity", "positions", "bounces",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RandomInitConfig:
  """Tiny randomly initialized tokenizers (`config.random`): tests, demo.

  Attributes:
    video_config: `configs/magvit2.py` preset whose architecture is used.
    visual_bits: LFQ bits of the random video tokenizer (2^K codes).
    codec_config: `configs/soundstream.py` preset.
    seed: initialization seed.
  """

  video_config: str = "tiny"
  visual_bits: int = 10
  codec_config: str = "tiny"
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class TokenizeConfig:
  """`configs/tokenize_data.py`.

  Attributes:
    dataset: TFDS name (`synth_av`, `video_folder`, with `/config`).
    data_dir: TFDS data directory (`experiments.build_data --data_dir`).
    splits: splits to encode.
    limit: encode only the first `limit` examples of each split (0: all).
    video_tokenizer: workdir of `experiments.train_video_tokenizer`.
    audio_codec: workdir of `experiments.train_audio_codec` ('' with
      `audio_levels=0`: no audio).
    text_tokenizer: `.model` of `experiments.train_text_tokenizer`.
    random_init: use tiny *randomly initialized* video/audio tokenizers
      (`random`) instead of trained ones: only for tests and the demo.
    random: their shape.
    num_frames: frames per clip (1 + 4k, at most the stored length).
    audio_levels: RVQ levels kept (VideoPoet: 4; 0: no audio).
    max_text_len: text ids per record (the LM's `config.tasks.max_text_len`).
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
  """

  dataset: str = "synth_av"
  data_dir: str = ""
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
  structure: bool = True
  depth_model: str = ""
  depth_input_size: int = 256
  flow_scale: float = 4.0
  batch_size: int = 8
  num_shards: int = 0

  def __post_init__(self):
    if not self.data_dir:
      raise config_lib.ConfigError(
          "config.data_dir is empty: build the data first (python -m"
          " experiments.build_data --data_dir=DIR) and pass"
          " --config.data_dir=DIR"
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
    if self.batch_size < 1 or self.num_shards < 0 or self.limit < 0:
      raise config_lib.ConfigError(
          "config.batch_size must be >= 1, num_shards and limit >= 0"
      )


@dataclasses.dataclass
class Tokenizers:
  """What `tokenize_split` encodes with, and the id ranges they give."""

  encode_video: Any  # float [b, t, h, w, 3] in [-1, 1] -> int [b, t', h', w']
  encode_audio: Any  # float [b, n] -> int [b, levels, f]; None: no audio
  text: Any  # sentencepiece processor
  visual_bits: int
  audio_codebook: int
  metadata: dict
  depth: Any = None  # structure_lib.DepthEstimator or None


def _random_video_tokenizer(rcfg: RandomInitConfig):
  from configs import magvit2 as magvit2_configs  # pylint: disable=g-import-not-at-top
  from videopoet_tokenizers.magvit2 import layers  # pylint: disable=g-import-not-at-top
  from videopoet_tokenizers.magvit2 import program  # pylint: disable=g-import-not-at-top

  config = magvit2_configs.get_config(rcfg.video_config)
  config.quantizer.kind = "lfq"
  config.quantizer.lfq.num_bits = rcfg.visual_bits
  tok = program.trainer_from_config(config).tokenizer
  m = tok.model
  sample = jnp.zeros((1, 1 + m.time_factor) + (m.space_factor,) * 2 + (3,))
  params = jax.jit(
      lambda r: tok.init(
          {"params": layers.init_key(r)}, sample, method="encode_to_indices"
      )
  )(jax.random.key(rcfg.seed))
  return program.LoadedTokenizer(tok, params, 0)


def _random_codec(rcfg: RandomInitConfig):
  from configs import soundstream as soundstream_configs  # pylint: disable=g-import-not-at-top
  from videopoet_tokenizers.soundstream import codec as codec_lib  # pylint: disable=g-import-not-at-top
  from videopoet_tokenizers.soundstream import model as model_lib  # pylint: disable=g-import-not-at-top

  config = soundstream_configs.get_config(rcfg.codec_config)
  mc = config_lib.from_config(model_lib.ModelConfig, config.model, "model")
  model = model_lib.SoundStream(mc)
  variables = model_lib.init_variables(model, jax.random.key(rcfg.seed + 1))
  return codec_lib.Codec(mc, variables)


def load_tokenizers(cfg: TokenizeConfig) -> Tokenizers:
  """The trained tokenizers of `cfg` (or random ones with `random_init`)."""
  meta = {"dataset": cfg.dataset, "random_init": cfg.random_init}
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
    meta.update(video_tokenizer="random", audio_codec="random")
  else:
    from videopoet_tokenizers.magvit2 import program  # pylint: disable=g-import-not-at-top
    from videopoet_tokenizers.soundstream import codec as codec_lib  # pylint: disable=g-import-not-at-top

    video = program.load_tokenizer(cfg.video_tokenizer)
    codec = codec_lib.load_codec(cfg.audio_codec) if cfg.audio_levels else None
    meta.update(
        video_tokenizer=os.path.abspath(cfg.video_tokenizer),
        video_tokenizer_step=int(video.step),
        audio_codec=os.path.abspath(cfg.audio_codec) if codec else "",
    )
  size = video.tokenizer.quantizer.codebook_size
  bits = int(round(math.log2(size)))
  if 2**bits != size:
    raise ValueError(
        f"the video tokenizer has {size} codes; the LM vocabulary needs 2^K"
    )
  encode_audio, codebook = None, 0
  if codec is not None:
    if cfg.audio_levels > codec.num_levels:
      raise config_lib.ConfigError(
          f"config.audio_levels={cfg.audio_levels} > the codec's"
          f" {codec.num_levels} levels"
      )
    codebook = codec.config.rvq.codebook_size
    encode_audio = lambda a: codec.encode(a, cfg.audio_levels)
  sp = text_tokenizer.load(cfg.text_tokenizer)
  depth = None
  if cfg.structure and cfg.depth_model:
    depth = structure_lib.DepthEstimator(
        cfg.depth_model, cfg.depth_input_size, cfg.batch_size
    )
  meta.update(
      depth_model=os.path.abspath(cfg.depth_model) if depth else "",
      text_tokenizer=os.path.abspath(cfg.text_tokenizer),
      visual_bits=bits,
      audio_levels=cfg.audio_levels,
      audio_codebook=codebook,
      text_size=sp.get_piece_size(),
      max_text_len=cfg.max_text_len,
  )
  return Tokenizers(
      encode_video=video.encode_to_indices,
      encode_audio=encode_audio,
      text=sp,
      visual_bits=bits,
      audio_codebook=codebook,
      metadata=meta,
      depth=depth,
  )


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


def _source(cfg: TokenizeConfig, split: str):
  """The built split; a missing build is an error naming build_data."""
  from videopoet.data import datasets  # pylint: disable=g-import-not-at-top

  return datasets.open_split(cfg.dataset, cfg.data_dir, split)


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


def _encode_shard(cfg, tok: Tokenizers, source, indices, path, progress):
  """Writes the records of `indices` to `path` (via `path.tmp`)."""
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
    for j, (i, row) in enumerate(zip(batch_idx, rows)):
      caption = _as_str(row.get("caption", ""))
      text = text_tokenizer.encode(tok.text, caption, cfg.max_text_len)
      record = {
          "index": np.int32(i),
          "video": codes[j].astype(np.int32),
          "text": text,
          "text_mask": text >= 0,
          "caption": caption,
      }
      if has_structure:
        record["structure"] = codes[len(rows) + j].astype(np.int32)
      if audio is not None:
        record["audio"] = audio[j].astype(np.int32)
      for name in GROUND_TRUTH:
        if name in row:
          record[f"gt_{name}"] = np.asarray(row[name])
      writer.write(lm_data.serialize(record))
    progress.update(len(rows))
  writer.close()
  os.replace(tmp, path)


def tokenize_split(
    cfg: TokenizeConfig,
    tok: Tokenizers,
    split: str,
    out_dir: str,
    process_index: int = 0,
    process_count: int = 1,
) -> dict:
  """Writes this process's shards of `split`; returns counts and throughput.

  Returns:
    {'examples': total in the split (after `limit`), 'encoded': examples
    this call encoded, 'skipped_shards': finished shards it left alone,
    'examples_per_s': its encoding rate}.
  """
  source = _source(cfg, split)
  n = len(source) if not cfg.limit else min(cfg.limit, len(source))
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
  num_shards = cfg.num_shards or process_count
  ranges = shard_ranges(n, num_shards)
  mine = [i for i in range(num_shards) if i % process_count == process_index]
  todo, skipped = [], 0
  for i in mine:
    path = shard_path(out_dir, split, i, num_shards)
    if os.path.exists(path):
      logging.info("tokenize %s: %s is complete, skipping", split, path)
      skipped += 1
    else:
      todo.append(i)
  progress = _Progress(split, sum(len(ranges[i]) for i in todo))
  os.makedirs(out_dir, exist_ok=True)
  for i in todo:
    path = shard_path(out_dir, split, i, num_shards)
    _encode_shard(cfg, tok, source, ranges[i], path, progress)
    logging.info("tokenize %s: wrote %s (%d examples)", split, path,
                 len(ranges[i]))  # fmt: skip
  rate = progress.update(0, force=bool(todo))
  return {
      "examples": n,
      "encoded": progress.done,
      "skipped_shards": skipped,
      "examples_per_s": rate if todo else 0.0,
  }


def write_metadata(out_dir: str, tok: Tokenizers, split_sizes: dict) -> str:
  """`<out>/tokens.json`: the id ranges of the records and split sizes.

  Splits already recorded there by a run with the same tokenizers are kept
  (so splits can be tokenized by separate runs).
  """
  old = read_metadata(out_dir) or {}
  splits = dict(split_sizes)
  if {k: v for k, v in old.items() if k != "splits"} == tok.metadata:
    splits = {**old.get("splits", {}), **splits}
  meta = dict(tok.metadata, splits=splits)
  path = os.path.join(out_dir, METADATA)
  os.makedirs(out_dir, exist_ok=True)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(meta, f, indent=2, sort_keys=True)
  os.replace(path + ".tmp", path)
  return path


def read_metadata(out_dir: str) -> dict | None:
  path = os.path.join(out_dir, METADATA)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)
