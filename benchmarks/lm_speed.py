"""LM speed and memory: our train step against its matmul roofline and HF Llama.

  python -m benchmarks.lm_speed [--config=small] [--reps=5] [--quick]

Ours: the train step of `videopoet/lm_trainer.py` exactly as the harness
jits it (`make_program(config).step`: forward, chunked cross-entropy,
backward, global-norm clip, AdamW; state donated), on one batch of
`--task`'s shape built by the trainer itself (random-token records).
Default `--config=small --task=unconditional_video`: batch 8 x 324 tokens,
323 targets (every next token, as a causal LM scores them), f32.

  (a) Model FLOPs per second as a fraction of the same process's f32 matmul
      rate (`jnp.dot` of two `--matmul_n`^2 matrices, timed in the same
      repetitions). Model FLOPs per step (PaLM appendix B convention):
        6 * N * tokens + 12 * L * H * Dh * S * tokens
      N = matmul parameters: every block weight + the unembedding (the
      embedding is a lookup, not counted); the attention term counts
      QK^T and PV forward + backward over all S keys (the causal / prefix
      mask is not discounted). Rematerialization is not counted. The
      compiled program's own `cost_analysis()` FLOPs are printed too.
  (b) Step time against Hugging Face `transformers`' `LlamaForCausalLM` of
      the same shape (layers, width, heads, kv heads, head dim, SwiGLU
      width, vocab, untied embeddings, RMSNorm eps, RoPE theta, batch,
      sequence length; random weights, no download), f32, PyTorch on the
      same CPU: forward with `labels` (its own shifted CE over all
      positions), backward, `clip_grad_norm_(1.0)`, `torch.optim.AdamW`
      (b2 0.98, wd 0.01) step. Printed as our time / HF time.
  (c) For `--memory_sizes` (default 1b, 8b) x `--memory_impls` (attention
      implementations, default 'xla' (materialized [b, h, s, s] logits)
      and 'blockwise' (flash-style, `videopoet/model/attention.py`)) x
      `--memory_shapes`: bytes per device of the compiled train step on a
      `--memory_devices`-device mesh (fake CPU devices,
      `--xla_force_host_platform_device_count`, in a subprocess), mesh
      `--memory_mesh` (default data=1, fsdp=256, tensor=1: the configs' own
      FSDP layout), global batch of the config (1,024). A shape is a task
      (its sequence at the config's 17x128x128 clips), or TASK/FRAMES for
      clips of FRAMES frames: default `stylization` (the longest task, 2,632
      tokens), `text_to_video` (the paper's 1,280 video tokens plus the
      prefix: 1,350) and `text_to_video/77` (4x the video tokens: 5,190).
      Parameters and optimizer state: shard sizes of the compiled program's
      input shardings; arguments / outputs / temporaries: its
      `memory_analysis()`. Temporaries hold the activations kept for the
      backward pass, gradients and scratch; "activations~" is temporaries
      minus one f32 gradient shard per parameter (an estimate). With
      blockwise attention most of what is left is the layer scan's stacked
      block inputs (bf16 [layers, b, s, d], kept for the rematerialized
      backward) and an f32 copy of them that XLA:CPU alone makes (its
      float-normalization-bf16 pass widens the bf16 stack's dynamic-update-
      slice, and loop-invariant code motion then hoists the convert of the
      whole stack); `XLA_FLAGS=--xla_disable_hlo_passes=while-loop-invariant-
      code-motion` before the command (the children inherit it) shows the
      table without the hoisted copy.
      `--memory_topology=v5e:16x16` (any `jax.experimental.topologies`
      name) compiles for that TPU slice instead, ahead of time on this CPU
      host, with the TPU compiler of `libtpu` (`pip install
      'libtpu==0.0.42.*'`, the version `jax[tpu]` 0.10.2 pins; no TPU is
      used or needed): the accelerator's own memory plan, without XLA:CPU's
      f32 copies. `auto` attention there is the splash kernel.

Repetitions interleave matmul, ours and HF so all see the same machine load
(the CPU may be shared); figures are medians over `--reps` of per-repetition
ratios. Ends with `RESULT` lines (docs/design.md); a benchmark never fails.
"""

import importlib.metadata
import json
import math
import os
import statistics
import time

from absl import app
from absl import flags

from videopoet.kernels import xla_cpu

