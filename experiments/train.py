"""Trains the VideoPoet LM on a task mixture (AGD over task shapes).

  python -m experiments.train --config=configs/videopoet.py:tiny \\
      --workdir=runs/demo/lm --config.data.data_dir=runs/demo/tokens

The vocabulary and text length come from the tokens' `tokens.json`, which
is copied to `<workdir>/tokens.json`. Rerunning with the same workdir
resumes from the latest checkpoint; tokens other than the ones it was
trained on (another `tokens.json`) are refused, naming what differs.
"""

from absl import flags
from ml_collections import config_flags

from experiments import common
from videopoet import lm_trainer
from videopoet.train_lib import family

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "LM config (configs/videopoet.py:<size>).", lock_config=True
)


def main(argv):
  del argv
  common.init_runtime()
  family.run(lm_trainer.FAMILY, _CONFIG.value, common.WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  common.run(main)
