"""`video_folder`: the user's own clips, cut into examples.

Every video file under a folder (`VIDEO_EXTENSIONS`: mp4, m4v, mov, webm,
mkv, avi, mpg/mpeg, flv, ts/mts/m2ts, wmv, 3gp, ogv, gif; sub-folders too)
is decoded once with PyAV, resampled to the config's frame rate, resized and
centre cropped, and cut into clips of `num_frames` frames, one clip start
every `clip_stride` frames. Each clip carries the file's audio over the same
seconds (16 kHz mono; silence and `has_audio=False` when the file has none)
and a caption, from `captions.jsonl` in the folder (lines
`{"file": "dir/name.mp4", "caption": "..."}`, paths relative to the folder)
or else a sidecar `dir/name.txt`, else empty.

A file that cannot be decoded, or is shorter than one clip, is skipped and
named with its reason in `build_report.json` / `build_report.txt`, written
next to the data; it never stops the build. So is every other file in the
folder that is not used (not a video file extension, e.g. a README.txt);
`captions.jsonl` and the sidecar captions are used, not listed.

The report also records the folder's contents (`contents`: the videos,
`captions.jsonl` and sidecar captions, by relative path, with their size and
modification time). A later `build` of the same name compares them with the
folder: a build of a folder that has changed since (files added, removed or
modified), of another folder, or with another config is never reused; it is
refused with the differences and `--overwrite` (`overwrite=True`) rebuilds
it. A build made before reports recorded the contents is refused the same
way: whether its folder changed is unknown.

Builder configs: `square` (128x128, the default) and `portrait` (height 224,
width 128: VideoPoet's 128x224 portrait clips, 28x16 latent tokens a frame).
Both are 17 frames at 8 fps (2.125 s) with 34,000 audio samples.

    from videopoet.data import datasets, video_folder, video_folder_tfds
    video_folder_tfds.build(video_folder.VideoFolderConfig(), data_dir, folder)
    clips = datasets.open_split('video_folder', data_dir, 'train')

Features: video uint8 [num_frames, height, width, 3], audio float32
[num_frames / fps * sample_rate], has_audio bool (the file has an audio
track; a clip past its end is zero-padded), caption and source (the file's
path in the folder) text, clip_index int32, start_time float32 seconds.

This module makes the examples of a folder (no TensorFlow); the TFDS
builder that stores them, `build`, is in `video_folder_tfds`.
"""

import collections
import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from videopoet import config_lib
from videopoet.data import media

CAPTIONS_FILE = "captions.jsonl"
REPORT_JSON = "build_report.json"
REPORT_TXT = "build_report.txt"
SPLIT = "train"
FILE_FORMATS = ("array_record", "tfrecord")
# VideoPoet's portrait resolution (height, width).
PORTRAIT_SIZE = (224, 128)
# Encodings tried in turn on caption files: UTF-8 (a BOM is dropped), then
# Windows-1252, what most "ANSI" editors write, then Latin-1, which decodes
# any byte string, so a caption never fails to decode.
_TEXT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
# Containers of video that PyAV (FFmpeg) reads, by their usual endings.
VIDEO_EXTENSIONS = (
    ".mp4",
    ".m4v",
    ".mov",
    ".webm",
    ".mkv",
    ".avi",
    ".mpg",
    ".mpeg",
    ".flv",
    ".ts",
    ".mts",
    ".m2ts",
    ".wmv",
    ".3gp",
    ".ogv",
    ".gif",
)
# How many file names a message lists before "and N more".
_MAX_LISTED = 10


