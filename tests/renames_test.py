"""Workdirs written before the key renames (`train_lib.renames`) still load
and resume: each tokenizer family's checkpoint is written here with the OLD
train-state keys beside a config.json with the OLD config keys; loading it
gives the saved parameters, and a rerun resumes it (the rerun check finds no
difference) and records config.json in today's names.
"""

import functools
import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from configs import soundstream as soundstream_config
from configs import magvit2 as magvit2_config
from configs import superres as superres_config
from tests import trainer_contract_test as contract
from videopoet import config_lib
from videopoet.train_lib import checkpointing
from videopoet.train_lib import family
from videopoet.train_lib import renames
from videopoet.train_lib import workdir as workdir_lib

data_dir = contract.data_dir  # The module fixture: a tiny synth_av build.
fast_compile = contract.fast_compile


def _old_audio_config(new: dict) -> dict:
  """A SoundStream config.json as written before the renames (by hand, not
  through the table under test)."""
  old = json.loads(json.dumps(new))
  old["optim"] = old.pop("optimizer")
  old["optim"]["disc_start_step"] = old["loss"].pop("gan_start_step")
  data = old["data"]
  data["global_batch_size"] = data.pop("batch_size")
  data["name"] = data.pop("dataset")
  old["model"]["channel_mults"] = old["model"].pop("channel_multipliers")
  return old


def _old_video_config(new: dict) -> dict:
  old = json.loads(json.dumps(new))
  old["loss"]["ema_decay"] = old["optimizer"].pop("ema_decay")
  return old


CASES = {  # family: (config, old config.json, old state keys, EMA key)
    "audio_codec": (
        functools.partial(contract._audio_config, gan_from=0),  # pylint: disable=protected-access
        _old_audio_config,
        {"params": "gen", "ema_params": "gen_ema", "disc_params": "disc"},
    ),
    "video_tokenizer": (
        contract._video_config,  # pylint: disable=protected-access
        _old_video_config,
        {"disc_params": "d_params"},
    ),
}


def test_the_table_turns_old_configs_into_todays():
  for name, get, old_of in (
      ("audio_codec", soundstream_config.get_config, _old_audio_config),
      ("video_tokenizer", magvit2_config.get_config, _old_video_config),
  ):
    new = json.loads(config_lib.to_json(get("tiny")))
    old = old_of(new)
    assert old != new
    assert workdir_lib.config_family(old) == name
    assert renames.upgrade_config(old, name) == new
    assert renames.upgrade_config(new, name) == new  # Today's: unchanged.
  old_lm = {"data": {"path": "runs/tokens"}, "vocab": {}, "tasks": {}}
  assert renames.upgrade_config(old_lm, "lm")["data"] == {
      "data_dir": "runs/tokens"
  }
  new_sr = json.loads(config_lib.to_json(superres_config.get_config("synth")))
  old_sr = json.loads(json.dumps(new_sr))
  old_sr["data"]["path"] = old_sr["data"].pop("data_dir")
  assert workdir_lib.config_family(old_sr) == "superres"
  assert renames.upgrade_config(old_sr, "superres") == new_sr
  record = {"random": {"codec_model": {"channel_mults": [2, 4]}}}
  assert renames.upgrade_tokens_record(record) == {
      "random": {"codec_model": {"channel_multipliers": [2, 4]}}
  }


@pytest.mark.parametrize(
    "name, resume",
    [
        ("audio_codec", False),
        ("video_tokenizer", False),
        # A real resume compiles the family's step: ~1 min each on 2 cores.
        pytest.param("audio_codec", True, marks=pytest.mark.slow),
        pytest.param("video_tokenizer", True, marks=pytest.mark.slow),
    ],
)
def test_old_workdir_loads_and_resumes(
    name, resume, data_dir, tmp_path  # pylint: disable=redefined-outer-name
):
  fam = contract.FAMILIES[name]
  make, old_config_of, old_keys = CASES[name]
  config = make(data_dir, tmp_path)
  config.trainer.update(total_steps=2)
  config.trainer.checkpoint.update(every_steps=1, async_save=False)
  program = fam.make_program(fam.parse(config), None)
  state = jax.jit(lambda k: nn.unbox(program.init(k)))(jax.random.key(3))
  state = jax.tree.map(np.asarray, state)
  state["step"] = np.asarray(1, state["step"].dtype)  # Saved at step 1.

  # The old layout: config.json with old keys, state under old keys.
  workdir = str(tmp_path / "old")
  os.makedirs(workdir)
  new_json = json.loads(config_lib.to_json(config))
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(old_config_of(new_json), f)
  old_state = {old_keys.get(k, k): v for k, v in state.items()}
  assert set(old_state) != set(state)
  ckpt = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"),
      checkpointing.CheckpointConfig(async_save=False),
  )
  ckpt.save(1, old_state, {})
  ckpt.close()

  # Loading: today's loader reads the old config.json and old keys.
  loaded = fam.load(workdir)
  assert loaded.step == 1
  got = loaded.params if hasattr(loaded, "params") else loaded.variables
  got = got["params"] if name == "audio_codec" else got
  jax.tree.map(np.testing.assert_array_equal, got, state["ema_params"])

  # What a rerun does first: the config check finds no difference, and the
  # checkpoint restores under today's keys.
  assert workdir_lib.check_config(workdir, config) == {}
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), state
  )
  ckpt = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), checkpointing.CheckpointConfig()
  )
  step, restored, _ = ckpt.restore_latest(abstract)
  ckpt.close()
  assert step == 1 and set(restored) == set(state)
  jax.tree.map(np.testing.assert_array_equal, restored, state)
  if not resume:
    return
  # Resuming: the rerun check passes, step 2 is trained from step 1's
  # state, and config.json is rewritten in today's names.
  final = family.run(fam, config, workdir)
  assert int(final["step"]) == 2
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f) == new_json
  assert not os.path.exists(os.path.join(workdir, "config_changes.jsonl"))
  shapes = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), checkpointing.CheckpointConfig()
  )._stored_state(2)  # pylint: disable=protected-access
  assert set(shapes) == set(state)  # The new checkpoint: today's keys.
