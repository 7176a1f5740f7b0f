r"""Writes examples of a built dataset as MP4 files with their soundtrack.

  python -m experiments.export_clips --config=configs/export_clips.py \
      --config.data.data_dir=DIR --out_dir=OUT [--config.split=train] \
      [--config.num=4] [--overwrite]

Each clip becomes `OUT/<split>_<i>.mp4` (H.264 + AAC) and a line of
`OUT/captions.jsonl` (`{"file": ..., "caption": ...}`), the same format
`video_folder` reads, so exported clips can be rebuilt as a dataset, and
`OUT` may be a folder of clips already:

  * an existing `<split>_<i>.mp4` is never replaced without `--overwrite`:
    the export stops before writing anything and lists the files;
  * `captions.jsonl` is added to: its other lines are kept as they are, and
    a line for a file exported now replaces any earlier line for that file.

The clips play at the dataset's own frame and audio rates (from what its
build recorded, `videopoet.data.datasets.media_rates`), so the video lasts
as long as its soundtrack; `--config.fps` / `--config.sample_rate`
override them.
The dataset must be built (`experiments.build_data`): nothing is generated.
"""

import json
import os
import re

from absl import flags
from absl import logging
from ml_collections import config_flags
import numpy as np

from experiments import common
from videopoet import config_lib
from videopoet.data import datasets
from videopoet.data import media

CAPTIONS_FILE = "captions.jsonl"

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/export_clips.py", "configs/export_clips.py",
    lock_config=True,
)  # fmt: skip
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where the MP4s go.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace existing <split>_<i>.mp4 files (and their captions.jsonl lines).",
)


class OutputExistsError(config_lib.ConfigError, FileExistsError):
  """Files to be written exist and `overwrite` is off (nothing was written).

  A `ConfigError`, so that the job prints it as one line.
  """


def _entry_file(line: str) -> str | None:
  """The normalized "file" of a captions.jsonl line, None if it has none."""
  try:
    entry = json.loads(line)
  except json.JSONDecodeError:
    return None
  if isinstance(entry, dict) and isinstance(entry.get("file"), str):
    return os.path.normpath(entry["file"]).replace(os.sep, "/")
  return None


def update_captions(path: str, entries: list[dict[str, str]]) -> None:
  """Adds `entries` to the captions.jsonl at `path`, one per file.

  Lines of other files (and lines that are not entries) are kept as they
  are; an earlier line of a file in `entries` is dropped. Without such a
  line the new ones are appended; otherwise the file is rewritten (UTF-8)
  through a temporary file, so it is never left half written.

  Args:
    path: the captions.jsonl (created when missing).
    entries: {"file": relative path, "caption": text} each.
  """
  new = {_entry_file(json.dumps(e)) for e in entries}
  # ASCII JSON: a raw U+2028 would split a line for `str.splitlines`.
  lines = [json.dumps(e) + "\n" for e in entries]
  if not os.path.exists(path):
    old_text = ""
  else:
    from videopoet.data import video_folder  # pylint: disable=g-import-not-at-top

    with open(path, "rb") as f:
      old_text = video_folder.decode_text(f.read())
  old = re.findall(r"[^\n]*\n|[^\n]+$", old_text)  # Lines, kept as they are.
  kept = [line for line in old if _entry_file(line) not in new]
  if len(kept) == len(old):  # Nothing replaced: append.
    with open(path, "a", encoding="utf-8") as f:
      if old_text and not old_text.endswith("\n"):
        f.write("\n")
      f.writelines(lines)
    return
  if kept and not kept[-1].endswith("\n"):
    kept[-1] += "\n"
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(kept + lines)
  os.replace(tmp, path)


def export(
    dataset: str,
    data_dir: str,
    split: str,
    num: int,
    out_dir: str,
    fps: float | None = None,
    sample_rate: int | None = None,
    overwrite: bool = False,
) -> list[str]:
  """Writes `num` clips of `dataset[split]`; returns the MP4 paths.

  Args:
    dataset: TFDS name of a built dataset, e.g. 'synth_av/tiny'.
    data_dir: its TFDS data directory.
    split: the split to read.
    num: how many clips (the first ones; fewer if the split is smaller).
    out_dir: where the MP4s and captions.jsonl go (created if needed).
    fps: frame rate of the MP4s; None: the dataset's.
    sample_rate: audio rate of the MP4s; None: the dataset's.
    overwrite: replace existing MP4s of the same names.

  Returns:
    The paths of the MP4s written.

  Raises:
    DatasetNotFoundError: `dataset` is not built in `data_dir`.
    OutputExistsError: some MP4s exist and `overwrite` is False; nothing
      was written.
  """
  source = datasets.open_split(dataset, data_dir, split)
  if fps is None or sample_rate is None:
    rates = datasets.media_rates(source.dataset_info)
    logging.info(
        "%s: %g fps, %d Hz (from %s)",
        dataset,
        rates.fps,
        rates.sample_rate,
        rates.origin,
    )
    fps = rates.fps if fps is None else fps
    sample_rate = rates.sample_rate if sample_rate is None else sample_rate
  names = [f"{split}_{i}.mp4" for i in range(min(num, len(source)))]
  existing = [n for n in names if os.path.exists(os.path.join(out_dir, n))]
  if existing and not overwrite:
    raise OutputExistsError(
        f"{len(existing)} of the clips to export exist in out_dir {out_dir}:"
        f" {', '.join(existing)}; nothing was written. Pass --overwrite to"
        " replace them, or choose another --out_dir or --split"
    )
  os.makedirs(out_dir, exist_ok=True)
  paths, entries = [], []
  for i, name in enumerate(names):
    ex = source[i]
    path = os.path.join(out_dir, name)
    audio = np.asarray(ex["audio"], np.float32) if "audio" in ex else None
    media.write_mp4(path, np.asarray(ex["video"]), fps, audio, sample_rate)
    caption = ex.get("caption", b"")
    caption = caption.decode() if isinstance(caption, bytes) else caption
    entries.append({"file": name, "caption": caption})
    logging.info("Wrote %s: %s", path, caption)
    paths.append(path)
  update_captions(os.path.join(out_dir, CAPTIONS_FILE), entries)
  return paths


def main(argv):
  del argv
  common.init_runtime()
  config = _CONFIG.value
  data = common.built_data(config)
  export(
      data.dataset,
      data.data_dir,
      config.split,
      config.num,
      _OUT_DIR.value,
      config.fps or None,
      config.sample_rate or None,
      overwrite=_OVERWRITE.value,
  )


if __name__ == "__main__":
  flags.mark_flags_as_required(["out_dir"])
  common.run(main)
