"""The models a sampler needs, loaded from an LM workdir alone.

    models = load_models("runs/lm", mesh)
    models.lm.params          # on `mesh`, sharded by the LM's logical axes
    models.video              # the video tokenizer that made its tokens
    models.codec              # the audio codec (None: no audio)
    models.spec               # tokens.json: grid, rates, vocabulary
    models.text_encoder       # its frozen T5 (text_mode 'embeddings')

The LM's workdir holds its `config.json` and, copied there by the trainer,
the `tokens.json` of the tokens it learned; that record names the video
tokenizer and codec workdirs and checkpoint steps (or the random-init
config they came from), so nothing else has to be passed or kept in step.
Parameters only are read (`train_lib.loading`), never optimizer state.
"""

import dataclasses
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import sentencepiece as spm

from videopoet import config_lib
from videopoet import sharding
from videopoet import text_encoder as text_encoder_lib
from videopoet import text_tokenizer
from videopoet import token_spec
from videopoet import vocab as vocab_lib
from videopoet.model import transformer
from videopoet.tasks import builders
from videopoet.train_lib import loading
from videopoet.train_lib import workdir as workdir_lib

LM_JOB = "experiments.train"


@dataclasses.dataclass
class LoadedLM:
  """An LM checkpoint and everything needed to prompt it.

  Attributes:
    workdir: its workdir.
    step: the checkpoint's step.
    config: the run's saved config.
    model_config: the transformer's config.
    vocab: its vocabulary (read from `spec`).
    spec: the tokens it was trained on (`<workdir>/tokens.json`).
    task_config: how its sequences were built.
    tasks: the tasks it was trained on (mixture weight > 0).
    params: the parameters, placed on `mesh`.
    mesh: the mesh they live on.
  """

  workdir: str
  step: int
  config: ml_collections.ConfigDict
  model_config: transformer.ModelConfig
  vocab: vocab_lib.Vocab
  spec: token_spec.TokenSpec
  task_config: builders.TaskConfig
  tasks: tuple[str, ...]
  params: Any
  mesh: jax.sharding.Mesh


def _single_device_mesh() -> jax.sharding.Mesh:
  return sharding.create_mesh(
      sharding.MeshConfig(data=1, fsdp=1, tensor=1), jax.local_devices()[:1]
  )


def load_lm(
    path: str, mesh: jax.sharding.Mesh | None = None, step: int | None = None
) -> LoadedLM:
  """Loads the LM of `path` (a workdir or `<workdir>/checkpoints/<step>`).

  Args:
    path: the workdir of `experiments.train`.
    mesh: where the parameters go, sharded by their logical axes
      (`sharding.LOGICAL_AXIS_RULES`); default: the first local device.
    step: the checkpoint (default: the one in `path`, else the latest).

  Raises:
    FileNotFoundError: no such workdir, checkpoint or tokens.json.
    config_lib.ConfigError: not an LM workdir (says what it is).
  """
  workdir, in_path = loading.find_workdir(path, "lm", LM_JOB)
  config = ml_collections.ConfigDict(
      workdir_lib.read_family_config(workdir, "lm")
  )
  spec = token_spec.read(workdir)
  task_config = config_lib.from_config(
      builders.TaskConfig, config.tasks, "config.tasks"
  )
  vocab = vocab_lib.Vocab(
      spec.vocab_config(config.vocab.pad_to, task_config.text_mode)
  )
  section = config.model.to_dict()
  section["text_embed_dim"] = text_encoder_lib.model_text_dim(
      task_config.text_mode, section.get("text_embed_dim", 0), spec
  )
  model_config = transformer.config_for_vocab(section, vocab)
  mesh = mesh or _single_device_mesh()
  model = transformer.VideoPoetLM(model_config)

  def init(rng):  # Shapes and logical axes only (under eval_shape).
    n, text = 8, None
    if model_config.text_embed_dim:  # Long enough to hold the text.
      n += spec.max_text_len
      text = jnp.zeros((1, spec.max_text_len, model_config.text_embed_dim))
    tokens = jnp.zeros((1, n), jnp.int32)
    return model.init(rng, tokens, jnp.full((1,), n), text)["params"]

  rules = list(sharding.LOGICAL_AXIS_RULES)
  with nn.logical_axis_rules(rules):
    boxed = jax.eval_shape(init, jax.random.key(0))
    shardings = sharding.logical_sharding(boxed, mesh)
  step, trees = loading.restore_params(
      workdir, ("params",), step or in_path, {"params": shardings}
  )
  weights = dict(tuple(w) for w in config.mixture.weights)
  tasks = tuple(t for t in vocab_lib.TASK_NAMES if weights.get(t, 0) > 0)
  return LoadedLM(
      workdir=workdir, step=step, config=config, model_config=model_config,
      vocab=vocab, spec=spec, task_config=task_config, tasks=tasks,
      params=trees["params"], mesh=mesh,
  )  # fmt: skip


# ------------------------------------------------------- Tokenizers.
def _check_random(random: dict) -> None:
  if "video_model" not in random or "codec_model" not in random:
    raise config_lib.ConfigError(
        f"the random-tokenizer record {random} names config presets"
        " (tokens made before the record held the architectures): rerun"
        " experiments.tokenize_data with --overwrite"
    )


