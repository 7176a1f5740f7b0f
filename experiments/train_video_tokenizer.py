"""Trains the MAGVIT-v2 video tokenizer (resumes from its workdir).

  python -m experiments.train_video_tokenizer \
      --config=configs/magvit2.py:tiny --workdir=W --config.data.data_dir=D
"""

from absl import flags
from ml_collections import config_flags

from experiments import common
from videopoet_tokenizers.magvit2 import program

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/magvit2.py:<tiny|small|base>", lock_config=True
)


def main(argv):
  del argv
  common.init_runtime()
  program.run(_CONFIG.value, common.WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  common.run(main)
