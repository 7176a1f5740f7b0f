"""KV-cache decoding (`videopoet/decode.py`): cached = full forward, the
layout's constraint always holds, guidance, determinism."""

import functools
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import videopoet as videopoet_config
from videopoet import config_lib
from videopoet import decode
from videopoet import lm_data
from videopoet import lm_trainer
from videopoet import tasks as tasks_lib
from videopoet.model import transformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_config():
  """The tiny LM on random tokens of 2x4x4 grids and 8 audio frames."""
  c = videopoet_config.get_config("tiny")
  c.data.source = "random"
  c.data.random.update(num_frames=5, height=32, width=32, audio_frames=8)
  return c


@functools.cache
def _setup(scan_layers=True, kv_heads=2):
  """A random tiny LM (GQA 4/2), its vocabulary and task config."""
  c = _tiny_config()
  c.model.update(scan_layers=scan_layers, num_kv_heads=kv_heads)
  vocab = lm_trainer.make_vocab(c)
  model_config = lm_trainer.make_model_config(c, vocab)
  task_config = config_lib.from_config(
      tasks_lib.TaskConfig, c.tasks, "config.tasks"
  )
  model = transformer.VideoPoetLM(model_config)
  params = jax.jit(model.init)(
      jax.random.key(0), jnp.zeros((1, 8), jnp.int32), jnp.array([4])
  )["params"]
  params = nn.unbox(params)
  return model_config, params, vocab, task_config


def _sequence(task, index=0, text_dropout=0.0):
  _, _, vocab, task_config = _setup()
  task_config = task_config.__class__(
      **{**task_config.__dict__, "text_dropout": text_dropout}
  )
  spec = lm_trainer.data_spec(_tiny_config())
  source = lm_data.RandomSource(spec, 16)
  return tasks_lib.build(
      task,
      source[index],
      vocab,
      task_config,
      np.random.default_rng(index),
      spec,
  )


@pytest.mark.parametrize(
    "task,scan_layers,kv_heads",
    [
        ("text_to_video", True, 2),  # Text prefix with padding, GQA, scan.
        ("audio_video_continuation", False, 4),  # Audio out, MHA, no scan.
    ],
)
def test_cached_decoding_matches_the_full_forward(task, scan_layers, kv_heads):
  model_config, params, _, _ = _setup(scan_layers, kv_heads)
  seq = _sequence(task)
  tokens, p = jnp.asarray(seq.tokens)[None], seq.prefix_len  # [1, s]
  s = tokens.shape[1]
  model = transformer.VideoPoetLM(model_config)
  hidden = model.apply({"params": params}, tokens[:, :-1], jnp.array([p]))
  full = model.apply({"params": params}, hidden, method="logits")[0, p - 1 :]

  logits, cache = decode.prefill(model_config, params, tokens[:, :p], s)
  cached = [logits[0]]
  for i in range(p, s - 1):  # Teacher forcing: feed the true next token.
    logits, cache = decode.decode_step(
        model_config, params, cache, tokens[:, i]
    )
    cached.append(logits[0])
  cached = jnp.stack(cached)  # [n, V]
  assert cached.shape == full.shape == (s - p, model_config.vocab_size)
  np.testing.assert_allclose(cached, full, atol=1e-5, rtol=1e-5)


def test_output_layout_of_audio_levels_and_specials():
  _, _, vocab, _ = _setup()
  seq = _sequence("video_to_audio")
  out = decode.output_layout(seq, vocab)
  outputs = seq.tokens[seq.prefix_len :]
  assert out.forced[0] == vocab.special("<boa_o>")
  assert list(out.forced[-2:]) == [
      vocab.special("<eoa_o>"),
      vocab.special("<eos>"),
  ]
  levels, cb = vocab.config.audio_levels, vocab.config.audio_codebook
  audio_lo = out.lo[1:-2].reshape(levels, -1)
  np.testing.assert_array_equal(
      audio_lo,
      vocab.audio_start + cb * np.arange(levels)[:, None] + 0 * audio_lo,
  )
  sampled = out.forced < 0
  assert np.all(
      (outputs[sampled] >= out.lo[sampled])
      & (outputs[sampled] < out.hi[sampled])
  )


@pytest.mark.parametrize("task", list(tasks_lib.TASKS))
def test_samples_stay_inside_the_layout(task):
  model_config, params, vocab, _ = _setup()
  seq = _sequence(task, index=3)
  out = decode.output_layout(seq, vocab)
  prefix = jnp.asarray(np.stack([seq.tokens[: seq.prefix_len]] * 3))
  fn = jax.jit(
      lambda rng, cfg: decode.sample(
          model_config, params, prefix, out, rng, cfg
      ),
      static_argnums=1,
  )
  # Flat (T=1.5) or sharp (top-k, top-p) draws, by task.
  flat = list(tasks_lib.TASKS).index(task) % 2
  cfg = decode.SamplingConfig(
      temperature=1.5 if flat else 1.0, top_k=0 if flat else 5, top_p=0.9
  )
  for seed in range(3):
    tokens = np.asarray(fn(jax.random.key(seed), cfg))  # [3, n]
    assert tokens.shape == (3, len(out))
    forced = out.forced >= 0
    np.testing.assert_array_equal(
        tokens[:, forced],
        np.broadcast_to(out.forced[forced], tokens[:, forced].shape),
    )
    assert np.all((tokens >= out.lo) & (tokens < out.hi)), task
    # Every sample converts back to codes of the task's output shape.
    visual = tokens[:, (out.lo == vocab.visual_start) & ~forced]
    audio = tokens[:, (out.lo >= vocab.audio_start) & ~forced]
    if visual.size:
      vocab.ids_to_visual(visual)
    if audio.size:
      assert vocab.ids_to_audio(audio[0]).shape[0] == vocab.config.audio_levels


