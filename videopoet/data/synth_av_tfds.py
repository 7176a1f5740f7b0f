"""TFDS builder `synth_av`: the examples of `synth_av.py`, in ArrayRecord.

Importing this module registers the builder, so that afterwards

  tfds.load("synth_av", data_dir=D, split="train")         # tf.data
  tfds.data_source("synth_av", data_dir=D, split="train")  # random access

read what `build(config, D)` wrote. Jobs read through
`videopoet.data.datasets.open_split("synth_av/tiny", D, "train")` instead:
left to itself, `tfds.data_source` *generates* the dataset into a directory
that has none (a mistyped D became a fresh build); `open_split` refuses,
naming `experiments.build_data`, the only job that builds. Builds record
their rates in `metadata.json` ({"fps", "sample_rate"}).

Builder configs: "tiny" (64 px, the default) and "base" (128 px); `build`
may use other split sizes, seed or held-out triples under those names (the
sizes are read back from the dataset's files), but a different resolution,
length, rate or object count needs a name of its own. Such a build is read
with `open_split("synth_av/NAME", D, split)` (or `tfds.data_source`), which
takes the features from the files; `tfds.load` cannot read it (TFDS
serves names that its code does not list from the files alone, and TFDS 4.9
has no tf.data reader for ArrayRecord: `tfds_util.ArrayRecordAsDataset`
supplies one to the registered names only).

Features are those of `synth_av.generate_example` (see its module docstring),
stored raw: large arrays as their bytes (fast to write and read; the
ArrayRecord writer compresses each record), small ones as plain tensors.
Examples are not shuffled: example i of a split is
`generate_example(config, split, i)`.
"""

import dataclasses
import json
import os
import time

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from videopoet import config_lib
from videopoet.data import synth_av
from videopoet.data import tfds_util

VERSION = tfds.core.Version("1.0.0")

# The registered configs; `configs/synth_av.py` spells out the same values.
PRESETS = {
    "tiny": synth_av.SynthAVConfig(),
    "base": synth_av.SynthAVConfig(
        resolution=128,
        train_size=20000,
        validation_size=500,
        test_size=500,
        test_heldout_size=500,
    ),
}
# TFDS sorts unshuffled examples by their key, an int below 2**128.
_KEY_SPACE = 2**128
# Fields that fix the features' shapes: a registered name pins them.
_SHAPE_FIELDS = (
    "resolution",
    "num_frames",
    "fps",
    "sample_rate",
    "max_objects",
)


@dataclasses.dataclass(eq=False)
class SynthAvBuilderConfig(tfds.core.BuilderConfig):
  """A TFDS builder config carrying the generator's `SynthAVConfig`."""

  synth: synth_av.SynthAVConfig = synth_av.SynthAVConfig()


def _builder_config(
    name: str, config: synth_av.SynthAVConfig
) -> SynthAvBuilderConfig:
  # The description records the full config: `build` compares it with an
  # existing build's to never silently reuse data made from another config.
  return SynthAvBuilderConfig(
      name=name,
      version=VERSION,
      description=json.dumps(dataclasses.asdict(config), sort_keys=True),
      synth=config,
  )


def _bytes_tensor(shape: tuple[int, ...], dtype) -> tfds.features.Tensor:
  """A tensor stored as its raw bytes: no per-value protobuf encoding."""
  return tfds.features.Tensor(
      shape=shape, dtype=dtype, encoding=tfds.features.Encoding.BYTES
  )


def features(cfg: synth_av.SynthAVConfig) -> tfds.features.FeaturesDict:
  """The TFDS features of examples generated with `cfg`."""
  t, r, n = cfg.num_frames, cfg.resolution, cfg.max_objects
  ids = lambda: tfds.features.Tensor(shape=(n,), dtype=np.int32)
  return tfds.features.FeaturesDict(
      {
          "video": _bytes_tensor((t, r, r, 3), np.uint8),
          "audio": _bytes_tensor((cfg.num_samples,), np.float32),
          "caption": tfds.features.Text(),
          "num_objects": tfds.features.Tensor(shape=(), dtype=np.int32),
          "object_mask": tfds.features.Tensor(shape=(n,), dtype=np.bool_),
          "shape": ids(),
          "colour": ids(),
          "size": ids(),
          "motion": ids(),
          "velocity": tfds.features.Tensor(shape=(n, 2), dtype=np.float32),
          "positions": _bytes_tensor((t, n, 2), np.float32),
          "bounces": _bytes_tensor((t, n), np.int32),
          "flow": _bytes_tensor((t, r, r, 2), np.float16),
          "depth": _bytes_tensor((t, r, r), np.uint8),
      }
  )


