r"""Spoken sentences for the codec's speech run (`experiments/make_speech.py`).

  python -m experiments.make_speech --config=configs/make_speech.py \
      --out_dir=runs/speech [--config.num=600]

`--out_dir` (the folder of WAVs written) is a flag, as a training job's
`--workdir`.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg:
    raise ValueError(f"configs/make_speech.py takes no arg, got {arg!r}")
  c = ml_collections.ConfigDict()
  c.num = 600  # Sentences.
  c.seed = 0  # Seeds sentences and voices.
  return c
