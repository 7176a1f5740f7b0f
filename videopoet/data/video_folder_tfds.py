"""The `video_folder` TFDS builder: `build` turns a folder of videos into a
dataset (ArrayRecord or TFRecord) with the examples of `video_folder`,
refusing a stale build (another folder, config or changed files) and
writing the build report beside the data.
"""

import dataclasses
import json
import os
from typing import Any

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from videopoet import config_lib
from videopoet.data import tfds_util
from videopoet.data import video_folder


@dataclasses.dataclass(eq=False)
class VideoFolderBuilderConfig(tfds.core.BuilderConfig):
  """A named `video_folder.VideoFolderConfig`."""

  dataset: video_folder.VideoFolderConfig = dataclasses.field(
      default_factory=video_folder.VideoFolderConfig
  )


def features(
    config: video_folder.VideoFolderConfig,
) -> tfds.features.FeaturesDict:
  """The features of a clip; tensors are stored as raw bytes, not PNG."""
  clip = (config.num_frames, config.height, config.width, 3)
  raw = tfds.features.Encoding.BYTES
  return tfds.features.FeaturesDict(
      {
          "video": tfds.features.Tensor(
              shape=clip, dtype=np.uint8, encoding=raw
          ),
          "audio": tfds.features.Tensor(
              shape=(config.clip_samples,), dtype=np.float32, encoding=raw
          ),
          "has_audio": tfds.features.Scalar(dtype=np.bool_),
          "caption": tfds.features.Text(),
          "source": tfds.features.Text(),
          "clip_index": tfds.features.Scalar(dtype=np.int32),
          "start_time": tfds.features.Scalar(dtype=np.float32),
      }
  )


