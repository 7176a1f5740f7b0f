"""Media I/O with PyAV: decode video and audio, write MP4/WAV/GIF/PNG.

Used by the `video_folder` dataset (decoding the user's clips), the demo and
the sampling job (writing samples). Conventions:

  * video is uint8 [t, h, w, 3] RGB; audio is float32 mono [s] in [-1, 1];
  * time 0 is the container's start time, for video and audio alike, so a
    clip's frames and its samples stay in sync when both are cut at the same
    second;
  * undecodable input (zero-byte, truncated, not a video) raises `MediaError`
    naming the file and the reason; callers that must not stop (dataset
    building) catch it and report it.
"""

import contextlib
import fractions
import math
import os
import wave
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
from PIL import Image

# x264 constant-quality factor: 18 is near visually lossless, so metrics read
# back from written samples measure the model rather than the codec.
_X264_OPTIONS = {"crf": "18", "preset": "medium"}
# yuv420p stores chroma at half resolution: height and width must be even.
_CHROMA_MULTIPLE = 2
# Tolerance when comparing frame times that fall exactly between two frames.
_TIME_EPS = 1e-9
# WebM/Matroska round timestamps to whole milliseconds, which can push the
# last frame's end past the next output time: allow that much at the end.
_END_SLACK = 1e-3


class MediaError(Exception):
  """A media file that cannot be read: names the file and why."""

  def __init__(self, path: str | os.PathLike[str], reason: str):
    self.path = os.fspath(path)
    self.reason = reason
    super().__init__(f"{self.path}: {reason}")


# ----------------------------------------------------------------------------
# Decoding.


@contextlib.contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[Any]:
  """Opens a container for reading; every failure becomes a `MediaError`."""
  if not os.path.exists(path):
    raise MediaError(path, "no such file")
  if os.path.getsize(path) == 0:
    raise MediaError(path, "zero-byte file")
  try:
    container = av.open(os.fspath(path))
  except (av.FFmpegError, ValueError, UnicodeDecodeError) as e:
    raise MediaError(path, f"cannot decode: {_describe(e)}") from e
  try:
    yield container
  finally:
    container.close()


def _decode(container: Any, stream: Any, path: Any) -> Iterator[Any]:
  """Decodes `stream`, turning errors met half-way into a `MediaError`."""
  try:
    yield from container.decode(stream)
  except (av.FFmpegError, ValueError) as e:
    raise MediaError(path, f"cannot decode: {_describe(e)}") from e


def _describe(error: Exception) -> str:
  """FFmpeg's message without the path, which `MediaError` already names."""
  if isinstance(error, av.FFmpegError) and error.strerror:
    return error.strerror
  return str(error)


def _origin(container: Any) -> float:
  """The container's start time in seconds: time 0 for every stream."""
  if container.start_time is None:
    return 0.0
  return container.start_time / av.time_base


def _stream_fps(stream: Any, path: Any) -> float:
  """The stream's frame rate: average, else guessed from the codec."""
  rate = stream.average_rate or stream.guessed_rate or stream.base_rate
  if not rate:
    raise MediaError(path, "video stream has no frame rate")
  return float(rate)


def _to_rgb(frame: Any, size: tuple[int, int] | None) -> np.ndarray:
  """A decoded frame as upright uint8 [h, w, 3], resized when asked."""
  image = frame.to_ndarray(format="rgb24")  # [h, w, 3] uint8
  # Phones store portrait video sideways with a rotation in the display
  # matrix (degrees counter-clockwise to apply), which players honour.
  quarter_turns = round((frame.rotation or 0) / 90) % 4
  if quarter_turns:
    image = np.ascontiguousarray(np.rot90(image, quarter_turns))
  if size is not None:
    image = _resize_crop_image(image, *size)
  return image


def _timed_frames(
    container: Any, stream: Any, path: Any, fps: float
) -> Iterator[tuple[float, Any]]:
  """Yields (seconds since the container's start, frame) in display order."""
  origin = _origin(container)
  for index, frame in enumerate(_decode(container, stream, path)):
    # Some raw formats carry no timestamps: assume a constant frame rate.
    time = frame.time if frame.time is not None else origin + index / fps
    yield time - origin, frame


