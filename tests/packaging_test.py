"""Packaging: our tokenizers beside Hugging Face's, jobs and their XLA flags."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_from_root(code: str) -> None:
  """Runs `code` in a fresh interpreter at the repository root; it prints ok."""
  proc = subprocess.run(
      [sys.executable, "-c", code],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == "ok"


def test_hf_tokenizers_and_ours_import_in_one_process():
  # Run from the repository root, sys.path[0], as `python -m
  # experiments.<job>` runs: Hugging Face's `tokenizers` is the installed
  # one, ours is `videopoet.tokenizers`.
  code = (
      "import tokenizers, videopoet.tokenizers\n"
      "from tokenizers import Tokenizer\n"
      "import os\n"
      "assert 'site-packages' in tokenizers.__file__, tokenizers\n"
      "assert hasattr(tokenizers, 'Tokenizer')\n"
      "paths = list(videopoet.tokenizers.__path__)\n"
      f"assert any(os.path.samefile(p, {os.path.join(ROOT, 'videopoet', 'tokenizers')!r})"
      " for p in paths), paths\n"
      "print('ok')\n"
  )
  _run_from_root(code)


def test_no_top_level_folder_shadows_an_installed_package():
  # A top-level `tokenizers/` (or any folder named like an installed
  # package) would be imported instead of it from the repository root.
  for name in ("tokenizers", "videopoet_tokenizers"):
    assert not os.path.exists(os.path.join(ROOT, name)), name


def test_imports_leave_the_jax_backend_uncreated():
  # `kernels.xla_cpu.configure()` sets XLA_FLAGS for the CPU backend; a
  # module that creates the backend at import (a module-level jnp array)
  # would silently drop them for every job importing it first: 2.6x slower
  # MAGVIT-v2 steps.
  code = (
      "from jax._src import xla_bridge\n"
      "import videopoet.tokenizers.magvit2.program\n"
      "import videopoet.tokenizers.soundstream.trainer\n"
      "import videopoet.lm_trainer, videopoet.pretokenize\n"
      "assert not xla_bridge._backends, 'backend created at import'\n"
      "print('ok')\n"
  )
  _run_from_root(code)


def test_entry_points_set_the_xla_cpu_flags():
  # Every job and benchmark that runs JAX calls `xla_cpu.configure()` (or
  # runs through `experiments.common.run`, which does) before its backend
  # exists; without it XLA:CPU convolutions run 2-3x slower and nothing says
  # so.
  uses_jax = re.compile(
      r"^\s*(import|from)\s+(jax|videopoet.tokenizers|videopoet\.(?!data\b))",
      re.M,
  )
  configures = re.compile(
      r"^\s*xla_cpu\.configure\(\)|^from experiments import common", re.M
  )
  missing = []
  for folder in ("experiments", "benchmarks", "research"):
    for name in sorted(os.listdir(os.path.join(ROOT, folder))):
      if not name.endswith(".py") or name in ("__init__.py", "common.py"):
        continue
      with open(os.path.join(ROOT, folder, name), encoding="utf-8") as f:
        source = f.read()
      if uses_jax.search(source) and not configures.search(source):
        missing.append(f"{folder}/{name}")
  assert not missing, f"no xla_cpu.configure() in {missing}"


def test_configure_keeps_freed_memory_for_the_next_step():
  # XLA:CPU frees and re-allocates each step's temporaries; unless glibc
  # keeps freed memory, every step maps fresh pages and faults them in
  # again (SoundStream base's generator step: 516k faults, 1.1 s of system
  # time per call). Here a freed 64 MB buffer, allocated again from a
  # worker thread, must land on pages already faulted in.
  code = (
      "import ctypes, resource, sys, threading\n"
      "from videopoet.kernels import xla_cpu\n"
      "if sys.argv[1] == 'on': assert xla_cpu.keep_freed_memory()\n"
      "libc = ctypes.CDLL('libc.so.6')\n"
      "libc.malloc.restype = ctypes.c_void_p\n"
      "libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)\n"
      "n = 64 << 20\n"
      "def touch():\n"
      "  p = libc.malloc(n); libc.memset(p, 1, n); libc.free(ctypes.c_void_p(p))\n"
      "def worker():\n"
      "  touch()\n"
      "  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
      "  touch()\n"
      "  print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
      "t = threading.Thread(target=worker); t.start(); t.join()\n"
  )
  faults = {}
  for mode in ("off", "on"):
    out = subprocess.run(
        [sys.executable, "-c", code, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    faults[mode] = int(out.split()[-1])
  pages = (64 << 20) // 4096
  assert faults["off"] > pages // 2, faults  # The check can tell.
  assert faults["on"] < pages // 100, faults


def test_configure_runs_from_entry_points_for_cpu_jobs_only():
  """Importing a job sets nothing; `configure()` sets the CPU flags only
  where the backend will be the CPU (JAX_PLATFORMS names another: none)."""
  code = (
      "import os, sys\n"
      "import experiments.train\n"
      "assert 'ynn' not in os.environ.get('XLA_FLAGS', ''), 'set on import'\n"
      "from videopoet.kernels import xla_cpu\n"
      "os.environ['JAX_PLATFORMS'] = 'cuda'\n"
      "assert not xla_cpu.cpu_backend()\n"
      "xla_cpu.configure()\n"
      "assert 'ynn' not in os.environ.get('XLA_FLAGS', ''), 'set for cuda'\n"
      "os.environ['JAX_PLATFORMS'] = 'cpu'\n"
      "xla_cpu.configure()\n"
      "assert 'ynn' in os.environ['XLA_FLAGS'], os.environ['XLA_FLAGS']\n"
      "print('ok')\n"
  )
  proc = subprocess.run(
      [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
      timeout=300,
      env={k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", "JAX_PLATFORMS")},
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == "ok"
