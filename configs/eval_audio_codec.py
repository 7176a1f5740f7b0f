r"""Evaluating a trained codec (`experiments/eval_audio_codec.py`).

  python -m experiments.eval_audio_codec --config=configs/eval_audio_codec.py \
      --workdir=runs/codec [--config.data.data_dir=runs/data] \
      [--config.data.source=wav_folder --config.data.data_dir=runs/speech] \
      [--config.metrics="('mel_distance', 'si_sdr', 'visqol', 'pesq', 'stoi')"]

`--workdir` (the codec's run directory, where the result is written) is a
flag, as for the training jobs. An empty `data.dataset` or `data.data_dir`
is the run's own (its config.json's).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg:
    raise ValueError(f"configs/eval_audio_codec.py takes no arg, got {arg!r}")
  c = ml_collections.ConfigDict()
  # The clips: a TFDS dataset with `audio` ('tfds') or a folder of audio
  # files ('wav_folder', its path as data_dir); '' = the run's own.
  c.data = common.data("", source="tfds")
  c.split = "test"
  # Any of videopoet.tokenizers.soundstream.metrics.METRICS.
  c.metrics = ("mel_distance", "si_sdr", "visqol")
  c.levels = (1, 2, 4, 0)  # Numbers of RVQ levels (0: all).
  c.num_clips = 32  # The first clips of the split.
  return c
