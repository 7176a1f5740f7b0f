"""SoundStream losses, discriminators and quality metrics."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet import kernels
from videopoet.tokenizers.soundstream import discriminators as disc_lib
from videopoet.tokenizers.soundstream import losses
from videopoet.tokenizers.soundstream import metrics
from videopoet.tokenizers.soundstream import model as model_lib
from videopoet.tokenizers.soundstream import trainer

SR = 16000


def _tone(n=SR, freqs=(220.0, 440.0, 880.0), seed=0):
  t = np.arange(n) / SR
  rng = np.random.default_rng(seed)
  x = sum(
      np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / (i + 1)
      for i, f in enumerate(freqs)
  )
  return (0.3 * x * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _init_key():  # The codec's init key, as its trainer draws it.
  return kernels.init_key(jax.random.key(0), model_lib.INIT_KEY_DERIVATION)


def _noisy(x, snr_db, seed=1):
  noise = np.random.default_rng(seed).standard_normal(x.shape)
  noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
  return (x + noise).astype(np.float32)


def test_hinge_and_feature_matching_values():
  real = [jnp.array([[2.0, 0.5]]), jnp.array([[-1.0]])]
  fake = [jnp.array([[-2.0, 0.0]]), jnp.array([[3.0]])]
  # D: mean over discriminators of mean relu(1 - r) + mean relu(1 + f).
  want_d = ((0 + 0.5) / 2 + (0 + 1) / 2 + (2.0 + 4.0)) / 2
  np.testing.assert_allclose(losses.discriminator_hinge(real, fake), want_d)
  np.testing.assert_allclose(
      losses.generator_hinge(fake), ((3 + 1) / 2 + 0) / 2
  )
  feats_r = [[jnp.ones((1, 2, 3))], [jnp.zeros((1, 4))]]
  feats_f = [[jnp.zeros((1, 2, 3))], [jnp.full((1, 4), 3.0)]]
  np.testing.assert_allclose(losses.feature_matching(feats_r, feats_f), 2.0)
  # The real side is a constant: no gradient flows into it.
  g = jax.grad(lambda r: losses.feature_matching([[r]], [[r * 0]]))(
      jnp.ones((2,))
  )
  np.testing.assert_array_equal(g, 0.0)


def test_mel_filterbank_and_stft():
  fb = losses.mel_filterbank(1024, SR, 64)
  assert fb.shape == (513, 64) and fb.min() >= 0 and fb.max() <= 1
  assert np.all(fb.sum(0) > 0)  # every filter covers a bin at this size
  spec = losses.stft(jnp.ones((2, 4096)), 1024, 256)
  assert spec.shape == (2, 13, 513)
  with pytest.raises(ValueError, match="fewer than the window"):
    losses.stft(jnp.ones((1, 100)), 1024, 256)


def test_multiscale_mel_loss_orders_distortions():
  x = jnp.asarray(_tone()[None])
  assert float(losses.multiscale_mel_loss(x, x, SR)) == pytest.approx(
      0.0, abs=1e-3
  )
  near = float(losses.multiscale_mel_loss(x, jnp.asarray(_noisy(x, 30)), SR))
  far = float(losses.multiscale_mel_loss(x, jnp.asarray(_noisy(x, 0)), SR))
  assert 0 < near < far


def test_discriminator_shapes():
  cfg = disc_lib.DiscriminatorConfig(
      wave_channels=4, wave_max_channels=16, stft_channels=2
  )
  disc = disc_lib.Discriminators(cfg)
  audio = jnp.zeros((2, 8192))
  params = jax.jit(disc.init)(_init_key(), audio)
  out = disc.apply(params, audio)
  assert len(out) == 1 + 3
  logits, feats = out[0]  # STFT: 29 frames -> ceil(29 / 8) logits
  assert logits.shape == (2, 4) and len(feats) == 7
  for k, (logits, feats) in enumerate(out[1:]):
    # Scale k sees 8192 / 2^k samples, 4 stride-4 convs.
    assert logits.shape == (2, 8192 // 2**k // 256), k
    assert len(feats) == 6 and feats[-2].shape[-1] == 16


def test_discriminators_equal_their_lax_form():
  """With every conv in its plain `lax` form (`kernels="lax"`), the
  discriminators have the same parameter tree, logits and features, and the
  same gradients for their parameters (the discriminator's update) and for
  the audio (the generator's)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  cfg = disc_lib.DiscriminatorConfig(
      wave_channels=4, wave_max_channels=64, stft_channels=4
  )
  audio = jax.random.normal(jax.random.key(3), (2, 4100)) * 0.3
  init_key = _init_key()
  disc = disc_lib.Discriminators(cfg)
  params = nn.unbox(jax.jit(disc.init)(init_key, audio))
  ref = disc_lib.Discriminators(dataclasses.replace(cfg, kernels="lax"))
  ref_params = jax.eval_shape(ref.init, init_key, audio)
  out_ref = jax.jit(ref.apply)(params, audio)
  probe = lambda out: sum(
      jnp.sum(jnp.sin(jnp.arange(z.size).reshape(z.shape)) * z)
      for z in jax.tree.leaves(out)
  )
  grads_ref = jax.jit(jax.grad(lambda p, a: probe(ref.apply(p, a)), (0, 1)))(
      params, audio
  )
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(
      jnp.shape, nn.unbox(ref_params)
  )
  out = jax.jit(disc.apply)(params, audio)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
      out, out_ref,
  )  # fmt: skip
  grads = jax.jit(jax.grad(lambda p, a: probe(disc.apply(p, a)), (0, 1)))(
      params, audio
  )
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(
          a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b)))
      ),
      grads, grads_ref,
  )  # fmt: skip


