r"""PSNR of a trained SR transformer against bicubic upsampling.

  python -m experiments.eval_superres --workdir=runs/superres \
      --data_dir=runs/data --split=test --num_clips=64

Scores, against each test clip's full-resolution ground truth: the SR
output decoded by the tokens' video tokenizer (`sr`), the same
low-resolution codes decoded and bicubic-upsampled (`bicubic`) and the
tokenizer's own reconstruction (`ceiling`); see videopoet/eval/superres.py.
Writes `<workdir>/eval_superres_<split>.json` and prints it.
"""

import json
import os

from absl import app
from absl import flags

from videopoet import xla_cpu
from videopoet.train_lib import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "The SR workdir.")
_TOKENS = flags.DEFINE_string(
    "tokens", "", "Tokens with video_low (default: the SR run's data.path)."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_SPLIT = flags.DEFINE_string("split", "test", "The split scored.")
_NUM = flags.DEFINE_integer("num_clips", 64, "Clips scored (the first).")
_STEPS = flags.DEFINE_integer("steps", 24, "MaskGIT steps.")
_TEXT = flags.DEFINE_float("guidance_text", 1.0, "Text guidance scale.")
_LOW = flags.DEFINE_float("guidance_low", 1.0, "Condition guidance scale.")
_TEMP = flags.DEFINE_float("temperature", 1.0, "Sampling temperature.")
_SEED = flags.DEFINE_integer("seed", 0, "The sampler's seed.")


def main(argv):
  del argv
  from videopoet.eval import superres as eval_lib  # pylint: disable=g-import-not-at-top
  from videopoet.superres import sample as sample_lib  # pylint: disable=g-import-not-at-top
  from videopoet.superres import trainer  # pylint: disable=g-import-not-at-top

  loaded = trainer.load(_WORKDIR.value)
  tokens = _TOKENS.value or workdir_lib.read_config(loaded.workdir)["data"][
      "path"
  ]
  out = eval_lib.evaluate(
      loaded, tokens, _DATA_DIR.value, _SPLIT.value, _NUM.value,
      sampling=sample_lib.SRSamplingConfig(
          steps=_STEPS.value, temperature=_TEMP.value,
          guidance_text=_TEXT.value, guidance_low=_LOW.value,
      ),
      seed=_SEED.value,
  )  # fmt: skip
  path = os.path.join(loaded.workdir, f"eval_superres_{_SPLIT.value}.json")
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(out, f, indent=2, sort_keys=True)
  os.replace(path + ".tmp", path)
  print(json.dumps(out, indent=2, sort_keys=True), flush=True)


if __name__ == "__main__":
  xla_cpu.configure()  # Before JAX creates its backend (CPU only).
  flags.mark_flags_as_required(["workdir", "data_dir"])
  app.run(main)
