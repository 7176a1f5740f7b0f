"""Frozen T5 text encoder: captions -> embeddings the LM projects.

VideoPoet conditions on the embeddings of a frozen T5-XL encoder. This is
a T5 encoder (v1.0 ReLU or v1.1 gated-GELU; RMS norms, one relative
position bias shared by the layers, no score scaling) in JAX that reads a
Hugging Face checkpoint from a LOCAL directory, never downloading:

  <path>/config.json         the `T5Config` (d_model, num_layers, ...)
  <path>/model.safetensors   the weights (`encoder.*`, `shared.weight`)
  <path>/spiece.model        its sentencepiece model

    enc = text_encoder.load("/models/t5-v1_1-xl", max_len=64)
    emb, mask = enc.encode(["a red circle"])  # bf16 [1, 64, 2048], bool

`tokenize_data` stores these embeddings (bf16) with their mask in every
record and names the encoder in `tokens.json` (`text_encoder`, its
`text_encoder_sha256`, `text_embed_dim`, `max_text_len`); the sampler
encodes prompts with the same encoder, checked by that hash.
"""

import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
import safetensors
import safetensors.numpy
import sentencepiece as spm

from videopoet import config_lib
from videopoet import sharding
from videopoet import token_spec

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
SPIECE = "spiece.model"
# Stored and fed to the LM in bf16: training records and sampled prompts
# see the same rounded values.
STORE_DTYPE = jnp.bfloat16


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
  """`config.text_encoder`: which local T5 encodes the captions.

  Attributes:
    path: a local directory holding `config.json`, `model.safetensors`
      and `spiece.model` (e.g. google/t5-v1_1-xl, encoder only); '' to
      write no embeddings.
    dtype: compute and weight dtype ('bfloat16' or 'float32').
    batch_size: captions per encoder call (the last call is padded).
  """

  path: str = ""
  dtype: str = "float32"
  batch_size: int = 8

  def __post_init__(self):
    if self.dtype not in ("bfloat16", "float32"):
      raise config_lib.ConfigError(
          f"config.text_encoder.dtype={self.dtype!r}: use bfloat16 or float32"
      )
    if self.batch_size < 1:
      raise config_lib.ConfigError(
          f"config.text_encoder.batch_size={self.batch_size} must be >= 1"
      )


@dataclasses.dataclass(frozen=True)
class T5Config:
  """The fields of a Hugging Face `T5Config` the encoder uses."""

  vocab_size: int
  d_model: int
  d_kv: int
  d_ff: int
  num_layers: int
  num_heads: int
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  feed_forward_proj: str = "relu"  # v1.1: 'gated-gelu'.
  layer_norm_epsilon: float = 1e-6

  @classmethod
  def from_json(cls, record: dict) -> "T5Config":
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in record.items() if k in names})

  def to_json(self) -> dict:
    return dict(
        dataclasses.asdict(self), model_type="t5", is_encoder_decoder=True
    )

  @property
  def gated(self) -> bool:
    return self.feed_forward_proj.startswith("gated-")


def _missing(path: str) -> str:
  return (
      f"config.text_encoder.path={path!r} holds no T5 checkpoint (it needs"
      f" {CONFIG}, {WEIGHTS} and {SPIECE}; see README: local T5)"
  )


def check_path(path: str) -> str:
  """`path` made absolute, or a one-line `ConfigError` saying what is
  missing (no path: nothing is downloaded at run time)."""
  if not path:
    raise config_lib.ConfigError(
        "config.text_encoder.path is empty: text embeddings need a local T5"
        " checkpoint directory (config.json, model.safetensors,"
        " spiece.model); nothing is downloaded at run time"
    )
  if not all(
      os.path.isfile(os.path.join(path, f)) for f in (CONFIG, WEIGHTS, SPIECE)
  ):
    raise config_lib.ConfigError(_missing(path))
  return os.path.abspath(path)


def checkpoint_sha256(path: str) -> str:
  """The hash that names an encoder: its weights' and sentencepiece
  model's (first 16 hex digits of each, joined)."""
  return "-".join(
      token_spec.file_sha256(os.path.join(path, f)) for f in (WEIGHTS, SPIECE)
  )


# ------------------------------------------------------------- Model.
Params = dict[str, jax.Array]  # Hugging Face names, torch layout [out, in].


