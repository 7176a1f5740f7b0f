"""Slow: the tiny LM learns every task from synth_av tokens.

synth_av (32x32, 17 frames) is tokenized by tiny RANDOMLY INITIALIZED video
and audio tokenizers (the LM still has to model the token statistics: the
repetitive codes of a flat background, the structure video's codes, the
audio levels, the captions' pieces) and a sentencepiece model trained on
the captions. After a few hundred steps on all eleven tasks, every task's
validation loss must be at most 0.8 x its value at initialization.

  pytest -m slow tests/lm_learns_test.py -s     # prints the per-task table
"""

import json
import os

import flax.linen as nn
import jax
import pytest
import tensorflow_datasets as tfds

from configs import tokenize_data as tokenize_configs
from configs import videopoet as videopoet_configs
from videopoet import lm_trainer
from videopoet import text_tokenizer
from videopoet import pretokenize
from videopoet.data import datasets
from videopoet.data import synth_av
from videopoet.data import synth_av_tfds
from videopoet.train_lib import family
from videopoet.train_lib import harness

_STEPS = 400
_RATIO = 0.8


@pytest.mark.slow
def test_tiny_lm_lowers_every_tasks_validation_loss(tmp_path):
  data_dir, tokens = str(tmp_path / "data"), str(tmp_path / "tokens")
  synth_av_tfds.build(
      synth_av.SynthAVConfig(
          resolution=32, train_size=64, validation_size=16, test_size=1,
          test_heldout_size=1,
      ),
      data_dir, name="r32",
  )  # fmt: skip
  src = tfds.data_source("synth_av/r32", split="train", data_dir=data_dir)
  captions = [src[i]["caption"] for i in range(len(src))]
  captions = [c.decode() if isinstance(c, bytes) else c for c in captions]
  sp = text_tokenizer.train(captions, str(tmp_path / "text"), 128)
  cfg = pretokenize.TokenizeConfig(
      data=datasets.DataConfig("synth_av/r32", data_dir),
      splits=("train", "validation"), text_tokenizer=sp, random_init=True,
      random=pretokenize.RandomInitConfig(**tokenize_configs.random_tokenizers()),
      batch_size=16,
  )  # fmt: skip
  tok = pretokenize.load_tokenizers(cfg)
  for split in cfg.splits:
    pretokenize.tokenize_split(cfg, tok, split, tokens)
  pretokenize.write_metadata(tokens, tok, {"train": 64, "validation": 16})

  config = videopoet_configs.get_config("tiny")
  config.data.data_dir = tokens
  config.data.eval_batches = 2  # 2 x 8 = all 16 validation clips.
  config.trainer.total_steps = _STEPS
  config.trainer.eval_every = _STEPS
  config.trainer.checkpoint.every_steps = _STEPS
  config.trainer.log_every = 50
  config.mixture.image_phase = 0.1  # Leave the video tasks most steps.
  config.optimizer.learning_rate = 3e-3

  program = lm_trainer.make_program(lm_trainer.parse(config), None)
  init_rng, _ = harness._rngs(config.trainer.seed)  # pylint: disable=protected-access
  state = jax.jit(lambda r: nn.unbox(program.init(r)))(init_rng)
  start = program.evaluate(state, 0)
  workdir = str(tmp_path / "lm")
  family.run(lm_trainer.FAMILY, config, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  end = {k: v for r in rows for k, v in r.items() if k.startswith("val/")}

  lines, failed = [], []
  for key in sorted(k for k in start if k.endswith("/loss")):
    ratio = end[key] / start[key]
    lines.append(
        f"{key[4:-5]:26s} {start[key]:6.3f} -> {end[key]:6.3f}"
        f" (x{ratio:.2f}, accuracy {end[key[:-4] + 'accuracy']:.2f})"
    )
    if ratio > _RATIO:
      failed.append(key)
  report = "\n".join(lines)
  print(f"\nval loss, init -> step {_STEPS}:\n{report}")
  assert len(lines) == 11
  assert not failed, f"not below {_RATIO} x start: {failed}\n{report}"
