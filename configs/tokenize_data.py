r"""Tokenizing a dataset for the LM (`experiments/tokenize_data.py`).

  python -m experiments.tokenize_data --config=configs/tokenize_data.py \
      --workdir=runs/tokens --config.data.data_dir=runs/data \
      --config.video_tokenizer=runs/magvit2 --config.audio_codec=runs/codec \
      --config.text_tokenizer=runs/text/text.model

Args (`:arg`): `tiny` (default; synth_av/tiny, 40 text ids, the LM's
`configs/videopoet.py:tiny`) or `base` (64 text ids). Every field is
documented in `videopoet.pretokenize.TokenizeConfig`. `random_init=True` swaps
the trained tokenizers for tiny RANDOMLY INITIALIZED ones (tests, demo):
`config.random` names their architectures by preset, which
`random_tokenizers` resolves into the record tokens.json keeps.
"""

import ml_collections

from configs import common
from configs import magvit2
from configs import soundstream

_ARGS = ("tiny", "base")


def random_tokenizers(
    video_config: str = "tiny",
    visual_bits: int = 10,
    codec_config: str = "tiny",
    seed: int = 0,
) -> dict:
  """`config.random` (presets by name) as `pretokenize.RandomInitConfig`'s
  fields: the architectures of `configs/magvit2.py:<video_config>` and
  `configs/soundstream.py:<codec_config>`."""
  return dict(
      video_model=magvit2.get_config(video_config).model.to_dict(),
      visual_bits=visual_bits,
      codec_model=soundstream.get_config(codec_config).model.to_dict(),
      seed=seed,
  )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or "tiny"
  if arg not in _ARGS:
    raise ValueError(f"unknown tokenize_data config {arg!r}; allowed: {_ARGS}")
  tiny = arg == "tiny"
  c = ml_collections.ConfigDict()
  # The built dataset (`videopoet.data.datasets.DataConfig`).
  c.data = common.data("synth_av/tiny" if tiny else "synth_av/base")
  c.splits = ("train", "validation", "test")
  c.limit = 0  # First `limit` examples of each split (0: all).
  c.video_tokenizer = ""  # Workdir of train_video_tokenizer.
  c.audio_codec = ""  # Workdir of train_audio_codec.
  c.text_tokenizer = ""  # text.model of train_text_tokenizer.
  c.random_init = False  # Tiny RANDOM tokenizers (tests/demo only).
  # With random_init: presets of configs/magvit2.py and soundstream.py
  # (`random_tokenizers`).
  c.random = dict(
      video_config="tiny", visual_bits=10, codec_config="tiny", seed=0
  )
  c.num_frames = 17
  c.audio_levels = 4
  # Text ids per record (-> tokens.json); synth_av captions are <= 35 BPE
  # pieces (videopoet/text_tokenizer.py), so tiny keeps every caption whole.
  c.max_text_len = 40 if tiny else 64
  # Frozen T5 encoder for `tasks.text_mode='embeddings'` (VideoPoet: T5-XL):
  # a LOCAL directory with config.json, model.safetensors, spiece.model;
  # '' writes no embeddings. Its tokens per caption are max_text_len.
  c.text_encoder = dict(path="", dtype="float32", batch_size=8)
  c.structure = True  # Flow + depth clips for stylization.
  # TorchScript depth network (e.g. MiDaS exported with torch.jit.trace) for
  # datasets without depth maps (video_folder); '': depth channel 0.
  c.depth_model = ""
  c.depth_input_size = 256
  c.flow_scale = 4.0
  c.batch_size = 8
  c.num_shards = 0  # 0: one shard per process.
  # f > 0: also the codes of each clip bicubic-downsampled by f (record
  # `video_low`): the SR transformer's data (configs/superres.py); 0: none.
  c.superres_factor = 0
  return c