def _rms_norm(x, w, eps):
  var = jnp.mean(jnp.square(x.astype(jnp.float32)), -1, keepdims=True)
  return (x.astype(jnp.float32) * jax.lax.rsqrt(var + eps)).astype(w.dtype) * w


def _dense(x, w):  # torch layout: w [out, in].
  return jnp.einsum("...i,oi->...o", x, w)


def relative_buckets(n: int, num_buckets: int, max_distance: int):
  """int32 [n, n]: T5's bidirectional relative position buckets."""
  ctx = np.arange(n)[:, None]
  rel = np.arange(n)[None, :] - ctx  # key - query
  half = num_buckets // 2
  out = (rel > 0).astype(np.int32) * half
  rel = np.abs(rel)
  exact = half // 2
  # float32 as Hugging Face's torch T5 computes it (same bucket edges).
  ratio = (np.maximum(rel, 1) / exact).astype(np.float32)
  large = exact + (
      np.log(ratio)
      / np.float32(math.log(max_distance / exact))
      * np.float32(half - exact)
  ).astype(np.int32)
  large = np.minimum(large, half - 1)
  return out + np.where(rel < exact, rel, large).astype(np.int32)


def encode_ids(cfg: T5Config, params: Params, ids, mask):
  """Last hidden states [b, n, d] of ids [b, n] with mask [b, n] (bool)."""
  pre = "encoder.block"
  x = jnp.take(params["shared.weight"], ids, axis=0)  # [b, n, d]
  b, n = ids.shape
  buckets = relative_buckets(
      n, cfg.relative_attention_num_buckets,
      cfg.relative_attention_max_distance,
  )  # fmt: skip
  table = params[
      f"{pre}.0.layer.0.SelfAttention.relative_attention_bias.weight"
  ]
  bias = jnp.take(table, buckets, axis=0).transpose(2, 0, 1)[None]  # [1,h,n,n]
  bias = bias.astype(jnp.float32) + jnp.where(
      mask[:, None, None, :], 0.0, jnp.finfo(jnp.float32).min
  )  # [b, h, n, n]
  h, dk, eps = cfg.num_heads, cfg.d_kv, cfg.layer_norm_epsilon
  for i in range(cfg.num_layers):
    p = lambda name: params[f"{pre}.{i}.layer.{name}"]
    y = _rms_norm(x, p("0.layer_norm.weight"), eps)
    q, k, v = (
        _dense(y, p(f"0.SelfAttention.{t}.weight")).reshape(b, n, h, dk)
        for t in "qkv"
    )
    scores = jnp.einsum(
        "bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32
    )
    probs = jax.nn.softmax(scores + bias, axis=-1).astype(x.dtype)
    att = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(b, n, h * dk)
    x = x + _dense(att, p("0.SelfAttention.o.weight"))
    y = _rms_norm(x, p("1.layer_norm.weight"), eps)
    if cfg.gated:
      act = jax.nn.gelu(_dense(y, p("1.DenseReluDense.wi_0.weight")), True)
      y = act * _dense(y, p("1.DenseReluDense.wi_1.weight"))
    else:
      y = jax.nn.relu(_dense(y, p("1.DenseReluDense.wi.weight")))
    x = x + _dense(y, p("1.DenseReluDense.wo.weight"))
  return _rms_norm(x, params["encoder.final_layer_norm.weight"], eps)


def param_shapes(cfg: T5Config) -> dict[str, tuple[int, ...]]:
  """Every weight the encoder reads, by Hugging Face name."""
  d, inner, pre = cfg.d_model, cfg.num_heads * cfg.d_kv, "encoder.block"
  out = {
      "shared.weight": (cfg.vocab_size, d),
      f"{pre}.0.layer.0.SelfAttention.relative_attention_bias.weight": (
          cfg.relative_attention_num_buckets, cfg.num_heads,
      ),
      "encoder.final_layer_norm.weight": (d,),
  }  # fmt: skip
  wi = ("wi_0", "wi_1") if cfg.gated else ("wi",)
  for i in range(cfg.num_layers):
    layer = f"{pre}.{i}.layer"
    out.update(
        {f"{layer}.0.SelfAttention.{t}.weight": (inner, d) for t in "qk"}
    )
    out[f"{layer}.0.SelfAttention.v.weight"] = (inner, d)
    out[f"{layer}.0.SelfAttention.o.weight"] = (d, inner)
    out[f"{layer}.0.layer_norm.weight"] = (d,)
    out[f"{layer}.1.layer_norm.weight"] = (d,)
    out.update(
        {f"{layer}.1.DenseReluDense.{w}.weight": (cfg.d_ff, d) for w in wi}
    )
    out[f"{layer}.1.DenseReluDense.wo.weight"] = (d, cfg.d_ff)
  return out


