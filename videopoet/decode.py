"""Prefix-LM decoding with a KV cache, constrained to the task's layout.

  out = output_layout(seq, vocab)       # allowed ids per output position
  tokens = sample(model_config, params, prefix, out, rng, SamplingConfig())

The prefix (every token before the first output) runs once, bidirectionally,
filling a fixed-size KV cache (`VideoPoetLM(mode='prefill')`); a
`lax.scan` then makes one token per row and step (`mode='decode'`). At each
output position only the ids the layout allows can be drawn: the visual
range inside a visual segment, the right RVQ level's codes inside an audio
segment, and the layout's special tokens are forced. The allowed ranges come
from the task builders themselves (`output_layout` reads a sequence the
builder made), so the layout lives in one place.

Classifier-free guidance doubles the batch with an unconditional prefix
(text all `<pad>`, what text dropout trained, or a negative prompt) and
combines raw logits, `u + s * (c - u)`, before the constraint (masking
first would give -inf - -inf = NaN). Temperature, top-k and top-p follow.
Deterministic for a key: step i draws with `fold_in(rng, i)`.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from videopoet import config_lib
from videopoet import vocab as vocab_lib
from videopoet.model import layers
from videopoet.model import transformer
from videopoet.tasks import layout as layout_lib

Params = Any
Cache = Any


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """How each token is drawn (`config.sampling`, request overrides).

  Attributes:
    temperature: logits are divided by it; 0 takes the most likely id.
    top_k: keep the k most likely allowed ids (0: all).
    top_p: keep the smallest set of ids whose probability reaches p (1: all).
    guidance: classifier-free guidance scale s (1: none).
  """

  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  guidance: float = 1.0

  def __post_init__(self):
    if self.temperature < 0:
      raise config_lib.ConfigError(
          f"temperature={self.temperature} must be >= 0 (0: greedy)"
      )
    if self.top_k < 0:
      raise config_lib.ConfigError(f"top_k={self.top_k} must be >= 0")
    if not 0 < self.top_p <= 1:
      raise config_lib.ConfigError(f"top_p={self.top_p} must be in (0, 1]")


@dataclasses.dataclass(frozen=True)
class OutputLayout:
  """Per output position: the allowed ids [lo, hi) and a forced id.

  Attributes:
    lo: int32 [n] first allowed id.
    hi: int32 [n] one past the last allowed id.
    forced: int32 [n] the id the layout fixes there, or -1 (sampled).
  """

  lo: np.ndarray
  hi: np.ndarray
  forced: np.ndarray

  def __len__(self) -> int:
    return len(self.lo)


def output_layout(
    seq: layout_lib.Sequence, vocab: vocab_lib.Vocab
) -> OutputLayout:
  """The allowed ids at each output position of a task's sequence.

  `seq` is what the task's builder made for an example of the request's
  shapes (its output codes may be placeholders): a visual id there allows
  the whole visual range, an audio id its RVQ level's range, and any other
  id (`<bov_o>`, `<eov_o>`, `<eos>`, ...) is forced.
  """
  out = np.asarray(seq.tokens[seq.prefix_len :], np.int64)  # [n]
  v_lo, v_hi = vocab.range_of("visual")
  a_lo, a_hi = vocab.range_of("audio")
  cb = vocab.config.audio_codebook
  level_lo = a_lo + (out - a_lo) // cb * cb
  visual = (out >= v_lo) & (out < v_hi)
  audio = (out >= a_lo) & (out < a_hi)
  lo = np.where(visual, v_lo, np.where(audio, level_lo, out))
  hi = np.where(visual, v_hi, np.where(audio, level_lo + cb, out + 1))
  forced = np.where(visual | audio, -1, out)
  as32 = lambda x: np.asarray(x, np.int32)
  return OutputLayout(as32(lo), as32(hi), as32(forced))


def _models(config: transformer.ModelConfig, cache_len: int):
  return (
      transformer.VideoPoetLM(config, mode="prefill", cache_len=cache_len),
      transformer.VideoPoetLM(config, mode="decode", cache_len=cache_len),
  )


def prefill(
    config: transformer.ModelConfig,
    params: Params,
    prefix: jax.Array,
    cache_len: int,
    text_embeddings: jax.Array | None = None,
) -> tuple[jax.Array, Cache]:
  """Runs the prefix [b, P] once; returns (logits [b, V] of position P, cache).

  The prefix attends bidirectionally (it is all prefix) and skips padding.
  """
  model, _ = _models(config, cache_len)
  b, p = prefix.shape
  hidden, variables = model.apply(
      {"params": params},
      prefix,
      jnp.full((b,), p, jnp.int32),
      text_embeddings,
      mutable=["cache"],
  )  # hidden [b, P, d]
  logits = model.apply({"params": params}, hidden[:, -1], method="logits")
  return logits, variables["cache"]


def decode_step(
    config: transformer.ModelConfig,
    params: Params,
    cache: Cache,
    tokens: jax.Array,
) -> tuple[jax.Array, Cache]:
  """Feeds one token per row [b] at the cache's index; (logits [b, V], cache)."""
  cache_len = jax.tree.leaves(cache["cache_state"]["key_valid"])[0].shape[-1]
  _, model = _models(config, cache_len)
  b = tokens.shape[0]
  hidden, variables = model.apply(
      {"params": params, "cache": cache},
      tokens[:, None],
      jnp.zeros((b,), jnp.int32),
      mutable=["cache"],
  )  # hidden [b, 1, d]
  logits = model.apply({"params": params}, hidden[:, 0], method="logits")
  return logits, variables["cache"]