@dataclasses.dataclass(frozen=True)
class VideoFolderConfig:
  """How the user's files become clips.

  Attributes:
    height: clip height in pixels (portrait: 224).
    width: clip width in pixels (portrait: 128).
    fps: clip frame rate; files are resampled to it (nearest frame).
    num_frames: frames per clip (17 at 8 fps = 2.125 s, VideoPoet's).
    clip_stride: frames between clip starts at `fps`; 0 means `num_frames`
      (back-to-back clips), less than `num_frames` overlaps them.
    sample_rate: audio rate in Hz; each clip has round(num_frames / fps *
      sample_rate) samples.
    max_clips_per_video: at most this many clips from one file; 0 = no limit.
    extensions: file name endings taken as videos (any letter case); other
      files are listed in the report as skipped.
  """

  height: int = 128
  width: int = 128
  fps: int = 8
  num_frames: int = 17
  clip_stride: int = 0
  sample_rate: int = 16000
  max_clips_per_video: int = 0
  extensions: tuple[str, ...] = VIDEO_EXTENSIONS

  def __post_init__(self):
    for name, minimum, allowed in _LIMITS:
      value = getattr(self, name)
      _require(value >= minimum, name, value, allowed)
    _require(
        bool(self.extensions)
        and all(e.startswith(".") and len(e) > 1 for e in self.extensions),
        "extensions",
        self.extensions,
        "a non-empty tuple of endings that start with '.', e.g. ('.mp4',)",
    )

  @property
  def stride(self) -> int:
    """Frames between clip starts."""
    return self.clip_stride or self.num_frames

  @property
  def clip_samples(self) -> int:
    """Audio samples per clip: the clip's duration at `sample_rate`."""
    return round(self.num_frames * self.sample_rate / self.fps)

  @property
  def max_seconds(self) -> float | None:
    """How much of a file to decode: all of it unless clips are capped."""
    if not self.max_clips_per_video:
      return None
    frames = (self.max_clips_per_video - 1) * self.stride + self.num_frames
    return frames / self.fps


# (field, smallest allowed value, what is allowed) of VideoFolderConfig.
_LIMITS = (
    ("height", 1, ">= 1"),
    ("width", 1, ">= 1"),
    ("fps", 1, ">= 1"),
    ("num_frames", 1, ">= 1"),
    ("clip_stride", 0, ">= 0 (0: num_frames)"),
    ("sample_rate", 1, ">= 1"),
    ("max_clips_per_video", 0, ">= 0 (0: no limit)"),
)


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
  if not ok:
    raise config_lib.ConfigError(
        f"VideoFolderConfig.{name}={value!r} is not allowed: it must be"
        f" {allowed}"
    )


# ----------------------------------------------------------------------------
# Captions.


def decode_text(data: bytes) -> str:
  """Decodes a caption file's bytes: UTF-8, else Windows-1252, else Latin-1."""
  for encoding in _TEXT_ENCODINGS:
    try:
      return data.decode(encoding)
    except UnicodeDecodeError:
      continue
  raise AssertionError("unreachable: Latin-1 decodes any bytes")


def _clean(text: str) -> str:
  """One line of single-spaced text."""
  return " ".join(text.split())


def read_captions_jsonl(folder: str) -> tuple[dict[str, str], list[str]]:
  """Reads `captions.jsonl`: {relative file path: caption} and warnings.

  A line that is not a JSON object with string "file" and "caption" is
  skipped with a warning; an unreadable file gives a warning, not an error.
  """
  path = os.path.join(folder, CAPTIONS_FILE)
  if not os.path.exists(path):
    return {}, []
  try:
    with open(path, "rb") as f:
      text = decode_text(f.read())
  except OSError as e:
    return {}, [f"{CAPTIONS_FILE}: cannot read: {e}"]
  captions, warnings = {}, []
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip():
      continue
    try:
      entry = json.loads(line)
    except json.JSONDecodeError as e:
      warnings.append(f"{CAPTIONS_FILE} line {number}: not JSON: {e}")
      continue
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("file"), str)
        and isinstance(entry.get("caption"), str)
    ):
      warnings.append(
          f'{CAPTIONS_FILE} line {number}: expected {{"file": str, "caption":'
          " str}"
      )
      continue
    captions[_normalize(entry["file"])] = _clean(entry["caption"])
  return captions, warnings


