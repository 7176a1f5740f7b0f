"""Bad settings are refused up front, by the name of the key or flag."""

import os
import subprocess
import sys

import pytest

from configs import magvit2 as magvit2_config
from configs import soundstream as soundstream_config
from videopoet import config_lib
from videopoet.tokenizers.magvit2 import program as magvit2_program
from videopoet.tokenizers.soundstream import trainer as soundstream_trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "section,key", [("data", "batch_size"), ("eval", "batch_size")]
)
def test_magvit2_batch_sizes_name_the_key(section, key):
  cls = {"data": magvit2_program.DataConfig, "eval": magvit2_program.EvalConfig}
  with pytest.raises(config_lib.ConfigError, match=f"config.{section}.{key}"):
    config_lib.from_config(cls[section], {key: -1}, f"config.{section}")


@pytest.mark.parametrize("key", ["batch_size", "eval_clips"])
def test_codec_batch_sizes_name_the_key(key):
  c = soundstream_config.get_config("tiny")
  c.data[key] = -1
  with pytest.raises(config_lib.ConfigError, match=f"config.data.{key}=-1"):
    soundstream_trainer.parse(c)


def test_magvit2_config_still_parses():
  c = magvit2_config.get_config("tiny")
  config_lib.from_config(magvit2_program.DataConfig, c.data, "config.data")


def test_job_help_lists_workdir_and_the_distributed_flags():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--help"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
  )  # fmt: skip
  text = out.stdout + out.stderr
  for flag in ("--config:", "--workdir:", "--coordinator_address:"):
    assert flag in text, text[-2000:]


def test_batch_size_typo_value_is_one_line_naming_the_key(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-m", "experiments.train",
       "--config=configs/videopoet.py:tiny", f"--workdir={tmp_path / 'w'}",
       "--config.data.source=random", "--config.data.batch_size=-1"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
  )  # fmt: skip
  assert out.returncode == 2, out.stderr[-2000:]
  assert "config.data.batch_size=-1 must be >= 1" in out.stderr
  assert "Traceback" not in out.stderr
