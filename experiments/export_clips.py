"""Writes examples of a built dataset as MP4 files with their soundtrack.

  python -m experiments.export_clips --dataset=synth_av --data_dir=DIR \
      --out_dir=OUT [--split=train] [--num=4]

Each clip becomes `OUT/<split>_<i>.mp4` (H.264 + AAC) and a line of
`OUT/captions.jsonl` (`{"file": ..., "caption": ...}`), the same format
`video_folder` reads, so exported clips can be rebuilt as a dataset.
"""

import json
import os

from absl import flags
from absl import logging
import numpy as np

from experiments import common
from videopoet.data import media

_DATASET = flags.DEFINE_string("dataset", "synth_av", "TFDS dataset name.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_SPLIT = flags.DEFINE_string("split", "train", "Split to read.")
_NUM = flags.DEFINE_integer("num", 4, "How many clips to write.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where the MP4s go.")
_FPS = flags.DEFINE_integer("fps", 8, "Frame rate of the clips.")
_SAMPLE_RATE = flags.DEFINE_integer("sample_rate", 16000, "Audio rate.")


def export(
    dataset: str,
    data_dir: str,
    split: str,
    num: int,
    out_dir: str,
    fps: int,
    sample_rate: int,
) -> list[str]:
  """Writes `num` clips of `dataset[split]`; returns the MP4 paths."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from videopoet.data import synth_av_tfds  # pylint: disable=g-import-not-at-top,unused-import
  from videopoet.data import video_folder  # pylint: disable=g-import-not-at-top,unused-import

  source = tfds.data_source(dataset, data_dir=data_dir, split=split)
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  with open(
      os.path.join(out_dir, "captions.jsonl"), "w", encoding="utf-8"
  ) as captions:
    for i in range(min(num, len(source))):
      ex = source[i]
      name = f"{split}_{i}.mp4"
      path = os.path.join(out_dir, name)
      audio = np.asarray(ex["audio"], np.float32) if "audio" in ex else None
      media.write_mp4(path, np.asarray(ex["video"]), fps, audio, sample_rate)
      caption = ex.get("caption", b"")
      caption = caption.decode() if isinstance(caption, bytes) else caption
      captions.write(json.dumps({"file": name, "caption": caption}) + "\n")
      logging.info("Wrote %s: %s", path, caption)
      paths.append(path)
  return paths


def main(argv):
  del argv
  common.init_runtime()
  export(
      _DATASET.value,
      _DATA_DIR.value,
      _SPLIT.value,
      _NUM.value,
      _OUT_DIR.value,
      _FPS.value,
      _SAMPLE_RATE.value,
  )


if __name__ == "__main__":
  flags.mark_flags_as_required(["data_dir", "out_dir"])
  common.run(main)
