"""End to end: the codec job trains 2 steps on synth_av, resumes, loads."""

import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from configs import soundstream as soundstream_config
from configs import synth_av as synth_av_config
from videopoet import config_lib
from videopoet.data import synth_av
from videopoet.data import synth_av_tfds
from videopoet.tokenizers.soundstream import codec as codec_lib
from videopoet.tokenizers.soundstream import trainer
from videopoet.train_lib import family


def _tiny_config(data_dir, total_steps):
  config = soundstream_config.get_config("tiny")
  config.trainer.total_steps = total_steps
  config.trainer.log_every = 1
  config.trainer.eval_every = 2
  config.trainer.checkpoint.every_steps = 2
  config.trainer.checkpoint.async_save = False
  config.model.channels = 2
  config.model.embed_dim = 8
  config.model.rvq.num_levels = 2
  config.model.rvq.codebook_size = 64
  config.discriminator.wave_channels = 4
  config.discriminator.wave_max_channels = 8
  config.discriminator.wave_scales = 2
  config.discriminator.stft_channels = 2
  config.loss.gan_start_step = 1  # step 1 reconstruction-only, then GAN
  config.optimizer.warmup_steps = 1
  config.data.data_dir = data_dir
  config.data.segment_samples = 2240
  config.data.batch_size = 2
  config.data.eval_clips = 2
  config.data.eval_levels = (1, 0)
  return config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("data"))
  config = synth_av_config.get_config("tiny")
  for split, size in [
      ("train", 8),
      ("validation", 2),
      ("test", 2),
      ("test_heldout", 2),
  ]:
    config.dataset[f"{split}_size"] = size
  synth_av_tfds.build(
      config_lib.from_config(synth_av.SynthAVConfig, config.dataset),
      path,
      name="tiny",
  )
  return path


