"""Decoding speed and memory: our KV-cache sampler against HF and recompute.

  python -m benchmarks.decode_speed [--config=small] [--batch=4] [--reps=3]
      [--quick]

Ours: `videopoet/decode.py`'s `sample` under one `jax.jit` (prefill of the
prefix into a fixed-size KV cache, then a `lax.scan` of decode steps, each
constraining the logits to the task's output layout and drawing one token
per row), random weights, temperature 1, top-k 0 (the whole allowed range),
no guidance. Requests are `--task` (default text_to_video) sequences built
by the task builders from `lm_data.RandomSource` examples; the layout comes
from `decode.output_layout`.

  (a) Tokens per second (batch x output tokens / wall time, prefill
      included) of `--config` (default small: 4 x 256, GQA 8/4; prompt 20,
      output 323 tokens at the config's 5x8x8 latent grid) at `--batch`
      rows, against Hugging Face `transformers`' `LlamaForCausalLM` of the
      same shape (layers, width, heads, kv heads, head dim, SwiGLU width,
      vocab, untied embeddings, RMSNorm eps, RoPE theta; random weights, no
      download) calling `generate(max_new_tokens=n, min_new_tokens=n,
      do_sample=True, top_k=0, temperature=1.0, use_cache=True)` on the
      same prompts, f32, PyTorch on the same device. On a CPU torch gets as
      many threads as XLA:CPU's pool, or 1 when a short probe finds 1
      faster (`--hf_threads=0`): on a busy shared CPU, OpenMP's barriers
      made each 2-thread op of a decode step ~100x slower (1.7-8 ms for
      a 4 x 64 x 256 matmul instead of 12 us), so the peer runs at its best
      count. HF draws from the whole vocabulary; ours also masks each
      step's logits to the layout's range (more work, not less). Printed
      as our tokens/s over HF's.
  (b) The KV cache against recomputing: per generated token, the cached
      `sample` of a paper-sized text-to-video output (`--cache_video_shape`
      5x16x16 = 1,280 visual tokens, the latent grid of a 17x128x128 clip,
      plus 3 specials) against a jitted `lax.fori_loop` that at each step
      runs the whole LM (mode 'train', prefix-LM mask with prefix_len = P)
      over the fixed-size [b, P + n] token buffer, takes the logits of the
      current position and draws with the same `decode.constrain` /
      `decode.draw`. The buffer's size is fixed, so each recompute step
      costs the same: `--recompute_steps` of them are timed, not all n.
      `--cache_config` (default tiny) at `--cache_batch` rows.
  (c) The `--memory_size` (default 8b) model's KV cache per device on a
      `--memory_devices`-device mesh (fake CPU devices,
      `--xla_force_host_platform_device_count`, in a subprocess), the
      config's own mesh unless `--memory_mesh` (8b: data=1, fsdp=256,
      tensor=1), compile only (nothing runs): text-to-video at the config's
      shapes (64 text ids, 5x16x16 = 1,280 visual tokens, specials: cache
      of P + n = 1,351 positions) for `--memory_batch` (default 256: one
      row per device, the smallest batch the 256-way data-parallel cache
      axis divides). `decode.prefill` is lowered with the parameters'
      logical shardings and compiled; the cache's bytes per device are the
      shard sizes of its compiled output shardings, checked against
        2 (k, v) * L * (batch / dp) * cache_len * (kv heads / tp) * Dh * 2 B
      (bf16: the 8b config computes, and caches, in bfloat16). The target
      is that analytic size (0.1650 GiB for the defaults): it is what one
      row's keys and values of kv heads only take, so anything above it is
      a cache replicated over a mesh axis (256x), expanded to all query
      heads (4x) or kept in f32 (2x). It is small next to an accelerator's
      memory (16 GiB on the smallest TPU, v5e) and to the decode step's
      own temporaries. The compiled prefill's and decode step's
      `memory_analysis()` are printed too, and what the step all-gathers.

Repetitions interleave ours and the peer so both see the same machine load
(the CPU may be shared); figures are medians over `--reps` of
per-repetition ratios, after one untimed warm-up call each (compiles). Ends
with `RESULT` lines (docs/design.md); a benchmark never fails.
"""

import importlib.metadata
import json
import math
import os
import re
import statistics
import time

