"""The VideoPoet LM: a decoder-only transformer used as a prefix LM.

`VideoPoetLM(config)` embeds the unified-vocabulary ids (and, optionally,
projects precomputed text embeddings into the text positions), runs
`num_layers` pre-norm blocks (RMSNorm, RoPE attention with optional GQA,
SwiGLU) under the prefix-LM mask, and scores only the output positions with
a cross-entropy chunked over the vocabulary (`loss.py`). Layers are stacked
with `nn.scan` (one compiled block, a `layers` parameter axis) and
rematerialized according to `remat`.
"""

import dataclasses
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet import config_lib
from videopoet.model import attention
from videopoet.model import layers
from videopoet.model import loss as loss_lib
from videopoet.tasks.layout import TEXT_OFFSET

_BLOCK_AXES = ("activation_batch", "activation_length", "activation_embed")
_REMAT = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    # Training scans groups of blocks (see `VideoPoetLM._nested_blocks`).
    "nested": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def nested_groups(num_layers: int) -> int:
  """Groups of `remat='nested'`: the divisor G of num_layers minimizing the
  block inputs kept at once, G + num_layers / G (24 -> 4, 32 -> 4)."""
  return min(
      (g for g in range(1, num_layers + 1) if num_layers % g == 0),
      key=lambda g: (g + num_layers // g, g),
  )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Transformer shape and numerics (`config.model`).

  Attributes:
    vocab_size: rows of the embedding (the vocabulary's padded size).
    num_valid_ids: real ids (< vocab_size); padding ids are never predicted.
    num_layers: transformer blocks.
    embed_dim: model width.
    num_heads: query heads.
    num_kv_heads: key/value heads (= num_heads: MHA; fewer: GQA).
    head_dim: width of one head.
    mlp_dim: SwiGLU hidden width.
    rope_theta: RoPE base.
    dtype: compute dtype.
    param_dtype: parameter (and optimizer) dtype.
    remat: what the backward pass keeps: 'none', 'full' (each block's
      input, recomputing the rest), 'nested' (the input of every group of
      about sqrt(num_layers) blocks, and of one group's blocks at a time:
      O(sqrt(L)) stored block inputs instead of O(L), for one more forward
      pass), 'dots', 'dots_no_batch' (JAX checkpoint policies).
    scan_layers: stack blocks with nn.scan (fast compiles at depth).
    vocab_chunks: slices of the vocabulary that the cross-entropy and the
      training embedding lookup run over one at a time.
    mlp_chunks: slices of the SwiGLU's hidden width run one at a time,
      each rematerialized (`layers.MLP`; 1 = all at once).
    text_embed_dim: width of precomputed text embeddings (0: text as ids).
    text_token_id: the `<text_emb>` id whose input is a text embedding.
    text_offset: position of the first text token.
    pad_id: keys holding this id are never attended to.
    attention_impl: `attention.IMPLS`: 'auto' (by platform and length),
      'xla' (materialized logits), 'blockwise', 'cudnn' or 'splash'.
  """

  vocab_size: int
  num_valid_ids: int
  num_layers: int = 2
  embed_dim: int = 64
  num_heads: int = 4
  num_kv_heads: int = 4
  head_dim: int = 16
  mlp_dim: int = 256
  rope_theta: float = 10_000.0
  dtype: Literal["float32", "bfloat16"] = "float32"
  param_dtype: Literal["float32", "bfloat16"] = "float32"
  remat: Literal["none", "full", "nested", "dots", "dots_no_batch"] = "none"
  scan_layers: bool = True
  vocab_chunks: int = 1
  mlp_chunks: int = 1
  text_embed_dim: int = 0
  text_token_id: int = -1
  text_offset: int = 3
  pad_id: int = 0
  attention_impl: Literal["auto", "xla", "blockwise", "cudnn", "splash"] = (
      "auto"
  )

  def __post_init__(self):
    if self.attention_impl not in attention.IMPLS:
      raise config_lib.ConfigError(
          f"config.model.attention_impl={self.attention_impl!r} must be one"
          f" of {', '.join(attention.IMPLS)}"
      )
    if self.num_heads % self.num_kv_heads:
      raise config_lib.ConfigError(
          f"config.model.num_heads={self.num_heads} must be a multiple of"
          f" num_kv_heads={self.num_kv_heads}"
      )
    if self.mlp_chunks < 1 or self.mlp_dim % self.mlp_chunks:
      raise config_lib.ConfigError(
          f"config.model.mlp_chunks={self.mlp_chunks} must divide"
          f" mlp_dim={self.mlp_dim}"
      )
    if self.vocab_size % self.vocab_chunks:
      raise config_lib.ConfigError(
          f"config.model.vocab_chunks={self.vocab_chunks} must divide"
          f" vocab_size={self.vocab_size}"
      )
    if not 0 < self.num_valid_ids <= self.vocab_size:
      raise config_lib.ConfigError(
          f"config.model.num_valid_ids={self.num_valid_ids} must be in"
          f" (0, vocab_size={self.vocab_size}]"
      )


def config_for_vocab(section: dict, vocab) -> ModelConfig:
  """`config.model` (a dict) plus the fields the vocabulary decides."""
  return config_lib.from_config(
      ModelConfig,
      dict(
          section,
          vocab_size=vocab.padded_size,
          num_valid_ids=vocab.size,
          text_token_id=vocab.special("<text_emb>"),
          text_offset=TEXT_OFFSET,
          pad_id=vocab.pad,
      ),
      "config.model",
  )


class Block(nn.Module):
  """Pre-norm attention + SwiGLU; (x, mask, positions) -> (x, None)."""

  config: ModelConfig
  mode: str = "train"  # layers.MODES
  cache_len: int = 0

  @nn.compact
  def __call__(self, x, mask, positions):  # x [b, s, d]
    c = self.config
    kw = dict(dtype=jnp.dtype(c.dtype), param_dtype=jnp.dtype(c.param_dtype))
    x = nn.with_logical_constraint(x, _BLOCK_AXES)
    h = layers.RMSNorm(name="pre_attention_norm", **kw)(x)
    x += layers.Attention(
        c.num_heads, c.num_kv_heads, c.head_dim, c.rope_theta, **kw,
        mode=self.mode, cache_len=self.cache_len, impl=c.attention_impl,
        name="attention",
    )(h, mask, positions)  # fmt: skip
    h = layers.RMSNorm(name="pre_mlp_norm", **kw)(x)
    # Slicing saves backward-pass memory; decode and prefill run it whole.
    chunks = c.mlp_chunks if self.mode == "train" else 1
    x += layers.MLP(c.mlp_dim, **kw, chunks=chunks, name="mlp")(h)
    return nn.with_logical_constraint(x, _BLOCK_AXES), None


class CacheState(nn.Module):
  """The model-level part of the KV cache: which keys are padding, and the
  next position (`key_valid` [b, cache_len], `index` []).

  Returns the positions and attention mask of a prefill or decode call:
  prefill keeps the prefix's own (bidirectional) mask and records which
  keys are padding; decode places its token at `index` and lets it see
  every earlier non-padding key and itself.
  """

  pad_id: int
  cache_len: int
  mode: str

  @nn.compact
  def __call__(self, inputs, positions, mask):  # inputs [b, s]
    b, s = inputs.shape
    valid = self.variable(
        "cache",
        "key_valid",
        nn.with_logical_partitioning(
            jnp.zeros, ("cache_batch", "cache_length")
        ),
        (b, self.cache_len),
        jnp.bool_,
    )
    index = self.variable("cache", "index", lambda: jnp.zeros((), jnp.int32))
    if self.mode == "prefill":
      if s > self.cache_len:
        raise ValueError(f"a prefix of {s} exceeds cache_len={self.cache_len}")
      valid.value = valid.value.at[:, :s].set(inputs != self.pad_id)
      index.value = jnp.asarray(s, jnp.int32)
      return positions, mask
    i = index.value
    valid.value = jax.lax.dynamic_update_slice(
        valid.value, inputs != self.pad_id, (jnp.zeros((), jnp.int32), i)
    )
    index.value = i + 1
    # Causal from position i over the cache's non-padding keys.
    mask = attention.Mask(jnp.zeros((b,), jnp.int32), valid.value, i)
    return jnp.full((b, 1), i, jnp.int32), mask


def embedding_lookup(table, ids, chunks: int, dtype) -> jax.Array:
  """table[ids] in `dtype` for table [V, d], ids [b, s] -> [b, s, d].

  chunks > 1 gathers the table whole, one slice of V / chunks rows at a
  time (a `lax.scan`), and looks up the ids that fall in it. With the
  embedding dim sharded (`embed` -> fsdp) a plain gather instead collects
  d / n columns for every token of the global batch, [b * s * n, d / n] per
  device, whose narrow minor dim TPU layouts pad to 128 lanes (8-16x: it
  and its gradient were the largest temporaries of the `8b` step on 256
  chips). The gradient is a scatter-add into each slice, in f32.
  """
  if chunks == 1:
    return jnp.take(table, ids, axis=0).astype(dtype)
  v, d = table.shape
  rows = v // chunks

  def step(x, xs):
    part, j = xs  # [rows, d], []
    part = nn.with_logical_constraint(part, (None, None))  # Whole.
    local = ids - j * rows  # [b, s]
    got = jnp.take(part, jnp.clip(local, 0, rows - 1), axis=0)  # [b, s, d]
    inside = (local >= 0) & (local < rows)
    return x + jnp.where(inside[..., None], got, 0).astype(dtype), None

  # Rematerialized: the backward pass keeps no per-slice [b, s, d] masks.
  x, _ = jax.lax.scan(
      jax.checkpoint(step, prevent_cse=False),
      jnp.zeros((*ids.shape, d), dtype),
      (table.reshape(chunks, rows, d), jnp.arange(chunks)),
  )
  return x  # [b, s, d]


class VideoPoetLM(nn.Module):
  """Prefix LM over the unified vocabulary.

  `mode` (`layers.MODES`): 'train' runs whole sequences; 'prefill' runs a
  prefix and fills a KV cache of `cache_len` positions (the `cache`
  collection: per layer `key`/`value`, and the model's `key_valid` [b,
  cache_len] and `index`, the next position); 'decode' runs one token per
  row at `index` against the cache. The three share one set of parameters
  (`videopoet/decode.py` drives them).
  """

  config: ModelConfig
  mode: str = "train"
  cache_len: int = 0

  def setup(self):
    c = self.config
    pd, self._dtype = jnp.dtype(c.param_dtype), jnp.dtype(c.dtype)
    init = nn.initializers.normal(1.0)
    self.embedding = self.param(
        "embedding",
        nn.with_logical_partitioning(init, ("vocab", "embed")),
        (c.vocab_size, c.embed_dim),
        pd,
    )
    self.unembedding = self.param(
        "unembedding",
        nn.with_logical_partitioning(
            nn.initializers.lecun_normal(), ("embed", "vocab")
        ),
        (c.embed_dim, c.vocab_size),
        pd,
    )
    if c.text_embed_dim:
      self.text_projection = nn.Dense(
          c.embed_dim,
          dtype=self._dtype,
          param_dtype=pd,
          kernel_init=nn.with_logical_partitioning(
              nn.initializers.lecun_normal(), (None, "embed")
          ),
          bias_init=nn.with_logical_partitioning(
              nn.initializers.zeros, ("embed",)
          ),
      )
    block = Block
    if _REMAT[c.remat] is not None:
      block = nn.remat(
          block, policy=_REMAT[c.remat], prevent_cse=not c.scan_layers
      )
    if c.scan_layers:
      self.blocks = nn.scan(
          block,
          variable_axes={"params": 0, "cache": 0},
          split_rngs={"params": True},
          in_axes=(nn.broadcast, nn.broadcast),
          length=c.num_layers,
          metadata_params={nn.PARTITION_NAME: "layers"},
      )(c, self.mode, self.cache_len, name="blocks")
    else:
      self.blocks = [
          block(c, self.mode, self.cache_len, name=f"block_{i}")
          for i in range(c.num_layers)
      ]
    self.final_norm = layers.RMSNorm(dtype=self._dtype, param_dtype=pd)
    if self.mode != "train":
      self.cache_state = CacheState(c.pad_id, self.cache_len, self.mode)

  def __call__(
      self, inputs, prefix_len, text_embeddings=None, max_prefix_len=None
  ):
    """Final hidden states [b, s, d].

    Args:
      inputs: [b, s] ids.
      prefix_len: [b] length of each example's bidirectional prefix.
      text_embeddings: [b, n_text, text_embed_dim] when text is embedded.
      max_prefix_len: static bound on `prefix_len`, if known
        (`attention.Mask.max_prefix_len`).
    """
    c = self.config
    chunks = c.vocab_chunks if self.mode == "train" else 1
    x = embedding_lookup(self.embedding, inputs, chunks, self._dtype)
    if c.text_embed_dim and self.mode != "decode":  # Text is in the prefix.
      if text_embeddings is None:
        raise ValueError("config.model.text_embed_dim>0 needs text_embeddings")
      t = self.text_projection(text_embeddings.astype(self._dtype))
      placed = (
          jnp.zeros_like(x)
          .at[:, c.text_offset : c.text_offset + t.shape[1]]
          .set(t)
      )  # [b, s, d]
      x = jnp.where((inputs == c.text_token_id)[..., None], placed, x)
    b, s = inputs.shape
    positions = jnp.broadcast_to(jnp.arange(s), (b, s))  # [b, s]
    # The prefix-LM mask as vectors (attention.Mask), never an [s, s] array.
    mask = attention.Mask(
        jnp.asarray(prefix_len, jnp.int32),
        inputs != c.pad_id,
        max_prefix_len=max_prefix_len,
    )
    if self.mode != "train":
      positions, mask = self.cache_state(inputs, positions, mask)
    x = nn.with_logical_constraint(x, _BLOCK_AXES)
    nested = c.remat == "nested" and self.mode == "train"
    if c.scan_layers and nested and not self.is_initializing():
      x = self._nested_blocks(x, mask, positions)
    elif c.scan_layers:
      x, _ = self.blocks(x, mask, positions)
    else:
      for blk in self.blocks:
        x, _ = blk(x, mask, positions)
    return self.final_norm(x)  # [b, s, d]

  def _nested_blocks(self, x, mask, positions):
    """The scanned blocks (their [L, ...] parameters) as a scan over G
    groups of L / G blocks, both levels rematerialized: the forward pass
    keeps G group inputs, the backward pass recomputes one group at a time
    keeping its L / G block inputs, then each block as under 'full'."""
    c = self.config
    groups = nested_groups(c.num_layers)
    params = jax.tree.map(
        lambda p: p.reshape(groups, -1, *p.shape[1:]),
        nn.unbox(self.blocks.variables["params"]),
    )  # [G, L / G, ...] per parameter
    block = Block(c, self.mode, self.cache_len, parent=None)  # Unbound.

    def layer(x, p):  # x [b, s, d]
      return block.apply({"params": p}, x, mask, positions)[0], None

    def group(x, ps):
      return jax.lax.scan(jax.checkpoint(layer, prevent_cse=False), x, ps)

    x, _ = jax.lax.scan(jax.checkpoint(group, prevent_cse=False), x, params)
    return x  # [b, s, d]

  def logits(self, hidden):
    """Logits [..., V] (f32) of a few positions; padding ids get NEG_INF."""
    logits = jnp.einsum(
        "...d,dv->...v",
        hidden,
        self.unembedding.astype(self._dtype),
        preferred_element_type=jnp.float32,
    )
    ids = jnp.arange(logits.shape[-1])
    # Finite: guidance subtracts logits, and -inf - -inf is NaN.
    return jnp.where(ids < self.config.num_valid_ids, logits, layers.NEG_INF)

  def loss(self, batch, max_prefix_len=None):
    """Per-target loss and correctness at the output positions.

    Args:
      batch: `inputs` [b, s], `prefix_len` [b], `target_positions` [b, n],
        `targets` [b, n], optionally `text_embeddings`.
      max_prefix_len: static bound on `prefix_len`, if known.

    Returns:
      (loss [b, n] f32, correct [b, n] bool); weight them by `weights`.
    """
    hidden = self(
        batch["inputs"],
        batch["prefix_len"],
        batch.get("text_embeddings"),
        max_prefix_len=max_prefix_len,
    )
    hidden = jnp.take_along_axis(
        hidden, batch["target_positions"][..., None], axis=1
    )  # [b, n, d]
    return loss_lib.chunked_cross_entropy(
        hidden,
        self.unembedding.astype(self._dtype),
        batch["targets"],
        self.config.num_valid_ids,
        self.config.vocab_chunks,
    )
