"""Activations in the forms XLA:CPU runs fast."""

import jax
import jax.numpy as jnp


def elu(x: jax.Array) -> jax.Array:
  """`jax.nn.elu` (alpha 1) with exp(x) - 1 below zero instead of expm1(x).

  XLA:CPU's `expm1` is markedly slower than `exp` on large activations, and
  SoundStream has dozens of ELUs. Within 1.2e-7 of `jax.nn.elu`, with the
  same gradient (1 at 0).
  """
  return jnp.where(x > 0, x, jnp.exp(jnp.where(x > 0, 0.0, x)) - 1.0)