def _normalize(relative: str) -> str:
  return os.path.normpath(relative).replace(os.sep, "/")


def read_sidecar(folder: str, source: str) -> tuple[str, str | None]:
  """The caption in `NAME.txt` next to `NAME.ext`: (caption, warning)."""
  path = os.path.join(folder, os.path.splitext(source)[0] + ".txt")
  if not os.path.isfile(path):
    return "", None
  try:
    with open(path, "rb") as f:
      return _clean(decode_text(f.read())), None
  except OSError as e:
    return "", f"{os.path.relpath(path, folder)}: cannot read: {e}"


# ----------------------------------------------------------------------------
# Files to clips.


def list_videos(folder: str, extensions: Iterable[str]) -> list[str]:
  """Video files under `folder`, as sorted '/'-separated relative paths."""
  endings = tuple(e.lower() for e in extensions)
  found = []
  for root, _, names in os.walk(folder):
    for name in names:
      if name.lower().endswith(endings):
        found.append(
            _normalize(os.path.relpath(os.path.join(root, name), folder))
        )
  return sorted(found)


def _all_files(folder: str) -> list[str]:
  """Every file under `folder`, as sorted '/'-separated relative paths."""
  return sorted(
      _normalize(os.path.relpath(os.path.join(root, name), folder))
      for root, _, names in os.walk(folder)
      for name in names
  )


def _caption_files(files: Iterable[str], videos: Iterable[str]) -> set[str]:
  """The files read as captions: captions.jsonl and the videos' sidecars."""
  sidecars = {os.path.splitext(v)[0] + ".txt" for v in videos}
  return {f for f in files if f == CAPTIONS_FILE or f in sidecars}


def unused_files(
    folder: str, config: VideoFolderConfig
) -> list[dict[str, str]]:
  """The files under `folder` that are neither videos nor captions.

  Returns:
    {'file': relative path, 'reason': why it is not used}, sorted by file.
  """
  files = _all_files(folder)
  videos = list_videos(folder, config.extensions)
  used = set(videos) | _caption_files(files, videos)
  unused = []
  for name in files:
    if name in used:
      continue
    ending = os.path.splitext(name)[1].lower()
    why = (
        f"{ending!r} is not in config.dataset.extensions"
        if ending
        else "no file name extension"
    )
    unused.append(
        {"file": name, "reason": f"not a video file extension ({why})"}
    )
  return unused


def folder_contents(
    folder: str, config: VideoFolderConfig
) -> dict[str, dict[str, int]]:
  """What a build reads from `folder`, to notice later changes.

  Returns:
    {relative path: {'bytes': size, 'mtime_ns': modification time}} of the
    videos, captions.jsonl and the videos' sidecar captions.
  """
  videos = list_videos(folder, config.extensions)
  read = set(videos) | _caption_files(_all_files(folder), videos)
  contents = {}
  for name in sorted(read):
    stat = os.stat(os.path.join(folder, name))
    contents[name] = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
  return contents


def contents_changes(
    recorded: dict[str, Any], current: dict[str, Any]
) -> dict[str, list[str]]:
  """{'added', 'removed', 'changed'}: files that differ between records."""
  return {
      "added": sorted(set(current) - set(recorded)),
      "removed": sorted(set(recorded) - set(current)),
      "changed": sorted(
          f for f in set(current) & set(recorded) if current[f] != recorded[f]
      ),
  }


def listing(names: list[str]) -> str:
  shown = ", ".join(names[:_MAX_LISTED])
  more = len(names) - _MAX_LISTED
  return shown + (f" and {more} more" if more > 0 else "")


