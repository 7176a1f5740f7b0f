"""Exponential moving average of a model's weights, with warmup.

A plain EMA started at the initial weights keeps `decay ** n` of them after
n updates: at decay 0.999, 37 % after 1,000 steps and 86 % after 150. A
short run's EMA model (what evaluation and `load_*` use) is then mostly
random weights. Like TensorFlow's `ExponentialMovingAverage(num_updates=)`,
the decay of update n (counting from 0) is min(decay, (1 + n) / (10 + n)):
0.1 at the first update, so the initial weights are gone at once; until
the configured decay is reached, at n = (10 decay - 1) / (1 - decay) (890 at
0.99, 8,990 at 0.999), the average spans about the last tenth of the run.
"""

import jax
import jax.numpy as jnp


def decay_at(decay: float, step: jax.Array) -> jax.Array:
  """The decay of the update made at `step` (0 for the first update)."""
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(jnp.float32(decay), (1.0 + step) / (10.0 + step))


def update(ema, params, decay: float, step: jax.Array):
  """ema + (1 - d) * (params - ema) leaf by leaf, d = decay_at(decay, step).

  `params` are the weights after update `step`; leaves keep their dtype.
  """
  d = decay_at(decay, step)
  return jax.tree.map(
      lambda e, p: (e + (1.0 - d) * (p - e)).astype(e.dtype), ema, params
  )
