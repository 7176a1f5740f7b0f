"""LM validation on a split smaller than the batch: a number, never NaN."""

import jax
import numpy as np
import pytest

from configs import videopoet as videopoet_config
from videopoet import config_lib
from videopoet import lm_data
from videopoet import lm_trainer
from videopoet.kernels import xla_cpu


def _program(monkeypatch, val_size, eval_batches=2):
  c = videopoet_config.get_config("tiny")
  c.data.update(source="random", batch_size=8, eval_batches=eval_batches)
  c.mixture.weights = (("text_to_image", 1.0), ("video_to_audio", 1.0))
  real = lm_trainer._source  # pylint: disable=protected-access

  def source(data, split, spec):
    src = real(data, split, spec)
    if split == "validation":  # 3 records: fewer than one batch of 8.
      return lm_data.RandomSource(spec, val_size)
    return src

  monkeypatch.setattr(lm_trainer, "_source", source)
  c.trainer.total_steps = 10
  return lm_trainer.make_program(lm_trainer.parse(c), None)


def test_small_validation_split_gives_finite_metrics(monkeypatch):
  program = _program(monkeypatch, val_size=3)
  state = program.init(jax.random.key(0))
  out = program.evaluate(state, 0)
  assert set(out) == {
      f"val/{t}/{m}"
      for t in ("text_to_image", "video_to_audio")
      for m in ("loss", "accuracy")
  }
  assert all(np.isfinite(v) for v in out.values()), out
  # The train and eval steps compile with the CPU step options.
  assert program.compiler_options == xla_cpu.TREE_REDUCTION_OFF


def test_empty_validation_split_is_refused_at_start(monkeypatch):
  with pytest.raises(config_lib.ConfigError, match="validation split"):
    _program(monkeypatch, val_size=0)
  program = _program(monkeypatch, val_size=0, eval_batches=0)
  assert program.evaluate is None


@pytest.mark.parametrize("key", ["batch_size", "random_size", "eval_batches"])
def test_bad_data_sizes_name_the_key(key):
  with pytest.raises(config_lib.ConfigError, match=f"config.data.{key}=-1"):
    config_lib.from_config(lm_trainer.DataConfig, {key: -1}, "config.data")
