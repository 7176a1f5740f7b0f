"""The sampler on a mesh vs one device (run by decode_test).

Needs 8 devices (`XLA_FLAGS=--xla_force_host_platform_device_count=8` before
jax is imported), so it runs as its own process. Prints one JSON line: the
largest teacher-forced logit difference, whether the sampled tokens agree,
and how the KV cache is split.
"""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import videopoet as videopoet_config
from videopoet import config_lib
from videopoet import decode
from videopoet import lm_data
from videopoet import lm_trainer
from videopoet import sharding
from videopoet import tasks as tasks_lib
from videopoet.model import transformer


def main():
  assert jax.device_count() == 8, jax.devices()
  c = videopoet_config.get_config("tiny")
  c.data.source = "random"  # Random tokens of 2x4x4 grids, 8 audio frames.
  c.data.random.update(num_frames=5, height=32, width=32, audio_frames=8)
  spec = lm_trainer.data_spec(c)
  vocab = lm_trainer.make_vocab(c, spec)
  config = lm_trainer.make_model_config(c, vocab)
  task_config = config_lib.from_config(
      tasks_lib.TaskConfig, c.tasks, "config.tasks"
  )
  source = lm_data.RandomSource(spec, 8)
  seqs = [
      tasks_lib.build(
          "text_to_video", source[i], vocab, task_config,
          np.random.default_rng(i), spec,
      )
      for i in range(4)
  ]  # fmt: skip
  p = seqs[0].prefix_len
  tokens = np.stack([s.tokens for s in seqs])  # [4, s]
  out = decode.output_layout(seqs[0], vocab)
  cfg = decode.SamplingConfig(temperature=1.0, top_k=50)
  rules = list(sharding.LOGICAL_AXIS_RULES)

  model = transformer.VideoPoetLM(config)
  init = lambda key: model.init(key, jnp.asarray(tokens[:, :8]), jnp.full(4, 4))
  with nn.logical_axis_rules(rules):
    boxed = jax.eval_shape(init, jax.random.key(0))
  params = nn.unbox(jax.jit(init)(jax.random.key(0)))["params"]

  def forced(params, tokens):  # Teacher-forced cached logits [b, n, V].
    logits, cache = decode.prefill(
        config, params, tokens[:, :p], tokens.shape[1]
    )
    rows = [logits]
    for i in range(p, tokens.shape[1] - 1):
      logits, cache = decode.decode_step(config, params, cache, tokens[:, i])
      rows.append(logits)
    return jnp.stack(rows, 1), cache

  def draw(params, prefix):
    return decode.sample(config, params, prefix, out, jax.random.key(3), cfg)

  ref_logits, _ = jax.jit(forced)(params, tokens)
  ref_tokens = jax.jit(draw)(params, tokens[:, :p])

  mesh = sharding.create_mesh(sharding.MeshConfig(data=2, fsdp=2, tensor=2))
  shards = sharding.logical_sharding(boxed, mesh)["params"]
  sharded = jax.device_put(params, shards)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    gtokens = sharding.global_batch(tokens, mesh)
    logits, cache = jax.jit(lambda a, b: forced(a, b))(sharded, gtokens)
    sampled = jax.jit(lambda a, b: draw(a, b))(
        sharded, sharding.global_batch(tokens[:, :p], mesh)
    )
  key_cache = cache["block_0"]["attention"]["key"]  # tiny: no nn.scan.
  key_cache = getattr(key_cache, "value", key_cache)
  print(
      json.dumps(
          {
              "max_logit_diff": float(
                  np.abs(np.asarray(logits) - ref_logits).max()
              ),
              "max_logit": float(np.abs(ref_logits).max()),
              "same_tokens": bool(
                  np.array_equal(np.asarray(sampled), ref_tokens)
              ),
              "num_tokens": int(np.asarray(sampled).size),
              "cache_spec": str(key_cache.sharding.spec),
          }
      )
  )


if __name__ == "__main__":
  main()
