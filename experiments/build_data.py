r"""Builds a TFDS dataset into `--config.data.data_dir`.

  python -m experiments.build_data --config=configs/synth_av.py:tiny \
      --config.data.data_dir=DIR
  python -m experiments.build_data --config=configs/synth_av.py:base \
      --config.data.data_dir=DIR --config.dataset.train_size=5000
  python -m experiments.build_data --config=configs/video_folder.py \
      --config.data.manual_dir=FOLDER --config.data.data_dir=DIR

The config file names the dataset (`configs/synth_av.py` or
`configs/video_folder.py`; default `configs/synth_av.py`, i.e. tiny);
`config.data.dataset` is the TFDS name it is built under
('synth_av/tiny'), `config.data.data_dir` the TFDS data directory every
other job then reads with the same key.

An existing build of the same name is reused when it is the one asked for
(same config; for video_folder also the same folder, whose files have not
changed since). Otherwise the job stops with a line saying what differs;
`--overwrite` deletes the build and makes it again.

This is the only job that writes datasets: the others read builds through
`videopoet.data.datasets.open_split` and stop, naming this command, when
there is none.
"""

import contextlib
import json
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import common
from videopoet import config_lib

DATASETS = ("synth_av", "video_folder")

_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Delete an existing build of the same name and build it again (needed"
    " when its config differs or, for video_folder, its folder changed).",
)
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    "configs/synth_av.py",
    "configs/synth_av.py:<arg> or configs/video_folder.py:<arg>.",
    lock_config=True,
)


def dataset_of(config) -> tuple[str, str]:
  """(builder, builder config) of `config.data.dataset`, e.g. ('synth_av',
  'tiny').

  Raises:
    config_lib.ConfigError: not '<builder>/<config>' of a buildable one.
  """
  name = config.data.dataset
  builder, _, variant = name.partition("/")
  if builder not in DATASETS or not variant or "/" in variant:
    raise config_lib.ConfigError(
        f"config.data.dataset={name!r} is not '<dataset>/<config>' of a"
        f" dataset this job builds ({', '.join(DATASETS)})"
    )
  return builder, variant


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
    config: the dataset's ConfigDict (`data.dataset`: its TFDS name,
      `dataset`: its builder's fields).
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
        cfg, data_dir, name=dataset_of(config)[1], overwrite=overwrite
    )
  if dataset == "video_folder":
    from videopoet.data import video_folder  # pylint: disable=g-import-not-at-top
    from videopoet.data import video_folder_tfds  # pylint: disable=g-import-not-at-top

    if not manual_dir:
      raise config_lib.ConfigError(
          "config.data.manual_dir is required for video_folder: the folder"
          " of clips (--config.data.manual_dir=FOLDER)"
      )
    cfg = config_lib.from_config(
        video_folder.VideoFolderConfig, config.dataset, "config.dataset"
    )
    return video_folder_tfds.build(
        cfg, data_dir, manual_dir, name=dataset_of(config)[1],
        overwrite=overwrite,
    )  # fmt: skip
  raise ValueError(f"unknown dataset {dataset!r}; known: {DATASETS}")


def main(argv):
  del argv
  common.init_runtime()
  config = _CONFIG.value
  dataset = dataset_of(config)[0]
  data_dir = config.data.data_dir
  if not data_dir:
    raise config_lib.ConfigError(
        "config.data.data_dir is empty: pass --config.data.data_dir=DIR, the"
        " TFDS data directory to build into"
    )
  # TFDS prints "Downloading and preparing..." to stdout; keep stdout for
  # the JSON summary, so scripts can read it.
  with contextlib.redirect_stdout(sys.stderr):
    summary = build(
        dataset,
        config,
        data_dir,
        config.data.get("manual_dir") or None,
        overwrite=_OVERWRITE.value,
    )
  logging.info("Built %s into %s", config.data.dataset, data_dir)
  print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
  common.run(main)
