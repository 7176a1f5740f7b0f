"""Sharded vs single-device loss and gradients (run by model_sharding_test).

Needs 8 devices: `XLA_FLAGS=--xla_force_host_platform_device_count=8` must be
set before jax is imported, so this runs as its own process. Prints one JSON
line with the largest differences.
"""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from videopoet import sharding
from videopoet.model import transformer


def main():
  assert jax.device_count() == 8, jax.devices()
  config = transformer.ModelConfig(
      vocab_size=512, num_valid_ids=500, num_layers=2, embed_dim=32,
      num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64, vocab_chunks=4,
      mlp_chunks=2, remat="full",
  )  # fmt: skip
  model = transformer.VideoPoetLM(config)
  rng = np.random.default_rng(0)
  b, s, n = 4, 16, 6
  batch = {
      "inputs": rng.integers(1, 500, (b, s)).astype(np.int32),
      "prefix_len": np.array([3, 5, 8, 10], np.int32),
      "target_positions": np.tile(np.arange(10, 16, dtype=np.int32), (b, 1)),
      "targets": rng.integers(1, 500, (b, n)).astype(np.int32),
      "weights": np.ones((b, n), np.float32),
  }

  def init(key):
    return model.init(key, batch, method="loss")["params"]

  def loss_fn(params, batch):
    loss, _ = model.apply({"params": params}, batch, method="loss")
    return (loss * batch["weights"]).sum() / batch["weights"].sum()

  # A separate function object for the sharded jit (its own cache entry).
  grad_fn = jax.value_and_grad(loss_fn)
  sharded_grad_fn = jax.value_and_grad(lambda p, b: loss_fn(p, b))
  key = jax.random.key(0)
  with nn.logical_axis_rules(list(sharding.LOGICAL_AXIS_RULES)):
    boxed = jax.eval_shape(init, key)
  params = nn.unbox(jax.jit(init)(key))
  ref_loss, ref_grads = jax.jit(grad_fn)(params, batch)

  mesh = sharding.create_mesh(sharding.MeshConfig(data=2, fsdp=2, tensor=2))
  shards = sharding.logical_sharding(boxed, mesh)
  sharded_params = jax.device_put(params, shards)
  with jax.set_mesh(mesh), nn.logical_axis_rules(
      list(sharding.LOGICAL_AXIS_RULES)
  ):
    gbatch = sharding.global_batch(batch, mesh)
    step = jax.jit(
        sharded_grad_fn, out_shardings=(sharding.replicated(mesh), shards)
    )
    loss, grads = step(sharded_params, gbatch)
  diffs = jax.tree.map(
      lambda a, r: float(np.abs(np.asarray(a) - np.asarray(r)).max()),
      grads, ref_grads,
  )  # fmt: skip
  specs = {
      "mlp_wi_0": str(shards["blocks"]["mlp"]["wi_0"].spec),
      "embedding": str(shards["embedding"].spec),
      "grad_wi_0": str(grads["blocks"]["mlp"]["wi_0"].sharding.spec),
  }
  print(
      json.dumps(
          {
              "loss": float(loss),
              "ref_loss": float(ref_loss),
              "max_grad_diff": max(jax.tree.leaves(diffs)),
              "max_grad": max(
                  float(np.abs(g).max()) for g in jax.tree.leaves(ref_grads)
              ),
              "specs": specs,
          }
      )
  )


if __name__ == "__main__":
  main()
