"""Edge padding (`jnp.pad(mode='edge')`) in the form XLA:CPU runs fast.

`edge_pad` is `kernels.edge_pad`'s form on CPU: a gather of clamped indices
with a gradient of its own. Same numbers as `jnp.pad` (tests).
"""

import functools

import jax
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def edge_pad(x: jax.Array, pads: tuple[tuple[int, int], ...]) -> jax.Array:
  """`jnp.pad(x, pads, mode='edge')` as one gather of clamped indices.

  XLA:CPU runs jnp's edge pad as one concatenation per padded axis, each a
  full pass over the tensor; the gather reads every input once
  (`research/tokenizer_ab.py --change=edge_pad`). The gradient is the
  cropped output gradient with each padded border summed onto the edge it
  copies, one pass per padded axis: autodiff of jnp's pad adds, per padded
  side, a zero tensor of the full padded size, and of the gather a
  scatter-add (faster alone, but slower in the train step).
  """
  return _gather_edge_pad(x, pads)


def _gather_edge_pad(x, pads):
  """`edge_pad` without its custom gradient (its forward)."""
  axes = [a for a, (lo, hi) in enumerate(pads) if lo or hi]
  if not axes:
    return x
  span = range(axes[0], axes[-1] + 1)  # Advanced indices on adjacent axes.
  index = []
  for k, axis in enumerate(span):
    lo, hi = pads[axis]
    n = x.shape[axis]
    i = jnp.clip(jnp.arange(-lo, n + hi), 0, n - 1)  # [n + lo + hi]
    index.append(i.reshape([-1 if j == k else 1 for j in range(len(span))]))
  where = (slice(None),) * axes[0] + tuple(index)
  return x.at[where].get(mode="promise_in_bounds")


def _edge_pad_fwd(x, pads):
  return _gather_edge_pad(x, pads), None


def _edge_pad_bwd(pads, _, g):
  for axis, (lo, hi) in enumerate(pads):
    if lo == hi == 0:
      continue
    m = g.shape[axis]
    n = m - lo - hi
    take = lambda a, b, g=g, axis=axis: jax.lax.slice_in_dim(g, a, b, axis=axis)
    if n == 1:
      g = jnp.sum(g, axis=axis, keepdims=True)
      continue
    g = jnp.concatenate(
        [
            jnp.sum(take(0, lo + 1), axis=axis, keepdims=True),
            take(lo + 1, lo + n - 1),
            jnp.sum(take(lo + n - 1, m), axis=axis, keepdims=True),
        ],
        axis=axis,
    )
  return (g,)


edge_pad.defvjp(_edge_pad_fwd, _edge_pad_bwd)
