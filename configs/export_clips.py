r"""Writing clips of a built dataset as MP4s (`experiments/export_clips.py`).

  python -m experiments.export_clips --config=configs/export_clips.py \
      --config.data.data_dir=DIR --out_dir=OUT \
      [--config.split=test] [--config.num=6] [--overwrite]

`--out_dir` (where the MP4s and captions.jsonl go) and `--overwrite` are
flags, as a training job's `--workdir`; what is read is the config.
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg:
    raise ValueError(f"configs/export_clips.py takes no arg, got {arg!r}")
  c = ml_collections.ConfigDict()
  # The built dataset (`videopoet.data.datasets.DataConfig`).
  c.data = common.data("synth_av/tiny")
  c.split = "train"  # The split to read.
  c.num = 4  # How many clips (the first ones of the split).
  # Frame and audio rates of the MP4s (0: the dataset's own).
  c.fps = 0.0
  c.sample_rate = 0
  return c
