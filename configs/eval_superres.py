r"""Scoring a trained SR transformer (`experiments/eval_superres.py`).

  python -m experiments.eval_superres --config=configs/eval_superres.py \
      --workdir=runs/superres --config.data.data_dir=runs/data \
      [--config.tokens=runs/tokens_sr] [--config.split=test] \
      [--config.num_clips=64] [--config.sampling.guidance_text=4.0]

`--workdir` (the SR run's directory, where the result is written) is a
flag, as for the training jobs. `data` names the clips' ground truth: the
TFDS data directory (`experiments.build_data`'s) is required; an empty
`data.dataset` is the one the tokens' tokens.json names. An empty `tokens`
is the SR run's own (its config.json's `data.data_dir`).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg:
    raise ValueError(f"configs/eval_superres.py takes no arg, got {arg!r}")
  c = ml_collections.ConfigDict()
  c.data = common.data("")
  c.tokens = ""  # tokenize_data's workdir with superres_factor=2.
  c.split = "test"
  c.num_clips = 64  # The first clips of the split.
  c.batch_size = 8  # Clips per SR call.
  c.seed = 0  # The sampler's (batch i: seed + i).
  # videopoet.superres.sample.SRSamplingConfig (guidance 1.0: none).
  c.sampling = dict(
      steps=24, temperature=1.0, choice_temperature=4.5, guidance_text=1.0,
      guidance_low=1.0,
  )  # fmt: skip
  return c