def guide(cond: jax.Array, uncond: jax.Array, scale: float) -> jax.Array:
  """Classifier-free guidance on raw logits: u + s * (c - u)."""
  return uncond + scale * (cond - uncond)


def constrain(logits: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
  """NEG_INF outside [lo, hi) (scalars, or [b] per row) of logits [b, V]."""
  ids = jnp.arange(logits.shape[-1])
  lo, hi = jnp.asarray(lo)[..., None], jnp.asarray(hi)[..., None]
  return jnp.where((ids >= lo) & (ids < hi), logits, layers.NEG_INF)


def draw(logits: jax.Array, rng: jax.Array, cfg: SamplingConfig) -> jax.Array:
  """One id per row of constrained logits [b, V]: temperature, top-k, top-p."""
  if cfg.temperature == 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / cfg.temperature
  if cfg.top_k:
    k = min(cfg.top_k, logits.shape[-1])
    kth = jax.lax.top_k(logits, k)[0][:, -1:]  # [b, 1]
    logits = jnp.where(logits < kth, layers.NEG_INF, logits)
  if cfg.top_p < 1:
    ordered = jnp.sort(logits, axis=-1)[:, ::-1]  # [b, V] descending
    probs = jax.nn.softmax(ordered, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # Mass of the better ids.
    # The smallest logit still kept: ids until the mass reaches top_p.
    floor = jnp.min(
        jnp.where(before < cfg.top_p, ordered, jnp.inf), axis=-1, keepdims=True
    )
    logits = jnp.where(logits < floor, layers.NEG_INF, logits)
  return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


def sample(
    config: transformer.ModelConfig,
    params: Params,
    prefix: jax.Array,
    out: OutputLayout,
    rng: jax.Array,
    cfg: SamplingConfig = SamplingConfig(),
    uncond_prefix: jax.Array | None = None,
    text_embeddings: jax.Array | None = None,
    uncond_text_embeddings: jax.Array | None = None,
) -> jax.Array:
  """Samples the output tokens [b, n] after `prefix` [b, P].

  Args:
    config: the LM's model config.
    params: its parameters.
    prefix: int32 [b, P] every token before the first output.
    out: the allowed ids per output position (`output_layout`).
    rng: a PRNG key.
    cfg: temperature, top-k, top-p and the guidance scale.
    uncond_prefix: [b, P] the unconditional (or negative-prompt) prefix;
      with it the batch is doubled and logits guided by `cfg.guidance`.
    text_embeddings: [b, n_text, d_text] when text is embedded.
    uncond_text_embeddings: the unconditional rows' (zeros if omitted).

  Returns:
    int32 [b, n]: forced ids where the layout fixes them, sampled ones in
    each position's allowed range elsewhere.
  """
  b, p = prefix.shape
  n = len(out)
  guided = uncond_prefix is not None
  rows = prefix
  if guided:
    rows = jnp.concatenate([prefix, uncond_prefix])  # [2b, P]
    if text_embeddings is not None:
      if uncond_text_embeddings is None:
        uncond_text_embeddings = jnp.zeros_like(text_embeddings)
      text_embeddings = jnp.concatenate(
          [text_embeddings, uncond_text_embeddings]
      )
  logits, cache = prefill(config, params, rows, p + n, text_embeddings)

  def step(carry, xs):
    cache, logits = carry
    i, lo, hi, forced = xs
    if guided:
      logits = guide(logits[:b], logits[b:], cfg.guidance)
    token = draw(constrain(logits, lo, hi), jax.random.fold_in(rng, i), cfg)
    token = jnp.where(forced >= 0, forced, token)  # [b]
    feed = jnp.concatenate([token, token]) if guided else token
    logits, cache = decode_step(config, params, cache, feed)
    return (cache, logits), token

  xs = (jnp.arange(n), *(jnp.asarray(a) for a in (out.lo, out.hi, out.forced)))
  _, tokens = jax.lax.scan(step, (cache, logits), xs)  # [n, b]
  return tokens.T
