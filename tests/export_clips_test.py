"""Tests of `experiments.export_clips`: into a folder of clips, at its rate.

`export` never replaces a file without `overwrite`, adds to an existing
captions.jsonl instead of rewriting it, and writes the clips at the
dataset's frame rate, so the video lasts as long as its soundtrack.
"""

import json
import os

import av
import numpy as np
import pytest

from experiments import export_clips
from videopoet.data import datasets
from videopoet.data import media
from videopoet.data import synth_av
from videopoet.data import synth_av_tfds

_NAME = "synth_av/tiny_fps4"
# 17 frames at 4 fps: 4.25 s of video over 68,000 samples of audio.
_FPS4 = synth_av.SynthAVConfig(
    fps=4, train_size=2, validation_size=1, test_size=1, test_heldout_size=0
)
_THEIRS = '{"file": "mine.mp4", "caption": "caf\\u00e9 of mine"}\n'


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("data"))
  synth_av_tfds.build(_FPS4, path, name="tiny_fps4")
  return path


def _snapshot(folder) -> dict[str, tuple[bytes, int]]:
  """{name: (content, mtime_ns)} of the files in `folder`."""
  return {
      name: (
          open(os.path.join(folder, name), "rb").read(),
          os.stat(os.path.join(folder, name)).st_mtime_ns,
      )
      for name in sorted(os.listdir(folder))
  }


def _captions(folder) -> list[dict[str, str]]:
  with open(os.path.join(folder, "captions.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.fixture
def clip_folder(tmp_path):
  """A user's folder: one clip of their own and its captions.jsonl."""
  media.write_mp4(
      str(tmp_path / "mine.mp4"), np.zeros((3, 16, 16, 3), np.uint8), 8
  )
  (tmp_path / "captions.jsonl").write_text(_THEIRS, encoding="utf-8")
  return tmp_path


def test_export_into_a_clip_folder_keeps_what_is_there(data_dir, clip_folder):
  mine = (clip_folder / "mine.mp4").read_bytes()
  paths = export_clips.export(_NAME, data_dir, "train", 2, str(clip_folder))
  assert [os.path.basename(p) for p in paths] == [
      "train_0.mp4",
      "train_1.mp4",
  ]
  assert (clip_folder / "mine.mp4").read_bytes() == mine
  text = (clip_folder / "captions.jsonl").read_text(encoding="utf-8")
  assert text.startswith(_THEIRS)  # Their line as it was.
  rows = _captions(clip_folder)
  assert [r["file"] for r in rows] == ["mine.mp4", "train_0.mp4", "train_1.mp4"]
  assert all(r["caption"] for r in rows)


def test_second_export_refuses_unless_overwrite(data_dir, clip_folder):
  export_clips.export(_NAME, data_dir, "train", 2, str(clip_folder))
  before = _snapshot(clip_folder)
  with pytest.raises(export_clips.OutputExistsError) as raised:
    export_clips.export(_NAME, data_dir, "train", 2, str(clip_folder))
  assert "train_0.mp4, train_1.mp4" in str(raised.value)
  assert "--overwrite" in str(raised.value)
  assert _snapshot(clip_folder) == before  # Nothing written.
  # A clip more: train_0/1 replaced with overwrite, their lines not doubled.
  export_clips.export(
      _NAME, data_dir, "train", 2, str(clip_folder), overwrite=True
  )
  export_clips.export(_NAME, data_dir, "validation", 1, str(clip_folder))
  rows = _captions(clip_folder)
  assert sorted(r["file"] for r in rows) == [
      "mine.mp4",
      "train_0.mp4",
      "train_1.mp4",
      "validation_0.mp4",
  ]
  assert rows[0]["caption"] == "café of mine"
  assert (clip_folder / "mine.mp4").read_bytes() == before["mine.mp4"][0]


def test_a_stale_caption_line_is_replaced_not_doubled(data_dir, tmp_path):
  (tmp_path / "captions.jsonl").write_bytes(
      b'{"file": "./train_0.mp4", "caption": "old"}\r\n'
      b"not json, kept\n"
      b'{"file": "x.mp4", "caption": "caf\xe9"}'  # Latin-1, no newline.
  )
  export_clips.export(_NAME, data_dir, "train", 1, str(tmp_path))
  lines = (tmp_path / "captions.jsonl").read_text("utf-8").splitlines()
  assert lines[:2] == [
      "not json, kept",
      '{"file": "x.mp4", "caption": "café"}',  # Read as Windows-1252.
  ]
  assert [json.loads(line)["file"] for line in lines[2:]] == ["train_0.mp4"]


def _durations(path: str) -> tuple[float, float]:
  """(video seconds: frames / rate, audio seconds: samples / rate)."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    frames = sum(1 for _ in container.decode(video=0))
    video = frames / float(stream.average_rate)
  audio = media.read_audio(path, 16000)
  return video, len(audio) / 16000


def test_clips_play_at_the_datasets_rate(data_dir, tmp_path):
  source = datasets.open_split(_NAME, data_dir, "train")
  assert datasets.media_rates(source.dataset_info).fps == 4
  (path,) = export_clips.export(_NAME, data_dir, "train", 1, str(tmp_path))
  video, audio = _durations(path)
  assert video == pytest.approx(17 / 4)
  # AAC pads to whole 1,024-sample frames.
  assert audio == pytest.approx(video, abs=1024 / 16000)
  # --fps overrides the dataset's.
  (path,) = export_clips.export(
      _NAME, data_dir, "test", 1, str(tmp_path), fps=8
  )
  assert _durations(path)[0] == pytest.approx(17 / 8)


def test_export_from_an_empty_data_dir_creates_nothing(tmp_path):
  empty, out = tmp_path / "empty", tmp_path / "out"
  empty.mkdir()
  with pytest.raises(datasets.DatasetNotFoundError, match=str(empty)):
    export_clips.export("synth_av", str(empty), "train", 2, str(out))
  assert not os.listdir(empty) and not out.exists()
