"""Audio sources for the codec: any TFDS dataset with `audio`, or WAV files.

Both give random-access records `{'audio': float32 [clip_samples]}` for
`train_lib.data.batched_iterator`:

  * `source='tfds'`: a built split (`videopoet.data.datasets.open_split`,
    which never builds: a missing build is `DatasetNotFoundError`) of a
    dataset with an `audio` field (`synth_av`, `video_folder` builds);
  * `source='wav_folder'`: every audio file under a folder (decoded with
    PyAV, resampled to the codec's rate, mono), cut into consecutive clips of
    `clip_samples` (the last partial clip is zero-padded when at least half
    full, dropped otherwise); `split` picks files by a stable hash of their
    name (`test`: 10 %, `train`: the rest, `all`: every file).
"""

import dataclasses
import glob
import os
import zlib
from typing import Literal

import numpy as np

from videopoet.data import media

_AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".mp4", ".webm")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Codec data fields (`config.data`).

  Attributes:
    source: 'tfds' (a TFDS dataset with `audio`) or 'wav_folder'.
    dataset: TFDS name with its builder config, e.g. 'synth_av/tiny'.
    data_dir: TFDS data dir ('tfds') or the folder of audio files.
    train_split: split to train on.
    eval_split: split of the evaluation clips.
    clip_samples: samples per clip (wav_folder; 2.125 s at 16 kHz).
    segment_samples: random crop trained on, a multiple of the hop and at
      least 2,048 samples (the largest mel window).
    batch_size: clips per step over all processes (the global batch).
    eval_clips: clips evaluated (first of eval_split).
    eval_levels: numbers of RVQ levels evaluated (0 means all).
  """

  source: Literal["tfds", "wav_folder"] = "tfds"
  dataset: str = "synth_av/tiny"
  data_dir: str = ""
  train_split: str = "train"
  eval_split: str = "test"
  clip_samples: int = 34000
  segment_samples: int = 16000
  batch_size: int = 16
  eval_clips: int = 16
  eval_levels: tuple[int, ...] = (1, 2, 4, 0)


def wav_folder_clips(
    folder: str, split: str, clip_samples: int, sample_rate: int
) -> list[dict[str, np.ndarray]]:
  """Records `{'audio': [clip_samples]}` cut from the files under folder."""
  files = sorted(
      f
      for f in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
      if f.lower().endswith(_AUDIO_EXT)
  )
  if split not in ("train", "test", "all"):
    raise ValueError(f"wav_folder split {split!r}: use train, test or all")
  if split != "all":
    files = [
        f
        for f in files
        if (zlib.crc32(os.path.basename(f).encode()) % 10 == 0)
        == (split == "test")
    ]
  records = []
  for path in files:
    audio = media.read_audio(path, sample_rate)
    if audio is None:
      continue
    for start in range(0, len(audio), clip_samples):
      clip = audio[start : start + clip_samples]
      if len(clip) * 2 >= clip_samples:
        clip = np.pad(clip, (0, clip_samples - len(clip)))
        records.append({"audio": clip.astype(np.float32)})
  if not records:
    raise ValueError(f"no audio clips in {folder!r} (split {split!r})")
  return records


def audio_source(config: DataConfig, split: str, sample_rate: int):
  """A random-access source of `{'audio': float32 [n]}` records."""
  if not config.data_dir:
    raise ValueError(
        "config.data.data_dir is empty: give the TFDS data dir"
        " or the folder of audio files"
    )
  if config.source == "wav_folder":
    return wav_folder_clips(
        config.data_dir, split, config.clip_samples, sample_rate
    )
  from videopoet.data import datasets  # pylint: disable=g-import-not-at-top

  # Never builds: a missing build names the build_data command.
  source = datasets.open_split(config.dataset, config.data_dir, split)
  if "audio" not in source.dataset_info.features:
    raise ValueError(f"dataset {config.dataset} has no 'audio' field")
  return source


def audio_only(record) -> dict[str, np.ndarray]:
  """Keeps the `audio` field (float32) of a record."""
  return {"audio": np.asarray(record["audio"], np.float32)}
