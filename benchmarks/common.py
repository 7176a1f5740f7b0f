"""What the side-by-side benchmarks share: the device of the PyTorch peer,
timing, and compile-only children on many fake devices.

JAX picks its backend itself (a GPU when jaxlib has one); the peer must run
on the same kind of device, or the ratio compares a GPU with a CPU. On a GPU
both sides use their default precision for f32 work on tensor cores (TF32):
JAX's default matmul/conv precision, and torch's TF32 switches turned on
here, so neither side gets an easier arithmetic.
"""

import json
import os
import statistics
import subprocess
import sys
import time

import jax


def torch_device(torch) -> str:
  """'cuda' when JAX runs on a GPU (torch must see one too), else 'cpu'."""
  if jax.default_backend() != "gpu":
    return "cpu"
  if not torch.cuda.is_available():
    raise RuntimeError(
        "JAX runs on a GPU but torch sees none: the peer would run on the"
        " CPU and the ratio would compare different devices"
    )
  torch.backends.cuda.matmul.allow_tf32 = True
  torch.backends.cudnn.allow_tf32 = True
  torch.backends.cudnn.benchmark = True
  return "cuda"


def synchronized(torch, device: str, fn):
  """fn, followed by waiting for the device's queued work (for timing)."""
  if device != "cuda":
    return fn

  def run():
    out = fn()
    torch.cuda.synchronize()
    return out

  return run


def describe_device() -> str:
  """One line naming JAX's device, for the benchmark's header."""
  d = jax.devices()[0]
  return f"jax {jax.__version__} on {d.platform} ({d.device_kind})"


def median_seconds(fn, reps: int, warmup: int = 1) -> float:
  """Median wall time of `reps` calls of fn after `warmup` untimed ones
  (the first compiles). fn must block until its work is done."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def timed(fn) -> float:
  """Seconds one call of fn takes (fn must block until its work is done)."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def json_from_child(module: str, args: list[str], devices: int, tag: str):
  """Runs `python -m module args` on `devices` fake CPU devices and returns
  the JSON of its stdout line `<tag> {...}`, or None (printing why)."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
      env.get("XLA_FLAGS", "")
      + f" --xla_force_host_platform_device_count={devices}"
  )
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run(
      [sys.executable, "-m", module, *args],
      env=env,
      capture_output=True,
      text=True,
  )
  line = [l for l in proc.stdout.splitlines() if l.startswith(tag)]
  if proc.returncode or not line:
    tail = "\n".join(proc.stderr.splitlines()[-15:])
    print(f"{module} {' '.join(args)} failed (rc={proc.returncode}):\n{tail}")
    return None
  return json.loads(line[0].split(" ", 1)[1])


def llama_config(mc, max_len: int):
  """transformers' `LlamaConfig` of our LM's shape (`mc`: its ModelConfig):
  layers, width, heads, kv heads, head dim, SwiGLU width, vocabulary,
  untied embeddings, RMSNorm eps and RoPE theta; f32."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  return transformers.LlamaConfig(
      vocab_size=mc.vocab_size,
      hidden_size=mc.embed_dim,
      intermediate_size=mc.mlp_dim,
      num_hidden_layers=mc.num_layers,
      num_attention_heads=mc.num_heads,
      num_key_value_heads=mc.num_kv_heads,
      head_dim=mc.head_dim,
      max_position_embeddings=max(2048, max_len),
      rms_norm_eps=1e-6,
      rope_theta=mc.rope_theta,
      tie_word_embeddings=False,
      attention_bias=False,
      mlp_bias=False,
      hidden_act="silu",
      torch_dtype=torch.float32,
  )
