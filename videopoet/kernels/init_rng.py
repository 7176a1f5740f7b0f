"""Keys for initializing parameters: 'rbg' keys drawn from a threefry key.

XLA:CPU takes tens of seconds to compile threefry draws for the hundred or
so parameter tensors of a tokenizer or codec (and its discriminators); the
RngBitGenerator behind 'rbg' keys compiles in seconds. Initialization stays
deterministic in the given key (the 'rbg' bits may differ across backends).
"""

from typing import Literal

import jax
import jax.numpy as jnp

# How the 'rbg' key is drawn: "bits" wraps four threefry words as its key
# data (MAGVIT-v2); "int32_seed" seeds it with one threefry int32 (the
# SoundStream codec). Both are kept so each model's initial values, and the
# runs made from them, stay as they were.
Derivation = Literal["bits", "int32_seed"]


def init_key(rng: jax.Array, derivation: Derivation = "bits") -> jax.Array:
  """An 'rbg' key drawn from the key `rng`, for `model.init`."""
  if derivation == "bits":
    return jax.random.wrap_key_data(
        jax.random.bits(rng, (4,), jnp.uint32), impl="rbg"
    )
  if derivation == "int32_seed":
    seed = jax.random.randint(rng, (), 0, jnp.iinfo(jnp.int32).max)
    return jax.random.key(seed, impl="rbg")
  raise ValueError(
      f"kernels.init_key: derivation={derivation!r} is not 'bits' or"
      " 'int32_seed'"
  )
