"""XLA:CPU options that our models need to run fast.

XLA:CPU runs the weight gradient of a 2D convolution (a contraction over
batch x height x width) through Eigen, slowly on few cores; routed through
YNNPACK's dot kernels (`--xla_cpu_experimental_ynn_fusion_type=dot`) the
same gradient is several times faster, and so are the 2D forms of the 3D
convolutions (`conv3d_xla`). Other backends ignore the flag.

`configure()` also tells glibc's malloc to keep and reuse freed memory
(`keep_freed_memory`). XLA:CPU allocates each step's temporaries afresh on
its worker threads; glibc serves those large requests from fresh mmaps
(thread arenas cannot grow past 64 MB) and unmaps them when freed, so every
step faults its temporaries' pages in again and the kernel zeroes them
(hundreds of thousands of page faults and a second of system time per
SoundStream generator step); with one reusable heap, none.

The flag must be in XLA_FLAGS before JAX creates its CPU backend: every job
calls `configure()` from its entry point (`experiments.common.run`, before
absl runs the job), as do the benchmarks and the test suite; never on import.
It does nothing where the job's backend will not be the CPU
(`cpu_backend`): JAX_PLATFORMS names another platform, or none is named and
an accelerator plugin (CUDA, ROCm, TPU) is installed. Set
VIDEOPOET_XLA_CPU_DEFAULTS=0 to leave XLA_FLAGS and malloc untouched.

`step_compiler_options(platform)` are per-program options (`jax.jit(...,
compiler_options=...)`) for the transformer's train and eval steps on CPU:
without XLA's tree-reduction rewriter (`TREE_REDUCTION_OFF`). That pass
splits every reduction along a long row (the softmax over keys, the
log-sum-exp over the vocabulary, the norms) into a reduce-window over
32-element windows and a second reduce. On CPU those are separate kernels:
another pass over each [.., s, t] or [.., V] input, and the reduction no
longer fuses into the loop that computes its input. XLA's own reduce
emitter already sums in vectorized partial sums (XLA skips the rewriter
for its newer CPU emitters for this reason). The `small` LM train step is
4% faster without it (benchmarks/lm_speed.py). Scoped to these programs:
the convolutional codecs keep XLA's default.
"""

import ctypes
import importlib.metadata
import importlib.util
import os
import sys

FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=dot",)
TREE_REDUCTION_OFF = {"xla_disable_hlo_passes": "tree_reduction_rewriter"}


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory() -> bool:
  """Makes glibc's malloc reuse freed memory: one heap, no mmap, no trim.

  All threads share the main arena (whose heap grows without limit), large
  requests come from that heap instead of their own mmaps, and freed memory
  is never handed back to the kernel: the process keeps its peak footprint,
  and a step's temporaries land on pages an earlier step already faulted in.

  Returns:
    False where the C library is not glibc (nothing changed), else True.
  """
  if not sys.platform.startswith("linux"):
    return False
  try:
    mallopt = ctypes.CDLL("libc.so.6").mallopt
  except (OSError, AttributeError):  # musl and others: no mallopt.
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  # A trim threshold of -1 is SIZE_MAX to glibc: never trim.
  settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))
  applied = [mallopt(param, value) == 1 for param, value in settings]
  return all(applied)


def cpu_backend() -> bool:
  """Whether JAX's default backend will be the CPU, decided without
  creating a backend: the first of JAX_PLATFORMS if set, else the CPU
  unless an accelerator plugin is installed."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    return platforms.split(",")[0].strip() == "cpu"
  if importlib.util.find_spec("libtpu") is not None:
    return False
  plugins = importlib.metadata.entry_points(group="jax_plugins")
  return not any(p.name != "cpu" for p in plugins)


def opted_out() -> bool:
  """VIDEOPOET_XLA_CPU_DEFAULTS=0: leave XLA's defaults and malloc alone."""
  return os.environ.get("VIDEOPOET_XLA_CPU_DEFAULTS", "1") == "0"


def configure() -> None:
  """Appends `FLAGS` to XLA_FLAGS and keeps freed memory when the backend
  will be the CPU, unless opted out."""
  if opted_out():
    return
  if not cpu_backend():
    return
  keep_freed_memory()
  current = os.environ.get("XLA_FLAGS", "")
  for flag in FLAGS:
    name = flag.split("=")[0]
    if name not in current:
      current = f"{current} {flag}".strip()
  os.environ["XLA_FLAGS"] = current


def step_compiler_options(platform: str) -> dict[str, str]:
  """`compiler_options` for a transformer step compiled for `platform`
  (a device's `.platform`): `TREE_REDUCTION_OFF` on 'cpu' unless opted out
  (VIDEOPOET_XLA_CPU_DEFAULTS=0), else none."""
  if opted_out():
    return {}
  return dict(TREE_REDUCTION_OFF) if platform == "cpu" else {}