def test_si_sdr_and_mel_distance():
  x = _tone()
  for snr in (30, 10, 0):
    assert metrics.si_sdr(x, _noisy(x, snr)) == pytest.approx(snr, abs=0.3)
  assert metrics.si_sdr(x, 0.5 * x) > 60  # scale-invariant
  assert metrics.mel_distance(x, x) == 0.0
  assert metrics.mel_distance(x, _noisy(x, 30)) < metrics.mel_distance(
      x, _noisy(x, 5)
  )
  with pytest.raises(ValueError, match="same shape"):
    metrics.si_sdr(x, x[:-1])


def test_stoi_visqol_order_distortions():
  pytest.importorskip("pystoi")
  x = _tone(2 * SR)
  assert metrics.stoi(x, _noisy(x, 20)) > metrics.stoi(x, _noisy(x, -5))
  pytest.importorskip("visqol")
  clean = metrics.visqol(x, _noisy(x, 40))
  assert clean > metrics.visqol(x, _noisy(x, 0))


def test_evaluate_reports_every_level():
  clips = np.stack([_tone(4000), _tone(4000, seed=3)])
  out = metrics.evaluate(lambda c, n: _noisy(c, 10 * n), clips, (1, 2))
  assert set(out) == {
      "mel_distance@1",
      "si_sdr@1",
      "mel_distance@2",
      "si_sdr@2",
  }
  assert out["si_sdr@2"] > out["si_sdr@1"]


def test_mel_floor_prefers_a_faint_noise_over_silence_on_a_pure_tone():
  # With the paper-less floor 1e-5, digitally silent bins dominate L_rec:
  # a perfect reconstruction plus noise at 1e-3 of full scale scores about
  # as badly as silence, and training learns to output near-silence.
  x = jnp.asarray(_tone()[None]) * 0.2
  noise = 1e-3 * np.random.default_rng(0).standard_normal(x.shape)
  faint = x + jnp.asarray(noise, jnp.float32)
  floor = trainer.LossConfig().mel_floor
  loss = lambda y, eps: float(losses.multiscale_mel_loss(x, y, SR, eps=eps))
  assert loss(faint, floor) < 0.05 * loss(jnp.zeros_like(x), floor)
  assert loss(faint, 1e-5) > 0.5 * loss(jnp.zeros_like(x), 1e-5)
