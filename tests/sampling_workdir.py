"""A small LM workdir for sampler tests, made without training.

The LM's parameters are its random initialization, its tokens those of the
tiny randomly initialized tokenizers (`tokens.json` says `random`), on a
32 x 32 x 9 clip grid (3 x 4 x 4 codes) with 2 audio levels, so every
task's sequence is short. Saved exactly as `experiments.train` saves
(config.json, tokens.json, checkpoints/<step>/ with params and optimizer
state), so the loaders and the job read it as any LM workdir.
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
from videopoet import text_tokenizer
from videopoet import token_spec
from videopoet import vocab as vocab_lib
from videopoet.model import transformer
from videopoet.train_lib import checkpointing

CAPTIONS = text_tokenizer_test.CAPTIONS


def make(root: str, step: int = 3, tasks=None) -> str:
  """Writes `<root>/lm` (and its text model); returns the workdir."""
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
  )  # fmt: skip
  workdir = os.path.join(root, "lm")
  token_spec.write(workdir, spec)
  config = videopoet_configs.get_config("tiny")
  config.data.data_dir = os.path.join(root, "tokens")
  if tasks is not None:
    config.mixture.weights = tuple(
        (t, 1.0 if t in tasks else 0.0) for t in vocab_lib.TASK_NAMES
    )
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f, indent=2)
  vocab = vocab_lib.Vocab(spec.vocab_config(config.vocab.pad_to))
  model = transformer.VideoPoetLM(
      transformer.config_for_vocab(config.model.to_dict(), vocab)
  )
  params = nn.unbox(
      model.init(
          jax.random.key(0), jnp.zeros((1, 8), jnp.int32), jnp.full((1,), 8)
      )["params"]
  )
  state = {"params": params, "opt_state": optax.adamw(1e-3).init(params)}
  ckpt = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"),
      checkpointing.CheckpointConfig(async_save=False),
  )
  ckpt.save(step, state, {})
  ckpt.wait()
  ckpt.close()
  return workdir
