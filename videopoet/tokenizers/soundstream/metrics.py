"""Codec quality metrics, computed offline on numpy arrays.

  * `mel_distance`: DAC's evaluation mel distance (its `MelSpectrogramLoss`
    defaults: windows 2048 and 512 with 150 and 80 mels, hop window / 4,
    L1 of log10 mel power plus L1 of mel magnitude), here at 16 kHz.
    Lower is better.
  * `si_sdr`: scale-invariant SDR in dB (higher is better).
  * `visqol`: ViSQOL v3 audio mode (MOS-LQO 1..5) from `visqol-python`,
    on signals resampled to 48 kHz as audio mode expects.
  * `pesq_wb` (wide-band PESQ, 16 kHz) and `stoi`: speech only.

The optional packages (`visqol`, `pesq`, `pystoi`) are imported when used;
a missing one raises an ImportError that names the pip package.
"""

from typing import Callable

import numpy as np
from scipy import signal as scipy_signal

from videopoet.tokenizers.soundstream import losses

_EVAL_MELS = ((2048, 150), (512, 80))


def _stft_mag(x: np.ndarray, window: int) -> np.ndarray:
  hop = window // 4
  if x.shape[-1] < window:
    x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, window - x.shape[-1])])
  n = 1 + (x.shape[-1] - window) // hop
  idx = hop * np.arange(n)[:, None] + np.arange(window)[None]
  return np.abs(np.fft.rfft(x[..., idx] * np.hanning(window + 1)[:-1]))


def mel_distance(
    ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000
) -> float:
  """DAC-style mel distance between ref and deg ([n] or [b, n])."""
  ref, deg = _pair(ref, deg)
  total = 0.0
  for window, n_mels in _EVAL_MELS:
    fb = losses.mel_filterbank(window, sample_rate, n_mels)
    mr = _stft_mag(ref, window) @ fb
    md = _stft_mag(deg, window) @ fb
    log = lambda m: np.log10(np.maximum(m**2, 1e-5))
    total += np.mean(np.abs(log(mr) - log(md))) + np.mean(np.abs(mr - md))
  return float(total)


def si_sdr(ref: np.ndarray, deg: np.ndarray, eps: float = 1e-8) -> float:
  """Scale-invariant SDR in dB, averaged over a batch ([n] or [b, n])."""
  ref, deg = _pair(ref, deg)
  ref = ref - ref.mean(-1, keepdims=True)
  deg = deg - deg.mean(-1, keepdims=True)
  alpha = np.sum(deg * ref, -1, keepdims=True) / (
      np.sum(ref**2, -1, keepdims=True) + eps
  )
  target = alpha * ref
  ratio = np.sum(target**2, -1) / (np.sum((deg - target) ** 2, -1) + eps)
  return float(np.mean(10 * np.log10(ratio + eps)))


def _pair(ref, deg):
  ref = np.asarray(ref, np.float64)
  deg = np.asarray(deg, np.float64)
  if ref.shape != deg.shape:
    raise ValueError(
        f"reference {ref.shape} and degraded {deg.shape} audio"
        " must have the same shape"
    )
  return ref, deg


def _require(module: str, package: str):
  try:
    return __import__(module)
  except ImportError as e:
    raise ImportError(f"this metric needs `pip install {package}`") from e


_VISQOL = {}


def visqol(ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000) -> float:
  """ViSQOL audio-mode MOS-LQO of one clip [n] (resampled to 48 kHz)."""
  if "api" not in _VISQOL:
    api = _require("visqol", "visqol-python").VisqolApi()
    api.create(mode="audio")
    _VISQOL["api"] = api
  ref, deg = _pair(ref, deg)
  up = lambda x: scipy_signal.resample_poly(x, 48000, sample_rate)
  return float(
      _VISQOL["api"].measure_from_arrays(up(ref), up(deg), 48000).moslqo
  )


def pesq_wb(
    ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000
) -> float:
  """Wide-band PESQ (MOS-LQO) of one speech clip [n] at 16 kHz."""
  pesq = _require("pesq", "pesq")
  if sample_rate != 16000:
    raise ValueError(f"wide-band PESQ needs 16 kHz, got {sample_rate}")
  ref, deg = _pair(ref, deg)
  return float(pesq.pesq(16000, ref, deg, "wb"))


def stoi(ref: np.ndarray, deg: np.ndarray, sample_rate: int = 16000) -> float:
  """STOI (0..1) of one speech clip [n]."""
  pystoi = _require("pystoi", "pystoi")
  ref, deg = _pair(ref, deg)
  return float(pystoi.stoi(ref, deg, sample_rate, extended=False))


METRICS: dict[str, Callable[..., float]] = {
    "mel_distance": mel_distance,
    "si_sdr": si_sdr,
    "visqol": visqol,
    "pesq": pesq_wb,
    "stoi": stoi,
}


def evaluate(
    reconstruct: Callable[[np.ndarray, int], np.ndarray],
    clips: np.ndarray,
    levels: tuple[int, ...],
    names: tuple[str, ...] = ("mel_distance", "si_sdr"),
    sample_rate: int = 16000,
) -> dict[str, float]:
  """Means of `names` over clips [b, n] at each number of levels.

  Args:
    reconstruct: `(clips [b, n], n_levels) -> reconstructions [b, n]`.
    clips: the reference audio.
    levels: numbers of RVQ levels to decode with.
    names: keys of `METRICS`.
    sample_rate: of the clips.

  Returns:
    `{f"{name}@{n}": mean}` for every name and number of levels.
  """
  out = {}
  for n in levels:
    rec = np.asarray(reconstruct(clips, n))
    for name in names:
      fn = METRICS[name]
      out[f"{name}@{n}"] = float(
          np.mean(
              [
                  fn(r, d, sample_rate=sample_rate)
                  if name != "si_sdr"
                  else fn(r, d)
                  for r, d in zip(clips, rec)
              ]
          )
      )
  return out
