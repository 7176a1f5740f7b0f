"""A rerun never changes what a workdir means (`train_lib/workdir.py`).

The config of a rerun is compared with the workdir's `config.json` before
anything is written: a model or data change is refused by name and leaves
the file byte-identical; a resumable setting (`total_steps`, ...) is
allowed and recorded in `config_changes.jsonl`.
"""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from videopoet import config_lib
from videopoet.train_lib import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "tests", "harness_config.py")


def _config(**model):
  c = ml_collections.ConfigDict()
  c.trainer = dict(total_steps=10, seed=0, checkpoint=dict(every_steps=5))
  c.model = dict(width=32, layers=(1, 2), **model)
  return c


def _saved(tmp_path, checkpoint=True):
  workdir = str(tmp_path / "run")
  workdir_lib.write_config(workdir, _config())
  if checkpoint:
    os.makedirs(os.path.join(workdir, "checkpoints", "5"))
  return workdir


def test_model_change_is_refused_naming_each_key(tmp_path):
  workdir = _saved(tmp_path)
  path = os.path.join(workdir, "config.json")
  before = open(path, "rb").read()
  new = _config()
  new.model.width = 64
  new.model.layers = (1, 3)
  new.trainer.seed = 1
  with pytest.raises(workdir_lib.WorkdirConfigError) as e:
    workdir_lib.check_config(workdir, new)
  msg = str(e.value)
  assert "model.width: 32 -> 64" in msg
  assert "model.layers: [1, 2] -> [1, 3]" in msg
  assert "trainer.seed: 0 -> 1" in msg
  assert "new --workdir" in msg and workdir in msg
  assert isinstance(e.value, config_lib.ConfigError)  # One line, exit 2.
  assert open(path, "rb").read() == before


def test_added_and_removed_keys_are_differences(tmp_path):
  workdir = _saved(tmp_path)
  new = _config(dropout=0.1)
  with pytest.raises(workdir_lib.WorkdirConfigError, match="model.dropout"):
    workdir_lib.check_config(workdir, new)


def test_resumable_settings_are_allowed_and_recorded(tmp_path):
  workdir = _saved(tmp_path)
  new = _config()
  new.trainer.total_steps = 20
  new.trainer.checkpoint.every_steps = 2
  changes = workdir_lib.check_config(workdir, new)
  assert changes == {
      "trainer.checkpoint.every_steps": (5, 2),
      "trainer.total_steps": (10, 20),
  }
  workdir_lib.write_config(workdir, new, changes)
  assert workdir_lib.read_config(workdir)["trainer"]["total_steps"] == 20
  with open(os.path.join(workdir, workdir_lib.CHANGES_FILE)) as f:
    rows = [json.loads(line) for line in f]
  assert [(r["key"], r["old"], r["new"]) for r in rows] == [
      ("trainer.checkpoint.every_steps", 5, 2),
      ("trainer.total_steps", 10, 20),
  ]


def test_workdir_without_checkpoint_takes_the_new_config(tmp_path):
  workdir = _saved(tmp_path, checkpoint=False)
  new = _config()
  new.model.width = 64
  assert "model.width" in workdir_lib.check_config(workdir, new)


def test_same_config_and_fresh_workdir_change_nothing(tmp_path):
  assert workdir_lib.check_config(str(tmp_path / "new"), _config()) == {}
  workdir = _saved(tmp_path)
  assert workdir_lib.check_config(workdir, _config()) == {}


def test_unreadable_config_json_is_named(tmp_path):
  workdir = _saved(tmp_path)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write("{trunc")
  with pytest.raises(workdir_lib.WorkdirConfigError, match="not valid JSON"):
    workdir_lib.check_config(workdir, _config())


def _job(workdir, *overrides):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "-m", "tests.harness_job", f"--config={CONFIG}",
       f"--workdir={workdir}", "--config.trainer.log_every=5", *overrides],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
  )  # fmt: skip


def test_job_rerun_with_another_model_is_refused_before_any_write(tmp_path):
  workdir = str(tmp_path / "run")
  first = _job(workdir, "--config.trainer.total_steps=5")
  assert first.returncode == 0, first.stderr[-3000:]
  files = {
      name: open(os.path.join(workdir, name), "rb").read()
      for name in ("config.json", "metrics.jsonl")
  }
  refused = _job(
      workdir, "--config.trainer.total_steps=10", "--config.width=64"
  )
  assert refused.returncode == 2, refused.stderr[-3000:]
  err = refused.stderr.strip().splitlines()
  assert "width: 32 -> 64" in err[-1] and "Traceback" not in refused.stderr
  for name, data in files.items():
    assert open(os.path.join(workdir, name), "rb").read() == data
  assert os.listdir(os.path.join(workdir, "checkpoints")) == ["5"]

  resumed = _job(workdir, "--config.trainer.total_steps=10")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert workdir_lib.read_config(workdir)["trainer"]["total_steps"] == 10
  with open(os.path.join(workdir, workdir_lib.CHANGES_FILE)) as f:
    assert json.loads(f.readline())["key"] == "trainer.total_steps"
