"""Loading a trained MAGVIT-v2 tokenizer for inference (no training imports).

  tok = load_tokenizer("runs/video_tok")      # EMA parameters only
  ids = tok.encode_to_indices(video)          # [b, t', h', w'] int32
  video = tok.decode_from_indices(ids)        # [b, t, h, w, 3] in [-1, 1]

Imports neither TensorFlow nor the training harness, so a sampling host
needs only JAX and the media libraries.
"""

import dataclasses
from typing import Any

import jax
import ml_collections

from videopoet import config_lib
from videopoet import kernels
from videopoet.train_lib import loading
from videopoet.train_lib import workdir as workdir_lib
from videopoet.tokenizers.common import perceptual
from videopoet.tokenizers.magvit2 import model as model_lib
from videopoet.tokenizers.magvit2 import quantizers
from videopoet.tokenizers.magvit2 import train as train_lib


def trainer_from_config(config) -> train_lib.Trainer:
  f = config_lib.from_config
  return train_lib.Trainer(
      model=f(model_lib.ModelConfig, config.model, "config.model"),
      quantizer=f(
          quantizers.QuantizerConfig, config.quantizer, "config.quantizer"
      ),
      disc=f(
          train_lib.DiscriminatorConfig,
          config.discriminator,
          "config.discriminator",
      ),
      loss=f(train_lib.LossConfig, config.loss, "config.loss"),
      optimizer=f(
          train_lib.OptimizerConfig, config.optimizer, "config.optimizer"
      ),
      perceptual=f(
          perceptual.PerceptualConfig, config.perceptual, "config.perceptual"
      ),
  )


@dataclasses.dataclass
class LoadedTokenizer:
  """A trained tokenizer with its EMA params; every method is jitted."""

  tokenizer: model_lib.Tokenizer
  params: Any
  step: int

  def __post_init__(self):
    def bind(method):
      return jax.jit(
          lambda p, x: self.tokenizer.apply(
              p, x, method=getattr(model_lib.Tokenizer, method)
          )
      )

    self._fns = {
        m: bind(m)
        for m in ("encode_to_indices", "decode_from_indices", "decode")
    }
    self._encode = jax.jit(
        lambda p, x: self.tokenizer.apply(
            p, x, method=model_lib.Tokenizer.encode
        ).quantized
    )

  def encode(self, video):
    """[b, t, h, w, 3] (or [b, h, w, 3]) in [-1, 1] -> codes [..., dim]."""
    return self._encode(self.params, video)

  def decode(self, codes):
    return self._fns["decode"](self.params, codes)

  def encode_to_indices(self, video):
    return self._fns["encode_to_indices"](self.params, video)

  def decode_from_indices(self, indices):
    return self._fns["decode_from_indices"](self.params, indices)


def load_tokenizer(
    path: str,
    step: int | None = None,
    placement: jax.sharding.Sharding | None = None,
) -> LoadedTokenizer:
  """Loads the EMA tokenizer of a run directory (parameters only).

  Args:
    path: the run's workdir (with `config.json` and `checkpoints/`) of
      `experiments.train_video_tokenizer`, or one of its
      `checkpoints/<step>` directories.
    step: which checkpoint; default the latest (or the one in `path`).
    placement: where every parameter goes (e.g. replicated over the
      sampler's mesh); default the first local device.

  Returns:
    A `LoadedTokenizer`; only the EMA parameters are read (never the
    optimizer or discriminator state).

  Raises:
    FileNotFoundError: `path` does not exist, or has no `config.json` or no
      checkpoint (the message names the directory and what is missing).
    config_lib.ConfigError: its `config.json` is not a video tokenizer's
      (e.g. an audio codec's or an LM's workdir); the message says which.
  """
  workdir, in_path = loading.find_workdir(
      path, "video_tokenizer", "experiments.train_video_tokenizer"
  )
  config = ml_collections.ConfigDict(
      workdir_lib.read_family_config(workdir, "video_tokenizer")
  )
  trainer = trainer_from_config(config)
  shardings = None
  if placement is not None:
    shardings = lambda _, shapes: jax.tree.map(lambda _: placement, shapes)
  step, trees = loading.restore_params(
      workdir, ("ema_params",), step or in_path, shardings
  )
  return LoadedTokenizer(trainer.tokenizer, trees["ema_params"], step)


def random_tokenizer(
    model: model_lib.ModelConfig,
    quantizer: quantizers.QuantizerConfig,
    seed: int = 0,
) -> LoadedTokenizer:
  """A RANDOMLY INITIALIZED tokenizer (tests and demos only).

  Initialized through the full reconstruction, so the decoder has
  parameters too (the encoder's are the same either way: flax keys them by
  module path). Deterministic for (`model`, `quantizer`, `seed`).
  """
  tok = model_lib.Tokenizer(model, quantizer.build())
  m = tok.model
  sample = jax.numpy.zeros(
      (1, 1 + m.time_factor) + (m.space_factor,) * 2 + (3,)
  )
  init = lambda r: tok.init({"params": kernels.init_key(r)}, sample)
  params = jax.jit(init)(jax.random.key(seed))
  return LoadedTokenizer(tok, params, 0)