class VideoFolder(
    tfds_util.ArrayRecordAsDataset, tfds.core.GeneratorBasedBuilder
):
  """The user's clips, with audio and captions; see the module docstring."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put your video files (.mp4, .mov, .webm, .mkv, .avi, ...; sub-folders"
      " allowed) in a folder and build with `python -m"
      " experiments.build_data --config=configs/video_folder.py"
      " --config.data.manual_dir=FOLDER --config.data.data_dir=DIR`."
      " Captions, optional: a captions.jsonl with lines"
      ' {"file": "name.mp4", "caption": "..."} in that folder, or a name.txt'
      " next to each name.mp4."
  )
  BUILDER_CONFIGS = [
      VideoFolderBuilderConfig(
          name="square",
          description="128x128 clips (VideoPoet's square).",
          dataset=video_folder.VideoFolderConfig(),
      ),
      VideoFolderBuilderConfig(
          name="portrait",
          description="Height 224, width 128 (VideoPoet's portrait).",
          dataset=video_folder.VideoFolderConfig(
              height=video_folder.PORTRAIT_SIZE[0],
              width=video_folder.PORTRAIT_SIZE[1],
          ),
      ),
  ]
  DEFAULT_CONFIG_NAME = "square"
  # TFDS 4.9 finds this path with `importlib_resources`, a backport that
  # Python >= 3.9 does not install; nothing is downloaded, so it only has to
  # name this file.
  code_path = epath.Path(__file__)

  # The report of the last generation run by this builder object, if any.
  report: video_folder.BuildReport | None = None

  def __init__(
      self, *, dataset: video_folder.VideoFolderConfig | None = None, **kwargs
  ):
    """Takes TFDS's arguments, and `dataset` to override the named config's.

    TFDS allows no custom config under a registered name, so a config from
    `--config.dataset.*` comes in here; the build is stored under `name`.
    """
    self._dataset = dataset  # Read by `_info`, which TFDS calls in __init__.
    super().__init__(**kwargs)

  @property
  def dataset_config(self) -> video_folder.VideoFolderConfig:
    """How files become clips in this build."""
    return self._dataset or self.builder_config.dataset

  def _info(self) -> tfds.core.DatasetInfo:
    stored = None if self._dataset else self._stored_features()
    cfg = self.dataset_config
    return tfds.core.DatasetInfo(
        builder=self,
        description=video_folder.__doc__.split("\n\n")[1],
        features=stored or features(cfg),
        # `metadata.json`, written by `build` (which passes `dataset`): the
        # clips' rates, for readers such as `export_clips`
        # (`datasets.media_rates`; builds without it record them in
        # build_report.json). Read back from the build's files, not from
        # the named config, whose rates a build may have changed.
        metadata=(
            tfds.core.MetadataDict(fps=cfg.fps, sample_rate=cfg.sample_rate)
            if self._dataset
            else None
        ),
    )

  def _stored_features(self) -> tfds.features.FeaturesDict | None:
    """The features of the build on disk, if any.

    Loading then works whatever sizes the build used, not only the named
    config's defaults.
    """
    if (epath.Path(self.data_dir) / "features.json").exists():
      return tfds.features.FeatureConnector.from_config(self.data_dir)
    return None

  def _split_generators(self, dl_manager):
    folder = os.fspath(dl_manager.manual_dir)
    self.report = video_folder.BuildReport(
        name=self.builder_config.name,
        manual_dir=os.path.abspath(folder),
        config=self.dataset_config,
        file_format=self.info.file_format.value,
        # Before reading: a file changed during the build shows as changed.
        contents=video_folder.folder_contents(folder, self.dataset_config),
    )
    return {video_folder.SPLIT: self._generate_examples(folder)}

  def _generate_examples(self, folder):
    yield from video_folder.generate_examples(
        folder, self.dataset_config, self.report
    )


class StaleBuildError(config_lib.ConfigError):
  """An existing build is not the one asked for; `--overwrite` rebuilds it."""


class BuildError(RuntimeError):
  """A build that wrote no clip; `report` says why each file was skipped."""

  def __init__(self, message: str, report: dict[str, Any]):
    super().__init__(message)
    self.report = report


def build(
    config: video_folder.VideoFolderConfig,
    data_dir: str,
    manual_dir: str,
    name: str = "square",
    overwrite: bool = False,
    file_format: str = "array_record",
) -> dict[str, Any]:
  """Builds `video_folder/<name>` from the videos in `manual_dir`.

  A build already in `data_dir` is reused only when its report says it was
  made from this folder, config and file format, and the folder's videos and
  captions are the ones it recorded (same names, sizes and modification
  times). Otherwise it is refused with `StaleBuildError`, which lists what
  differs (files added, removed or changed; config fields) and names
  `--overwrite`; `overwrite=True` deletes and rebuilds it. A build made
  before reports recorded the folder's contents is refused too (stale or
  not, that cannot be told): rebuild it once with `overwrite=True`.

  Args:
    config: how files become clips (sizes may differ from the named
      config's defaults: the stored features follow the build).
    data_dir: the TFDS data dir.
    manual_dir: the folder of videos.
    name: the builder config, 'square' or 'portrait'.
    overwrite: delete and rebuild an existing build.
    file_format: 'array_record' (random access: `tfds.data_source`, Grain)
      or 'tfrecord' (`tfds.load` as a `tf.data.Dataset`; TFDS 4.9 reads
      ArrayRecord only through `tfds.data_source`).

  Returns:
    {'data_dir': the dataset's version dir, 'report_path': its
    build_report.json, 'report_text_path': build_report.txt, 'report': the
    report's content, 'reused': whether an existing build was kept}.

  Raises:
    ConfigError: unknown `name` or `file_format`.
    StaleBuildError: an existing build differs from the one asked for, or
      its folder changed since, and `overwrite` is False.
    FileNotFoundError: `manual_dir` is not a folder.
    BuildError: no file gave a clip (the report is in the exception).
  """
  names = [c.name for c in VideoFolder.BUILDER_CONFIGS]
  if name not in names:
    raise config_lib.ConfigError(
        f"name={name!r} is not allowed: it must be one of {names}"
    )
  if file_format not in video_folder.FILE_FORMATS:
    raise config_lib.ConfigError(
        f"file_format={file_format!r} is not allowed: it must be one of"
        f" {list(video_folder.FILE_FORMATS)}"
    )
  if not os.path.isdir(manual_dir):
    raise FileNotFoundError(f"manual_dir {manual_dir!r} is not a folder")
  builder = VideoFolder(data_dir=data_dir, config=name, dataset=config)
  if epath.Path(builder.data_dir).exists():
    existing = _read_report(builder.data_dir)
    stale = _why_stale(existing, config, manual_dir, file_format)
    if not overwrite and not stale:
      return _result(builder.data_dir, existing, reused=True)
    if not overwrite:
      raise StaleBuildError(
          f"{builder.data_dir} is not the build asked for: {'; '.join(stale)}."
          " Pass --overwrite (overwrite=True) to rebuild it, or build into"
          " another --config.data.data_dir"
      )
    epath.Path(builder.data_dir).rmtree()
    # A fresh builder: the old one loaded the old build's DatasetInfo.
    builder = VideoFolder(data_dir=data_dir, config=name, dataset=config)
  _prepare(builder, manual_dir, file_format)
  report = builder.report.to_dict()
  _write_report(builder.data_dir, report)
  return _result(builder.data_dir, report, reused=False)


def _prepare(builder: VideoFolder, manual_dir: str, file_format: str) -> None:
  """Runs TFDS's build; an empty result raises `BuildError` with the report."""
  download_config = tfds.download.DownloadConfig(
      manual_dir=manual_dir,
      # Statistics would read every clip back once more, for nothing we use.
      compute_stats=tfds.download.ComputeStatsMode.SKIP,
  )
  try:
    builder.download_and_prepare(
        download_config=download_config, file_format=file_format
    )
  except AssertionError:
    report = builder.report and builder.report.to_dict()
    if not report or report["clips_written"]:
      raise
    raise BuildError(
        f"no clips from {manual_dir}:\n{video_folder.report_text(report)}",
        report,
    ) from None


def _why_stale(
    report: dict[str, Any] | None,
    config: video_folder.VideoFolderConfig,
    manual_dir: str,
    file_format: str,
) -> list[str]:
  """Why an existing build (by its report) is not the one asked for.

  Returns:
    One sentence per difference; empty when the build can be reused.
  """
  if report is None:
    return [
        f"it has no {video_folder.REPORT_JSON}, so what it was built from is unknown"
    ]
  why = []
  folder = os.path.abspath(manual_dir)
  if report.get("manual_dir") != folder:
    why.append(f"it was built from {report.get('manual_dir')}, not {folder}")
  if report.get("file_format") != file_format:
    why.append(
        f"file_format {report.get('file_format')!r}, not {file_format!r}"
    )
  stored, wanted = report.get("config") or {}, video_folder.config_dict(config)
  fields = [
      f"{k} {stored.get(k)!r} -> {wanted.get(k)!r}"
      for k in sorted(set(stored) | set(wanted))
      if stored.get(k) != wanted.get(k)
  ]
  if fields:
    why.append("another config (" + ", ".join(fields) + ")")
  if why:
    return why
  if "contents" not in report:
    return [
        f"it was built before {video_folder.REPORT_JSON} recorded the folder's files, so"
        f" whether {folder} changed since is unknown"
    ]
  changes = video_folder.contents_changes(
      report["contents"], video_folder.folder_contents(manual_dir, config)
  )
  for kind, names in changes.items():
    if names:
      why.append(f"{kind} since the build: {video_folder.listing(names)}")
  return why


def _read_report(version_dir: str) -> dict[str, Any] | None:
  path = epath.Path(version_dir) / video_folder.REPORT_JSON
  if not path.exists():
    return None
  return json.loads(path.read_text(encoding="utf-8"))


def _write_report(version_dir: str, report: dict[str, Any]) -> None:
  version_dir = epath.Path(version_dir)
  (version_dir / video_folder.REPORT_JSON).write_text(
      json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
  )
  (version_dir / video_folder.REPORT_TXT).write_text(
      video_folder.report_text(report), encoding="utf-8"
  )


def _result(
    version_dir: str, report: dict[str, Any], reused: bool
) -> dict[str, Any]:
  return {
      "data_dir": os.fspath(version_dir),
      "report_path": os.path.join(version_dir, video_folder.REPORT_JSON),
      "report_text_path": os.path.join(version_dir, video_folder.REPORT_TXT),
      "report": report,
      "reused": reused,
  }