from absl import app
from absl import flags

from videopoet.kernels import xla_cpu

xla_cpu.configure()  # Before JAX creates its CPU backend.

from benchmarks import common  # pylint: disable=g-import-not-at-top,g-bad-import-order

_CONFIG = flags.DEFINE_string("config", "small", "(a): configs/videopoet.py.")
_TASK = flags.DEFINE_string("task", "text_to_video", "(a): request task.")
_BATCH = flags.DEFINE_integer("batch", 4, "(a): rows decoded together.")
_REPS = flags.DEFINE_integer("reps", 3, "Timed repetitions (median).")
_PEER = flags.DEFINE_bool("peer", True, "(a): time HF LlamaForCausalLM.")
_HF_THREADS = flags.DEFINE_integer(
    "hf_threads",
    0,
    "(a), CPU: torch threads of the peer; 0: XLA:CPU's pool size, or 1 if a"
    " short probe finds 1 faster (OpenMP barriers on a busy shared CPU).",
)
_CACHE = flags.DEFINE_bool("cache", True, "Run (b), cache vs recompute.")
_CACHE_CONFIG = flags.DEFINE_string("cache_config", "tiny", "(b): config.")
_CACHE_BATCH = flags.DEFINE_integer("cache_batch", 1, "(b): rows.")
_CACHE_VIDEO = flags.DEFINE_list(
    "cache_video_shape", ["5", "16", "16"], "(b): latent grid t,h,w."
)
_RECOMPUTE_STEPS = flags.DEFINE_integer(
    "recompute_steps", 32, "(b): recompute steps timed (of n)."
)
_MEMORY_SIZE = flags.DEFINE_string(
    "memory_size", "8b", "(c): config of the memory figure ('' = skip)."
)
_MEMORY_DEVICES = flags.DEFINE_integer("memory_devices", 256, "Fake devices.")
_MEMORY_MESH = flags.DEFINE_string(
    "memory_mesh", "", "(c): mesh, e.g. data=1,fsdp=-1,tensor=1 ('': config)."
)
_MEMORY_BATCH = flags.DEFINE_integer(
    "memory_batch", 256, "(c): decode batch (divisible by the data axes)."
)
_QUICK = flags.DEFINE_bool(
    "quick",
    False,
    "Smoke run: 1 rep; (a) tiny, (b) 2x8x8 grid and 8 recompute steps.",
)
_MEMORY_CHILD = flags.DEFINE_string(
    "memory_child", "", "Internal: print one size's memory JSON and exit."
)


def _xla_cpu_threads():
  """XLA:CPU's pool size: the CPUs this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return os.cpu_count() or 1


def _request(size, task, batch, video_shape=None):
  """(model config, prefix int32 [batch, P], output layout) of `task`."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from configs import videopoet as videopoet_config  # pylint: disable=g-import-not-at-top
  from videopoet import config_lib  # pylint: disable=g-import-not-at-top
  from videopoet import decode  # pylint: disable=g-import-not-at-top
  from videopoet import lm_data  # pylint: disable=g-import-not-at-top
  from videopoet import lm_trainer  # pylint: disable=g-import-not-at-top
  from videopoet import tasks as tasks_lib  # pylint: disable=g-import-not-at-top

  c = videopoet_config.get_config(size)
  c.data.source = "random"
  if video_shape:  # A latent grid t, h, w: in frames and pixels.
    r = c.data.random
    t, h, w = video_shape
    r.update(
        num_frames=1 + r.time_factor * (t - 1), height=h * r.space_factor,
        width=w * r.space_factor,
    )  # fmt: skip
  spec = lm_trainer.data_spec(c)
  vocab = lm_trainer.make_vocab(c, spec)
  model_config = lm_trainer.make_model_config(c, vocab)
  task_config = config_lib.from_config(
      tasks_lib.TaskConfig, c.tasks, "config.tasks"
  )
  rows = min(batch, 16)  # Distinct examples; more rows repeat them.
  source = lm_data.RandomSource(spec, rows)
  seqs = [
      tasks_lib.build(
          task, source[i], vocab, task_config, np.random.default_rng(i), spec
      )
      for i in range(rows)
  ]  # fmt: skip
  p = seqs[0].prefix_len
  assert all(s.prefix_len == p for s in seqs), "prefix lengths differ"
  prefix = np.stack([seqs[i % rows].tokens[:p] for i in range(batch)])
  out = decode.output_layout(seqs[0], vocab)
  return c, model_config, prefix.astype(np.int32), out


