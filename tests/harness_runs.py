"""Running the harness test job (`tests/harness_job.py`) in subprocesses.

Shared by the harness tests: commands, environments (simulated device
counts), one- and two-process runs, and what a run leaves in its workdir.
"""

import json
import os
import subprocess
import sys

import numpy as np
import portpicker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "tests", "harness_config.py")


def cmd(workdir, *overrides):
  return [
      sys.executable,
      "-m",
      "tests.harness_job",
      f"--config={CONFIG}",
      f"--workdir={workdir}",
      *overrides,
  ]


def env(devices=1, **extra):
  out = dict(os.environ)
  out["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  out["JAX_PLATFORMS"] = "cpu"
  out.update(extra)
  return out


def run(workdir, *overrides, devices=1, ok=True, **extra_env):
  proc = subprocess.run(
      cmd(workdir, *overrides),
      cwd=ROOT,
      env=env(devices, **extra_env),
      capture_output=True,
      text=True,
      timeout=300,
  )
  if ok:
    assert proc.returncode == 0, proc.stderr[-4000:]
  return proc


def run_two_processes(workdir, *overrides, devices=1):
  """Two processes over gloo (`devices` each); returns their stderr."""
  port = portpicker.pick_unused_port()
  procs = [
      subprocess.Popen(
          cmd(
              workdir,
              *overrides,
              f"--coordinator_address=localhost:{port}",
              "--num_processes=2",
              f"--process_id={i}",
          ),
          cwd=ROOT,
          env=env(devices),
          stdout=subprocess.DEVNULL,
          stderr=subprocess.PIPE,
          text=True,
      )
      for i in range(2)
  ]
  errs = [p.communicate(timeout=300)[1] for p in procs]
  for p, err in zip(procs, errs):
    assert p.returncode == 0, err[-4000:]
  return errs


def params(workdir):
  with np.load(os.path.join(workdir, "final_params.npz")) as f:
    return {k: f[k] for k in f}


def steps(workdir):
  """The checkpoint steps in `workdir/checkpoints`."""
  ckpt = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(ckpt):
    return []
  return sorted(int(d) for d in os.listdir(ckpt) if d.isdigit())


def jsonl_steps(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["step"] for line in f]