def test_deterministic_for_a_seed_and_guidance_one_equals_none():
  model_config, params, vocab, _ = _setup()
  cond = _sequence("text_to_video", index=1)
  uncond = _sequence("text_to_video", index=1, text_dropout=1.0)
  assert not np.array_equal(cond.tokens, uncond.tokens)
  out = decode.output_layout(cond, vocab)
  p = cond.prefix_len
  prefix = jnp.asarray(cond.tokens[None, :p].repeat(2, 0))
  unprefix = jnp.asarray(uncond.tokens[None, :p].repeat(2, 0))
  run = lambda rng, g, un: decode.sample(
      model_config, params, prefix, out, rng,
      decode.SamplingConfig(guidance=g), uncond_prefix=un,
  )  # fmt: skip
  key = jax.random.key(7)
  plain = np.asarray(run(key, 1.0, None))
  np.testing.assert_array_equal(plain, np.asarray(run(key, 1.0, None)))
  np.testing.assert_array_equal(plain, np.asarray(run(key, 1.0, unprefix)))
  assert not np.array_equal(
      plain, np.asarray(run(jax.random.key(8), 1.0, None))
  )
  guided = np.asarray(run(key, 5.0, unprefix))
  assert not np.array_equal(plain, guided)


def test_top_k_one_and_temperature_zero_are_greedy():
  logits = jnp.array([[0.1, 2.0, 1.0, -1.0], [3.0, 0.0, 0.5, 2.9]])
  constrained = decode.constrain(logits, 1, 4)
  greedy = decode.draw(
      constrained, jax.random.key(0), decode.SamplingConfig(temperature=0)
  )
  np.testing.assert_array_equal(greedy, [1, 3])
  for seed in range(5):
    top1 = decode.draw(
        constrained, jax.random.key(seed), decode.SamplingConfig(top_k=1)
    )
    np.testing.assert_array_equal(top1, [1, 3])
    nucleus = decode.draw(
        constrained, jax.random.key(seed), decode.SamplingConfig(top_p=0.01)
    )
    np.testing.assert_array_equal(nucleus, [1, 3])


def test_top_p_keeps_the_smallest_set_reaching_p():
  probs = jnp.array([[0.5, 0.3, 0.15, 0.05]])
  logits = jnp.log(probs)
  seen = set()
  for seed in range(200):
    seen.add(
        int(
            decode.draw(
                logits, jax.random.key(seed), decode.SamplingConfig(top_p=0.75)
            )[0]
        )
    )
  assert seen == {0, 1}  # 0.5 + 0.3 reaches 0.75; 0.15 and 0.05 are cut.


def test_sharded_sampler_matches_one_device():
  """data 2 x fsdp 2 x tensor 2 on 8 fake CPU devices (own process)."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run(
      [sys.executable, "-m", "tests.decode_sharding_check"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-4000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["max_logit_diff"] < 1e-4 and out["max_logit"] > 1.0, out
  assert out["same_tokens"] and out["num_tokens"] > 100, out
  # The KV cache is split like the activations: batch over data x fsdp,
  # kv heads over tensor.
  assert out["cache_spec"] == "P(('data', 'fsdp'), None, 'tensor')", out


def test_the_prefix_runs_once_and_each_step_feeds_one_token(monkeypatch):
  """The model sees the prefix [b, P] once; the scan body one token a row."""
  model_config, params, vocab, _ = _setup()
  seq = _sequence("video_to_audio")
  out = decode.output_layout(seq, vocab)
  p = seq.prefix_len
  calls = {"prefill": [], "step": []}
  prefill, step = decode.prefill, decode.decode_step

  def counted_prefill(config, params_, prefix, *args, **kw):
    calls["prefill"].append(prefix.shape)
    return prefill(config, params_, prefix, *args, **kw)

  def counted_step(config, params_, cache, tokens):
    calls["step"].append(tokens.shape)
    return step(config, params_, cache, tokens)

  monkeypatch.setattr(decode, "prefill", counted_prefill)
  monkeypatch.setattr(decode, "decode_step", counted_step)
  prefix = jnp.asarray(seq.tokens[None, :p].repeat(3, 0))
  tokens = decode.sample(model_config, params, prefix, out, jax.random.key(0))
  assert tokens.shape == (3, len(out))
  assert calls["prefill"] == [(3, p)]  # Once, the whole prefix.
  assert calls["step"] == [(3,)]  # Traced once: the scan's body.