def _init_params(model_config):
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from videopoet.model import transformer  # pylint: disable=g-import-not-at-top

  model = transformer.VideoPoetLM(model_config)
  init = jax.jit(
      lambda key: model.init(
          key, jnp.zeros((1, 8), jnp.int32), jnp.array([4], jnp.int32)
      )["params"]
  )
  return nn.unbox(init(jax.random.key(0)))


def _describe(mc):
  return (
      f"{mc.num_layers} layers x {mc.embed_dim}, heads"
      f" {mc.num_heads}/{mc.num_kv_heads} x {mc.head_dim}, mlp {mc.mlp_dim},"
      f" vocab {mc.vocab_size}, dtype {mc.dtype}"
  )


# ------------------------------------------------------------ (a) vs HF.
class Ours:
  """`jax.jit(decode.sample)` of one request batch."""

  def __init__(self, model_config, prefix, out):
    import jax  # pylint: disable=g-import-not-at-top

    from videopoet import decode  # pylint: disable=g-import-not-at-top

    self.params = _init_params(model_config)
    self.n_params = sum(x.size for x in jax.tree.leaves(self.params))
    self.prefix = jax.device_put(prefix)
    cfg = decode.SamplingConfig(temperature=1.0, top_k=0)
    self.fn = jax.jit(
        lambda params, prefix, rng: decode.sample(
            model_config, params, prefix, out, rng, cfg
        )
    )
    self.rng = jax.random.key(1)

  def run(self):
    return self.fn(self.params, self.prefix, self.rng).block_until_ready()


class HFLlama:
  """transformers' LlamaForCausalLM of our shape, f32, sampling generate()."""

  def __init__(self, mc, prefix, n):
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top

    torch.manual_seed(0)
    self.device = common.torch_device(torch)
    cfg = common.llama_config(mc, prefix.shape[1] + n)
    self.model = (
        transformers.LlamaForCausalLM(cfg).float().eval().to(self.device)
    )
    self.attn = self.model.config._attn_implementation  # pylint: disable=protected-access
    self.ids = torch.from_numpy(prefix.astype("int64")).to(self.device)
    self.mask = torch.ones_like(self.ids)
    self.n = n
    self.probe = {}  # threads -> seconds per generated token (CPU).
    self.n_params = sum(p.numel() for p in self.model.parameters())
    self.torch = torch
    self.run = common.synchronized(torch, self.device, self._generate)

  def set_threads(self, threads):
    """Torch's CPU threads: `threads`, or (0) the faster of XLA:CPU's pool
    size and 1, timed on a short generate (the first also warms up)."""
    if self.device != "cpu":
      return
    pool = _xla_cpu_threads()
    choices = [threads] if threads else sorted({pool, 1}, reverse=True)
    for t in choices:
      self.torch.set_num_threads(t)
      k = min(self.n, 16)
      self._generate(k)  # Warm-up at this thread count.
      self.probe[t] = common.timed(lambda: self._generate(k)) / k
    best = min(self.probe, key=self.probe.get)
    self.torch.set_num_threads(best)

  def _generate(self, n=None):
    n = n or self.n
    with self.torch.inference_mode():
      out = self.model.generate(
          self.ids,
          attention_mask=self.mask,
          max_new_tokens=n,
          min_new_tokens=n,
          do_sample=True,
          top_k=0,
          temperature=1.0,
          use_cache=True,
          pad_token_id=0,
      )
    assert out.shape == (self.ids.shape[0], self.ids.shape[1] + n)
    return out


