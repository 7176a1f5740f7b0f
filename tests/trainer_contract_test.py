"""One trainer contract: every model family is a `train_lib.family.Family`,
trained, refused and loaded through the same `family.run` and `load`.

Each family's tiny config (the ones of magvit2_train_test,
train_audio_codec_test and train_test, made smaller) trains two steps
through `family.run`; a rerun with another model config is refused before
anything in the workdir is written; a bad key is named before the workdir
exists; `FAMILY.load` reads the trained parameters back.
"""

import inspect
import json
import os

import jax
import jax.numpy as jnp
import pytest

from configs import superres as superres_config
from configs import synth_av as synth_av_config
from configs import videopoet as videopoet_config
from tests import magvit2_train_test
from tests import train_audio_codec_test
from videopoet import config_lib
from videopoet import lm_trainer
from videopoet.data import synth_av
from videopoet.data import synth_av_tfds
from videopoet.superres import trainer as superres_trainer
from videopoet.tokenizers.common import perceptual
from videopoet.tokenizers.magvit2 import program as magvit2_program
from videopoet.tokenizers.soundstream import trainer as soundstream_trainer
from videopoet.train_lib import family
from videopoet.train_lib import workdir as workdir_lib

FAMILIES = {
    "video_tokenizer": magvit2_program.FAMILY,
    "audio_codec": soundstream_trainer.FAMILY,
    "lm": lm_trainer.FAMILY,
    "superres": superres_trainer.FAMILY,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """synth_av/tiny, as small as the video and audio tests use it."""
  d = str(tmp_path_factory.mktemp("data"))
  cfg = synth_av_config.get_config("tiny")
  cfg.dataset.update(
      train_size=8, validation_size=2, test_size=4, test_heldout_size=2
  )
  synth_av_tfds.build(
      config_lib.from_config(synth_av.SynthAVConfig, cfg.dataset), d,
      name="tiny",
  )  # fmt: skip
  return d


@pytest.fixture(autouse=True)
def fast_compile():
  # XLA:CPU's optimizing passes dominate; the checks here are not numeric.
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)


def _video_config(data_dir, tmp_path):
  pcfg = perceptual.PerceptualConfig(stage_sizes=(1,), width=2, num_classes=4)
  weights = str(tmp_path / "resnet.msgpack")
  if not os.path.exists(weights):
    perceptual.save_weights(
        weights,
        perceptual.network(pcfg).init(
            jax.random.key(0), jnp.zeros((1, 32, 32, 3))
        )["params"],
    )
  c = magvit2_train_test._config(data_dir, weights, 2)  # pylint: disable=protected-access
  c.trainer.update(eval_every=0, log_every=1)
  return c


def _audio_config(data_dir, tmp_path, gan_from=1):
  del tmp_path
  c = train_audio_codec_test._tiny_config(data_dir, 2)  # pylint: disable=protected-access
  c.trainer.update(eval_every=0)
  c.trainer.checkpoint.every_steps = 1
  # The run compiles one step program (GAN from step 0); test_phases checks
  # the switch.
  c.loss.gan_start_step = gan_from
  c.model.dilations = (1,)
  c.discriminator.update(wave_scales=1, wave_downsamples=1)
  return c


def _lm_config(data_dir, tmp_path):
  del data_dir, tmp_path
  c = videopoet_config.get_config("tiny")
  c.data.update(source="random", batch_size=2, random_size=8, eval_batches=1)
  c.mixture.weights = (("text_to_image", 1.0),)
  c.trainer.update(total_steps=2, log_every=1, eval_every=0)
  c.trainer.checkpoint.update(every_steps=1, async_save=False)
  return c


def _superres_config(data_dir, tmp_path):
  del data_dir, tmp_path
  c = superres_config.get_config("tiny")
  c.trainer.update(total_steps=2, log_every=1)
  c.trainer.checkpoint.update(every_steps=1, async_save=False)
  return c


CONFIGS = {
    "video_tokenizer": _video_config,
    "audio_codec": lambda d, t: _audio_config(d, t, gan_from=0),
    "lm": _lm_config,
    "superres": _superres_config,
}
# A change to each family's model config that a resume must refuse.
MODEL_CHANGES = {
    "video_tokenizer": ("temporal_downsample", (False, True, False)),
    "audio_codec": ("channels", 4),
    "lm": ("num_layers", 3),
    "superres": ("width", 48),
}


