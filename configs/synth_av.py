"""Builds the `synth_av` dataset: moving, bouncing, humming shapes.

Launch:

  python -m experiments.build_data --config=configs/synth_av.py:tiny \\
      --config.data.data_dir=DIR

`tiny` (the default) is 64x64 pixels with 2,000 training clips and builds in
well under a minute on two CPU cores; `base` is 128x128 with 20,000. Library
code reads the section with
`config_lib.from_config(SynthAVConfig, config.dataset, "config.dataset")`;
see `videopoet/data/synth_av.py` for the fields' meaning and the examples'
layout.
"""

import ml_collections

from configs import common

_ARGS = ("tiny", "base")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The `synth_av` build config for `arg` in {"tiny" (default), "base"}.

  Args:
    arg: which preset; None means "tiny".

  Returns:
    A ConfigDict with `data` (`dataset`: the TFDS name 'synth_av/<builder
    config>' it is built under; `data_dir`: where) and `dataset` (the
    fields of `SynthAVConfig`).

  Raises:
    ValueError: `arg` is not a known preset.
  """
  arg = arg or "tiny"
  if arg not in _ARGS:
    raise ValueError(
        f"unknown synth_av config {arg!r}; allowed: {', '.join(_ARGS)}"
    )
  base = arg == "base"
  config = ml_collections.ConfigDict()
  # TFDS name synth_av/<config>: the data lands in DIR/synth_av/<config>/
  # 1.0.0. "tiny" and "base" fix the shapes below (resolution, num_frames,
  # fps, sample_rate, max_objects); change those under a new name.
  config.data = common.data(f"synth_av/{arg}")

  dataset = ml_collections.ConfigDict()
  # Frame height and width in pixels (>= 32).
  dataset.resolution = 128 if base else 64
  # Frames per clip: 17 = 1 + 4 x 4, MAGVIT-v2's causal 5 latent frames.
  dataset.num_frames = 17
  # Frames per second: 17 frames last 2.125 s.
  dataset.fps = 8
  # Audio samples per second (SoundStream's rate); a multiple of fps.
  dataset.sample_rate = 16000
  # Examples in the train split.
  dataset.train_size = 20000 if base else 2000
  # Examples in the validation split.
  dataset.validation_size = 500 if base else 100
  # Examples in the test split (no held-out combinations).
  dataset.test_size = 500 if base else 100
  # Examples in the test_heldout split (only held-out combinations).
  dataset.test_heldout_size = 500 if base else 100
  # Seeds every example together with its split and index.
  dataset.seed = 0
  # (shape, colour, motion) triples never seen in train/validation/test.
  dataset.heldout = (
      ("circle", "red", "left"),
      ("square", "blue", "up-right"),
      ("triangle", "green", "down"),
      ("circle", "yellow", "still"),
  )
  # At most this many objects per clip (1..8).
  dataset.max_objects = 2
  config.dataset = dataset
  return config
