"""Tests of typed configs: unknown keys and bad values name the key."""

import dataclasses
import os
import subprocess
import sys
from typing import Literal

import pytest

from videopoet import config_lib
from videopoet import sharding
from videopoet.train_lib import harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Inner:
  rate: float = 0.1


@dataclasses.dataclass(frozen=True)
class Model:
  width: int = 8
  norm: Literal["rms", "layer"] = "rms"
  strides: tuple[int, ...] = (2, 4)
  path: str | None = None
  inner: Inner = Inner()


def test_builds_and_coerces():
  m = config_lib.from_config(
      Model, {"width": 3, "strides": [1, 2], "inner": {"rate": 1}}
  )
  assert m == Model(width=3, strides=(1, 2), inner=Inner(rate=1.0))
  assert isinstance(m.inner.rate, float)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"widht": 3}, "config.model.widht is not a config key"),
        (
            {"norm": "batch"},
            "config.model.norm='batch' is not allowed: it must be"
            " one of 'rms', 'layer'",
        ),
        (
            {"width": "3"},
            "config.model.width='3' is not allowed: it must be int",
        ),
        ({"width": True}, "config.model.width=True"),
        ({"strides": [1, "a"]}, "config.model.strides=[1, 'a']"),
        ({"inner": {"rte": 1.0}}, "config.model.inner.rte is not a config key"),
        (
            {"path": 3},
            "config.model.path=3 is not allowed: it must be str or None",
        ),
    ],
)
def test_errors_name_the_key(section, message):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.from_config(Model, section, "config.model")
  assert message in str(e.value)


def test_harness_and_mesh_validate():
  with pytest.raises(config_lib.ConfigError, match="total_steps=0"):
    harness.TrainerConfig(total_steps=0)
  with pytest.raises(config_lib.ConfigError, match="at most one axis"):
    sharding.MeshConfig(data=-1, fsdp=-1)
  assert sharding.MeshConfig(data=-1, tensor=2).shape(8) == (4, 1, 2)
  with pytest.raises(config_lib.ConfigError, match="does not divide"):
    sharding.MeshConfig(data=-1, tensor=3).shape(8)


def _job(*args):
  return subprocess.run(
      [
          sys.executable,
          "-m",
          "tests.harness_job",
          "--config=tests/harness_config.py",
          "--workdir=/nonexistent",
          *args,
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=120,
  )


def test_typo_on_the_command_line_names_the_key():
  proc = _job("--config.modle.width=3")
  assert proc.returncode == 2
  assert "unknown config key 'modle' in --config.modle.width=3" in proc.stderr
  proc = _job("--config.trainer.chekpoint.keep=3")
  assert proc.returncode == 2
  assert "'chekpoint'" in proc.stderr and '"checkpoint"' in proc.stderr


def test_bad_value_on_the_command_line_names_the_key():
  proc = _job("--config.trainer.total_steps=abc")
  assert proc.returncode != 0
  assert "config.trainer.total_steps" in proc.stderr
  proc = _job("--config.mesh.tensor=0")
  assert proc.returncode == 2
  assert "config.mesh.tensor=0 is not allowed" in proc.stderr
