r"""PSNR of a trained SR transformer against bicubic upsampling.

  python -m experiments.eval_superres --config=configs/eval_superres.py \
      --workdir=runs/superres --config.data.data_dir=runs/data \
      [--config.split=test] [--config.num_clips=64]

Scores, against each test clip's full-resolution ground truth: the SR
output decoded by the tokens' video tokenizer (`sr`), the same
low-resolution codes decoded and bicubic-upsampled (`bicubic`) and the
tokenizer's own reconstruction (`ceiling`); see videopoet/eval/superres.py.
Writes `<workdir>/eval_superres_<split>.json` and prints it.
"""

import json
import os

from absl import flags
from ml_collections import config_flags

from experiments import common
from videopoet import config_lib
from videopoet.train_lib import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/eval_superres.py", lock_config=True
)  # fmt: skip


def main(argv):
  del argv
  from videopoet.eval import superres as eval_lib  # pylint: disable=g-import-not-at-top
  from videopoet.superres import trainer  # pylint: disable=g-import-not-at-top

  c = config_lib.from_config(eval_lib.EvalConfig, _CONFIG.value, "config")
  if not c.data.data_dir:
    raise config_lib.ConfigError(
        "config.data.data_dir is empty: point it at the TFDS data directory"
        " of the clips (experiments.build_data's)"
    )
  common.init_runtime()
  loaded = trainer.load(common.WORKDIR.value)
  # The run's config in today's key names (older workdirs included).
  run = workdir_lib.read_family_config(loaded.workdir, trainer.NAME)
  tokens = c.tokens or run["data"]["data_dir"]
  out = eval_lib.evaluate(
      loaded, tokens, c.data.data_dir, c.split, c.num_clips,
      batch_size=c.batch_size, sampling=c.sampling, seed=c.seed,
      dataset=c.data.dataset,
  )  # fmt: skip
  path = os.path.join(loaded.workdir, f"eval_superres_{c.split}.json")
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(out, f, indent=2, sort_keys=True)
  os.replace(path + ".tmp", path)
  print(json.dumps(out, indent=2, sort_keys=True), flush=True)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  common.run(main)