def _nearest_in_time(
    timed: Iterator[tuple[float, Any]], fps: float, frame_duration: float
) -> Iterator[Any]:
  """Yields, for each output time k / fps, the input frame nearest to it.

  Streams: holds only the previous frame. A frame is shown until the next
  one, and the last one for `frame_duration`, which bounds the output. Ties
  go to the later frame, as `resample_frames` does.

  Args:
    timed: (time, frame) in increasing time.
    fps: the output frame rate.
    frame_duration: how long the last input frame lasts, in seconds.

  Yields:
    Input frames, repeated or dropped to match `fps`.
  """
  k = 0
  prev_time, prev = None, None
  for time, frame in timed:
    while k / fps <= time + _TIME_EPS:
      target = k / fps
      if prev is not None and target - prev_time < time - target - _TIME_EPS:
        yield prev
      else:
        yield frame
      k += 1
    prev_time, prev = time, frame
  if prev is not None:
    while k / fps < prev_time + frame_duration - _END_SLACK:
      yield prev
      k += 1


def video_fps(path: str | os.PathLike[str]) -> float:
  """The frame rate of the first video stream, from the file's header.

  Raises:
    MediaError: the file is missing, empty or has no video stream.
  """
  with _open(path) as container:
    return _stream_fps(_video_stream(container, path), path)


def _video_stream(container: Any, path: Any) -> Any:
  if not container.streams.video:
    raise MediaError(path, "no video stream")
  stream = container.streams.video[0]
  stream.thread_type = "AUTO"  # Frame threads: decode on every core.
  return stream


def iter_video(
    path: str | os.PathLike[str],
    fps: float | None = None,
    max_seconds: float | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
  """Decodes the first video stream frame by frame, see `read_video`.

  Memory holds a few source frames (the decoder's), whatever the file's
  length.

  Yields:
    uint8 [h, w, 3] RGB frames; a frame repeated to raise the frame rate is
    the same array each time.

  Raises:
    MediaError: as `read_video`; possibly after some frames were yielded
      when the file breaks off part-way.
  """
  with _open(path) as container:
    stream = _video_stream(container, path)
    src_fps = _stream_fps(stream, path)
    timed = _timed_frames(container, stream, path, src_fps)
    if max_seconds is not None:
      timed = _until(timed, max_seconds)
    if fps is None:
      picked = (frame for _, frame in timed)
    else:
      picked = _nearest_in_time(timed, fps, 1.0 / src_fps)
      if max_seconds is not None:
        # Frames before `max_seconds` at the output rate, not the source's.
        picked = _take(picked, math.ceil(max_seconds * fps - _TIME_EPS))
    yield from _convert(picked, size, path)


def read_video(
    path: str | os.PathLike[str],
    fps: float | None = None,
    max_seconds: float | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, float]:
  """Decodes the first video stream of a file into RGB frames.

  Frames are resampled and resized while decoding, so memory holds the
  output, not the source frames.

  Args:
    path: a video file (anything FFmpeg reads: mp4, webm, mov, gif, ...).
    fps: the output frame rate (nearest-frame time sampling, see
      `resample_frames`); None keeps every decoded frame.
    max_seconds: keep only frames that start before this time.
    size: (height, width) to resize and centre crop to, see
      `resize_and_center_crop`; None keeps the decoded size.

  Returns:
    (frames, fps): uint8 [t, h, w, 3] and the frame rate of `frames`.

  Raises:
    MediaError: the file is missing, empty, not a video or fails to decode.
  """
  frames = list(iter_video(path, fps, max_seconds, size))
  if not frames:
    raise MediaError(path, "no frames decoded")
  return np.stack(frames), float(fps or video_fps(path))  # [t, h, w, 3]


def _until(
    timed: Iterator[tuple[float, Any]], seconds: float
) -> Iterator[tuple[float, Any]]:
  """The (time, frame) pairs that start before `seconds`."""
  for time, frame in timed:
    if time >= seconds - _TIME_EPS:
      return
    yield time, frame


def _take(items: Iterator[Any], count: int) -> Iterator[Any]:
  """The first `count` items; stops decoding once they are out."""
  for index, item in enumerate(items):
    if index >= count:
      return
    yield item


def _convert(
    picked: Iterator[Any], size: tuple[int, int] | None, path: Any
) -> Iterator[np.ndarray]:
  """RGB arrays of the picked frames; a repeated frame converts once."""
  last, last_rgb = None, None
  for frame in picked:
    if frame is not last:
      try:
        last, last_rgb = frame, _to_rgb(frame, size)
      except (av.FFmpegError, ValueError) as e:  # e.g. an odd pixel format.
        raise MediaError(path, f"cannot convert: {_describe(e)}") from e
    yield last_rgb


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int = 16000,
    max_seconds: float | None = None,
) -> np.ndarray | None:
  """Decodes the first audio stream into mono samples at `sample_rate`.

  Sample 0 is at the container's start time (the time of the first video
  frame in most files): leading silence is added, or samples before it are
  dropped, so audio cut at second x lines up with video cut at second x.

  Args:
    path: a media file.
    sample_rate: the output rate in Hz.
    max_seconds: stop decoding after this time (a few more samples may
      come, up to the end of the codec frame).

  Returns:
    float32 [s] mono, or None when the file has no audio stream.

  Raises:
    MediaError: the file is missing, empty or fails to decode.
  """
  with _open(path) as container:
    if not container.streams.audio:
      return None
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    try:
      chunks, start = _resampled(
          container, stream, path, resampler, max_seconds
      )
    except (av.FFmpegError, ValueError) as e:
      raise MediaError(path, f"cannot resample audio: {_describe(e)}") from e
  audio = np.concatenate(chunks) if chunks else np.zeros(0)  # [s]
  return _shift(audio.astype(np.float32), round((start or 0.0) * sample_rate))


