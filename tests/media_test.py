"""Tests for `videopoet.data.media`: PyAV decoding, transforms and writers."""

import os
import wave

import av
import numpy as np
import pytest
from PIL import Image

from videopoet.data import media

FPS = 8
RATE = 16000


def _smooth_video(frames=16, height=64, width=96):
  """A moving colour gradient: smooth, so H.264 keeps it well."""
  t, y, x = np.mgrid[0:frames, 0:height, 0:width]
  video = np.stack(
      [(2 * x + 4 * t) % 256, (3 * y) % 256, (x + y + 8 * t) // 2 % 256], -1
  )
  return video.astype(np.uint8)  # [t, h, w, 3]


def _sine(hz=440.0, seconds=2.0, rate=RATE):
  time = np.arange(int(seconds * rate)) / rate
  return (0.5 * np.sin(2 * np.pi * hz * time)).astype(np.float32)  # [s]


def _psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b) ** 2)
  return 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def av_file(tmp_path_factory):
  """A 2 s mp4 with a 440 Hz soundtrack, and what went into it."""
  path = str(tmp_path_factory.mktemp("media") / "clip.mp4")
  video, audio = _smooth_video(), _sine()
  media.write_mp4(path, video, FPS, audio, RATE)
  return path, video, audio


def test_mp4_round_trip_keeps_frames_and_pixels(av_file):
  path, video, _ = av_file
  back, fps = media.read_video(path)
  assert back.shape == video.shape and back.dtype == np.uint8
  assert fps == FPS
  assert _psnr(back, video) > 30


def test_mp4_round_trip_keeps_audio(av_file):
  path, _, audio = av_file
  back = media.read_audio(path, RATE)
  assert back.dtype == np.float32 and back.ndim == 1
  # AAC pads to whole 1024-sample frames.
  assert abs(len(back) - len(audio)) <= 2048
  spectrum = np.abs(np.fft.rfft(back))
  assert np.argmax(spectrum) * RATE / len(back) == pytest.approx(440, abs=2)
  # Sample 0 is time 0: the decoded wave lines up with the input.
  n = len(audio) - 2048
  assert np.corrcoef(back[1024:n], audio[1024:n])[0, 1] > 0.95


def test_read_audio_resamples(av_file):
  path = av_file[0]
  back = media.read_audio(path, 8000)
  assert abs(len(back) - 8000 * 2) <= 1024


def test_read_audio_max_seconds(av_file):
  back = media.read_audio(av_file[0], RATE, max_seconds=1.0)
  assert RATE <= len(back) <= RATE + 2048  # Up to the end of an AAC frame.


def test_read_audio_none_without_audio_stream(tmp_path):
  path = str(tmp_path / "silent.mp4")
  media.write_mp4(path, _smooth_video(4), FPS)
  assert media.read_audio(path) is None


def test_read_video_resamples_and_resizes_while_decoding(av_file):
  path = av_file[0]
  full, fps = media.read_video(path)
  streamed, out_fps = media.read_video(path, fps=3, size=(32, 40))
  expected = media.resize_and_center_crop(
      media.resample_frames(full, fps, 3), 32, 40
  )
  assert out_fps == 3
  np.testing.assert_array_equal(streamed, expected)


def test_read_video_max_seconds(av_file):
  path = av_file[0]
  assert len(media.read_video(path, max_seconds=1.0)[0]) == FPS
  assert len(media.read_video(path, fps=4, max_seconds=1.0)[0]) == 4


def test_read_video_applies_display_rotation(tmp_path):
  path = str(tmp_path / "rotated.mp4")
  video = np.zeros((2, 32, 64, 3), np.uint8)  # [t, h, w, 3]
  video[:, :8, :8] = 255  # White top-left corner.
  with av.open(path, "w") as container:
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
    stream.set_display_rotation(90)  # Counter-clockwise, as phones store.
    for image in video:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(image)))
    container.mux(stream.encode())
  back, _ = media.read_video(path)
  assert back.shape == (2, 64, 32, 3)
  # A quarter turn counter-clockwise takes top-left to bottom-left.
  assert back[0, -4, 4].mean() > 200 and back[0, 4, 4].mean() < 50