def speed_vs_hf(size, task, batch, reps, peer, hf_threads):
  """(our tokens/s, HF tokens/s, median ratio) of (a)."""
  import jax  # pylint: disable=g-import-not-at-top

  _, mc, prefix, out = _request(size, task, batch)
  n, p = len(out), prefix.shape[1]
  tokens = batch * n
  ours = Ours(mc, prefix, out)
  print(
      f"(a) config={size} task={task}: batch {batch}, prompt {p}, output"
      f" {n} tokens ({int((out.forced >= 0).sum())} forced by the layout);"
      f" {_describe(mc)}; params {ours.n_params / 1e6:.2f}M"
  )
  hf = None
  if peer:
    hf = HFLlama(mc, prefix, n)
    hf.set_threads(hf_threads)
    probe = ", ".join(
        f"{t} threads {s * 1e3:.2f} ms/step" for t, s in hf.probe.items()
    )
    print(
        f"peer: transformers {importlib.metadata.version('transformers')}"
        f" LlamaForCausalLM.generate ({hf.attn} attention), torch"
        f" {importlib.metadata.version('torch')} ({hf.device}), threads"
        f" {hf.torch.get_num_threads()} (XLA:CPU pool"
        f" {_xla_cpu_threads()}; short probe: {probe or 'not run'});"
        f" params {hf.n_params / 1e6:.2f}M"
    )
  t0 = time.perf_counter()
  ours.run()  # Warm-up: compiles.
  print(f"ours: first call (compile + run) {time.perf_counter() - t0:.1f} s")
  if hf and not hf.probe:  # The thread probe has warmed it up.
    hf.run()
  rows = []
  for r in range(reps):  # Interleaved: both see the same load.
    t_ours = common.timed(ours.run)
    t_hf = common.timed(hf.run) if hf else math.nan
    rows.append((t_ours, t_hf))
    print(
        f"  rep {r}: ours {t_ours:7.3f} s ({tokens / t_ours:8.1f} tokens/s)"
        f" | HF {t_hf:7.3f} s ({tokens / t_hf:8.1f} tokens/s)"
    )
  med = statistics.median
  ratio = med([t_h / t_o for t_o, t_h in rows]) if hf else math.nan
  t_ours, t_hf = (med(c) for c in zip(*rows))
  print(
      f"medians over {reps} interleaved reps ({jax.default_backend()}):"
      f" ours {tokens / t_ours:.1f} tokens/s ({t_ours / n * 1e3:.2f} ms per"
      f" step of {batch} rows), HF {tokens / t_hf:.1f} tokens/s"
      f" ({t_hf / n * 1e3:.2f} ms per step)"
  )
  return tokens / t_ours, tokens / t_hf, ratio