xla_cpu.configure()  # Before JAX creates its CPU backend.

from benchmarks import common  # pylint: disable=g-import-not-at-top,g-bad-import-order

_CONFIG = flags.DEFINE_string("config", "small", "configs/videopoet.py size.")
_TASK = flags.DEFINE_string(
    "task", "unconditional_video", "Task whose batch shape is timed."
)
_BATCH = flags.DEFINE_integer("batch", 0, "Batch size (0: the config's).")
_REPS = flags.DEFINE_integer("reps", 5, "Timed repetitions (median).")
_MATMUL_N = flags.DEFINE_integer(
    "matmul_n", 2048, "Matmul rate: n x n @ n x n."
)
_PEER = flags.DEFINE_bool("peer", True, "Time HF LlamaForCausalLM.")
_SPEED = flags.DEFINE_bool("speed", True, "Run (a) and (b); else (c) only.")
_MEMORY_SIZES = flags.DEFINE_list(
    "memory_sizes", ["1b", "8b"], "Sizes for the memory table ('' = none)."
)
_MEMORY_DEVICES = flags.DEFINE_integer("memory_devices", 256, "Fake devices.")
_MEMORY_MESH = flags.DEFINE_string(
    "memory_mesh", "data=1,fsdp=-1,tensor=1", "Mesh of the memory table."
)
_MEMORY_SHAPES = flags.DEFINE_list(
    "memory_shapes",
    ["stylization", "text_to_video", "text_to_video/77"],
    "Memory table sequences: TASK or TASK/FRAMES (clips of FRAMES frames).",
)
_MEMORY_IMPLS = flags.DEFINE_list(
    "memory_impls",
    ["xla", "blockwise"],
    "Attention implementations of the memory table (attention.IMPLS).",
)
_ATTENTION = flags.DEFINE_string(
    "attention_impl", "", "config.model.attention_impl ('' = the config's)."
)
_QUICK = flags.DEFINE_bool(
    "quick", False, "Smoke run: 2 reps, 1024 matmul, memory table for 1b only."
)
_MEMORY_REMAT = flags.DEFINE_string(
    "memory_remat",
    "",
    "config.model.remat of the memory table ('' = the config's, 'full' for"
    " 1b and 8b; 'nested' keeps O(sqrt(layers)) block inputs).",
)
_MEMORY_TOPOLOGY = flags.DEFINE_string(
    "memory_topology",
    "",
    "Compile the memory table for this TPU topology (e.g. 'v5e:16x16', 256"
    " chips; needs libtpu, no TPU) instead of fake CPU devices.",
)
_MEMORY_CHILD = flags.DEFINE_string(
    "memory_child", "", "Internal: print one size's memory JSON and exit."
)
_MEMORY_SHAPE = flags.DEFINE_string(
    "memory_shape", "stylization", "Internal: the memory child's shape."
)

_JAX_NOISE = ("absl::InitializeLog", "cpu_feature_guard", "AVX", "rebuild")


def _params_bytes_per_device(tree, shardings):
  """Sum over leaves of one device's shard bytes."""
  import jax  # pylint: disable=g-import-not-at-top

  total = 0
  for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)):
    total += math.prod(s.shard_shape(x.shape)) * x.dtype.itemsize
  return total