def _resampled(
    container: Any,
    stream: Any,
    path: Any,
    resampler: Any,
    max_seconds: float | None,
) -> tuple[list[np.ndarray], float | None]:
  """Mono chunks of the decoded audio, and the first frame's time."""
  chunks, start = [], None
  for frame in _decode(container, stream, path):
    time = None if frame.time is None else frame.time - _origin(container)
    if start is None:
      start = time
    if max_seconds is not None and time is not None and time > max_seconds:
      break
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
  chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
  return chunks, start  # [s_i] float32 each


def _shift(audio: np.ndarray, offset: int) -> np.ndarray:
  """Delays `audio` by `offset` samples (drops them when negative)."""
  if offset >= 0:
    return np.concatenate([np.zeros(offset, np.float32), audio])
  return audio[-offset:]


# ----------------------------------------------------------------------------
# Array transforms.


def resample_frames(
    frames: np.ndarray, src_fps: float, dst_fps: float
) -> np.ndarray:
  """Changes the frame rate by nearest-frame time sampling.

  Output frame k (at time k / dst_fps) is the input frame whose start time
  i / src_fps is nearest (ties go to the later frame). The output covers the
  input's duration: ceil(t * dst_fps / src_fps) frames.

  Args:
    frames: [t, ...] frames at `src_fps`.
    src_fps: the input frame rate.
    dst_fps: the output frame rate.

  Returns:
    [t', ...] frames at `dst_fps`, picked from `frames`.
  """
  if src_fps <= 0 or dst_fps <= 0:
    raise ValueError(f"frame rates must be positive: {src_fps}, {dst_fps}")
  count = len(frames)
  out_count = math.ceil(count * dst_fps / src_fps - _TIME_EPS)
  position = np.arange(out_count) * (src_fps / dst_fps)  # [t'] in frames
  index = np.floor(position + 0.5 + _TIME_EPS).astype(np.int64)  # [t']
  return frames[np.minimum(index, count - 1)]


def _resize_crop_image(
    image: np.ndarray, height: int, width: int
) -> np.ndarray:
  """One [h, w, 3] image scaled to cover (height, width), centre cropped."""
  src_h, src_w = image.shape[:2]
  if (src_h, src_w) == (height, width):
    return image
  scale = max(height / src_h, width / src_w)
  crop_h, crop_w = height / scale, width / scale  # In source pixels.
  top, left = (src_h - crop_h) / 2, (src_w - crop_w) / 2
  # PIL crops and resizes in one pass from a sub-pixel box, antialiasing
  # when it shrinks, so there is no intermediate full-size image.
  resized = Image.fromarray(image).resize(
      (width, height),
      Image.Resampling.BILINEAR,
      box=(left, top, left + crop_w, top + crop_h),
  )
  return np.asarray(resized)  # [height, width, 3] uint8


def resize_and_center_crop(
    frames: np.ndarray, height: int, width: int
) -> np.ndarray:
  """Scales the short side to cover (height, width), then centre crops.

  Args:
    frames: uint8 [t, h, w, 3].
    height: output height.
    width: output width.

  Returns:
    uint8 [t, height, width, 3] (antialiased bilinear).
  """
  if frames.shape[1:3] == (height, width):
    return frames
  out = np.empty((len(frames), height, width, 3), np.uint8)  # [t, h, w, 3]
  for i, image in enumerate(frames):
    out[i] = _resize_crop_image(image, height, width)
  return out


