"""Tests of the training harness on a tiny job (`tests/harness_job.py`).

Runs the job in subprocesses so that kills, signals, device counts and
`jax.distributed` are real: SIGKILL mid-run resumes bit-identically, SIGTERM
saves and stops, 2 processes x 2 CPU devices over gloo reach the
single-process result, and a NaN stops the run with the last good checkpoint
intact.
"""

import json
import os
import signal
import subprocess
import threading
import time

import jax.numpy as jnp
import numpy as np
import pytest

from tests import harness_config
from tests import harness_runs
from videopoet.train_lib import data as data_lib
from videopoet.train_lib import harness

ROOT = harness_runs.ROOT
_cmd, _env, _params = harness_runs.cmd, harness_runs.env, harness_runs.params
_steps, _jsonl_steps = harness_runs.steps, harness_runs.jsonl_steps


def _run(workdir, *overrides, devices=1):
  return harness_runs.run(workdir, *overrides, devices=devices)


def _assert_identical(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted 40-step run."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  _run(workdir)
  return workdir


def _start_and_wait_for_checkpoint(workdir, min_step, *overrides):
  # The slow input pipeline (~25 ms a step) leaves time to act mid-run.
  proc = subprocess.Popen(
      _cmd(workdir, "--config.data_delay_s=0.025", *overrides),
      cwd=ROOT,
      env=_env(),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )
  deadline = time.time() + 120
  while not any(s >= min_step for s in _steps(workdir)):
    assert proc.poll() is None, proc.stderr.read()[-4000:]
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.01)
  return proc


def test_writes_workdir(reference):
  assert os.path.exists(os.path.join(reference, "config.json"))
  with open(os.path.join(reference, "config.json")) as f:
    assert json.load(f)["trainer"]["total_steps"] == 40
  assert _jsonl_steps(reference) == list(range(1, 41))
  assert _steps(reference) == [30, 35, 40]  # keep=3
  events = os.listdir(os.path.join(reference, "tensorboard"))
  assert any(e.startswith("events.out.tfevents") for e in events)


def test_sigkill_then_rerun_is_bit_identical(reference, tmp_path):
  workdir = str(tmp_path)
  proc = _start_and_wait_for_checkpoint(workdir, 10)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = max(_jsonl_steps(workdir))
  assert killed_at < 40, "the run finished before the kill"
  assert not os.path.exists(os.path.join(workdir, "final_params.npz"))
  _run(workdir)
  _assert_identical(_params(workdir), _params(reference))
  # Steps logged after the restored checkpoint were rewritten, not repeated.
  assert _jsonl_steps(workdir) == list(range(1, 41))


def test_sigterm_saves_and_stops(reference, tmp_path):
  workdir = str(tmp_path)
  proc = _start_and_wait_for_checkpoint(workdir, 5)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-4000:]
  stopped_at = max(_jsonl_steps(workdir))
  assert stopped_at < 40
  assert max(_steps(workdir)) == stopped_at  # Saved exactly where it stopped.
  assert "SIGTERM" in err
  _run(workdir)
  _assert_identical(_params(workdir), _params(reference))


def test_sigterm_stops_within_a_step_of_slow_running_steps(tmp_path):
  # Dispatch is asynchronous: without a bound, the host queues every step
  # (no log line or checkpoint in between to wait on) and a SIGTERM would
  # wait for all of them, past a preemption's grace period.
  workdir = str(tmp_path)
  proc = subprocess.Popen(
      _cmd(
          workdir,
          "--config.step_work=600",  # ~0.2 s a step on 2 cores
          "--config.trainer.total_steps=400",
          "--config.trainer.log_every=1000",
          "--config.trainer.checkpoint.every_steps=1000",
      ),
      cwd=ROOT,
      env=_env(),
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
  )
  lines = []
  reader = threading.Thread(target=lambda: lines.extend(proc.stderr))
  reader.start()
  deadline = time.time() + 120
  while not any("Training steps" in l for l in lines):
    assert proc.poll() is None, "".join(lines)[-4000:]
    assert time.time() < deadline, "training never started"
    time.sleep(0.02)
  time.sleep(5)  # compile, then some steps
  proc.send_signal(signal.SIGTERM)
  signalled = time.time()
  proc.wait(timeout=300)
  stopped_after = time.time() - signalled
  reader.join()
  assert proc.returncode == 0, "".join(lines)[-4000:]
  assert _steps(workdir), "no checkpoint saved"
  # One or two ~0.2 s steps and the save; unbounded, the queued steps took
  # ~80 s here.
  assert stopped_after < 30, stopped_after


def test_two_processes_over_gloo_match_single_process(reference, tmp_path):
  workdir = str(tmp_path / "multi")
  errs = harness_runs.run_two_processes(workdir, devices=2)
  assert "4 global cpu devices" in errs[0], errs[0][-2000:]
  multi = _params(workdir)
  single = _params(reference)
  for k in single:  # Same batches; only the all-reduce order differs.
    np.testing.assert_allclose(multi[k], single[k], atol=1e-6, err_msg=k)

  # The 2-process checkpoint restores in one process on one device.
  os.remove(os.path.join(workdir, "final_params.npz"))
  proc = _run(workdir)
  assert "Restored step 40" in proc.stderr
  _assert_identical(_params(workdir), multi)


def test_restore_onto_another_mesh(reference, tmp_path):
  """Train 20 steps on 8 devices (data x fsdp x tensor), finish on 1."""
  workdir = str(tmp_path)
  _run(
      workdir,
      "--config.trainer.total_steps=20",
      "--config.mesh.data=2",
      "--config.mesh.fsdp=2",
      "--config.mesh.tensor=2",
      devices=8,
  )
  proc = _run(workdir)
  assert "Restored step 20" in proc.stderr
  for k, v in _params(reference).items():
    np.testing.assert_allclose(_params(workdir)[k], v, atol=1e-5, err_msg=k)


def test_nan_stops_with_step_and_metric(tmp_path):
  # No shuffle: the batch of step k holds records 8(k-1)..8k-1.
  proc = subprocess.run(
      _cmd(
          str(tmp_path),
          "--config.nan_records=(60,)",
          "--config.trainer.log_every=3",
      ),
      cwd=ROOT,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert proc.returncode != 0
  assert "train/loss=nan at step 8" in proc.stderr, proc.stderr[-3000:]
  assert "last good checkpoint is step 5" in proc.stderr
  assert _steps(str(tmp_path)) == [5]
  # The good checkpoint restores: a rerun fails again at step 8, not before.
  proc = subprocess.run(
      _cmd(str(tmp_path), "--config.nan_records=(60,)"),
      cwd=ROOT,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert "Restored step 5" in proc.stderr
  assert "at step 8" in proc.stderr


def test_program_compiler_options_reach_the_compiler(tmp_path):
  # In process: an option XLA does not know fails the step's compile, by
  # name, so the harness hands `Program.compiler_options` to XLA.
  config = harness_config.get_config()
  config.trainer.total_steps = 2
  trainer, mesh = harness.setup(config, str(tmp_path))
  records = [{"x": np.ones(4, np.float32)}] * 8
  program = harness.Program(
      init=lambda rng: {"w": jnp.zeros((4,), jnp.float32)},
      step=lambda state, batch, rng: (
          state, {"train/loss": jnp.sum(state["w"] * batch["x"])}
      ),
      data=data_lib.batched_iterator(records, global_batch_size=8, seed=0),
      compiler_options={"xla_no_such_option": "1"},
  )
  with pytest.raises(Exception, match="xla_no_such_option"):
    harness.train(trainer, mesh, str(tmp_path), program)
