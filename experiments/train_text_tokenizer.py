"""Trains the sentencepiece text tokenizer on a TFDS dataset's captions.

  python -m experiments.train_text_tokenizer --dataset=synth_av \\
      --data_dir=runs/demo/data --workdir=runs/demo/text --vocab_size=512

Writes `<workdir>/text.model`; pass it to `experiments.tokenize_data`
(`--config.text_tokenizer`), whose `tokens.json` gives the LM its size.
"""

import os

from absl import flags
from absl import logging

from experiments import common
from videopoet import text_tokenizer
from videopoet.data import datasets

_DATASET = flags.DEFINE_string("dataset", "synth_av", "TFDS dataset name.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_SPLIT = flags.DEFINE_string("split", "train", "Split whose captions to use.")
_VOCAB = flags.DEFINE_integer("vocab_size", 512, "Sentencepiece pieces.")


def main(argv):
  del argv
  common.init_runtime()
  source = datasets.open_split(_DATASET.value, _DATA_DIR.value, _SPLIT.value)
  captions = [source[i]["caption"] for i in range(len(source))]
  captions = [c.decode() if isinstance(c, bytes) else str(c) for c in captions]
  os.makedirs(common.WORKDIR.value, exist_ok=True)
  path = text_tokenizer.train(
      captions, os.path.join(common.WORKDIR.value, "text"), _VOCAB.value
  )
  size = text_tokenizer.load(path).get_piece_size()
  logging.info(
      "Wrote %s (%d pieces) from %d captions", path, size, len(captions)
  )
  print(f"text_tokenizer={path} vocab_size={size}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["data_dir", "workdir"])
  common.run(main)
