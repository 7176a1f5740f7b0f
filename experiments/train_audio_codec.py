"""Trains the SoundStream audio codec (`configs/soundstream.py`).

  python -m experiments.train_audio_codec --config=configs/soundstream.py:tiny \
      --workdir=runs/codec --config.data.data_dir=runs/data

Rerunning with the same workdir resumes. The trained codec loads with
`videopoet.tokenizers.soundstream.codec.load_codec(workdir)`.
"""

from absl import flags
from ml_collections import config_flags

from experiments import common
from videopoet.tokenizers.soundstream import trainer
from videopoet.train_lib import family

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Codec config.", lock_config=True
)


def main(argv):
  del argv
  common.init_runtime()
  family.run(trainer.FAMILY, _CONFIG.value, common.WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  common.run(main)
