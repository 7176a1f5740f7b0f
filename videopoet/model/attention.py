"""Dot-product attention under a described (never materialized) mask.

`attend(q, k, v, mask, impl=...)`: q [b, s, h, d], k and v [b, t, kv, d]
(kv divides h: grouped-query attention), out [b, s, h, d]. `mask` (a
`Mask`, or None for full bidirectional attention) describes the prefix-LM
mask by small per-example vectors:

  query row r, at position q_start + r, sees key j when key_valid[j] and
  (j <= q_start + r (causal) or j < prefix_len (the bidirectional prefix)).

Implementations (`IMPLS`; `ModelConfig.attention_impl`):
  'xla'       materialized [b, h, s, t] logits: the reference. When the
              mask promises the prefix ends in the first half
              (`Mask.max_prefix_len`), the first half of the queries get
              logits over the first half of the keys only (causal).
  'blockwise' flash-style in plain JAX: q blocks x kv blocks with an online
              softmax, mask tiles built on the fly, kv blocks above the
              diagonal and past the longest prefix skipped, and a custom VJP
              that recomputes the tiles (memory O(s), not O(s^2)).
  'cudnn'     `jax.nn.dot_product_attention(implementation='cudnn')` (GPU;
              its reordering is tested through jax.nn's XLA implementation,
              untested on hardware).
  'splash'    the Pallas splash-attention kernel (TPU; tested in the Pallas
              interpreter, untested on hardware).
  'auto'      by platform: cuDNN on GPU, splash on TPU, on CPU blockwise for
              at least `BLOCKWISE_MIN_KEYS` keys and 'xla' below.
A single query row (KV-cache decode) always takes the direct 'xla' form.
Rows that see no key at all (padding queries only) are unspecified.
"""

import functools
import math
from typing import Any

import flax
import jax
import jax.numpy as jnp

NEG_INF = -1e30
IMPLS = ("auto", "xla", "blockwise", "cudnn", "splash")
# On CPU `auto` picks 'blockwise' from this many keys on. Below it the
# logits are small and the `small` train step (8 x 324 tokens) runs at the
# same speed either way; from it on blockwise is faster (attention forward +
# backward 0.76x at 1,024 keys, 0.66x at 2,048 on 2 CPU cores) and O(s).
BLOCKWISE_MIN_KEYS = 1024
# 'xla' over a whole sequence of at least this many keys, with a prefix
# known to end in its first half (`Mask.max_prefix_len`), runs the first
# half of the queries on the first half of the keys only (a quarter of the
# logits skipped; the `small` train step 4-5% faster on CPU).
HALVES_MIN_KEYS = 256
# Blockwise tile sizes (queries x keys); smaller sequences use one tile.
BLOCK_Q = 512
BLOCK_K = 512


@flax.struct.dataclass
class Mask:
  """The prefix-LM mask of `attend`, without an [s, t] array.

  Attributes:
    prefix_len: [b] int32, keys [0, prefix_len) are seen by every query.
    key_valid: [b, t] bool, False on padding keys (never seen).
    q_start: int32 scalar, the position of query row 0 (decode: the cache
      index; whole sequences: 0).
    max_prefix_len: static; when set, no example's prefix_len exceeds it
      (a task's layout fixes its prefix length). Lets 'xla' skip keys that
      no query of a block sees.
  """

  prefix_len: jax.Array
  key_valid: jax.Array
  q_start: Any = 0
  max_prefix_len: int | None = flax.struct.field(
      pytree_node=False, default=None
  )


def seen(mask: Mask, q_len: int) -> jax.Array:
  """[b, q_len, t] bool: which keys each query row sees."""
  t = mask.key_valid.shape[1]
  i = mask.q_start + jnp.arange(q_len)[:, None]  # [q, 1]
  j = jnp.arange(t)[None, :]  # [1, t]
  out = (j <= i)[None] | (j < mask.prefix_len[:, None, None])  # [b, q, t]
  return out & mask.key_valid[:, None, :]


def resolve(impl: str, q_len: int, k_len: int) -> str:
  """The implementation `attend` runs for `impl` and these lengths."""
  if impl not in IMPLS:
    raise ValueError(f"attention impl={impl!r}; allowed: {', '.join(IMPLS)}")
  if q_len == 1:  # KV-cache decode: one query row.
    return "xla"
  if impl != "auto":
    return impl
  platform = jax.default_backend()
  if platform == "gpu":
    return "cudnn"
  if platform == "tpu":
    return "splash"
  return "blockwise" if k_len >= BLOCKWISE_MIN_KEYS else "xla"


def attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    mask: Mask | None = None,
    *,
    impl: str = "auto",
    block_q: int = BLOCK_Q,
    block_k: int = BLOCK_K,
) -> jax.Array:
  """softmax(q k^T / sqrt(d) + mask) v; see the module docstring.

  Args:
    q: [b, s, h, d] queries.
    k: [b, t, kv, d] keys (h % kv == 0).
    v: [b, t, kv, d] values.
    mask: the prefix-LM mask; None: every query sees every key.
    impl: one of `IMPLS`.
    block_q: blockwise query tile.
    block_k: blockwise key tile.

  Returns:
    [b, s, h, d] in q's dtype.
  """
  b, s, h, d = q.shape
  t, kv = k.shape[1], k.shape[2]
  if h % kv:
    raise ValueError(f"query heads {h} are not a multiple of kv heads {kv}")
  if mask is None:
    mask = Mask(jnp.full((b,), t, jnp.int32), jnp.ones((b, t), bool))
  q = q * jnp.asarray(d**-0.5, q.dtype)
  impl = resolve(impl, s, t)
  if impl == "xla":
    return _xla(q, k, v, mask)
  if impl == "blockwise":
    return _blockwise(q, k, v, mask, block_q, block_k)
  if impl == "cudnn":
    return _permuted(q, k, v, mask, "cudnn")
  return _splash(q, k, v, mask)


# ----------------------------------------------------------------- 'xla'.
def _xla(q, k, v, mask):
  """Materialized logits: the reference (and the decode path)."""
  s, t = q.shape[1], k.shape[1]
  allowed = seen(mask, s)  # [b, s, t]
  half = s // 2
  if (
      s == t >= HALVES_MIN_KEYS
      and isinstance(mask.q_start, int) and mask.q_start == 0
      and mask.max_prefix_len is not None and mask.max_prefix_len <= half
  ):  # fmt: skip
    # Query rows [0, half) see keys j <= row or j < prefix_len <= half only.
    top = _materialized(
        q[:, :half], k[:, :half], v[:, :half], allowed[:, :half, :half]
    )
    bottom = _materialized(q[:, half:], k, v, allowed[:, half:])
    return jnp.concatenate([top, bottom], axis=1)
  return _materialized(q, k, v, allowed)


def _materialized(q, k, v, allowed):
  """softmax(q k^T where allowed, else -inf) v; allowed [b, s, t] bool."""
  b, s, h, d = q.shape
  t, kv = k.shape[1], k.shape[2]
  g = h // kv  # Query heads per key/value head.
  # Each kv head's g query heads become one [g * s] row block, so both
  # attention matmuls are plain batched [b, kv] matmuls (XLA:CPU's
  # backward of the 5-D "bqngk,bsnk" form transposes the logits twice).
  q = q.reshape(b, s, kv, g, d).transpose(0, 2, 3, 1, 4)
  q = q.reshape(b, kv, g * s, d)
  logits = jnp.einsum("bnqk,bsnk->bnqs", q, k).astype(jnp.float32)
  bias = jnp.where(allowed, 0.0, NEG_INF)[:, None, None]  # [b, 1, 1, s, t]
  logits = logits.reshape(b, kv, g, s, t) + bias  # [b, kv, g, s, t]
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  out = jnp.einsum("bnqs,bsnk->bnqk", probs.reshape(b, kv, g * s, t), v)
  out = out.reshape(b, kv, g, s, d).transpose(0, 3, 1, 2, 4)
  return out.reshape(b, s, h, d)  # [b, s, h, d]


