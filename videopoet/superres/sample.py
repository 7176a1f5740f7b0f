"""The MaskGIT sampler of the SR transformer (one jitted loop).

Every high-resolution token starts masked. Each of `steps` iterations
(VideoPoet: 24 per stage) runs the model once, samples every masked token's
digits at `temperature`, scores each by its log-probability plus Gumbel
noise of `choice_temperature * (1 - (s + 1) / steps)` (MaskGIT's annealed
choice temperature), keeps the most confident and masks the rest again, so
that exactly `masked_counts(n, steps)[s]` tokens stay masked after step s:
n * cos(pi/2 * (s + 1) / steps) rounded down, 0 after the last step.

Guidance (VideoPoet: independently for the text and the low-resolution
condition, as InstructPix2Pix) runs three passes in one batch: both
conditions, the low-resolution tokens without text, and neither; per head

  l = l(low, text) + (s_text - 1) (l(low, text) - l(low, -))
                   + (s_low - 1) (l(low, -) - l(-, -)),

which is InstructPix2Pix's l(-,-) + s_low (l(low,-) - l(-,-)) + s_text
(l(low,text) - l(low,-)) rewritten so that s_text = s_low = 1 gives the
conditional logits exactly. The loop is `lax.fori_loop` over a small state
(tokens, the masked count per step), jitted as one program; a seed gives
the same tokens every time.
"""

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from videopoet import config_lib
from videopoet.superres import model as model_lib


@dataclasses.dataclass(frozen=True)
class SRSamplingConfig:
  """How one SR stage samples.

  Attributes:
    steps: MaskGIT iterations (VideoPoet: 24).
    temperature: the digits' sampling temperature.
    choice_temperature: Gumbel noise on the confidence at the first step,
      annealed linearly to 0 at the last (MaskGIT: 4.5).
    guidance_text: s_text (VideoPoet: 4.0 stage 1, 8.0 stage 2).
    guidance_low: s_low, the low-resolution condition's (1.0 / 2.0).
  """

  steps: int = 24
  temperature: float = 1.0
  choice_temperature: float = 4.5
  guidance_text: float = 4.0
  guidance_low: float = 1.0

  def __post_init__(self):
    if self.steps < 1 or self.temperature <= 0:
      raise config_lib.ConfigError(
          f"SR sampling steps={self.steps} must be >= 1 and"
          f" temperature={self.temperature} > 0"
      )


def masked_counts(n: int, steps: int) -> np.ndarray:
  """int [steps]: tokens still masked after each step (cosine schedule)."""
  ratio = (np.arange(steps) + 1) / steps
  counts = np.floor(n * np.cos(np.pi / 2 * ratio) + 1e-6).astype(np.int32)
  counts[-1] = 0
  return np.minimum.accumulate(np.minimum(counts, n))


def guided_logits(cond, text_free, uncond, guidance_text, guidance_low):
  """The guided logits (module docstring); exactly `cond` at scales 1."""
  return (
      cond
      + (guidance_text - 1.0) * (cond - text_free)
      + (guidance_low - 1.0) * (text_free - uncond)
  )


def _guided(cfg: SRSamplingConfig) -> bool:
  return cfg.guidance_text != 1.0 or cfg.guidance_low != 1.0


def guided_logits_fn(model, params, low, text, text_mask, guidance_text,
                     guidance_low):  # fmt: skip
  """`tokens -> guided logits`: the three passes in one batch."""
  no_text = jnp.zeros_like(text_mask)
  lows = jnp.concatenate([low, low, jnp.full_like(low, model.config.mask_id)])
  texts = jnp.concatenate([text, text, text])
  masks = jnp.concatenate([text_mask, no_text, no_text])

  def fn(tokens):
    out = model.apply(
        {"params": params}, jnp.concatenate([tokens] * 3), lows, texts, masks
    )
    cond, text_free, uncond = jnp.split(out, 3)
    return guided_logits(cond, text_free, uncond, guidance_text, guidance_low)

  return fn