def _setup(
    size, task, batch_size, mesh_spec=None, attention_impl="", frames=0,
    devices=None, remat="",
):  # fmt: skip
  """(config, program, step_fn, abstract state, state sharding, batch, mesh);
  the mesh over `devices` (default: all)."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top

  from configs import videopoet as videopoet_config  # pylint: disable=g-import-not-at-top
  from videopoet import config_lib  # pylint: disable=g-import-not-at-top
  from videopoet import lm_trainer  # pylint: disable=g-import-not-at-top
  from videopoet import sharding  # pylint: disable=g-import-not-at-top
  from videopoet.train_lib import checkpointing  # pylint: disable=g-import-not-at-top

  config = videopoet_config.get_config(size)
  config.data.source = "random"
  config.data.eval_batches = 0
  if batch_size:
    config.data.batch_size = batch_size
  if attention_impl:
    config.model["attention_impl"] = attention_impl
  if remat:
    config.model["remat"] = remat
  if frames:
    config.data.random["num_frames"] = frames
  # Records are drawn lazily; the iterator wants one global batch of them.
  config.data.random_size = config.data.batch_size
  mixture = dict(config.mixture.to_dict())
  mixture["weights"] = ((task, 1.0),)  # Only this task's shape is built.
  config.mixture = mixture
  if mesh_spec:
    config.mesh = mesh_spec
  mesh = sharding.create_mesh(
      config_lib.from_config(sharding.MeshConfig, config.mesh, "config.mesh"),
      devices,
  )
  config.trainer.total_steps = 1000
  program = lm_trainer.make_program(lm_trainer.parse(config), mesh)
  rules = list(sharding.LOGICAL_AXIS_RULES)
  rng = jax.random.key(0)
  with nn.logical_axis_rules(rules):
    boxed = jax.eval_shape(program.init, rng)
    state_sharding = sharding.logical_sharding(boxed, mesh)
  abstract = checkpointing.abstract_like(nn.unbox(boxed), state_sharding)

  def step_fn(state, batch):  # As harness.train jits it.
    with nn.logical_axis_rules(rules):
      return program.step(state, batch, rng, task)

  step_fn = jax.jit(
      step_fn,
      out_shardings=(state_sharding, sharding.replicated(mesh)),
      donate_argnums=(0,),
      compiler_options=program.compiler_options,
  )
  return config, program, step_fn, abstract, state_sharding, mesh, rules


# ----------------------------------------------------------- (c) Memory.
def _shape(spec):
  """'TASK' or 'TASK/FRAMES' -> (task, frames or 0)."""
  task, _, frames = spec.partition("/")
  return task, int(frames or 0)


def memory_child(size, impl):
  """Runs in a subprocess with fake devices; prints one JSON line."""
  import jax  # pylint: disable=g-import-not-at-top

  from videopoet import sharding  # pylint: disable=g-import-not-at-top

  mesh_spec = {}
  for kv in _MEMORY_MESH.value.split(","):
    k, v = kv.split("=")
    mesh_spec[k.strip()] = int(v)
  t0 = time.perf_counter()
  devices = None
  if _MEMORY_TOPOLOGY.value:
    from jax.experimental import topologies  # pylint: disable=g-import-not-at-top

    devices = topologies.get_topology_desc(
        platform="tpu", topology_name=_MEMORY_TOPOLOGY.value
    ).devices
  task, frames = _shape(_MEMORY_SHAPE.value)
  config, program, step_fn, abstract, _, mesh, rules = _setup(
      size, task, 0, mesh_spec, impl, frames, devices, _MEMORY_REMAT.value
  )
  example = program.groups[task]
  batch = {
      k: jax.ShapeDtypeStruct(
          v.shape,
          v.dtype,
          sharding=sharding.batch_sharding(mesh, v.ndim, rules),
      )
      for k, v in example.items()
  }
  with jax.set_mesh(mesh):
    compiled = step_fn.lower(abstract, batch).compile()
  ma = compiled.memory_analysis()
  in_shard = compiled.input_shardings[0][0]
  params = _params_bytes_per_device(abstract["params"], in_shard["params"])
  opt = _params_bytes_per_device(abstract["opt_state"], in_shard["opt_state"])
  n_params = sum(x.size for x in jax.tree.leaves(abstract["params"]))
  batch_bytes = _params_bytes_per_device(
      batch, jax.tree.map(lambda b: b.sharding, batch)
  )
  grads = sum(  # One f32 gradient shard per parameter.
      math.prod(s.shard_shape(x.shape)) * 4
      for x, s in zip(
          jax.tree.leaves(abstract["params"]),
          jax.tree.leaves(in_shard["params"]),
      )
  )
  out = dict(
      size=size,
      impl=impl,
      shape=_MEMORY_SHAPE.value,
      mesh="x".join(
          f"{k}={v}" for k, v in zip(mesh.axis_names, mesh.devices.shape)
      ),
      devices=f"{mesh.devices.size} {mesh.devices.flat[0].device_kind}",
      batch=int(example["inputs"].shape[0]),
      seq=int(example["inputs"].shape[1]),
      n_params=int(n_params),
      params=params,
      opt=opt,
      batch_bytes=batch_bytes,
      arguments=int(ma.argument_size_in_bytes),
      outputs=int(ma.output_size_in_bytes),
      alias=int(ma.alias_size_in_bytes),
      temp=int(ma.temp_size_in_bytes),
      grads=grads,
      dtype=config.model.dtype,
      remat=config.model.remat,
      compile_s=time.perf_counter() - t0,
  )
  print("MEMORY_JSON " + json.dumps(out), flush=True)


def memory_table(sizes, impls, shapes):
  rows = []
  for shape in shapes:
    for size in sizes:
      for impl in impls:
        row = common.json_from_child(
            "benchmarks.lm_speed",
            [f"--memory_child={size}", f"--attention_impl={impl}",
             f"--memory_mesh={_MEMORY_MESH.value}",
             f"--memory_shape={shape}",
             f"--memory_topology={_MEMORY_TOPOLOGY.value}",
             f"--memory_remat={_MEMORY_REMAT.value}"],
            _MEMORY_DEVICES.value,
            "MEMORY_JSON",
        )  # fmt: skip
        if row is not None:
          rows.append(row)
          print_memory_table([row], header=len(rows) == 1)
  return rows


def _gib(b):
  return f"{b / 2**30:8.3f}"


def print_memory_table(rows, header=True):
  """Rows as they come (`header`: the table's head first)."""
  if not rows:
    return
  r0 = rows[0]
  if header:
    print(
        f"\nMemory per device, compiled train step ({r0['mesh']},"
        f" {r0['devices']} devices, global batch {r0['batch']}), GiB:"
    )
    print(
        "shape                       | size | attention | params(B) |"
        " dtype/remat    | params | optimizer | batch | arguments | outputs |"
        " temp (act+grads+scratch) | activations~ |"
        " peak~ (args+out-alias+temp)"
    )
  for r in rows:
    peak = r["arguments"] + r["outputs"] - r["alias"] + r["temp"]
    shape = f"{r['shape']} x {r['seq']}"
    print(
        f"{shape:<27} | {r['size']:>4} | {r['impl']:<9} |"
        f" {r['n_params'] / 1e9:9.2f} |"
        f" {r['dtype'][:4]}/{r['remat']:<9} | {_gib(r['params'])} |"
        f" {_gib(r['opt'])}  | {_gib(r['batch_bytes'])[3:]} |"
        f" {_gib(r['arguments'])}  | {_gib(r['outputs'])}|"
        f" {_gib(r['temp'])}                 |"
        f" {_gib(r['temp'] - r['grads'])}     | {_gib(peak)}"
    )
  for r in rows:
    print(
        f"memory lm_{r['size']}_bytes_per_device attention={r['impl']}"
        f" shape={r['shape']} seq={r['seq']} params={r['params']}"
        f" optimizer={r['opt']} temp={r['temp']}"
        f" activations_est={r['temp'] - r['grads']} peak_est={peak}"
        f" mesh={r['mesh']} (compile {r['compile_s']:.0f}s)"
    )


def print_memory_results(rows):
  """RESULT lines: the temporaries' ratio xla / blockwise per size and
  shape, and whether each blockwise row's peak fits in 16 GiB."""
  by = {(r["size"], r["shape"], r["impl"]): r for r in rows}
  for (size, shape, impl), r in by.items():
    if impl == "xla":
      continue
    peak = r["arguments"] + r["outputs"] - r["alias"] + r["temp"]
    ref = by.get((size, shape, "xla"))
    ratio = ref["temp"] / r["temp"] if ref else math.nan
    print(
        f"RESULT lm_{size}_temp_ratio_xla_over_{impl}[{shape}]={ratio:.2f}"
        f" target>=4 temp={r['temp'] / 2**30:.2f}GiB"
        f" peak={peak / 2**30:.2f}GiB fits_16GiB={peak <= 16 * 2**30}"
    )


# ------------------------------------------------------- (a), (b) Speed.
def model_flops(mc, batch, seq, n_targets):
  """6 N T + 12 L H Dh S T (see the module docstring); N excludes embedding."""
  d, f, h, kv, hd, layers = (
      mc.embed_dim, mc.mlp_dim, mc.num_heads, mc.num_kv_heads, mc.head_dim,
      mc.num_layers,
  )  # fmt: skip
  per_layer = d * h * hd * 2 + d * kv * hd * 2 + 3 * d * f
  tokens = batch * seq
  dense = 6 * layers * per_layer * tokens
  unembed = 6 * d * mc.vocab_size * batch * n_targets
  attention = 12 * layers * h * hd * seq * tokens
  return dense + unembed + attention, layers * per_layer + d * mc.vocab_size


class Ours:
  """Our jitted, donated train step on one fixed batch."""

  def __init__(self, size, task, batch_size):
    import jax  # pylint: disable=g-import-not-at-top

    from videopoet import lm_trainer  # pylint: disable=g-import-not-at-top

    config, program, step_fn, abstract, state_sharding, mesh, rules = _setup(
        size, task, batch_size, attention_impl=_ATTENTION.value
    )
    del rules
    self.config = config
    self.mc = lm_trainer.make_model_config(
        config, lm_trainer.make_vocab(config)
    )
    self.batch_np = program.groups[task]
    self.mesh = mesh
    with jax.set_mesh(mesh):
      self.batch = jax.device_put(self.batch_np)
      init = jax.jit(lambda r: program.init(r), out_shardings=state_sharding)
      import flax.linen as nn  # pylint: disable=g-import-not-at-top
      from videopoet import sharding  # pylint: disable=g-import-not-at-top

      with nn.logical_axis_rules(list(sharding.LOGICAL_AXIS_RULES)):
        self.state = nn.unbox(init(jax.random.key(0)))
      self.compiled = step_fn.lower(abstract, self.batch).compile()
    cost = self.compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    self.xla_flops = (
        float(cost.get("flops", float("nan"))) if cost else math.nan
    )
    self.n_params = sum(x.size for x in jax.tree.leaves(self.state["params"]))

  def step(self):
    import jax  # pylint: disable=g-import-not-at-top

    self.state, m = self.compiled(self.state, self.batch)
    jax.block_until_ready((self.state, m))
    return m


class HFLlama:
  """transformers' LlamaForCausalLM of our shape, f32, AdamW."""

  def __init__(self, mc, inputs, lr=1e-3):
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top

    torch.manual_seed(0)
    cfg = common.llama_config(mc, inputs.shape[1])

    self.device = common.torch_device(torch)
    self.model = (
        transformers.LlamaForCausalLM(cfg).float().train().to(self.device)
    )
    self.attn = self.model.config._attn_implementation  # pylint: disable=protected-access
    self.opt = torch.optim.AdamW(
        self.model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01
    )
    self.ids = torch.from_numpy(inputs.astype("int64")).to(self.device)
    self.compute_dtype = mc.dtype
    self.n_params = sum(p.numel() for p in self.model.parameters())
    self.torch = torch

  def step(self):
    # Our bf16 configs keep f32 parameters and compute in bf16: autocast.
    with self.torch.autocast(
        self.device,
        dtype=self.torch.bfloat16,
        enabled=self.compute_dtype == "bfloat16",
    ):
      loss = self.model(input_ids=self.ids, labels=self.ids).loss
    loss.backward()
    self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
    self.opt.step()
    self.opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def speed(size, task, batch_size, reps, matmul_n, peer):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from videopoet.model import attention  # pylint: disable=g-import-not-at-top

  ours = Ours(size, task, batch_size)
  mc, b = ours.mc, ours.batch_np
  bsz, seq = b["inputs"].shape
  n_targets = b["targets"].shape[1]
  flops, n_matmul = model_flops(mc, bsz, seq, n_targets)
  print(
      f"config={size} task={task}: batch {bsz} x {seq} tokens, {n_targets}"
      f" targets, {mc.num_layers} layers x {mc.embed_dim}, heads"
      f" {mc.num_heads}/{mc.num_kv_heads} x {mc.head_dim}, mlp {mc.mlp_dim},"
      f" vocab {mc.vocab_size}, dtype {mc.dtype}, remat {mc.remat},"
      f" vocab_chunks {mc.vocab_chunks}, mlp_chunks {mc.mlp_chunks}, attention"
      f" {mc.attention_impl}"
      f" ({attention.resolve(mc.attention_impl, seq, seq)}), microbatches"
      f" {ours.config.optimizer.microbatches} (gradient accumulation, same"
      f" math); params {ours.n_params / 1e6:.2f}M"
      f" (matmul {n_matmul / 1e6:.2f}M)"
  )
  print(
      f"model FLOPs/step {flops / 1e9:.2f} G (6NT + 12LHDhST); XLA"
      f" cost_analysis {ours.xla_flops / 1e9:.2f} G"
  )

  x = jax.random.normal(jax.random.key(1), (matmul_n, matmul_n), jnp.float32)
  y = jax.random.normal(jax.random.key(2), (matmul_n, matmul_n), jnp.float32)
  dot = jax.jit(jnp.dot)
  mm = lambda: dot(x, y).block_until_ready()
  mm_flops = 2 * matmul_n**3

  hf = None
  if peer:
    hf = HFLlama(mc, np.asarray(b["inputs"]))
    print(
        f"peer: transformers {importlib.metadata.version('transformers')}"
        f" LlamaForCausalLM ({hf.attn} attention), torch"
        f" {importlib.metadata.version('torch')} ({hf.device}), threads"
        f" {hf.torch.get_num_threads()}; params {hf.n_params / 1e6:.2f}M"
    )
  # Warm-up (compile, allocator, first-step optimizer state).
  for _ in range(2):
    mm()
    ours.step()
    if hf:
      hf.step()
  rows = []
  for r in range(reps):  # Interleaved: all three see the same load.
    t_mm = common.timed(mm)
    t_ours = common.timed(ours.step)
    t_hf = common.timed(hf.step) if hf else math.nan
    rows.append((t_mm, t_ours, t_hf))
    print(
        f"  rep {r}: matmul {mm_flops / t_mm / 1e9:7.1f} GFLOP/s | ours"
        f" {t_ours * 1e3:8.1f} ms ({flops / t_ours / 1e9:6.1f} GFLOP/s) | HF"
        f" {t_hf * 1e3:8.1f} ms"
    )
  med = lambda xs: statistics.median(xs)
  frac = med([(flops / t_o) / (mm_flops / t_m) for t_m, t_o, _ in rows])
  ratio = med([t_o / t_h for _, t_o, t_h in rows]) if hf else math.nan
  t_mm, t_ours, t_hf = (med(c) for c in zip(*rows))
  print(
      f"medians over {reps} interleaved reps: matmul"
      f" {mm_flops / t_mm / 1e9:.1f} GFLOP/s ({matmul_n}^2 f32), ours"
      f" {t_ours * 1e3:.1f} ms/step ({flops / t_ours / 1e9:.1f} model"
      f" GFLOP/s), HF {t_hf * 1e3:.1f} ms/step"
  )
  return frac, ratio


def main(argv):
  del argv
  if _MEMORY_CHILD.value:
    memory_child(_MEMORY_CHILD.value, _ATTENTION.value)
    return
  reps, matmul_n = _REPS.value, _MATMUL_N.value
  sizes = [s for s in _MEMORY_SIZES.value if s]
  if _QUICK.value:
    reps, matmul_n, sizes = 2, 1024, sizes[:1]
  import jax  # pylint: disable=g-import-not-at-top

  if _MEMORY_TOPOLOGY.value:
    # libtpu admits one process at a time: only the children load it.
    jax.config.update("jax_platforms", "cpu")

  print(
      f"jax {jax.__version__} on {jax.devices()[0].platform} x"
      f" {jax.device_count()}, {os.cpu_count()} CPUs (shared: noisy; reps"
      " interleaved, medians)"
  )
  frac = ratio = math.nan
  if _SPEED.value:
    frac, ratio = speed(
        _CONFIG.value, _TASK.value, _BATCH.value, reps, matmul_n, _PEER.value
    )
  shapes = _MEMORY_SHAPES.value[:1] if _QUICK.value else _MEMORY_SHAPES.value
  rows = memory_table(sizes, _MEMORY_IMPLS.value, shapes) if sizes else []
  print_memory_results(rows)
  size = _CONFIG.value
  if not _SPEED.value:
    return
  print(
      f"RESULT lm_mfu_fraction_of_matmul_{size}={frac:.3f} target>=0.5"
      " peer=same-process-f32-matmul"
  )
  if _PEER.value:
    tv = importlib.metadata.version("transformers")
    tt = importlib.metadata.version("torch").split("+")[0]
    print(
        f"RESULT lm_train_step_ratio_vs_hf_llama={ratio:.3f} target<=1.0"
        f" peer=transformers-{tv}-LlamaForCausalLM-torch-{tt}"
    )


if __name__ == "__main__":
  app.run(main)