def cut_clips(
    frames: Iterable[np.ndarray],
    num_frames: int,
    stride: int,
    max_clips: int = 0,
) -> Iterator[tuple[int, np.ndarray]]:
  """Cuts a frame stream into clips starting every `stride` frames.

  Args:
    frames: [h, w, 3] frames, consumed lazily.
    num_frames: frames per clip; a shorter tail is dropped.
    stride: frames between clip starts.
    max_clips: stop after this many clips (and stop consuming); 0 = no limit.

  Yields:
    (start frame, clip [num_frames, h, w, 3]).
  """
  window = collections.deque(maxlen=num_frames)  # The latest frames.
  start, count = 0, 0
  for index, frame in enumerate(frames):
    window.append(frame)
    if index == start + num_frames - 1:
      yield start, np.stack(window)  # [num_frames, h, w, 3]
      count += 1
      if count == max_clips:
        return
      start += stride


def clip_audio(
    audio: np.ndarray | None, start_frame: int, config: VideoFolderConfig
) -> np.ndarray:
  """The samples under a clip: float32 [clip_samples], zero-padded."""
  out = np.zeros(config.clip_samples, np.float32)  # [s]
  if audio is not None:
    begin = round(start_frame * config.sample_rate / config.fps)
    piece = audio[begin : begin + config.clip_samples]
    out[: len(piece)] = piece
  return out


class _Counted:
  """Iterates over `items`, counting them."""

  def __init__(self, items: Iterable[Any]):
    self._items = items
    self.count = 0

  def __iter__(self) -> Iterator[Any]:
    for item in self._items:
      self.count += 1
      yield item


@dataclasses.dataclass
class BuildReport:
  """What a build did with each file, for `build_report.json`."""

  name: str
  manual_dir: str
  config: VideoFolderConfig
  file_format: str
  files_seen: int = 0
  clips_written: int = 0
  kept: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
  warnings: list[str] = dataclasses.field(default_factory=list)
  contents: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready content, counts first."""
    c = self.config
    return {
        "dataset": f"video_folder/{self.name}",
        "manual_dir": self.manual_dir,
        "config": config_dict(c),
        "file_format": self.file_format,
        "files_seen": self.files_seen,
        "files_kept": len(self.kept),
        "files_skipped": len(self.skipped),
        "clips_written": self.clips_written,
        "seconds_written": self.clips_written * c.num_frames / c.fps,
        "skipped": self.skipped,
        "warnings": self.warnings,
        "kept": self.kept,
        "contents": self.contents,
    }


def config_dict(config: VideoFolderConfig) -> dict[str, Any]:
  """The config as JSON gives it back (lists, not tuples)."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def _count(n: int, noun: str) -> str:
  return f"{n} {noun}" + ("" if n == 1 else "s")


def report_text(report: dict[str, Any]) -> str:
  """`build_report.txt`: the report for people."""
  c = report["config"]
  lines = [
      f"{report['dataset']} from {report['manual_dir']}",
      f"clips: {c['num_frames']} frames, {c['height']}x{c['width']} (h x w),"
      f" {c['fps']} fps",
      f"files seen: {report['files_seen']}, kept: {report['files_kept']},"
      f" skipped: {report['files_skipped']}",
      f"clips written: {report['clips_written']}"
      f" ({report['seconds_written']:.3f} s of clips)",
  ]
  sections = (
      ("skipped", [f"{s['file']}: {s['reason']}" for s in report["skipped"]]),
      ("warnings", report["warnings"]),
      (
          "kept",
          [
              f"{k['file']}: {_count(k['clips'], 'clip')}, "
              + ("audio" if k["has_audio"] else "no audio")
              + (f", caption {k['caption']!r}" if k["caption"] else "")
              for k in report["kept"]
          ],
      ),
  )
  for title, items in sections:
    if items:
      lines += [f"{title}:"] + [f"  {item}" for item in items]
  return "\n".join(lines) + "\n"


