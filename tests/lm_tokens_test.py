"""The LM reads its vocabulary and text length from its tokens' tokens.json
(`config.data.random` for random records), keeps a copy in its workdir and
refuses to resume on other tokens."""

import dataclasses
import json
import os

import pytest

from configs import videopoet as videopoet_config
from videopoet import config_lib
from videopoet import lm_trainer
from videopoet import tasks as tasks_lib
from videopoet import token_spec
from tests import token_spec_test

TINY = token_spec_test.TINY


def _config(tokens=None, **random):
  c = videopoet_config.get_config("tiny")
  if tokens is None:
    c.data.source = "random"
    c.data.random.update(random)
  else:
    c.data.data_dir = str(tokens)
  return c


def test_vocabulary_comes_from_the_tokens(tmp_path):
  vocab = lm_trainer.make_vocab(_config())
  assert vocab.visual_size == 2**10 and vocab.text_size == 512
  assert lm_trainer.make_vocab(_config(visual_bits=12)).visual_size == 2**12
  # A directory of tokens: its tokens.json, whatever the config's sizes.
  spec = dataclasses.replace(TINY, visual_bits=14, audio_levels=2, text_size=99)
  token_spec.write(str(tmp_path), spec)
  c = _config(tmp_path)
  assert lm_trainer.data_spec(c) == spec
  vocab = lm_trainer.make_vocab(c)
  assert vocab.visual_size == 2**14 and vocab.text_size == 99
  assert vocab.audio_size == 2 * 1024 and vocab.padded_size % 128 == 0
  c.tasks.text_mode = "embeddings"
  assert lm_trainer.make_vocab(c).text_size == 0


def test_missing_or_old_tokens_json_is_a_config_error(tmp_path):
  with pytest.raises(
      config_lib.ConfigError, match="config.data.data_dir is empty"
  ):
    lm_trainer.data_spec(videopoet_config.get_config("tiny"))
  with pytest.raises(
      config_lib.ConfigError,
      match="config.data.data_dir=.* does not exist: experiments.tokenize_data",
  ):
    lm_trainer.data_spec(_config(tmp_path))
  old = {k: v for k, v in TINY.to_json().items() if k != "time_factor"}
  (tmp_path / "tokens.json").write_text(json.dumps(old))
  with pytest.raises(config_lib.ConfigError, match="lacks time_factor"):
    lm_trainer.data_spec(_config(tmp_path))


def test_the_id_ranges_and_text_length_have_no_config_keys():
  """One home: tokens.json; the old keys are refused, naming them."""
  c = videopoet_config.get_config("tiny")
  assert set(c.vocab) == {"pad_to"} and "max_text_len" not in c.tasks
  with pytest.raises(config_lib.ConfigError, match="visual_bits"):
    config_lib.from_config(
        lm_trainer.VocabChoices, {"visual_bits": 10}, "config.vocab"
    )
  with pytest.raises(config_lib.ConfigError, match="max_text_len"):
    config_lib.from_config(
        tasks_lib.TaskConfig, {"max_text_len": 16}, "config.tasks"
    )
  with pytest.raises(config_lib.ConfigError, match="config.vocab.pad_to=0"):
    config_lib.from_config(lm_trainer.VocabChoices, {"pad_to": 0})
  # The tiny config's random tokens are RandomConfig's defaults.
  data = config_lib.from_config(lm_trainer.DataConfig, c.data, "config.data")
  assert data.random.spec().latent_grid == (5, 8, 8)


def _checkpoint(workdir):
  os.makedirs(os.path.join(workdir, "checkpoints", "5"))


def test_workdir_keeps_the_tokens_json_and_refuses_others(tmp_path):
  tokens, lm = tmp_path / "tokens", str(tmp_path / "lm")
  token_spec.write(str(tokens), TINY)
  c = _config(tokens)
  lm_trainer.check_workdir_tokens(c, lm)  # A new workdir: nothing to check.
  path = lm_trainer.write_workdir_tokens(c, lm)
  assert open(path, "rb").read() == open(tokens / "tokens.json", "rb").read()
  lm_trainer.check_workdir_tokens(c, lm)
  # A split the LM does not read may be added to the tokens.
  splits = {"train": 32, "test": 8}
  token_spec.write(
      str(tokens), dataclasses.replace(TINY, extra={"splits": splits})
  )
  lm_trainer.check_workdir_tokens(c, lm)
  # Retokenized with 12-bit codes and more training clips: before the
  # first checkpoint the new tokens are taken; after it, refused.
  extra = {"splits": {"train": 64}}
  other = dataclasses.replace(TINY, visual_bits=12, extra=extra)
  token_spec.write(str(tokens), other)
  lm_trainer.check_workdir_tokens(c, lm)
  _checkpoint(lm)
  with pytest.raises(lm_trainer.WorkdirTokensError) as err:
    lm_trainer.check_workdir_tokens(c, lm)
  msg = str(err.value)
  for want in (
      f"--workdir={lm} holds an LM trained on other tokens",
      str(tokens / "tokens.json"), "visual_bits: 10 -> 12",
      "splits.train: 32 -> 64", "new --workdir",
  ):  # fmt: skip
    assert want in msg, (want, msg)
  assert "audio_levels" not in msg  # Only what differs.
  assert token_spec.read(lm) == TINY  # Untouched.


def test_workdir_without_tokens_json_but_checkpoints_is_refused(tmp_path):
  lm = str(tmp_path / "lm")
  _checkpoint(lm)
  with pytest.raises(
      lm_trainer.WorkdirTokensError, match="no tokens.json.*unknown"
  ):
    lm_trainer.check_workdir_tokens(_config(), lm)


def test_random_tokens_are_recorded_too(tmp_path):
  lm = str(tmp_path / "lm")
  c = _config(visual_bits=12)
  lm_trainer.write_workdir_tokens(c, lm)
  assert token_spec.read(lm) == lm_trainer.data_spec(c)
  assert token_spec.read(lm).visual_bits == 12
  _checkpoint(lm)
  lm_trainer.check_workdir_tokens(c, lm)
  with pytest.raises(
      lm_trainer.WorkdirTokensError,
      match="config.data.random in visual_bits: 12 -> 10",
  ):
    lm_trainer.check_workdir_tokens(_config(), lm)