# ----------------------------------------------------------------------------
# Writing. Each writer writes a temporary file and renames it, so a crash
# never leaves a half-written file that a resumed job would take as done.


@contextlib.contextmanager
def _atomic(path: str | os.PathLike[str]) -> Iterator[str]:
  """Yields a temporary path next to `path`, renamed to it on success."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp"
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _check_video(video: np.ndarray) -> None:
  if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
    raise ValueError(
        f"video must be uint8 [t, h, w, 3], got {video.dtype} {video.shape}"
    )
  if not len(video):
    raise ValueError("video has no frames")


def _check_audio(audio: np.ndarray) -> np.ndarray:
  """float32 [s] in [-1, 1], or ValueError."""
  audio = np.asarray(audio)
  if audio.ndim != 1:
    raise ValueError(f"audio must be mono [s], got shape {audio.shape}")
  return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _pad_even(video: np.ndarray) -> np.ndarray:
  """Repeats the last row/column so height and width are even (yuv420p)."""
  h, w = video.shape[1:3]
  pad_h, pad_w = -h % _CHROMA_MULTIPLE, -w % _CHROMA_MULTIPLE
  if not pad_h and not pad_w:
    return video
  return np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def write_mp4(
    path: str | os.PathLike[str],
    video: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
) -> None:
  """Writes H.264 (yuv420p) video, with AAC audio when `audio` is given.

  yuv420p needs even sizes: an odd height or width is padded by repeating
  the last row or column, so the file reads back one pixel larger.

  Args:
    path: the .mp4 file to write (parent folders are created).
    video: uint8 [t, h, w, 3] RGB.
    fps: frames per second.
    audio: float32 mono [s] in [-1, 1], or None for a silent file.
    sample_rate: the rate of `audio` in Hz.
  """
  _check_video(video)
  video = _pad_even(video)
  with _atomic(path) as tmp, av.open(tmp, "w", format="mp4") as container:
    stream = container.add_stream(
        "libx264",
        rate=fractions.Fraction(fps).limit_denominator(1001),
        options=_X264_OPTIONS,
    )
    stream.height, stream.width = video.shape[1:3]
    stream.pix_fmt = "yuv420p"
    audio_stream = None
    if audio is not None:
      audio_stream = container.add_stream("aac", rate=sample_rate)
      audio_stream.layout = "mono"
    for image in video:
      frame = av.VideoFrame.from_ndarray(image, format="rgb24")
      container.mux(stream.encode(frame))
    container.mux(stream.encode())
    if audio_stream is not None:
      _encode_audio(container, audio_stream, _check_audio(audio), sample_rate)


def _encode_audio(
    container: Any, stream: Any, audio: np.ndarray, sample_rate: int
) -> None:
  """Encodes mono samples; PyAV splits them into the codec's frame size."""
  frame = av.AudioFrame.from_ndarray(audio[None], format="fltp", layout="mono")
  frame.sample_rate = sample_rate
  frame.pts = 0
  container.mux(stream.encode(frame))
  container.mux(stream.encode())


def write_wav(
    path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int = 16000
) -> None:
  """Writes mono 16-bit PCM WAV.

  Args:
    path: the .wav file to write.
    audio: float32 [s] in [-1, 1] (clipped outside).
    sample_rate: in Hz.
  """
  audio = _check_audio(audio)
  pcm = np.round(audio * np.iinfo(np.int16).max).astype("<i2")  # [s] int16
  with _atomic(path) as tmp, wave.open(tmp, "wb") as out:
    out.setnchannels(1)
    out.setsampwidth(2)
    out.setframerate(sample_rate)
    out.writeframes(pcm.tobytes())


def write_gif(
    path: str | os.PathLike[str], video: np.ndarray, fps: float
) -> None:
  """Writes an endlessly looping GIF.

  GIF stores frame durations in hundredths of a second, so the rate read
  back is the nearest that allows (8 fps -> 12 cs -> 8.33 fps).

  Args:
    path: the .gif file to write.
    video: uint8 [t, h, w, 3] RGB.
    fps: frames per second.
  """
  _check_video(video)
  images = [Image.fromarray(image) for image in video]
  with _atomic(path) as tmp:
    images[0].save(
        tmp,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
    )


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
  """Writes uint8 [h, w, 3] (RGB) or [h, w] (grey) as PNG."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim not in (2, 3):
    raise ValueError(
        f"image must be uint8 [h, w, 3] or [h, w], got {image.dtype}"
        f" {image.shape}"
    )
  with _atomic(path) as tmp:
    Image.fromarray(image).save(tmp, format="PNG")