class SynthAv(tfds_util.ArrayRecordAsDataset, tfds.core.GeneratorBasedBuilder):
  """Coloured shapes that move, bounce and hum, with their ground truth."""

  VERSION = VERSION
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [_builder_config(k, v) for k, v in PRESETS.items()]
  DEFAULT_CONFIG_NAME = "tiny"
  # TFDS 4.9's own lookup of this path imports `importlib_resources`, a
  # backport that Python >= 3.9 does not install; nothing is downloaded, so
  # the path only has to point at this file.
  code_path = epath.Path(__file__)

  def __init__(self, *, file_format=None, **kwargs):
    # ArrayRecord unless told otherwise: `tfds.data_source` needs it.
    super().__init__(
        file_format=file_format or tfds.core.FileFormat.ARRAY_RECORD, **kwargs
    )

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config.synth
    return self.dataset_info_from_configs(
        features=features(cfg),
        description=__doc__.split("\n", 1)[0],
        # `metadata.json`: the clips' rates, for readers such as
        # `export_clips` (`datasets.media_rates`; older builds without it
        # record them in the config description).
        metadata=tfds.core.MetadataDict(
            fps=cfg.fps, sample_rate=cfg.sample_rate
        ),
        # The examples are already in random order; keeping them in index
        # order makes example i of a split its i-th record.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything is generated locally.
    cfg = self.builder_config.synth
    return {
        split: self._generate_examples(split)
        for split in synth_av.SPLITS
        if cfg.split_size(split)
    }

  def _generate_examples(self, split: str):
    cfg = self.builder_config.synth
    size = cfg.split_size(split)
    # With shuffling disabled TFDS orders the records by key and, past 1 GB,
    # spills them into 1,000 on-disk buckets by key / 2**128, then sorts each
    # bucket in memory. Keys 0..size-1 would all land in bucket 0 (the whole
    # split in memory); spreading them over [0, 2**128) keeps the order and
    # bounds memory to a thousandth of the split.
    stride = _KEY_SPACE // max(size, 1)
    for index in range(size):
      yield index * stride, synth_av.generate_example(cfg, split, index)


def _builder(
    config: synth_av.SynthAVConfig, config_name: str, data_dir: str
) -> SynthAv:
  """A `SynthAv` builder whose config `config_name` generates `config`."""

  # TFDS refuses a custom config named like a registered one, so the custom
  # config goes into an unregistered subclass of the same dataset name.
  class _SynthAvWith(SynthAv, skip_registration=True):
    name = SynthAv.name
    BUILDER_CONFIGS = [_builder_config(config_name, config)]
    DEFAULT_CONFIG_NAME = config_name

  return _SynthAvWith(config=config_name, data_dir=data_dir)


def _check_name(config: synth_av.SynthAVConfig, name: str):
  """A registered name keeps its shapes: `tfds.load` builds features by it."""
  preset = PRESETS.get(name)
  if preset is None:
    return
  for field in _SHAPE_FIELDS:
    want, got = getattr(preset, field), getattr(config, field)
    if want != got:
      raise config_lib.ConfigError(
          f"{field}={got!r} is not allowed under the builder config name "
          f"{name!r}, which fixes {field}={want!r}: give the build another "
          f"name (config.data.dataset), e.g. 'synth_av/{name}_{field}{got}'"
      )


class StaleBuildError(config_lib.ConfigError):
  """The data directory holds a build of the name from another config."""


def _differences(stored: dict, wanted: dict) -> str:
  """'seed: 0 -> 5, train_size: 2000 -> 8' for the fields that differ."""
  keys = sorted(set(stored) | set(wanted))
  return ", ".join(
      f"{k}: {stored.get(k, '(none)')!r} -> {wanted.get(k, '(none)')!r}"
      for k in keys
      if stored.get(k) != wanted.get(k)
  )


def _check_existing(builder: SynthAv):
  """Refuses to reuse a finished build made from a different config."""
  info_path = os.path.join(builder.data_dir, "dataset_info.json")
  if not os.path.exists(info_path):
    return
  with open(info_path) as f:
    stored = json.load(f).get("configDescription", "")
  wanted = builder.builder_config.description
  if stored == wanted:
    return
  try:
    diff = _differences(json.loads(stored), json.loads(wanted))
  except (TypeError, ValueError):
    diff = f"stored {stored!r}, wanted {wanted!r}"
  raise StaleBuildError(
      f"{builder.data_dir} holds a build made from another config ({diff});"
      " pass --overwrite (overwrite=True) to replace it, or build into"
      " another --config.data.data_dir or under another"
      " --config.data.dataset"
  )


def _bytes_under(path: str) -> int:
  return sum(
      os.path.getsize(os.path.join(root, f))
      for root, _, files in os.walk(path)
      for f in files
  )


def build(
    config: synth_av.SynthAVConfig,
    data_dir: str,
    name: str = "tiny",
    overwrite: bool = False,
) -> dict:
  """Generates the dataset into `data_dir`/synth_av/`name`/1.0.0.

  Args:
    config: what to generate.
    data_dir: the TFDS data directory.
    name: the builder config name; "tiny" and "base" fix the shapes (see the
      module docstring).
    overwrite: regenerate even if a build is already there.

  Returns:
    A summary: `name`, `path` (the dataset folder), `examples` per split,
    `seconds` spent, `bytes` on disk, `reused` (whether an existing build
    with this config was kept as is).

  Raises:
    ConfigError: `name` is registered with other shapes than `config`'s.
    StaleBuildError: `data_dir` holds a build of `name` from another config
      and `overwrite` is False (a ConfigError, hence a ValueError).
  """
  _check_name(config, name)
  builder = _builder(config, name, data_dir)
  reused = os.path.exists(builder.data_dir) and not overwrite
  if reused:
    _check_existing(builder)
  mode = (
      tfds.download.GenerateMode.FORCE_REDOWNLOAD
      if overwrite
      else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
  )
  start = time.perf_counter()
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(download_mode=mode)
  )
  seconds = time.perf_counter() - start
  return {
      "name": name,
      "path": str(builder.data_dir),
      "examples": {k: v.num_examples for k, v in builder.info.splits.items()},
      "seconds": round(seconds, 2),
      "bytes": _bytes_under(str(builder.data_dir)),
      "reused": reused,
  }
