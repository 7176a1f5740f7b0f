"""Builds a TFDS dataset into `--data_dir`.

  python -m experiments.build_data --dataset=synth_av --data_dir=DIR
  python -m experiments.build_data --dataset=synth_av --data_dir=DIR \
      --config=configs/synth_av.py:base --config.dataset.train_size=5000
  python -m experiments.build_data --dataset=video_folder \
      --manual_dir=FOLDER --data_dir=DIR [--config=configs/video_folder.py]

Without `--config`, the dataset's own config file is used with its default
variant (`configs/<dataset>.py`).

An existing build of the same name is reused when it is the one asked for
(same config; for video_folder also the same folder, whose files have not
changed since). Otherwise the job stops with a line saying what differs;
`--overwrite` deletes the build and makes it again.

This is the only job that writes datasets: the others read builds through
`videopoet.data.datasets.open_split` and stop, naming this command, when
there is none.
"""

import contextlib
import importlib
import json
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import common
from videopoet import config_lib

DATASETS = ("synth_av", "video_folder")

_DATASET = flags.DEFINE_enum("dataset", None, DATASETS, "Dataset to build.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Folder of the user's clips (video_folder)."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Delete an existing build of the same name and build it again (needed"
    " when its config differs or, for video_folder, its folder changed).",
)
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Dataset config (default: configs/<dataset>.py).",
    lock_config=True,
)


def build(
    dataset: str,
    config,
    data_dir: str,
    manual_dir: str | None = None,
    overwrite: bool = False,
) -> dict:
  """Builds `dataset` with `config` into `data_dir`; returns its summary.

  Args:
    dataset: 'synth_av' or 'video_folder'.
    config: the dataset's ConfigDict (`name`, `dataset`).
    data_dir: the TFDS data directory.
    manual_dir: the folder of clips (video_folder).
    overwrite: rebuild an existing build of the same name.

  Returns:
    The builder's summary (`synth_av_tfds.build`, `video_folder_tfds.build`).
  """
  if dataset == "synth_av":
    from videopoet.data import synth_av  # pylint: disable=g-import-not-at-top
    from videopoet.data import synth_av_tfds  # pylint: disable=g-import-not-at-top

    cfg = config_lib.from_config(
        synth_av.SynthAVConfig, config.dataset, "config.dataset"
    )
    return synth_av_tfds.build(
        cfg, data_dir, name=config.name, overwrite=overwrite
    )
  if dataset == "video_folder":
    from videopoet.data import video_folder  # pylint: disable=g-import-not-at-top
    from videopoet.data import video_folder_tfds  # pylint: disable=g-import-not-at-top

    if not manual_dir:
      raise config_lib.ConfigError(
          "--manual_dir is required for video_folder: the folder of clips"
      )
    cfg = config_lib.from_config(
        video_folder.VideoFolderConfig, config.dataset, "config.dataset"
    )
    return video_folder_tfds.build(
        cfg, data_dir, manual_dir, name=config.name, overwrite=overwrite
    )
  raise ValueError(f"unknown dataset {dataset!r}; known: {DATASETS}")


def main(argv):
  del argv
  common.init_runtime()
  config = _CONFIG.value
  if config is None:
    config = importlib.import_module(f"configs.{_DATASET.value}").get_config()
  # TFDS prints "Downloading and preparing..." to stdout; keep stdout for
  # the JSON summary, so scripts can read it.
  with contextlib.redirect_stdout(sys.stderr):
    summary = build(
        _DATASET.value,
        config,
        _DATA_DIR.value,
        _MANUAL_DIR.value,
        overwrite=_OVERWRITE.value,
    )
  logging.info("Built %s into %s", _DATASET.value, _DATA_DIR.value)
  print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
  flags.mark_flags_as_required(["dataset", "data_dir"])
  common.run(main)