def _read_audio(
    path: str, config: VideoFolderConfig
) -> tuple[np.ndarray | None, str]:
  """(audio or None, why None when the file's audio track is unreadable)."""
  try:
    audio = media.read_audio(path, config.sample_rate, config.max_seconds)
  except media.MediaError as e:
    return None, e.reason
  except Exception as e:  # pylint: disable=broad-exception-caught
    # Bad audio must not cost the video, nor stop the build.
    return None, f"unexpected error: {type(e).__name__}: {e}"
  return (audio if audio is not None and audio.size else None), ""


@dataclasses.dataclass
class _Outcome:
  """What became of one file."""

  source: str
  caption: str
  has_audio: bool
  clips: int = 0
  frames: int = 0
  problem: str = ""  # Why decoding stopped early, if it did.
  audio_problem: str = ""


def _file_examples(
    folder: str, source: str, caption: str, config: VideoFolderConfig
) -> Iterator[tuple[str, dict[str, Any]]]:
  """Decodes one file once and yields its clips; returns an `_Outcome`."""
  path = os.path.join(folder, source)
  audio, audio_problem = _read_audio(path, config)
  outcome = _Outcome(
      source, caption, audio is not None, audio_problem=audio_problem
  )
  frames = _Counted(
      media.iter_video(
          path,
          fps=config.fps,
          max_seconds=config.max_seconds,
          size=(config.height, config.width),
      )
  )
  try:
    for start, video in cut_clips(
        frames, config.num_frames, config.stride, config.max_clips_per_video
    ):
      yield f"{source}#{outcome.clips}", {
          "video": video,
          "audio": clip_audio(audio, start, config),
          "has_audio": outcome.has_audio,
          "caption": caption,
          "source": source,
          "clip_index": outcome.clips,
          "start_time": start / config.fps,
      }
      outcome.clips += 1
  except media.MediaError as e:
    outcome.problem = e.reason
  except Exception as e:  # pylint: disable=broad-exception-caught
    # One odd file must not stop a build of thousands: report it, go on.
    outcome.problem = f"unexpected error: {type(e).__name__}: {e}"
  outcome.frames = frames.count
  return outcome


def _record(report: BuildReport, outcome: _Outcome, num_frames: int) -> None:
  """Adds a file's outcome to the report: kept, with warnings, or skipped."""
  if not outcome.clips:
    reason = outcome.problem or (
        f"too few frames: {outcome.frames} < {num_frames}"
        if outcome.frames
        else "no frames decoded"
    )
    report.skipped.append({"file": outcome.source, "reason": reason})
    return
  if outcome.problem:
    report.warnings.append(
        f"{outcome.source}: stopped after {_count(outcome.clips, 'clip')}:"
        f" {outcome.problem}"
    )
  if outcome.audio_problem:
    report.warnings.append(
        f"{outcome.source}: audio written as silence: {outcome.audio_problem}"
    )
  report.clips_written += outcome.clips
  report.kept.append(
      {
          "file": outcome.source,
          "clips": outcome.clips,
          "has_audio": outcome.has_audio,
          "caption": outcome.caption,
      }
  )


def generate_examples(
    folder: str, config: VideoFolderConfig, report: BuildReport
) -> Iterator[tuple[str, dict[str, Any]]]:
  """Yields (key, example) for every clip of every file under `folder`.

  Args:
    folder: the user's folder of videos.
    config: how files become clips.
    report: filled in as files are read.

  Yields:
    Keys '<file>#<clip index>' and examples with the builder's features;
    files that are not videos are listed in `report.skipped`.
  """
  captions, warnings = read_captions_jsonl(folder)
  report.warnings.extend(warnings)
  for unused in unused_files(folder, config):
    report.files_seen += 1
    report.skipped.append(unused)
  for source in list_videos(folder, config.extensions):
    report.files_seen += 1
    caption, warning = read_sidecar(folder, source)
    if warning:
      report.warnings.append(warning)
    caption = captions.get(source, caption)
    outcome = yield from _file_examples(folder, source, caption, config)
    _record(report, outcome, config.num_frames)
