"""Opens a built TFDS dataset for reading; never builds one.

Every job that reads data (`tokenize_data`, the tokenizer trainers,
`export_clips`, `train_text_tokenizer`) goes through `open_split`:

  source = datasets.open_split("synth_av/tiny", data_dir, "train")
  rates = datasets.media_rates(source.dataset_info)   # fps, sample_rate

`tfds.data_source` on its own would generate `synth_av` into any directory
it is pointed at (a mistyped data dir silently became a fresh dataset)
and asks for a `--manual_dir` flag that no reading job has. `open_split`
looks for a finished build first and otherwise raises
`DatasetNotFoundError`, naming the directory it looked in and the
`python -m experiments.build_data ...` command that makes the build; it
creates nothing on disk. Only `experiments.build_data` builds data.
"""

import dataclasses
import json
import os
import re
from typing import Any

from absl import logging
from etils import epath

from videopoet import config_lib

# The datasets `experiments.build_data` makes, with their config files.
BUILDABLE = ("synth_av", "video_folder")
# The builder config read when a name has none (each builder's default).
DEFAULT_CONFIGS = {"synth_av": "tiny", "video_folder": "square"}
# Config names with a variant of their own in `configs/<dataset>.py`.
_CONFIG_VARIANTS = {
    "synth_av": ("tiny", "base"),
    "video_folder": ("square", "portrait"),
}
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_INFO = "dataset_info.json"
_METADATA = "metadata.json"
_REPORT = "build_report.json"  # video_folder's; records its config.
# The audio rate assumed when a build records none (both builders' default).
DEFAULT_SAMPLE_RATE = 16000


class DatasetNotFoundError(config_lib.ConfigError, FileNotFoundError):
  """No finished build of the dataset in the data directory.

  A `ConfigError` (jobs print it as one line, no traceback: the usual cause
  is a wrong `config.data.data_dir` or dataset name) and a `FileNotFoundError`.
  """


@dataclasses.dataclass(frozen=True)
class DatasetName:
  """A TFDS name 'dataset[/config][:version]', split into its parts.

  Attributes:
    dataset: the dataset, e.g. 'synth_av'.
    config: the builder config, e.g. 'tiny'; None when the name has none.
    version: e.g. '1.0.0'; None when the name has none.
  """

  dataset: str
  config: str | None = None
  version: str | None = None

  @classmethod
  def parse(cls, name: str) -> "DatasetName":
    """Splits `name`; raises ConfigError when it is not a TFDS name."""
    found = re.fullmatch(r"([\w-]+)(?:/([\w.-]+))?(?::([\d.]+))?", name or "")
    if not found:
      raise config_lib.ConfigError(
          f"dataset name {name!r} is not allowed: it must be"
          " 'dataset[/config][:version]', e.g. 'synth_av/tiny'"
      )
    return cls(*found.groups())

  @property
  def config_or_default(self) -> str | None:
    return self.config or DEFAULT_CONFIGS.get(self.dataset)

  def __str__(self) -> str:
    name = self.dataset
    if self.config_or_default:
      name += f"/{self.config_or_default}"
    return name + (f":{self.version}" if self.version else "")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """`config.data` of the jobs that read a built dataset as it is
  (tokenize_data, evaluate, export_clips, train_text_tokenizer); the
  training jobs' `data` sections start with the same two keys.

  Attributes:
    dataset: TFDS name with its builder config, e.g. 'synth_av/tiny'.
    data_dir: the TFDS data directory `experiments.build_data` built it
      into ('': TFDS's default).
  """

  dataset: str = "synth_av/tiny"
  data_dir: str = ""


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> str:
  """`data_dir`, or TFDS's default ($TFDS_DATA_DIR, ~/tensorflow_datasets)."""
  if data_dir:
    return os.fspath(data_dir)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  return os.fspath(tfds.core.constants.get_default_data_dir())


