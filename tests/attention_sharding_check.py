"""Blockwise (or, with argument `splash`, the splash kernel in the Pallas
interpreter) attention sharded on 8 fake CPU devices vs the single-device
reference (run by attention_test). Prints one JSON line."""

import json
import sys

import flax.linen as nn
import jax
import numpy as np

from tests import attention_test
from videopoet import sharding
from videopoet.model import attention

AXES = attention.HEADS_AXES  # How the LM constrains q and the output.


def main():
  assert jax.device_count() == 8, jax.devices()
  impl = sys.argv[1] if len(sys.argv) > 1 else "blockwise"
  if impl == "splash":  # The kernel's lanes want head_dim 128.
    q, k, v, mask, cot = attention_test.inputs(head_dim=128)
    # Splash is exact on non-padding query rows (a padding query sees
    # padding keys there): compare on those.
    cot = cot * mask.key_valid[:, :, None, None]
    ref = attention_test.value_and_grads(
        lambda q, k, v: attention.attend(q, k, v, mask, impl="xla"),
        q, k, v, cot,
    )  # fmt: skip
  else:
    q, k, v, mask, cot = attention_test.inputs()
    ref = attention_test.reference()
  mesh = sharding.create_mesh(sharding.MeshConfig(data=2, fsdp=2, tensor=2))
  rules = list(sharding.LOGICAL_AXIS_RULES)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    heads = nn.logical_to_mesh_sharding(
        jax.sharding.PartitionSpec(*AXES), mesh, rules
    )
    rows = nn.logical_to_mesh_sharding(
        jax.sharding.PartitionSpec("activation_batch"), mesh, rules
    )
    q, k, v, cot = jax.device_put((q, k, v, cot), heads)
    mask = attention.Mask(
        *jax.device_put((mask.prefix_len, mask.key_valid), rows)
    )

    def fn(q, k, v):
      if impl == "splash":
        d = q.shape[-1]
        out = attention._splash(  # pylint: disable=protected-access
            q * d**-0.5, k, v, mask, interpret=True
        )
      else:
        out = attention.attend(
            q, k, v, mask, impl="blockwise", block_q=8, block_k=16
        )
      return nn.with_logical_constraint(out, AXES)

    got = attention_test.value_and_grads(fn, q, k, v, cot)
    per_device = "shard_map" in str(jax.make_jaxpr(fn)(q, k, v))
  diffs = [
      float(np.abs(np.asarray(a) - np.asarray(b)).max())
      for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref))
  ]
  print(
      json.dumps(
          {
              "max_diff": max(diffs),
              "max_grad": float(np.abs(np.asarray(ref[1][1])).max()),
              "q_spec": str(q.sharding.spec),
              "dq_spec": str(got[1][0].sharding.spec),
              "shard_map": per_device,
          }
      )
  )


if __name__ == "__main__":
  main()
