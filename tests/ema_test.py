"""Weight EMA with warmup (`common.ema`) and its use by both tokenizer trainers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import magvit2 as magvit2_config
from videopoet.tokenizers.common import ema
from videopoet.tokenizers.magvit2 import program
from videopoet.tokenizers.soundstream import trainer as codec_trainer
from tests import train_audio_codec_test


def test_decay_warms_up_to_the_configured_value():
  d = [float(ema.decay_at(0.999, n)) for n in (0, 1, 990, 8989, 8990, 10**6)]
  assert d[:3] == pytest.approx([1 / 10, 2 / 11, 991 / 1000])
  assert d[3] < 0.999
  assert d[4:] == pytest.approx([0.999, 0.999])


def test_initial_weights_fade_at_once():
  """Tracking constant weights p from e0: e0's share is prod(d_n)."""
  e0 = {"w": jnp.zeros((3,)), "b": jnp.zeros((), jnp.bfloat16)}
  p = {"w": jnp.ones((3,)), "b": jnp.ones((), jnp.bfloat16)}
  e = e0
  for n in range(150):
    e = ema.update(e, p, 0.999, jnp.int32(n))
  assert e["b"].dtype == jnp.bfloat16
  share = np.prod([(1 + n) / (10 + n) for n in range(150)])  # ~7e-15
  np.testing.assert_allclose(e["w"], 1 - share, rtol=1e-6)
  # The plain EMA it replaces kept 0.999^150 = 86 % of e0 here.
  assert 1 - float(e["w"][0]) < 1e-6 < 0.999**150


def _leaves(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def _check_two_steps(init, step, batch, param_key, ema_key, decay):
  """Step 1's warmup learning rate is 0, so p1 = p0 = e1; step 2 moves the
  weights, and e2 = p0 + (1 - d_1) (p2 - p0) (a plain EMA: 1 - decay)."""
  s0 = init()
  s1, _ = step(s0, batch)
  s2, _ = step(s1, batch)
  p0, p1, p2 = (_leaves(s[param_key]) for s in (s0, s1, s2))
  e2 = _leaves(s2[ema_key])
  np.testing.assert_array_equal(p1, p0)
  assert not np.allclose(p2, p0)
  d1 = min(decay, 2 / 11)  # update 1's warmup decay, (1 + 1) / (10 + 1)
  np.testing.assert_allclose(e2, p0 + (1 - d1) * (p2 - p0), atol=1e-6)


def test_codec_trainer_uses_it():
  c = train_audio_codec_test._tiny_config("", 2)  # pylint: disable=protected-access
  init, step = codec_trainer.make_step(codec_trainer.parse(c))
  t = np.arange(2240) / 16000
  batch = {"audio": jnp.asarray(0.3 * np.sin(2 * np.pi * 440 * t)[None])}
  batch["audio"] = jnp.tile(batch["audio"], (2, 1)).astype(jnp.float32)
  jstep = jax.jit(step, static_argnames="phase")
  _check_two_steps(
      lambda: init(jax.random.key(0)),
      lambda s, b: jstep(s, b, jax.random.key(1), phase="recon"),
      batch,
      "params",
      "ema_params",
      c.optimizer.ema_decay,
  )


def test_magvit2_trainer_uses_it():
  c = magvit2_config.get_config("tiny")
  c.model.update(filters=4, num_groups=2)
  c.quantizer.lfq.num_bits = 8
  c.discriminator.update(filters=2, channel_multipliers=(1, 1, 1, 1))
  c.loss.update(adversarial_weight=0.0, image_fraction=0.0)
  c.optimizer.warmup_steps = 1
  t = program._trainer(c)  # pylint: disable=protected-access
  video = jax.random.uniform(jax.random.key(2), (1, 5, 32, 32, 3)) * 2 - 1
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  try:
    jstep = jax.jit(t.step, static_argnames="phase")
    _check_two_steps(
        lambda: t.init(jax.random.key(0), video),
        lambda s, b: jstep(s, b, jax.random.key(1), phase="recon"),
        video,
        "params",
        "ema_params",
        c.optimizer.ema_decay,
    )
  finally:
    jax.config.update("jax_disable_most_optimizations", old)