def build_command(name: str | DatasetName, data_dir: str) -> str:
  """The `experiments.build_data` command line that builds `name`."""
  if isinstance(name, str):
    name = DatasetName.parse(name)
  config = name.config
  variant = ""
  if config and config != DEFAULT_CONFIGS.get(name.dataset):
    variant = ":" + (
        config if config in _CONFIG_VARIANTS.get(name.dataset, ())
        else "<variant>"
    )
  parts = [
      "python -m experiments.build_data",
      f"--config=configs/{name.dataset}.py{variant}",
      f"--config.data.data_dir={data_dir}",
  ]
  if name.dataset == "video_folder":
    parts.append("--config.data.manual_dir=FOLDER")
  if variant == ":<variant>":
    parts.append(
        f"--config.data.dataset={name.dataset}/{config}"
        " --config.dataset.<field>=<value> (the settings it was built with)"
    )
  return " ".join(parts)


def _is_dir(path: epath.Path) -> bool:
  try:
    return path.is_dir()
  except OSError:
    return False


def _version_dirs(config_dir: epath.Path) -> list[epath.Path]:
  """Finished builds (version folders with dataset_info.json), newest last."""
  if not _is_dir(config_dir):
    return []
  found = [
      p
      for p in config_dir.iterdir()
      if _VERSION.match(p.name) and (p / _INFO).exists()
  ]
  return sorted(found, key=lambda p: tuple(int(x) for x in p.name.split(".")))


def builds_in(data_dir: str, dataset: str) -> list[str]:
  """The finished builds of `dataset` in `data_dir`: 'dataset/config:ver'."""
  root = epath.Path(data_dir) / dataset
  if not _is_dir(root):
    return []
  return [
      f"{dataset}/{config.name}:{version.name}"
      for config in sorted(root.iterdir(), key=lambda p: p.name)
      if not config.name.startswith(".")
      for version in _version_dirs(config)
  ]


def find_build(name: str, data_dir: str | None) -> epath.Path:
  """The version folder of the finished build of `name` in `data_dir`.

  Args:
    name: 'dataset[/config][:version]'; without a config, synth_av's 'tiny'
      and video_folder's 'square' (the builders' defaults).
    data_dir: the TFDS data directory; empty means TFDS's default.

  Returns:
    `<data_dir>/<dataset>/<config>/<version>`, which holds dataset_info.json.

  Raises:
    DatasetNotFoundError: there is none; the message names where it looked,
      the builds that are there instead and the command that builds it.
  """
  parsed = DatasetName.parse(name)
  root = resolve_data_dir(data_dir)
  config = parsed.config_or_default
  base = epath.Path(root) / parsed.dataset
  if config is None:  # Another TFDS dataset, without builder configs.
    versions = _version_dirs(base)
  else:
    versions = _version_dirs(base / config)
  if parsed.version:
    versions = [v for v in versions if v.name == parsed.version]
  if versions:
    return versions[-1]
  where = base / config if config else base
  if not _is_dir(epath.Path(root)):
    state = "the directory does not exist"
  else:
    others = builds_in(root, parsed.dataset)
    state = (
        "builds there: " + ", ".join(others)
        if others
        else f"no finished build under {where}"
    )
  if parsed.dataset in BUILDABLE:
    how = f"build it with: {build_command(parsed, root)}"
  else:
    how = (
        "experiments.build_data builds only "
        + ", ".join(BUILDABLE)
        + "; prepare this dataset with TFDS first"
    )
  raise DatasetNotFoundError(
      f"dataset {parsed} is not built in data_dir {root} ({state}); {how}"
  )


def _split_names(split: str) -> list[str]:
  """The split names in a TFDS split spec: 'train[:10]+test' -> both."""
  return [part.split("[", 1)[0].strip() for part in split.split("+")]


def _read_json(path: epath.Path) -> dict[str, Any] | None:
  try:
    if not path.exists():
      return None
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def check_split(name: str, version_dir: epath.Path, split: str) -> None:
  """Raises ConfigError when `split` names a split the build lacks."""
  info = _read_json(version_dir / _INFO) or {}
  splits = [s.get("name") for s in info.get("splits", [])]
  unknown = [s for s in _split_names(split) if s not in splits]
  if splits and unknown:
    raise config_lib.ConfigError(
        f"split {unknown[0]!r} is not in dataset {name} at {version_dir}: the"
        f" splits there are {', '.join(splits)}"
    )