def _steps(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def test_trains_resumes_and_loads(data_dir, tmp_path):
  workdir = str(tmp_path / "codec")
  # Two processes' worth of compiles in one: reuse them across the runs.
  cache = str(tmp_path / "jax_cache")
  old = (
      jax.config.jax_compilation_cache_dir,
      jax.config.jax_persistent_cache_min_compile_time_secs,
  )
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  try:
    family.run(trainer.FAMILY, _tiny_config(data_dir, 2), workdir)
    first = _steps(workdir)
    family.run(trainer.FAMILY, _tiny_config(data_dir, 3), workdir)
  finally:
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
  rows = _steps(workdir)
  train = [r for r in rows if "train/loss" in r]
  assert [r["step"] for r in train] == [1, 2, 3]  # resumed at step 3
  assert train[:2] == [r for r in first if "train/loss" in r]
  for r in train:
    assert all(np.isfinite(v) for k, v in r.items() if k != "step")
  # Step 1 is reconstruction-only (no discriminator run), then the GAN.
  assert train[0]["train/adv"] == 0 and train[0]["train/disc_loss"] == 0
  assert train[1]["train/adv"] > 0 and train[1]["train/disc_loss"] > 0
  evals = [r for r in rows if "eval/si_sdr@1" in r]
  assert {r["step"] for r in evals} == {2, 3}
  assert {"eval/mel_distance@2", "eval/si_sdr@2"} <= set(evals[0])
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
  assert os.path.exists(os.path.join(workdir, "config.json"))

  codec = codec_lib.load_codec(workdir)
  audio = np.zeros((1, 34000), np.float32)
  codes = codec.encode(audio)
  assert codes.shape == (1, 2, 106)
  assert codec.decode(codes, num_samples=34000).shape == (1, 34000)
  step2 = codec_lib.load_codec(os.path.join(workdir, "checkpoints", "2"))
  assert not np.allclose(
      np.asarray(step2.variables["params"]["decoder"]["out"]["conv"]["kernel"]),
      np.asarray(codec.variables["params"]["decoder"]["out"]["conv"]["kernel"]),
  )


def test_config_errors_name_the_key(tmp_path):
  config = _tiny_config(str(tmp_path), 1)
  config.data.segment_samples = 3000
  with pytest.raises(config_lib.ConfigError, match="segment_samples=3000"):
    trainer.parse(config)
  config = _tiny_config(str(tmp_path), 1)
  config.model.rvq.dropout = 0.5  # a typo of dropout_prob
  with pytest.raises(
      config_lib.ConfigError,
      match="config.model.rvq.dropout is not a config key",
  ):
    trainer.parse(config)
  config = _tiny_config("", 1)
  with pytest.raises(ValueError, match="data_dir is empty"):
    trainer.make_program(trainer.parse(config), None)
  for arg in ("tiny", "demo", "small", "base"):
    trainer.parse(soundstream_config.get_config(arg))
  demo = soundstream_config.get_config("demo")  # No GAN step in the run.
  assert demo.loss.gan_start_step >= demo.trainer.total_steps
  # small's threshold (0.2, for 16 x 1 s) with tiny's batch (8 x 0.5 s:
  # 200 frames, a mean count of 0.195 per code) would replace most codes.
  config = soundstream_config.get_config("small")
  config.data.update(batch_size=8, segment_samples=8000)
  with pytest.raises(
      config_lib.ConfigError, match=r"dead_code_threshold=0.2 .* about 0.049"
  ):
    trainer.parse(config)
  config.model.rvq.dead_code_threshold = 0.05
  trainer.parse(config)


def test_phased_batches_switch_to_gan_and_resume_in_phase():
  from videopoet.train_lib import data as data_lib  # pylint: disable=g-import-not-at-top

  class Counter:  # A checkpointable inner iterator.

    def __init__(self):
      self.i = 0

    def __next__(self):
      self.i += 1
      return {"audio": self.i}

    def get_state(self):
      return {"i": self.i}

    def set_state(self, s):
      self.i = s["i"]

  phases = lambda start: lambda i: "gan" if i >= start else "recon"
  it = data_lib.PhasedBatches(Counter(), phases(2))
  got = [next(it) for _ in range(3)]
  assert [p for p, _ in got] == ["recon", "recon", "gan"]
  state = it.get_state()
  resumed = data_lib.PhasedBatches(Counter(), phases(5))
  resumed.set_state(state)
  assert [next(resumed) for _ in range(3)] == [
      ("recon", {"audio": 4}),
      ("recon", {"audio": 5}),
      ("gan", {"audio": 6}),
  ]


def test_waveform_term_enters_the_generator_loss():
  """loss(l_wave = 5) - loss(l_wave = 0) == 5 mean|x - G(x)|, and it trains."""
  rng = np.random.default_rng(0)
  t = np.arange(2240) / 16000
  audio = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 600, (2, 1)) * t)
  batch = {"audio": jax.numpy.asarray(audio, jax.numpy.float32)}
  out = {}
  for weight in (0.0, 5.0):
    config = _tiny_config("", 1)
    config.loss.waveform = weight
    init, step = trainer.make_step(trainer.parse(config))
    state = init(jax.random.key(0))
    new, metrics = jax.jit(step, static_argnames="phase")(
        state, batch, jax.random.key(1), phase="recon"
    )
    out[weight] = (new, jax.tree.map(float, metrics))
  (s0, m0), (s5, m5) = out[0.0], out[5.0]
  assert m0["train/wave"] == pytest.approx(m5["train/wave"], rel=1e-6)
  assert m0["train/wave"] > 0.01  # the untrained decoder is far off
  assert m5["train/loss"] - m0["train/loss"] == pytest.approx(
      5.0 * m5["train/wave"], rel=1e-4
  )
  # Its gradient reaches Adam (step 1's warmup learning rate is 0, so the
  # parameters themselves move from step 2 on).
  moments = lambda s: np.concatenate(
      [np.ravel(x) for x in jax.tree.leaves(nn.unbox(s["opt_g"]))]
  )
  assert not np.allclose(moments(s0), moments(s5))