def random_params(cfg: T5Config, seed: int = 0) -> dict[str, np.ndarray]:
  """RANDOM float32 weights of `cfg` (tests): norms 1, the rest N(0, 1/in)."""
  rng = np.random.default_rng(seed)
  out = {}
  for name, shape in param_shapes(cfg).items():
    if len(shape) == 1:
      out[name] = np.ones(shape, np.float32)
    else:
      scale = 1.0 if "relative" in name or name == "shared.weight" else shape[1]
      out[name] = (rng.normal(size=shape) / np.sqrt(scale)).astype(np.float32)
  return out


def save(path: str, cfg: T5Config, params: dict, spiece: str) -> str:
  """Writes a checkpoint directory `load` reads (Hugging Face layout)."""
  import shutil  # pylint: disable=g-import-not-at-top

  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, CONFIG), "w", encoding="utf-8") as f:
    json.dump(cfg.to_json(), f, indent=2)
  safetensors.numpy.save_file(
      {k: np.asarray(v) for k, v in params.items()},
      os.path.join(path, WEIGHTS),
  )
  shutil.copyfile(spiece, os.path.join(path, SPIECE))
  return path


def _read_weights(path: str, cfg: T5Config, dtype) -> Params:
  """The encoder's weights in `dtype` (bf16 files are read through
  safetensors' flax loader: numpy has no bfloat16 of its own)."""
  want = param_shapes(cfg)
  file = os.path.join(path, WEIGHTS)
  out = {}
  with safetensors.safe_open(file, framework="flax") as f:
    names = set(f.keys())
    if "shared.weight" not in names and "encoder.embed_tokens.weight" in names:
      alias = {"shared.weight": "encoder.embed_tokens.weight"}
    else:
      alias = {}
    for name, shape in want.items():
      key = alias.get(name, name)
      if key not in names:
        raise config_lib.ConfigError(
            f"{file} lacks {key}: not a T5 encoder of its {CONFIG}"
        )
      w = f.get_tensor(key)
      if tuple(w.shape) != shape:
        raise config_lib.ConfigError(
            f"{file}: {key} has shape {tuple(w.shape)}, {CONFIG} says {shape}"
        )
      out[name] = jnp.asarray(w, dtype)
  return out