def random_video_tokenizer(random: dict):
  """The RANDOMLY INITIALIZED video tokenizer of a `tokens.json` `random`.

  The same parameters as `tokenize_data` encoded with (one home:
  `pretokenize.load_tokenizers` calls this too).
  """
  from videopoet.tokenizers.magvit2 import loader  # pylint: disable=g-import-not-at-top
  from videopoet.tokenizers.magvit2 import model as model_lib  # pylint: disable=g-import-not-at-top
  from videopoet.tokenizers.magvit2 import quantizers  # pylint: disable=g-import-not-at-top

  _check_random(random)
  model = config_lib.from_config(
      model_lib.ModelConfig, random["video_model"], "random.video_model"
  )
  quantizer = quantizers.QuantizerConfig(
      kind="lfq", lfq=quantizers.LFQ(num_bits=random["visual_bits"])
  )
  return loader.random_tokenizer(model, quantizer, random["seed"])


def random_codec(random: dict):
  """The RANDOMLY INITIALIZED codec of a `tokens.json` `random` record."""
  from videopoet.tokenizers.soundstream import codec as codec_lib  # pylint: disable=g-import-not-at-top
  from videopoet.tokenizers.soundstream import model as model_lib  # pylint: disable=g-import-not-at-top

  _check_random(random)
  mc = config_lib.from_config(
      model_lib.ModelConfig, random["codec_model"], "random.codec_model"
  )
  model = model_lib.SoundStream(mc)
  variables = model_lib.init_variables(
      model, jax.random.key(random["seed"] + 1)
  )
  codec = codec_lib.Codec(mc, variables)
  codec.step = 0
  return codec


def load_video_tokenizer(spec: token_spec.TokenSpec):
  """The video tokenizer `spec` names, checked against its code count."""
  from videopoet.tokenizers.magvit2 import loader  # pylint: disable=g-import-not-at-top

  if spec.video_tokenizer == "random":
    tok = random_video_tokenizer(spec.random)
  else:
    tok = loader.load_tokenizer(spec.video_tokenizer, spec.video_tokenizer_step)
  size = tok.tokenizer.quantizer.codebook_size
  if size != 2**spec.visual_bits:
    raise config_lib.ConfigError(
        f"the video tokenizer {spec.video_tokenizer} has {size} codes, but"
        f" the LM's tokens were made with 2^{spec.visual_bits}"
    )
  return tok


def load_codec(spec: token_spec.TokenSpec):
  """The audio codec `spec` names, or None when the tokens have no audio."""
  if not spec.has_audio:
    return None
  if spec.audio_codec == "random":
    return random_codec(spec.random)
  from videopoet.tokenizers.soundstream import codec as codec_lib  # pylint: disable=g-import-not-at-top

  path = spec.audio_codec
  if spec.audio_codec_step:
    path = os.path.join(path, "checkpoints", str(spec.audio_codec_step))
  return codec_lib.load_codec(path)


def load_text_tokenizer(spec: token_spec.TokenSpec):
  """The sentencepiece model the tokens' captions were encoded with.

  Raises:
    FileNotFoundError: it is gone.
    config_lib.ConfigError: the file there is another model (its hash).
  """
  if not spec.text_tokenizer:
    return None
  if not os.path.exists(spec.text_tokenizer):
    raise FileNotFoundError(
        f"the text tokenizer {spec.text_tokenizer} named in tokens.json is"
        " gone; the LM's prompts must be encoded with the same model"
    )
  digest = token_spec.file_sha256(spec.text_tokenizer)
  if spec.text_tokenizer_sha256 and digest != spec.text_tokenizer_sha256:
    raise config_lib.ConfigError(
        f"{spec.text_tokenizer} changed since the tokens were made (sha256"
        f" {digest}, tokens.json: {spec.text_tokenizer_sha256})"
    )
  return text_tokenizer.load(spec.text_tokenizer)


@dataclasses.dataclass
class Models:
  """An LM with the tokenizers that give its tokens pixels, sound and text."""

  lm: LoadedLM
  video: Any  # magvit2 loader.LoadedTokenizer
  codec: Any  # soundstream codec.Codec or None
  text: spm.SentencePieceProcessor | None
  text_encoder: text_encoder_lib.TextEncoder | None = None

  @property
  def spec(self) -> token_spec.TokenSpec:
    return self.lm.spec


def load_models(
    lm_path: str, mesh: jax.sharding.Mesh | None = None, step: int | None = None
) -> Models:
  """The LM of `lm_path` and the tokenizers its `tokens.json` names."""
  lm = load_lm(lm_path, mesh, step)
  return Models(
      lm=lm,
      video=load_video_tokenizer(lm.spec),
      codec=load_codec(lm.spec),
      text=load_text_tokenizer(lm.spec),
      text_encoder=load_text_encoder(lm),
  )


def load_text_encoder(lm: LoadedLM) -> text_encoder_lib.TextEncoder | None:
  """The frozen T5 that embedded the LM's captions (text_mode
  'embeddings'), on the LM's mesh; another encoder at that path (its
  hash) is refused by name.

  Raises:
    config_lib.ConfigError: gone, or not the encoder of `tokens.json`.
  """
  if lm.task_config.text_mode != "embeddings":
    return None
  s = lm.spec
  return text_encoder_lib.load_named(
      s.text_encoder, s.text_encoder_sha256, s.max_text_len, lm.mesh
  )