def test_resample_frames_picks_nearest_frame():
  frames = np.arange(30)
  # 30 -> 8 fps: output k is at input 3.75 k, rounded half up.
  np.testing.assert_array_equal(
      media.resample_frames(frames, 30, 8),
      [0, 4, 8, 11, 15, 19, 23, 26],
  )
  np.testing.assert_array_equal(
      media.resample_frames(frames[:3], 4, 8), [0, 1, 1, 2, 2, 2]
  )
  np.testing.assert_array_equal(media.resample_frames(frames, 8, 8), frames)
  with pytest.raises(ValueError, match="positive"):
    media.resample_frames(frames, 0, 8)


def test_resize_and_center_crop_keeps_the_centre():
  frames = np.zeros((2, 60, 120, 3), np.uint8)
  frames[:, :, :30] = 255  # Left quarter white: cropped away.
  frames[:, :, 30:90, 1] = 200  # The centre square is green.
  out = media.resize_and_center_crop(frames, 32, 32)
  assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
  assert np.abs(out[:, 4:-4, 4:-4].astype(int) - [0, 200, 0]).max() <= 1
  tall = media.resize_and_center_crop(frames, 64, 32)
  assert tall.shape == (2, 64, 32, 3)
  assert media.resize_and_center_crop(frames, 60, 120) is frames


def test_odd_sizes_are_padded_to_even(tmp_path):
  path = str(tmp_path / "odd.mp4")
  media.write_mp4(path, _smooth_video(4, 31, 45), FPS)
  assert media.read_video(path)[0].shape == (4, 32, 46, 3)


def test_write_gif_round_trip(tmp_path):
  path = str(tmp_path / "clip.gif")
  video = np.zeros((6, 16, 16, 3), np.uint8)  # [t, h, w, 3]
  video[:, :, :, 0] = np.arange(6)[:, None, None] * 40  # Flat red ramp.
  media.write_gif(path, video, FPS)
  back, fps = media.read_video(path)
  assert back.shape == video.shape
  assert fps == pytest.approx(FPS, rel=0.1)
  np.testing.assert_allclose(back[..., 0], video[..., 0], atol=8)


def test_write_wav(tmp_path):
  path = str(tmp_path / "a.wav")
  audio = _sine(seconds=0.5)
  media.write_wav(path, audio, RATE)
  with wave.open(path) as f:
    assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (
        1,
        2,
        RATE,
    )
    pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2")
  np.testing.assert_allclose(pcm / 32767, audio, atol=1e-4)
  np.testing.assert_allclose(media.read_audio(path, RATE), audio, atol=1e-3)


def test_write_png(tmp_path):
  path = str(tmp_path / "sub" / "a.png")
  image = _smooth_video(1)[0]
  media.write_png(path, image)
  np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
  assert os.listdir(tmp_path / "sub") == ["a.png"]  # No temporary left.


def test_writers_reject_bad_input(tmp_path):
  with pytest.raises(ValueError, match="uint8"):
    media.write_mp4(str(tmp_path / "a.mp4"), np.zeros((2, 8, 8, 3)), FPS)
  with pytest.raises(ValueError, match="mono"):
    media.write_wav(str(tmp_path / "a.wav"), np.zeros((8, 2)))
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "zero-byte file"),
        (b"hello, this is a text file\n" * 20, "cannot decode: "),
        (None, "no such file"),
    ],
)
def test_undecodable_input_raises_media_error(tmp_path, content, reason):
  path = str(tmp_path / "bad.mp4")
  if content is not None:
    with open(path, "wb") as f:
      f.write(content)
  for read in (media.read_video, media.read_audio):
    with pytest.raises(media.MediaError) as raised:
      read(path)
    assert raised.value.reason.startswith(reason)
    assert raised.value.path == path and path in str(raised.value)


def test_truncated_mp4_raises_media_error(av_file, tmp_path):
  with open(av_file[0], "rb") as f:
    data = f.read()
  path = str(tmp_path / "truncated.mp4")
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])
  with pytest.raises(media.MediaError, match="cannot decode"):
    media.read_video(path)


def test_webm_millisecond_timestamps_keep_the_frame_count(tmp_path):
  if "libvpx-vp9" not in av.codecs_available:
    pytest.skip("PyAV built without libvpx-vp9")
  path = str(tmp_path / "clip.webm")
  with av.open(path, "w", format="webm") as container:
    stream = container.add_stream("libvpx-vp9", rate=12)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    for image in _smooth_video(24, 64, 64):
      container.mux(stream.encode(av.VideoFrame.from_ndarray(image)))
    container.mux(stream.encode())
  # 2 s at 12 fps, stamped in whole milliseconds: 16 frames at 8 fps.
  assert len(media.read_video(path, fps=8)[0]) == 16
