"""SoundStream's losses: multi-scale mel reconstruction, hinge, features.

L_G = l_adv L_adv + l_feat L_feat + l_rec L_rec   (paper: 1, 100, 1)

* L_rec = sum_{s = 2^6..2^11} mean_t |S_s(x) - S_s(G)|_1
          + sqrt(s / 2) mean_t |log S_s(x) - log S_s(G)|_2,
  S_s a 64-bin mel spectrogram with window s and hop s / 4 (the paper
  sums over frames; we average them, so the weight does not grow with
  clip length).
* L_adv = mean_k mean_t relu(1 - D_k(G)); L_D = mean_k mean_t
  relu(1 - D_k(x)) + relu(1 + D_k(G)).
* L_feat = mean_{k, l} mean |D_k^l(x) - D_k^l(G)|.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

MEL_SCALES = tuple(2**i for i in range(6, 12))
MEL_BINS = 64


def stft(x: jax.Array, window: int, hop: int) -> jax.Array:
  """Hann-windowed STFT of x [b, n] -> [b, 1 + (n - window) // hop, f].

  Frames are taken without padding (n >= window); f = window // 2 + 1.
  """
  if x.shape[-1] < window:
    raise ValueError(
        f"{x.shape[-1]} samples are fewer than the window " f"{window}"
    )
  n_frames = 1 + (x.shape[-1] - window) // hop
  idx = hop * np.arange(n_frames)[:, None] + np.arange(window)[None]
  frames = x[..., idx] * jnp.asarray(
      np.hanning(window + 1)[:-1], x.dtype
  )  # [b, t, window]
  return jnp.fft.rfft(frames, axis=-1)


@functools.lru_cache(maxsize=None)
def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int) -> np.ndarray:
  """[n_fft // 2 + 1, n_mels] triangular HTK mel filters (unnormalized)."""

  def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)

  def mel_to_hz(m):
    return 700.0 * (10 ** (m / 2595.0) - 1.0)

  freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
  edges = mel_to_hz(np.linspace(0, hz_to_mel(sample_rate / 2), n_mels + 2))
  lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
  up = (freqs[:, None] - lo) / (mid - lo)
  down = (hi - freqs[:, None]) / (hi - mid)
  return np.maximum(0, np.minimum(up, down)).astype(np.float32)


def mel_spectrogram(
    x: jax.Array, window: int, sample_rate: int, n_mels: int = MEL_BINS
) -> jax.Array:
  """Mel magnitudes [b, t, n_mels] with hop window // 4.

  The STFT is divided by the window's sum (window / 2), so a full-scale
  sinusoid has magnitude 1/2 at every window size.
  """
  mag = jnp.abs(stft(x, window, window // 4)) / (window / 2)  # [b, t, f]
  return mag @ jnp.asarray(mel_filterbank(window, sample_rate, n_mels))


def multiscale_mel_loss(
    x: jax.Array,
    y: jax.Array,
    sample_rate: int,
    scales: tuple[int, ...] = MEL_SCALES,
    eps: float = 1e-5,
) -> jax.Array:
  """The paper's L_rec between target x [b, n] and reconstruction y."""
  total = 0.0
  for s in scales:
    sx = mel_spectrogram(x, s, sample_rate)
    sy = mel_spectrogram(y, s, sample_rate)
    l1 = jnp.mean(jnp.sum(jnp.abs(sx - sy), -1))
    log_diff = jnp.log(jnp.maximum(sx, eps)) - jnp.log(jnp.maximum(sy, eps))
    l2 = jnp.mean(jnp.sqrt(jnp.sum(log_diff**2, -1) + 1e-12))
    total = total + l1 + np.sqrt(s / 2) * l2
  return total


def discriminator_hinge(real_logits, fake_logits) -> jax.Array:
  """L_D over lists of logits (one [b, t] per discriminator)."""
  terms = [
      jnp.mean(jax.nn.relu(1 - r)) + jnp.mean(jax.nn.relu(1 + f))
      for r, f in zip(real_logits, fake_logits)
  ]
  return sum(terms) / len(terms)


def generator_hinge(fake_logits) -> jax.Array:
  """L_adv over a list of logits."""
  return sum(jnp.mean(jax.nn.relu(1 - f)) for f in fake_logits) / len(
      fake_logits
  )


def feature_matching(real_features, fake_features) -> jax.Array:
  """L_feat: mean L1 over discriminators and layers (real side constant)."""
  terms = [
      jnp.mean(jnp.abs(jax.lax.stop_gradient(r) - f))
      for rs, fs in zip(real_features, fake_features)
      for r, f in zip(rs, fs)
  ]
  return sum(terms) / len(terms)
