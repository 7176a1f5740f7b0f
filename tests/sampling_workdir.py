"""A small LM workdir for sampler tests, made without training.

The LM's parameters are its random initialization, its tokens those of the
tiny randomly initialized tokenizers (`tokens.json` says `random`), on a
32 x 32 x 9 clip grid (3 x 4 x 4 codes) with 2 audio levels, so every
task's sequence is short. Saved exactly as `experiments.train` saves
(config.json, tokens.json, checkpoints/<step>/ with params and optimizer
state), so the loaders and the job read it as any LM workdir. With
`text_encoder` (a T5 checkpoint directory) the LM embeds its text with it
(text_mode 'embeddings', tokens.json naming that encoder).
"""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from configs import tokenize_data as tokenize_configs
from configs import videopoet as videopoet_configs
from tests import text_tokenizer_test
from videopoet import text_encoder as text_encoder_lib
from videopoet import text_tokenizer
from videopoet import token_spec
from videopoet import vocab as vocab_lib
from videopoet.model import transformer
from videopoet.train_lib import checkpointing

CAPTIONS = text_tokenizer_test.CAPTIONS


def make(root: str, step: int = 3, tasks=None, text_encoder=None) -> str:
  """Writes `<root>/lm` (and its text model); returns the workdir."""
  embedded = {}
  if text_encoder is not None:
    with open(os.path.join(text_encoder, text_encoder_lib.CONFIG)) as f:
      width = json.load(f)["d_model"]
    embedded = dict(
        text_encoder=os.path.abspath(text_encoder),
        text_encoder_sha256=text_encoder_lib.checkpoint_sha256(text_encoder),
        text_embed_dim=width,
    )
  os.makedirs(root, exist_ok=True)
  model_path = text_tokenizer.train(
      CAPTIONS, os.path.join(root, "text"), vocab_size=48
  )
  sp = text_tokenizer.load(model_path)
  spec = token_spec.TokenSpec(
      video_tokenizer="random",
      random=tokenize_configs.random_tokenizers(),
      visual_bits=10, time_factor=4, space_factor=8, num_frames=9,
      height=32, width=32, fps=8.0, max_text_len=24,
      audio_codec="random", audio_levels=2, audio_codebook=1024,
      sample_rate=16000, audio_hop=320, audio_frames=18000 // 320,
      text_tokenizer=os.path.abspath(model_path),
      text_tokenizer_sha256=token_spec.file_sha256(model_path),
      text_size=sp.get_piece_size(), dataset="synth_av/tiny", structure=True,
      **embedded,
  )  # fmt: skip
  workdir = os.path.join(root, "lm")
  token_spec.write(workdir, spec)
  config = videopoet_configs.get_config("tiny")
  config.data.data_dir = os.path.join(root, "tokens")
  if tasks is not None:
    config.mixture.weights = tuple(
        (t, 1.0 if t in tasks else 0.0) for t in vocab_lib.TASK_NAMES
    )
  n, text = 8, None
  if embedded:
    n += spec.max_text_len
    config.tasks.text_mode = "embeddings"
    text = jnp.zeros((1, spec.max_text_len, spec.text_embed_dim))
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f, indent=2)
  vocab = vocab_lib.Vocab(
      spec.vocab_config(config.vocab.pad_to, config.tasks.text_mode)
  )
  model = transformer.VideoPoetLM(
      transformer.config_for_vocab(
          dict(config.model.to_dict(), text_embed_dim=spec.text_embed_dim),
          vocab,
      )
  )
  params = nn.unbox(
      model.init(
          jax.random.key(0), jnp.zeros((1, n), jnp.int32), jnp.full((1,), n),
          text,
      )["params"]
  )  # fmt: skip
  state = {"params": params, "opt_state": optax.adamw(1e-3).init(params)}
  ckpt = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"),
      checkpointing.CheckpointConfig(async_save=False),
  )
  ckpt.save(step, state, {})
  ckpt.wait()
  ckpt.close()
  return workdir