# ----------------------------------------------------------- 'blockwise'.
def _blockwise(q, k, v, mask, block_q, block_k):
  b, s, h, d = q.shape
  t, kv = k.shape[1], k.shape[2]
  g = h // kv
  bq, bk = min(block_q, s), min(block_k, t)
  sp, tp = -(-s // bq) * bq, -(-t // bk) * bk  # Padded to whole tiles.
  q = jnp.pad(q, ((0, 0), (0, sp - s), (0, 0), (0, 0)))
  k = jnp.pad(k, ((0, 0), (0, tp - t), (0, 0), (0, 0)))
  v = jnp.pad(v, ((0, 0), (0, tp - t), (0, 0), (0, 0)))
  valid = jnp.pad(mask.key_valid, ((0, 0), (0, tp - t)))  # [b, tp]
  q = q.reshape(b, sp, kv, g, d).transpose(0, 2, 3, 1, 4)  # [b, kv, g, sp, d]
  k = k.transpose(0, 2, 1, 3)  # [b, kv, tp, d]
  v = v.transpose(0, 2, 1, 3)
  q_start = jnp.asarray(mask.q_start, jnp.int32)
  prefix = mask.prefix_len.astype(jnp.int32)
  out = _flash(bq, bk, q, k, v, prefix, valid, q_start)  # [b, kv, g, sp, d]
  out = out.transpose(0, 3, 1, 2, 4).reshape(b, sp, h, d)
  return out[:, :s]


def _tile_mask(prefix, valid, q_start, qi, kj, bq, bk):
  """[b, 1, 1, bq, bk] bool: the mask tile of q block qi x kv block kj."""
  qpos = q_start + qi * bq + jnp.arange(bq)  # [bq]
  kpos = kj * bk + jnp.arange(bk)  # [bk]
  kvalid = jax.lax.dynamic_slice_in_dim(valid, kj * bk, bk, axis=1)  # [b, bk]
  m = (kpos[None, :] <= qpos[:, None])[None] | (
      kpos[None, None, :] < prefix[:, None, None]
  )  # [b, bq, bk]
  return (m & kvalid[:, None, :])[:, None, None]


def _kv_blocks_needed(prefix, q_start, qi, bq, bk, nk):
  """How many kv blocks q block qi sees: [0, n)."""
  causal = -(-(q_start + (qi + 1) * bq) // bk)
  pre = -(-jnp.max(prefix) // bk)
  return jnp.clip(jnp.maximum(causal, pre), 0, nk)


def _first_q_block(prefix, q_start, kj, bq, bk, nq):
  """The first q block that sees kv block kj."""
  causal = jnp.clip((kj * bk - q_start) // bq, 0, nq)
  return jnp.where(kj * bk < jnp.max(prefix), 0, causal)


def _slice(x, i, n, axis):
  return jax.lax.dynamic_slice_in_dim(x, i * n, n, axis=axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _flash(bq, bk, q, k, v, prefix, valid, q_start):
  return _flash_fwd(bq, bk, q, k, v, prefix, valid, q_start)[0]


def _flash_fwd(bq, bk, q, k, v, prefix, valid, q_start):
  """q [b, kv, g, sp, d], k/v [b, kv, tp, d] -> out (q's layout), lse."""
  b, n, g, sp, d = q.shape
  nq, nk = sp // bq, k.shape[2] // bk

  def q_block(qi):
    qb = _slice(q, qi, bq, 3)  # [b, n, g, bq, d]

    def body(kj, carry):
      m, l, acc = carry
      kb, vb = _slice(k, kj, bk, 2), _slice(v, kj, bk, 2)  # [b, n, bk, d]
      tile = _tile_mask(prefix, valid, q_start, qi, kj, bq, bk)
      s = jnp.einsum(
          "bngqd,bnkd->bngqk", qb, kb, preferred_element_type=jnp.float32
      )  # [b, n, g, bq, bk]
      s = jnp.where(tile, s, NEG_INF)
      m_new = jnp.maximum(m, s.max(-1))
      p = jnp.where(tile, jnp.exp(s - m_new[..., None]), 0.0)
      alpha = jnp.exp(m - m_new)
      pv = jnp.einsum(
          "bngqk,bnkd->bngqd", p.astype(v.dtype), vb,
          preferred_element_type=jnp.float32,
      )  # fmt: skip
      return m_new, alpha * l + p.sum(-1), alpha[..., None] * acc + pv

    init = (
        jnp.full((b, n, g, bq), NEG_INF, jnp.float32),
        jnp.zeros((b, n, g, bq), jnp.float32),
        jnp.zeros((b, n, g, bq, d), jnp.float32),
    )
    hi = _kv_blocks_needed(prefix, q_start, qi, bq, bk, nk)
    m, l, acc = jax.lax.fori_loop(0, hi, body, init)
    l_safe = jnp.where(l == 0.0, 1.0, l)  # Rows that see no key: out 0.
    return (acc / l_safe[..., None]).astype(q.dtype), m + jnp.log(l_safe)

  out, lse = jax.lax.map(q_block, jnp.arange(nq))  # [nq, b, n, g, bq(, d)]
  out = jnp.moveaxis(out, 0, 3).reshape(b, n, g, sp, d)
  lse = jnp.moveaxis(lse, 0, 3).reshape(b, n, g, sp)
  return out, (q, k, v, prefix, valid, q_start, out, lse)


def _flash_bwd(bq, bk, res, dout):
  q, k, v, prefix, valid, q_start, out, lse = res
  b, n, g, sp, d = q.shape
  nq, nk = sp // bq, k.shape[2] // bk
  delta = jnp.sum(
      dout.astype(jnp.float32) * out.astype(jnp.float32), -1
  )  # [b, n, g, sp]

  def kv_block(dq, kj):
    kb, vb = _slice(k, kj, bk, 2), _slice(v, kj, bk, 2)  # [b, n, bk, d]

    def body(qi, carry):
      dq, dk, dv = carry
      qb, dob = _slice(q, qi, bq, 3), _slice(dout, qi, bq, 3)
      lse_b, delta_b = _slice(lse, qi, bq, 3), _slice(delta, qi, bq, 3)
      tile = _tile_mask(prefix, valid, q_start, qi, kj, bq, bk)
      s = jnp.einsum(
          "bngqd,bnkd->bngqk", qb, kb, preferred_element_type=jnp.float32
      )  # [b, n, g, bq, bk]
      p = jnp.where(tile, jnp.exp(s - lse_b[..., None]), 0.0)
      dv += jnp.einsum(
          "bngqk,bngqd->bnkd", p.astype(v.dtype), dob,
          preferred_element_type=jnp.float32,
      )  # fmt: skip
      dp = jnp.einsum(
          "bngqd,bnkd->bngqk", dob, vb, preferred_element_type=jnp.float32
      )
      ds = (p * (dp - delta_b[..., None])).astype(q.dtype)
      dk += jnp.einsum(
          "bngqk,bngqd->bnkd", ds, qb, preferred_element_type=jnp.float32
      )
      dq_b = _slice(dq, qi, bq, 3) + jnp.einsum(
          "bngqk,bnkd->bngqd", ds, kb, preferred_element_type=jnp.float32
      )
      dq = jax.lax.dynamic_update_slice_in_dim(dq, dq_b, qi * bq, axis=3)
      return dq, dk, dv

    zeros = jnp.zeros((b, n, bk, d), jnp.float32)
    lo = _first_q_block(prefix, q_start, kj, bq, bk, nq)
    dq, dk, dv = jax.lax.fori_loop(lo, nq, body, (dq, zeros, zeros))
    return dq, (dk, dv)

  dq0 = jnp.zeros(q.shape, jnp.float32)
  dq, (dk, dv) = jax.lax.scan(kv_block, dq0, jnp.arange(nk))
  # [nk, b, n, bk, d] -> [b, n, tp, d]
  dk = jnp.moveaxis(dk, 0, 2).reshape(k.shape)
  dv = jnp.moveaxis(dv, 0, 2).reshape(v.shape)
  return (
      dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype),
      None, None, None,
  )  # fmt: skip


_flash.defvjp(_flash_fwd, _flash_bwd)


# -------------------------------------------------------------- 'cudnn'.
def _permuted(q, k, v, mask, implementation):
  """The prefix-LM mask as two fused calls on a reordered sequence.

  cuDNN takes causal masks and per-example lengths, not a prefix-LM mask or
  padding inside the sequence. Each example is reordered (stably) as
  [valid prefix tokens | valid later tokens | padding]; then a valid prefix
  query sees exactly the first n_prefix keys (a non-causal call with
  `key_value_seq_lengths=n_prefix`) and a valid later query exactly the
  keys up to itself (a causal call). Rows take the call of their kind and
  return to their order. Needs s == t and q_start == 0 (training, prefill).
  """
  b, s = q.shape[:2]
  pos = jnp.arange(s)[None]  # [1, s]
  valid = mask.key_valid
  in_prefix = (pos < mask.prefix_len[:, None]) & valid  # [b, s]
  group = jnp.where(in_prefix, 0, jnp.where(valid, 1, 2))
  order = jnp.argsort(group * s + pos, axis=1)  # [b, s]
  inverse = jnp.argsort(order, axis=1)
  take = lambda x, idx: jnp.take_along_axis(x, idx[:, :, None, None], axis=1)
  qp, kp, vp = take(q, order), take(k, order), take(v, order)
  n_prefix = in_prefix.sum(1).astype(jnp.int32)  # [b]
  call = functools.partial(
      jax.nn.dot_product_attention, scale=1.0, implementation=implementation
  )
  prefix_out = call(qp, kp, vp, key_value_seq_lengths=jnp.maximum(n_prefix, 1))
  causal_out = call(qp, kp, vp, is_causal=True)
  rows = (pos < n_prefix[:, None])[:, :, None, None]  # [b, s, 1, 1]
  return take(jnp.where(rows, prefix_out, causal_out), inverse)


# ------------------------------------------------------------- 'splash'.
# Logical axes of q and the output, [b, s, heads, head_dim] (the LM's
# Attention constrains them so); splash splits k and v the same way.
HEADS_AXES = (
    "activation_batch", "activation_length", "activation_heads",
    "activation_kv",
)  # fmt: skip


def _splash(q, k, v, mask, interpret=False):
  """The Pallas TPU splash kernel (untested on hardware; `interpret`: the
  Pallas interpreter, any platform).

  A Mosaic kernel is not partitioned by XLA, so under a mesh each device
  runs it on its own shard (`shard_map`): batch and heads split as the
  logical axis rules in scope split the LM's activations, the kv heads as
  the query heads (each query head's kv head stays on its device).
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return _splash_local(q, k, v, mask.prefix_len, mask.key_valid, interpret)
  q_spec = flax.linen.logical_to_mesh_axes(HEADS_AXES)
  if q_spec[1] is not None:
    raise ValueError(f"splash attention: the sequence is split ({q_spec})")
  heads = q_spec[2] or ()
  heads = heads if isinstance(heads, tuple) else (heads,)
  n_heads_split = math.prod(mesh.shape[name] for name in heads)
  if k.shape[2] % n_heads_split:
    raise ValueError(
        f"splash attention: {k.shape[2]} kv heads do not split"
        f" {n_heads_split} ways as the query heads do ({heads})"
    )
  rows = jax.sharding.PartitionSpec(q_spec[0])  # prefix_len [b]
  rows_keys = jax.sharding.PartitionSpec(q_spec[0], None)  # key_valid [b, t]
  fn = jax.shard_map(
      functools.partial(_splash_local, interpret=interpret),
      mesh=mesh,
      in_specs=(q_spec, q_spec, q_spec, rows, rows_keys),
      out_specs=q_spec,
      check_vma=False,
  )
  return fn(q, k, v, mask.prefix_len, mask.key_valid)


def _splash_local(q, k, v, prefix_len, key_valid, interpret=False):
  """Splash on one device's q [b, s, h, d], k, v [b, t, kv, d].

  One kernel call with a static mask and dynamic segment ids. The keys and
  values appear twice, [k | k]: query i sees key j of the first copy where
  the static mask is full, and of the second where it is causal (j <= i;
  `CausalMask` with offset t gives both). A prefix query (segment 1) meets
  the valid prefix keys (segment 1) in the first copy; any other query
  (segment 2) meets the valid keys (segment 2) in the second. So one set of
  kernel residuals (output, log-sum-exp) serves the prefix-LM mask. The
  kernel pads rows and keys to its 128-wide tiles.
  """
  # pylint: disable=g-import-not-at-top
  from jax.experimental.pallas.ops.tpu.splash_attention import (
      splash_attention_kernel as splash,
  )
  from jax.experimental.pallas.ops.tpu.splash_attention import (
      splash_attention_mask as splash_mask,
  )
  # pylint: enable=g-import-not-at-top

  b, s, h, d = q.shape
  sp = -(-s // 128) * 128
  pad = lambda x: jnp.pad(x, ((0, 0), (0, sp - s), (0, 0), (0, 0)))
  heads = lambda x: pad(x).transpose(0, 2, 1, 3)  # [b, heads, sp, d]
  # k, v keep their kv heads: the kernel maps query head i to kv head
  # i // (h / kv) itself (GQA), so no [b, h, t, d] copies of them exist.
  qh = heads(q)  # [b, h, sp, d]
  kh, vh = (jnp.concatenate([heads(x)] * 2, axis=2) for x in (k, v))
  pos = jnp.arange(sp)[None]
  valid = jnp.pad(key_valid, ((0, 0), (0, sp - s)))  # [b, sp]
  in_prefix = (pos < prefix_len[:, None]) & valid
  seg = lambda where, i: jnp.where(where, i, 0).astype(jnp.int32)
  ids = splash.SegmentIds(
      q=jnp.where(in_prefix, 1, 2).astype(jnp.int32),  # [b, sp]
      kv=jnp.concatenate([seg(in_prefix, 1), seg(valid, 2)], axis=1),
  )  # kv [b, 2 sp]
  heads_mask = splash_mask.MultiHeadMask(
      [splash_mask.CausalMask((sp, 2 * sp), offset=sp)] * h
  )
  kernel = splash.make_splash_mha(
      heads_mask, head_shards=1, q_seq_shards=1, interpret=interpret
  )
  out = jax.vmap(kernel)(qh, kh, vh, ids)  # [b, h, sp, d]
  return out.transpose(0, 2, 1, 3)[:, :s].astype(q.dtype)