class TextEncoder:
  """A loaded T5 encoder: captions -> (bf16 [b, max_len, d], bool mask).

  Attributes:
    path: its absolute directory (the name `tokens.json` records).
    sha256: `checkpoint_sha256(path)`.
    width: d_model (the LM's `text_embed_dim`).
    max_len: tokens per caption (with T5's `</s>`; longer ones are cut).
  """

  def __init__(
      self,
      path: str,
      max_len: int,
      dtype: str = "float32",
      batch_size: int = 8,
      mesh: jax.sharding.Mesh | None = None,
  ):
    self.path = check_path(path)
    with open(os.path.join(self.path, CONFIG), encoding="utf-8") as f:
      self.config = T5Config.from_json(json.load(f))
    self.sha256 = checkpoint_sha256(self.path)
    self.width, self.max_len = self.config.d_model, max_len
    self.sp = spm.SentencePieceProcessor(
        model_file=os.path.join(self.path, SPIECE)
    )
    self._mesh = mesh
    rows = batch_size
    if mesh is not None:
      dp = sharding.data_parallel_size(mesh)
      rows = -(-rows // dp) * dp
    self._rows = rows
    params = _read_weights(self.path, self.config, jnp.dtype(dtype))
    if mesh is not None:
      params = jax.device_put(params, sharding.replicated(mesh))
    self._params = params
    cfg = self.config

    def run(p, ids, mask):  # -> bf16 [b, n, d], zero at padding.
      # One caption at a time: the same compiled computation whatever the
      # batch, so a caption's embedding does not depend on its batch
      # (tokenize_data's batches, the sampler's single prompts).
      one = lambda im: encode_ids(cfg, p, im[0][None], im[1][None])[0]
      x = jax.lax.map(one, (ids, mask))  # [b, n, d]
      return jnp.where(mask[..., None], x, 0).astype(STORE_DTYPE)

    if mesh is not None:  # Each device encodes its rows of the batch.
      rows_spec = sharding.batch_sharding(mesh, 2).spec
      run = jax.shard_map(
          run, mesh=mesh, in_specs=(P(), rows_spec, rows_spec),
          out_specs=P(*rows_spec, None),
      )  # fmt: skip
    self._run = jax.jit(run)

  def num_tokens(self, text: str) -> int:
    """T5 tokens of `text` before any cut (with `</s>`; '' -> 0)."""
    if not text:
      return 0
    return len(self.sp.encode(text)) + (self.sp.eos_id() >= 0)

  def tokenize(self, text: str) -> np.ndarray:
    """int32 [n <= max_len]: T5's pieces of `text` then `</s>` ('' -> [])."""
    if not text:
      return np.zeros(0, np.int32)
    eos = self.sp.eos_id()
    ids = self.sp.encode(text)[: self.max_len - (eos >= 0)]
    return np.asarray(ids + ([eos] if eos >= 0 else []), np.int32)

  def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(bf16 [b, max_len, d] embeddings, bool [b, max_len] mask).

    An empty text has no valid position: zero embeddings, mask False.
    """
    n, rows = self.max_len, self._rows
    embs, masks = [], []
    for lo in range(0, len(texts), rows):
      chunk = texts[lo : lo + rows]
      ids = np.zeros((rows, n), np.int32)
      mask = np.zeros((rows, n), bool)
      for i, t in enumerate(chunk):
        tok = self.tokenize(t)
        ids[i, : len(tok)], mask[i, : len(tok)] = tok, True
      args = (ids, mask)
      if self._mesh is not None:
        args = tuple(
            jax.device_put(a, sharding.batch_sharding(self._mesh, 2))
            for a in args
        )
      out = self._run(self._params, *args)
      embs.append(np.asarray(out)[: len(chunk)])
      masks.append(mask[: len(chunk)])
    if not embs:
      return np.zeros((0, n, self.width), STORE_DTYPE), np.zeros((0, n), bool)
    return np.concatenate(embs), np.concatenate(masks)


def load(
    path: str,
    max_len: int,
    dtype: str = "float32",
    batch_size: int = 8,
    mesh: jax.sharding.Mesh | None = None,
) -> TextEncoder:
  """The T5 encoder at local `path` (see the module doc for the files)."""
  return TextEncoder(path, max_len, dtype, batch_size, mesh)


def load_named(path: str, sha256: str, max_len: int, mesh=None) -> TextEncoder:
  """The encoder `tokens.json` names, refused when it is another one.

  Raises:
    config_lib.ConfigError: gone, or its files' hash is not `sha256`.
  """
  if not os.path.isdir(path):
    raise config_lib.ConfigError(
        f"the text encoder {path} named in tokens.json is gone; the LM's"
        " prompts must be encoded with the encoder its captions were"
    )
  got = checkpoint_sha256(check_path(path))
  if sha256 and got != sha256:
    raise config_lib.ConfigError(
        f"the text encoder {path} is not the one the tokens were made with"
        f" (sha256 {got}, tokens.json: {sha256}); refusing to encode prompts"
        " with it"
    )
  return load(path, max_len, "float32", 1, mesh)


def model_text_dim(text_mode: str, configured: int, spec) -> int:
  """The LM's `text_embed_dim`: the tokens' `text_embed_dim` in
  text_mode 'embeddings' (0 in 'ids').

  Raises:
    config_lib.ConfigError: embeddings asked of tokens that have none, or
      `config.model.text_embed_dim` set to another width than theirs.
  """
  if text_mode != "embeddings":
    if configured:
      raise config_lib.ConfigError(
          f"config.model.text_embed_dim={configured} needs"
          " config.tasks.text_mode='embeddings'"
      )
    return 0
  width = spec.text_embed_dim
  if not width:
    raise config_lib.ConfigError(
        "config.tasks.text_mode='embeddings', but the tokens carry no text"
        " embeddings (tokens.json names no text_encoder): tokenize with"
        " --config.text_encoder.path=<local T5 directory>"
    )
  if configured and configured != width:
    raise config_lib.ConfigError(
        f"config.model.text_embed_dim={configured}, but the tokens'"
        f" embeddings are {width} wide (tokens.json); leave it 0"
    )
  return width