def _register(dataset: str) -> None:
  """Imports our builders so that TFDS knows their names and features."""
  # pylint: disable=g-import-not-at-top,unused-import
  if dataset == "synth_av":
    from videopoet.data import synth_av_tfds
  elif dataset == "video_folder":
    from videopoet.data import video_folder_tfds
  # pylint: enable=g-import-not-at-top,unused-import


def open_split(name: str, data_dir: str | None, split: str, **kwargs):
  """The random-access source of a built split; never builds anything.

  Args:
    name: TFDS name 'dataset[/config][:version]', e.g. 'synth_av/tiny'.
    data_dir: the TFDS data directory (empty: TFDS's default).
    split: the split, with TFDS's slicing if wanted ('train[:100]').
    **kwargs: more arguments of `tfds.data_source` (e.g.
      `deserialize_method`).

  Returns:
    `tfds.data_source(name, data_dir=..., split=..., download=False)`.

  Raises:
    DatasetNotFoundError: no finished build of `name` in `data_dir`; the
      message names the folder looked in and the build_data command.
    ConfigError: the build has no split `split` (the message lists those it
      has), or `name` is not a TFDS name.
  """
  version_dir = find_build(name, data_dir)
  check_split(name, version_dir, split)
  parsed = DatasetName.parse(name)
  _register(parsed.dataset)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  return tfds.data_source(
      name,
      data_dir=resolve_data_dir(data_dir),
      split=split,
      download=False,
      **kwargs,
  )


@dataclasses.dataclass(frozen=True)
class MediaRates:
  """The frame and audio rates of a dataset's clips.

  Attributes:
    fps: video frames per second.
    sample_rate: audio samples per second.
    origin: where they were read from (for logs).
  """

  fps: float
  sample_rate: int
  origin: str


def _rates_in(record: dict[str, Any] | None) -> tuple[float, int] | None:
  if not isinstance(record, dict):
    return None
  fps, rate = record.get("fps"), record.get("sample_rate")
  if isinstance(fps, (int, float)) and isinstance(rate, int) and fps > 0:
    return fps, rate
  return None


def media_rates(info) -> MediaRates:
  """The fps and sample rate of a built dataset, from what the build stored.

  Looked up, in turn: `metadata.json` (builds of `synth_av` and
  `video_folder` record {"fps", "sample_rate"} there), the synth_av config
  in the dataset description (older synth_av builds), the config in
  `build_report.json` (older video_folder builds), and last the shapes:
  a clip's frames last as long as its audio, so fps = frames x sample_rate /
  samples, at the 16 kHz both builders default to.

  Args:
    info: the build's `tfds.core.DatasetInfo` (e.g. `source.dataset_info`).

  Returns:
    The rates and where they came from.

  Raises:
    ValueError: no record and no `video` + `audio` features to derive them.
  """
  version_dir = epath.Path(info.data_dir)
  found = _rates_in(_read_json(version_dir / _METADATA))
  if found:
    return MediaRates(*found, origin=str(version_dir / _METADATA))
  try:
    found = _rates_in(json.loads(info.config_description or ""))
  except (TypeError, ValueError):
    found = None
  if found:
    return MediaRates(*found, origin="the dataset's config description")
  report = _read_json(version_dir / _REPORT)
  found = _rates_in((report or {}).get("config"))
  if found:
    return MediaRates(*found, origin=str(version_dir / _REPORT))
  features = info.features
  if "video" in features and "audio" in features:
    frames = features["video"].shape[0]
    samples = features["audio"].shape[0]
    if frames and samples:
      fps = frames * DEFAULT_SAMPLE_RATE / samples
      logging.warning(
          "%s records no frame rate: %.4g fps from %d frames over %d audio"
          " samples at %d Hz",
          version_dir,
          fps,
          frames,
          samples,
          DEFAULT_SAMPLE_RATE,
      )
      return MediaRates(
          fps, DEFAULT_SAMPLE_RATE, origin="the clip and audio lengths"
      )
  raise ValueError(
      f"{version_dir} records no fps or sample_rate and has no video and"
      " audio features to derive them from"
  )
