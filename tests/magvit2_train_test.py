"""End to end: the MAGVIT-v2 job trains 2 steps, resumes, loads back."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import magvit2 as magvit2_config
from configs import synth_av as synth_av_config
from videopoet import config_lib
from videopoet.data import synth_av
from videopoet.data import synth_av_tfds
from videopoet.train_lib import family
from videopoet.train_lib import workdir as workdir_lib
from videopoet.tokenizers.common import perceptual
from videopoet.tokenizers.magvit2 import program
from videopoet.tokenizers.magvit2 import quantizers
from videopoet.tokenizers.magvit2 import train as train_lib


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("data"))
  cfg = synth_av_config.get_config("tiny")
  cfg.dataset.update(
      train_size=8, validation_size=2, test_size=4, test_heldout_size=2
  )
  synth_cfg = config_lib.from_config(synth_av.SynthAVConfig, cfg.dataset)
  synth_av_tfds.build(synth_cfg, d, name="tiny")
  return d


@pytest.fixture(autouse=True)
def fast_compile():
  # XLA:CPU's optimizing passes dominate this test's time (the step holds
  # the generator for images and videos, D, R1 and the perceptual net);
  # numerics do not depend on them.
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


def _config(data_dir, weights, steps, gan=False):
  c = magvit2_config.get_config("tiny")
  c.trainer.update(total_steps=steps, log_every=1, eval_every=2)
  c.trainer.checkpoint.update(every_steps=1, async_save=False)
  c.model.update(filters=4, num_groups=2)
  c.quantizer.lfq.num_bits = 8
  c.discriminator.update(filters=2, channel_multipliers=(1, 1, 1, 1))
  # The fast variant trains on videos only: one compiled generator, not two.
  c.loss.update(
      gan_start_step=0,
      r1_every=1,
      image_fraction=0.5 if gan else 0.0,
      adversarial_weight=0.1 if gan else 0.0,
  )
  c.perceptual.update(
      weights_path=weights, stage_sizes=(1,), width=2, num_classes=4
  )
  c.data.update(
      data_dir=data_dir, batch_size=2, num_frames=5, train_num_frames=0
  )
  c.eval.update(batch_size=2, num_batches=1)
  return c


@pytest.mark.parametrize(
    "gan", [False, pytest.param(True, marks=pytest.mark.slow)]
)
def test_train_resume_and_load(data_dir, tmp_path, gan):
  pcfg = perceptual.PerceptualConfig(stage_sizes=(1,), width=2, num_classes=4)
  weights = str(tmp_path / "resnet.msgpack")
  net_params = perceptual.network(pcfg).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3))
  )["params"]
  perceptual.save_weights(weights, net_params)
  workdir = str(tmp_path / "run")

  family.run(program.FAMILY, _config(data_dir, weights, 2, gan), workdir)
  # Resumes at 2.
  family.run(program.FAMILY, _config(data_dir, weights, 3, gan), workdir)

  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  steps = [r["step"] for r in rows if "train/loss" in r]
  assert steps == [1, 2, 3]
  train = [r for r in rows if "train/loss" in r]
  assert all(np.isfinite(r["train/loss"]) for r in train)
  assert all(r["train/perceptual"] >= 0 for r in train)
  if gan:  # On from step 0.
    assert all(r["train/disc_loss"] > 0 and r["train/r1"] >= 0 for r in train)
  else:
    assert not any("train/disc_loss" in r for r in train)
  evals = [r for r in rows if "eval/psnr" in r]
  assert evals and {"eval/ssim", "eval/code_usage", "eval/bit_mean_min"} <= set(
      evals[-1]
  )
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-1] == "3"

  tok = program.load_tokenizer(workdir)
  assert tok.step == 3
  video = jnp.zeros((1, 5, 64, 64, 3))
  ids = tok.encode_to_indices(video)
  assert ids.shape == (1, 2, 8, 8) and ids.dtype == jnp.int32
  assert tok.decode_from_indices(ids).shape == (1, 5, 64, 64, 3)
  assert tok.encode(video[:, 0]).shape == (1, 8, 8, 8)

  # A rerun with another model is refused before config.json is touched,
  # so the loader still builds the model the checkpoints hold.
  config_json = open(os.path.join(workdir, "config.json"), "rb").read()
  other = _config(data_dir, weights, 4, gan)
  other.model.temporal_downsample = (False, True, False)
  with pytest.raises(
      workdir_lib.WorkdirConfigError, match="model.temporal_downsample"
  ):
    family.run(program.FAMILY, other, workdir)
  assert open(os.path.join(workdir, "config.json"), "rb").read() == config_json
  assert program.load_tokenizer(workdir).encode_to_indices(video).shape == (
      1, 2, 8, 8
  )


def test_eval_split_smaller_than_the_eval_batch_is_refused_at_start(data_dir):
  c = _config(data_dir, "", 1)
  c.eval.batch_size = 8  # The test split holds 4 clips.
  dcfg = config_lib.from_config(program.DataConfig, c.data, "config.data")
  ecfg = config_lib.from_config(program.EvalConfig, c.eval, "config.eval")
  with pytest.raises(config_lib.ConfigError, match="holds 4 clips"):
    program.make_evaluate(program._trainer(c), dcfg, ecfg, None)  # pylint: disable=protected-access


def test_missing_weights_and_data_dir_are_clear_errors(tmp_path):
  c = _config("", "", 1)
  with pytest.raises(config_lib.ConfigError, match="data_dir is empty"):
    family.run(program.FAMILY, c, str(tmp_path / "a"))
  with pytest.raises(FileNotFoundError, match="weights_path"):
    perceptual.load(perceptual.PerceptualConfig(weights_path="/nope.msgpack"))


def test_phases_name_each_steps_program():
  """No `lax.cond`: the data iterator picks the step program by step."""
  c = magvit2_config.get_config("tiny")
  c.loss.update(gan_start_step=3, r1_every=2, adversarial_weight=0.1)
  t = program._trainer(c)  # pylint: disable=protected-access
  assert t.phases() == ("recon", "gan", "gan_r1")
  assert [t.phase_of(i) for i in range(7)] == [
      "recon",
      "recon",
      "recon",
      "gan",
      "gan_r1",
      "gan",
      "gan_r1",
  ]
  c.loss.update(gan_start_step=0, r1_every=1)
  t = program._trainer(c)  # pylint: disable=protected-access
  assert t.phases() == ("gan_r1",) and t.phase_of(0) == "gan_r1"
  c.loss.update(adversarial_weight=0.0)
  t = program._trainer(c)  # pylint: disable=protected-access
  assert t.phases() == ("recon",) and t.phase_of(5) == "recon"
  with pytest.raises(ValueError, match="unknown phase"):
    t.step({"step": 0}, None, None, phase="gan2")


def test_learning_rate_warms_up_then_decays_along_a_cosine():
  cfg = train_lib.OptimizerConfig(
      learning_rate=1e-3, warmup_steps=10, decay_steps=110, end_fraction=0.1
  )
  lr = train_lib.adam(cfg.learning_rate, cfg).schedule()
  np.testing.assert_allclose(
      [lr(s) for s in (0, 5, 10, 60, 110, 500)],
      [0.0, 5e-4, 1e-3, 5.5e-4, 1e-4, 1e-4],  # Midway: (1 + 0.1) / 2 peak.
      rtol=1e-5,
      atol=1e-9,
  )
  constant = train_lib.adam(
      1e-3, dataclasses.replace(cfg, decay_steps=0)
  ).schedule()
  np.testing.assert_allclose([constant(10), constant(500)], [1e-3, 1e-3])


def test_total_steps_moves_the_decay_and_the_gan_start_of_short_runs():
  c = magvit2_config.get_config("tiny")
  c.trainer.total_steps = 4000
  assert (c.optimizer.decay_steps, c.loss.gan_start_step) == (4000, 3000)
  c.optimizer.decay_steps = 0  # Its own value now; total_steps stays.
  c.loss.gan_start_step = 10
  assert c.trainer.total_steps == 4000
  base = magvit2_config.get_config("base")  # praxis: constant rate, GAN on.
  assert (base.optimizer.decay_steps, base.loss.gan_start_step) == (0, 0)


def test_tiny16_codes_64x64x17_as_9x16x16_fsq_without_a_gan():
  c = magvit2_config.get_config("tiny16")
  t = program._trainer(c)  # pylint: disable=protected-access
  q = t.quantizer.build()
  assert isinstance(q, quantizers.FSQ)
  assert q.codebook_size == 2**18  # As many codes as LFQ's.
  assert t.model.latent_shape(17, 64, 64) == (9, 16, 16)
  assert t.model.latent_shape(1, 64, 64) == (1, 16, 16)
  assert t.phases() == ("recon",)
  tiny = magvit2_config.get_config("tiny")  # Unchanged: 5x8x8.
  assert program._trainer(tiny).model.latent_shape(17, 64, 64) == (5, 8, 8)  # pylint: disable=protected-access


def test_demo_codes_64x64x17_as_5x8x8_with_2_to_the_10_codes():
  c = magvit2_config.get_config("demo")  # `make demo`: the LM's vocabulary.
  t = program._trainer(c)  # pylint: disable=protected-access
  assert t.quantizer.build().codebook_size == 2**10
  assert t.model.latent_shape(17, 64, 64) == (5, 8, 8)
  assert t.phases() == ("recon",)
  steps = c.trainer.total_steps
  assert c.optimizer.decay_steps == c.trainer.eval_every == steps
  assert steps % c.trainer.checkpoint.every_steps == 0
