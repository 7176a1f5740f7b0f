"""Trains the MAGVIT-v2 video tokenizer (resumes from its workdir).

  python -m experiments.train_video_tokenizer \
      --config=configs/magvit2.py:tiny --workdir=W --config.data.data_dir=D

With `--eval_only`, evaluates the latest checkpoint of W instead (PSNR, SSIM,
code usage on `config.data.eval_split`) and writes W/eval_<step>.json.
"""

import json

from absl import flags
from ml_collections import config_flags

from experiments import common
from videopoet.tokenizers.magvit2 import program
from videopoet.train_lib import family

_EVAL_ONLY = flags.DEFINE_bool(
    "eval_only", False, "Evaluate the latest checkpoint; do not train."
)
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/magvit2.py:<tiny|small|base>", lock_config=True
)


def main(argv):
  del argv
  common.init_runtime()
  if _EVAL_ONLY.value:
    out = program.evaluate_run(_CONFIG.value, common.WORKDIR.value)
    print(json.dumps(out, indent=2))
  else:
    family.run(program.FAMILY, _CONFIG.value, common.WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  common.run(main)