# ---------------------------------------------------- (b) vs recompute.
def recompute_fn(model_config, out, steps, cfg):
  """Jitted (params, prefix, rng) -> the first `steps` output tokens, each
  from a full forward over the fixed [b, P + n] buffer (no cache)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from videopoet import decode  # pylint: disable=g-import-not-at-top
  from videopoet.model import transformer  # pylint: disable=g-import-not-at-top

  model = transformer.VideoPoetLM(model_config)  # mode 'train'
  n = len(out)
  lo, hi, forced = (jnp.asarray(a) for a in (out.lo, out.hi, out.forced))

  def run(params, prefix, rng):
    b, p = prefix.shape
    buf = jnp.full((b, p + n), model_config.pad_id, jnp.int32)
    buf = buf.at[:, :p].set(prefix)
    prefix_len = jnp.full((b,), p, jnp.int32)

    def body(i, buf):
      hidden = model.apply({"params": params}, buf, prefix_len)  # [b, s, d]
      h = jax.lax.dynamic_index_in_dim(hidden, p - 1 + i, 1, False)  # [b, d]
      logits = model.apply({"params": params}, h, method="logits")
      token = decode.draw(
          decode.constrain(logits, lo[i], hi[i]), jax.random.fold_in(rng, i),
          cfg,
      )  # fmt: skip
      token = jnp.where(forced[i] >= 0, forced[i], token)  # [b]
      return jax.lax.dynamic_update_slice(
          buf, token[:, None], (jnp.zeros((), jnp.int32), p + i)
      )

    buf = jax.lax.fori_loop(0, steps, body, buf)
    return buf[:, p : p + steps]

  return jax.jit(run)


def cache_vs_recompute(size, batch, video_shape, steps, reps):
  """Median per-token speedup of the cached sampler over recomputing."""
  import jax  # pylint: disable=g-import-not-at-top

  from videopoet import decode  # pylint: disable=g-import-not-at-top

  _, mc, prefix, out = _request(size, "text_to_video", batch, video_shape)
  n, p = len(out), prefix.shape[1]
  steps = min(steps, n)
  cached = Ours(mc, prefix, out)
  cfg = decode.SamplingConfig(temperature=1.0, top_k=0)
  recompute = recompute_fn(mc, out, steps, cfg)
  run_re = lambda: recompute(
      cached.params, cached.prefix, cached.rng
  ).block_until_ready()
  grid = "x".join(map(str, video_shape))
  print(
      f"\n(b) config={size} text_to_video, grid {grid}:"
      f" batch {batch}, prompt {p}, output {n} tokens (buffer {p + n});"
      f" {_describe(mc)}; recompute timed over {steps} of {n} steps"
  )
  first_c, first_r = common.timed(cached.run), common.timed(run_re)  # Compile.
  print(
      f"first calls (compile + run): cached {first_c:.1f} s, recompute"
      f" {first_r:.1f} s"
  )
  # The first `steps` tokens agree: same draws, same logits up to rounding.
  same = (
      jax.device_get(cached.run())[:, :steps] == jax.device_get(run_re())
  ).mean()
  rows = []
  for r in range(reps):
    t_c = common.timed(cached.run) / n
    t_r = common.timed(run_re) / steps
    rows.append((t_c, t_r))
    print(
        f"  rep {r}: cached {t_c * 1e3:8.3f} ms/token | recompute"
        f" {t_r * 1e3:8.3f} ms/token | x{t_r / t_c:.1f}"
    )
  med = statistics.median
  speedup = med([t_r / t_c for t_c, t_r in rows])
  t_c, t_r = (med(c) for c in zip(*rows))
  print(
      f"medians over {reps} interleaved reps: cached {t_c * 1e3:.3f} ms per"
      f" token step ({n} steps, prefill included: {t_c * n:.2f} s per"
      f" request), recompute {t_r * 1e3:.3f} ms per step (whole request"
      f" ~{t_r * n:.1f} s); first {steps} tokens identical: {same:.0%}"
  )
  return speedup


# ------------------------------------------------------- (c) 8b memory.
def _shard_bytes(tree, shardings):
  """Sum over leaves of one device's shard bytes."""
  import jax  # pylint: disable=g-import-not-at-top

  total = 0
  for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)):
    total += math.prod(s.shard_shape(x.shape)) * x.dtype.itemsize
  return total


