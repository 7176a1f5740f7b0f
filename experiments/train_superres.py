"""Trains the super-resolution transformer (VideoPoet's second stage).

  python -m experiments.train_superres --config=configs/superres.py:synth \\
      --workdir=runs/superres --config.data.data_dir=runs/tokens_sr

The tokens are `experiments.tokenize_data`'s with
`--config.superres_factor=2`; their `tokens.json` is copied to
`<workdir>/tokens.json`. Rerunning with the same workdir resumes.
"""

from absl import flags
from ml_collections import config_flags

from experiments import common
from videopoet.superres import trainer
from videopoet.train_lib import family

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "SR config (configs/superres.py:<arg>).", lock_config=True
)


def main(argv):
  del argv
  common.init_runtime()
  family.run(trainer.FAMILY, _CONFIG.value, common.WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  common.run(main)
