"""Trains the sentencepiece text tokenizer on a TFDS dataset's captions.

  python -m experiments.train_text_tokenizer \\
      --config=configs/train_text_tokenizer.py \\
      --config.data.data_dir=runs/demo/data --workdir=runs/demo/text \\
      [--config.vocab_size=512]

Writes `<workdir>/text.model`; pass it to `experiments.tokenize_data`
(`--config.text_tokenizer`), whose `tokens.json` gives the LM its size.
"""

import os

from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import common
from videopoet import text_tokenizer
from videopoet.data import datasets

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/train_text_tokenizer.py",
    "configs/train_text_tokenizer.py", lock_config=True,
)  # fmt: skip


def main(argv):
  del argv
  common.init_runtime()
  config = _CONFIG.value
  data = common.built_data(config)
  source = datasets.open_split(data.dataset, data.data_dir, config.split)
  captions = [source[i]["caption"] for i in range(len(source))]
  captions = [c.decode() if isinstance(c, bytes) else str(c) for c in captions]
  os.makedirs(common.WORKDIR.value, exist_ok=True)
  path = text_tokenizer.train(
      captions, os.path.join(common.WORKDIR.value, "text"), config.vocab_size
  )
  size = text_tokenizer.load(path).get_piece_size()
  logging.info(
      "Wrote %s (%d pieces) from %d captions", path, size, len(captions)
  )
  print(f"text_tokenizer={path} vocab_size={size}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  common.run(main)