def logits_fn(model, params, low, text, text_mask, cfg: SRSamplingConfig):
  """`tokens -> logits [b, t, H, W, k, n]` with the guidance of `cfg` (one
  pass when both scales are 1: the same logits)."""
  if not _guided(cfg):
    return lambda tokens: model.apply(
        {"params": params}, tokens, low, text, text_mask
    )
  return guided_logits_fn(
      model, params, low, text, text_mask, cfg.guidance_text, cfg.guidance_low
  )


def maskgit_loop(logits_of, shape, mask_id, rng, cfg: SRSamplingConfig):
  """MaskGIT decoding of `shape` = (b, t, H, W) tokens.

  Args:
    logits_of: tokens int [b, t, H, W] -> logits [b, t, H, W, k, n].
    shape: the token grid's shape.
    mask_id: the masked token's id.
    rng: the sampling key.
    cfg: the stage's settings.

  Returns:
    (tokens int [b, t, H, W] with no `mask_id`, masked int [steps, b]: the
    masked tokens after each step).
  """
  b = shape[0]
  n = math.prod(shape[1:])
  counts = jnp.asarray(masked_counts(n, cfg.steps))  # [steps]

  def body(s, state):
    tokens, history = state  # [b, n], [steps, b]
    key = jax.random.fold_in(rng, s)
    k_sample, k_choice = jax.random.split(key)
    logits = logits_of(tokens.reshape(shape))
    logits = logits.reshape(b, n, *logits.shape[-2:])  # [b, n, k, m]
    digit_bits = int(math.log2(logits.shape[-1]))
    digits = jax.random.categorical(k_sample, logits / cfg.temperature)
    sampled = model_lib.from_digits(digits, digit_bits)  # [b, n]
    logp = jax.nn.log_softmax(logits, -1)
    score = jnp.take_along_axis(logp, digits[..., None], -1)[..., 0].sum(-1)
    unknown = tokens == mask_id
    sampled = jnp.where(unknown, sampled, tokens)
    ratio = (s + 1.0) / cfg.steps
    noise = cfg.choice_temperature * (1.0 - ratio)
    score = score + noise * jax.random.gumbel(k_choice, score.shape)
    score = jnp.where(unknown, score, jnp.inf)  # Known tokens stay.
    rank = jnp.argsort(jnp.argsort(score, axis=-1), axis=-1)  # 0: least sure
    tokens = jnp.where(rank < counts[s], mask_id, sampled)
    history = history.at[s].set(jnp.sum(tokens == mask_id, -1))
    return tokens, history

  init = (
      jnp.full((b, n), mask_id, jnp.int32),
      jnp.zeros((cfg.steps, b), jnp.int32),
  )
  tokens, history = jax.lax.fori_loop(0, cfg.steps, body, init)
  return tokens.reshape(shape), history


def make_sampler(model: model_lib.SRTransformer, cfg: SRSamplingConfig):
  """A jitted `(params, low, text, text_mask, rng) -> (tokens, masked)`:
  low [b, t, h, w] -> high-resolution tokens [b, t, 2h, 2w] (see
  `maskgit_loop`)."""

  def run(params, low, text, text_mask, rng):
    b, t, h, w = low.shape
    shape = (b, t, 2 * h, 2 * w)
    model.config.check_grid(shape[1:])
    fn = logits_fn(model, params, low, text, text_mask, cfg)
    return maskgit_loop(fn, shape, model.config.mask_id, rng, cfg)

  return jax.jit(run)


def super_resolve(
    loaded: Any, low: np.ndarray, text: np.ndarray, text_mask: np.ndarray,
    seed: int, cfg: SRSamplingConfig,
) -> np.ndarray:  # fmt: skip
  """High-resolution codes [b, t, 2h, 2w] of codes `low` [b, t, h, w] with
  a loaded SR model (`trainer.load`)."""
  sampler = make_sampler(loaded.model, cfg)
  tokens, _ = sampler(
      loaded.params, jnp.asarray(low, jnp.int32), jnp.asarray(text, jnp.int32),
      jnp.asarray(text_mask, bool), jax.random.key(seed),
  )  # fmt: skip
  return np.asarray(tokens)
