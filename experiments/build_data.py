"""Builds a TFDS dataset into `--data_dir`.

  python -m experiments.build_data --dataset=synth_av --data_dir=DIR
  python -m experiments.build_data --dataset=synth_av --data_dir=DIR \
      --config=configs/synth_av.py:base --config.dataset.train_size=5000
  python -m experiments.build_data --dataset=video_folder \
      --manual_dir=FOLDER --data_dir=DIR [--config=configs/video_folder.py]

Without `--config`, the dataset's own config file is used with its default
variant (`configs/<dataset>.py`).
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
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Dataset config (default: configs/<dataset>.py).",
    lock_config=True,
)


def build(
    dataset: str, config, data_dir: str, manual_dir: str | None = None
) -> dict:
  """Builds `dataset` with `config` into `data_dir`; returns its summary."""
  if dataset == "synth_av":
    from videopoet.data import synth_av  # pylint: disable=g-import-not-at-top
    from videopoet.data import synth_av_tfds  # pylint: disable=g-import-not-at-top

    cfg = config_lib.from_config(
        synth_av.SynthAVConfig, config.dataset, "config.dataset"
    )
    return synth_av_tfds.build(cfg, data_dir, name=config.name)
  if dataset == "video_folder":
    from videopoet.data import video_folder  # pylint: disable=g-import-not-at-top

    if not manual_dir:
      raise config_lib.ConfigError(
          "--manual_dir is required for video_folder: the folder of clips"
      )
    cfg = config_lib.from_config(
        video_folder.VideoFolderConfig, config.dataset, "config.dataset"
    )
    return video_folder.build(cfg, data_dir, manual_dir, name=config.name)
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
    summary = build(_DATASET.value, config, _DATA_DIR.value, _MANUAL_DIR.value)
  logging.info("Built %s into %s", _DATASET.value, _DATA_DIR.value)
  print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
  flags.mark_flags_as_required(["dataset", "data_dir"])
  common.run(main)