def _hlo_bytes(shape):
  """Bytes of an HLO array type such as 'f32[4096,8,128]{2,1,0}'."""
  m = re.match(r"([a-z]+)(\d+)\[([\d,]*)\]", shape)
  if not m:
    return 0
  dims = [int(d) for d in m.group(3).split(",") if d]
  return math.prod(dims) * max(int(m.group(2)) // 8, 1)


def memory_child(size):
  """Runs in a subprocess with fake devices; prints one JSON line."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from videopoet import config_lib  # pylint: disable=g-import-not-at-top
  from videopoet import decode  # pylint: disable=g-import-not-at-top
  from videopoet import sharding  # pylint: disable=g-import-not-at-top
  from videopoet.model import transformer  # pylint: disable=g-import-not-at-top

  t0 = time.perf_counter()
  b = _MEMORY_BATCH.value
  c, mc, prefix, out = _request(size, "text_to_video", 1)
  mesh_spec = dict(c.mesh)
  for kv in filter(None, _MEMORY_MESH.value.split(",")):
    k, v = kv.split("=")
    mesh_spec[k.strip()] = int(v)
  mesh = sharding.create_mesh(
      config_lib.from_config(sharding.MeshConfig, mesh_spec, "memory_mesh")
  )
  rules = list(sharding.LOGICAL_AXIS_RULES)
  p, n = prefix.shape[1], len(out)
  cache_len = p + n
  model = transformer.VideoPoetLM(mc)
  init = lambda key: model.init(
      key, jnp.zeros((1, 8), jnp.int32), jnp.array([4], jnp.int32)
  )["params"]
  with nn.logical_axis_rules(rules):
    boxed = jax.eval_shape(init, jax.random.key(0))
    param_sharding = sharding.logical_sharding(boxed, mesh)
  params = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      nn.unbox(boxed),
      param_sharding,
  )
  rows = jax.ShapeDtypeStruct(
      (b, p), jnp.int32, sharding=sharding.batch_sharding(mesh, 2, rules)
  )
  prefill = jax.jit(
      lambda params, prefix: decode.prefill(mc, params, prefix, cache_len)
  )
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    compiled = prefill.lower(params, rows).compile()
  _, cache_info = compiled.out_info
  _, cache_sharding = compiled.output_shardings
  kv_bytes, other_bytes, spec = 0, 0, None
  paths = jax.tree_util.tree_flatten_with_path(cache_info)[0]
  for (path, x), s in zip(paths, jax.tree.leaves(cache_sharding)):
    nbytes = math.prod(s.shard_shape(x.shape)) * x.dtype.itemsize
    if "attention" in jax.tree_util.keystr(path):
      kv_bytes += nbytes
      spec = f"{x.shape} {x.dtype} {s.spec}"
    else:
      other_bytes += nbytes
  pre_ma = compiled.memory_analysis()
  prefill_s = time.perf_counter() - t0

  # One decode step on that cache (donated), as `sample`'s scan runs it.
  cache = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      cache_info,
      cache_sharding,
  )
  feed = jax.ShapeDtypeStruct(
      (b,), jnp.int32, sharding=sharding.batch_sharding(mesh, 1, rules)
  )
  step = jax.jit(
      lambda params, cache, tokens: decode.decode_step(
          mc, params, cache, tokens
      ),
      donate_argnums=(1,),
  )
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    step_compiled = step.lower(params, cache, feed).compile()
  step_ma = step_compiled.memory_analysis()
  gathers = sorted(  # What the step all-gathers (FSDP: weights, per call).
      _hlo_bytes(shape)
      for shape in re.findall(r"= (\S+) all-gather\(", step_compiled.as_text())
  )
  dp = sharding.data_parallel_size(mesh, rules)
  tp = mesh.shape["tensor"]
  itemsize = jnp.dtype(mc.dtype).itemsize
  analytic = (
      2 * mc.num_layers * math.ceil(b / dp) * cache_len
      * math.ceil(mc.num_kv_heads / tp) * mc.head_dim * itemsize
  )  # fmt: skip
  ma = lambda m: dict(
      arguments=int(m.argument_size_in_bytes),
      outputs=int(m.output_size_in_bytes),
      alias=int(m.alias_size_in_bytes),
      temp=int(m.temp_size_in_bytes),
  )
  result = dict(
      size=size,
      mesh="x".join(
          f"{k}={v}" for k, v in zip(mesh.axis_names, mesh.devices.shape)
      ),
      devices=int(mesh.size),
      batch=b,
      dp=dp,
      tp=tp,
      prefix=p,
      outputs=n,
      cache_len=cache_len,
      layers=mc.num_layers,
      kv_heads=mc.num_kv_heads,
      head_dim=mc.head_dim,
      dtype=mc.dtype,
      itemsize=itemsize,
      kv_spec=spec,
      kv_bytes=kv_bytes,
      other_cache_bytes=other_bytes,
      analytic=analytic,
      params=_shard_bytes(params, param_sharding),
      n_params=int(sum(x.size for x in jax.tree.leaves(params))),
      prefill=ma(pre_ma),
      step=ma(step_ma),
      step_gathers=sum(gathers),
      step_largest_gather=gathers[-1] if gathers else 0,
      prefill_s=prefill_s,
      step_s=time.perf_counter() - t0 - prefill_s,
  )
  print("MEMORY_JSON " + json.dumps(result), flush=True)


def memory(size, devices, mesh_spec, batch):
  """(c) in a subprocess with `devices` fake CPU devices; its JSON or None."""
  return common.json_from_child(
      "benchmarks.decode_speed",
      [f"--memory_child={size}", f"--memory_mesh={mesh_spec}",
       f"--memory_batch={batch}"],
      devices,
      "MEMORY_JSON",
  )  # fmt: skip


def _gib(b):
  return b / 2**30


def print_memory(r):
  print(
      f"\n(c) {r['size']} ({r['n_params'] / 1e9:.2f}B params, {r['dtype']}"
      f" compute and cache) text_to_video: batch {r['batch']}, prompt"
      f" {r['prefix']} + output {r['outputs']} = cache of {r['cache_len']}"
      f" positions; mesh {r['mesh']} ({r['devices']} fake CPU devices,"
      f" batch over {r['dp']} ways, kv heads over {r['tp']}); compile only"
      f" (prefill {r['prefill_s']:.0f} s, decode step {r['step_s']:.0f} s)"
  )
  print(f"  cache k/v leaves (stacked layers): {r['kv_spec']}")
  print(
      f"  KV cache per device: {_gib(r['kv_bytes']):.4f} GiB from the"
      f" compiled output shardings (+ {r['other_cache_bytes']} B key_valid"
      f" and index); analytic 2*L*b/dp*S*kv/tp*Dh*bytes ="
      f" 2*{r['layers']}*{r['batch'] // r['dp']}*{r['cache_len']}"
      f"*{r['kv_heads'] // r['tp']}*{r['head_dim']}*{r['itemsize']} ="
      f" {_gib(r['analytic']):.4f} GiB (compiled/analytic"
      f" {r['kv_bytes'] / r['analytic']:.3f})"
  )
  print(f"  parameters per device: {_gib(r['params']):.4f} GiB (f32 shards)")
  print(
      f"  the decode step all-gathers {_gib(r['step_gathers']):.3f} GiB per"
      f" device per call (FSDP weights), the largest"
      f" {_gib(r['step_largest_gather']):.3f} GiB"
  )
  for name in ("prefill", "step"):
    m = r[name]
    peak = m["arguments"] + m["outputs"] - m["alias"] + m["temp"]
    print(
        f"  memory_analysis {name:>7}: arguments {_gib(m['arguments']):.3f},"
        f" outputs {_gib(m['outputs']):.3f}, alias {_gib(m['alias']):.3f},"
        f" temp {_gib(m['temp']):.3f}, peak~ {_gib(peak):.3f} GiB"
    )


def main(argv):
  del argv
  if _MEMORY_CHILD.value:
    memory_child(_MEMORY_CHILD.value)
    return
  reps, size = _REPS.value, _CONFIG.value
  video = tuple(int(x) for x in _CACHE_VIDEO.value)
  steps = _RECOMPUTE_STEPS.value
  if _QUICK.value:
    reps, size, video, steps = 1, "tiny", (2, 8, 8), 8
  from benchmarks import common  # pylint: disable=g-import-not-at-top

  print(
      f"{common.describe_device()}, {os.cpu_count()} CPUs (shared: noisy;"
      " reps interleaved, medians)"
  )
  wall = time.perf_counter()
  ours_tps, hf_tps, ratio = speed_vs_hf(
      size, _TASK.value, _BATCH.value, reps, _PEER.value, _HF_THREADS.value
  )
  speedup = math.nan
  if _CACHE.value:
    speedup = cache_vs_recompute(
        _CACHE_CONFIG.value, _CACHE_BATCH.value, video, steps, reps
    )
  mem = None
  if _MEMORY_SIZE.value:
    mem = memory(
        _MEMORY_SIZE.value, _MEMORY_DEVICES.value, _MEMORY_MESH.value,
        _MEMORY_BATCH.value,
    )  # fmt: skip
    if mem:
      print_memory(mem)
  print(f"\nwall time {time.perf_counter() - wall:.0f} s")
  print(
      f"absolute: ours {ours_tps:.1f} tokens/s, HF {hf_tps:.1f} tokens/s"
      f" (config {size}, batch {_BATCH.value})"
  )
  if _PEER.value:
    tv = importlib.metadata.version("transformers")
    print(
        f"RESULT decode_tokens_per_s_ratio_vs_hf={ratio:.3f} target>=1.0"
        f" peer=transformers-{tv}-LlamaForCausalLM.generate"
    )
  if _CACHE.value:
    print(
        f"RESULT decode_kv_cache_speedup_vs_recompute={speedup:.1f}"
        " target>=10 peer=full-forward-recompute-per-token"
    )
  if mem:  # Target: the analytic size (see the module docstring).
    bound = math.ceil(_gib(mem["analytic"]) * 1e4) / 1e4
    print(
        f"RESULT decode_{mem['size']}_kv_cache_gib_per_device="
        f"{_gib(mem['kv_bytes']):.4f} target<={bound:.4f}"
        " peer=analytic-2*L*b*S*kv*hd*2B"
    )


if __name__ == "__main__":
  app.run(main)