def test_every_family_is_described_by_the_one_contract():
  assert set(FAMILIES) == set(workdir_lib.FAMILIES)
  for name, fam in FAMILIES.items():
    assert type(fam) is family.Family  # pylint: disable=unidiomatic-typecheck
    assert fam.name == name
    assert fam.job == workdir_lib.FAMILIES[name][2]
    assert list(inspect.signature(fam.make_program).parameters) == [
        "c", "mesh"
    ]  # fmt: skip
    assert fam.eval_keys
  # The LM's extra workdir files go through the contract's hooks.
  assert lm_trainer.FAMILY.check_workdir is lm_trainer.check_workdir_tokens
  assert lm_trainer.FAMILY.write_workdir is lm_trainer.write_workdir_tokens


def test_phases(data_dir, tmp_path):
  video = magvit2_program.FAMILY
  c = _video_config(data_dir, tmp_path)
  c.loss.update(adversarial_weight=0.1, gan_start_step=2, r1_every=2)
  parsed = video.parse(c)
  assert video.phases(parsed) == ("recon", "gan", "gan_r1")
  assert [video.phase_of(parsed, s) for s in range(5)] == [
      "recon", "recon", "gan_r1", "gan", "gan_r1"
  ]  # fmt: skip
  audio = soundstream_trainer.FAMILY
  parsed = audio.parse(_audio_config(data_dir, tmp_path))
  assert audio.phases(parsed) == ("recon", "gan")
  assert [audio.phase_of(parsed, s) for s in range(3)] == [
      "recon", "gan", "gan"
  ]  # fmt: skip
  # The program compiles one step per phase, and its data names them.
  program = audio.make_program(parsed, None)
  assert set(program.groups) == set(audio.phases(parsed))
  assert next(program.data)[0] == "recon"
  lm = lm_trainer.FAMILY
  parsed = lm.parse(_lm_config(data_dir, tmp_path))
  assert lm.phases(parsed) == family.SINGLE_PHASE
  assert lm.phase_of(parsed, 7) == family.SINGLE_PHASE[0]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_run_refuse_and_load(name, data_dir, tmp_path):
  fam, make = FAMILIES[name], CONFIGS[name]
  # A bad key is named before the workdir exists.
  bad = make(data_dir, tmp_path)
  bad.model.not_a_key = 1
  fresh = str(tmp_path / "fresh")
  with pytest.raises(config_lib.ConfigError, match="not_a_key"):
    family.run(fam, bad, fresh)
  assert not os.path.exists(fresh)

  workdir = str(tmp_path / "run")
  family.run(fam, make(data_dir, tmp_path), workdir)
  assert workdir_lib.read_family_config(workdir, fam.name)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
      "1", "2"
  ]  # fmt: skip
  assert fam.load(workdir).step == 2
  assert fam.load(workdir, step=1).step == 1

  # Another model in the same workdir: refused, nothing written.
  before = {
      f: os.path.getmtime(os.path.join(workdir, f))
      for f in os.listdir(workdir)
  }
  config_json = open(os.path.join(workdir, "config.json"), "rb").read()
  other = make(data_dir, tmp_path)
  other.trainer.total_steps = 3
  key, value = MODEL_CHANGES[name]
  other.model[key] = value
  with pytest.raises(workdir_lib.WorkdirConfigError, match=f"model.{key}"):
    family.run(fam, other, workdir)
  assert open(os.path.join(workdir, "config.json"), "rb").read() == config_json
  assert {
      f: os.path.getmtime(os.path.join(workdir, f))
      for f in os.listdir(workdir)
  } == before
  assert fam.load(workdir).step == 2

  if name == "superres":  # A rerun with a longer run resumes.
    longer = make(data_dir, tmp_path)
    longer.trainer.total_steps = 3
    family.run(fam, longer, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      assert [json.loads(line)["step"] for line in f] == [1, 2, 3]
    assert fam.load(workdir).step == 3

  if name == "lm":  # The contract's evaluation of a checkpoint.
    c = make(data_dir, tmp_path)
    out = family.evaluate(fam, c, workdir, step=1)
    assert out["step"] == 1 and "val/text_to_image/loss" in out
