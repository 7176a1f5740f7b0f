r"""The sentencepiece text tokenizer (`experiments/train_text_tokenizer.py`).

  python -m experiments.train_text_tokenizer \
      --config=configs/train_text_tokenizer.py \
      --config.data.data_dir=DIR --workdir=runs/text

Trains on the captions of `data.split` of the built dataset and writes
`<workdir>/text.model` (`--workdir` is a flag, as for the training jobs).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg:
    raise ValueError(
        f"configs/train_text_tokenizer.py takes no arg, got {arg!r}"
    )
  c = ml_collections.ConfigDict()
  # The built dataset (`videopoet.data.datasets.DataConfig`).
  c.data = common.data("synth_av/tiny")
  c.split = "train"  # The split whose captions are trained on.
  c.vocab_size = 512  # Sentencepiece pieces.
  return c
