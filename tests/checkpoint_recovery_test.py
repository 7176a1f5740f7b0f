"""What a run does when its checkpoints or checkpoint settings are bad.

Runs the tiny harness job (`tests/harness_job.py`) in subprocesses, as
`tests/harness_test.py` does (the `Checkpointer` alone in-process where that
suffices):

  * `keep=0` (which would delete every checkpoint), `every_steps=0` and
    `keep=-1` are refused when the config is parsed, naming the key;
  * an incomplete or unreadable latest checkpoint (an empty step directory,
    truncated array files, a truncated `_METADATA`) is named, moved to
    `checkpoints.bad/` and the run resumes from the newest good one, on one
    process or two, to the same parameters as an uninterrupted run;
  * a checkpoint written for another model is refused with an error naming
    it, and left where it is;
  * a failed asynchronous save stops the run within a few steps, naming the
    checkpoint and the reason, and the previous checkpoint still restores.
"""

import glob
import os
import shutil

import jax
import numpy as np
import pytest

from videopoet import config_lib
from videopoet.train_lib import checkpointing
from videopoet.train_lib import harness
from tests import harness_runs

STEPS_30 = "--config.trainer.total_steps=30"
_env, _params = harness_runs.env, harness_runs.params
_steps, _jsonl_steps = harness_runs.steps, harness_runs.jsonl_steps
_run = harness_runs.run


def _truncate(pattern):
  paths = [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]
  assert paths, pattern
  for p in paths:
    with open(p, "r+b") as f:
      f.truncate(os.path.getsize(p) // 3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """An uninterrupted 30-step run: checkpoints 20, 25, 30."""
  workdir = str(tmp_path_factory.mktemp("trained"))
  _run(workdir, STEPS_30)
  assert _steps(workdir) == [20, 25, 30]
  return workdir


def _damaged_copy(trained, workdir):
  shutil.copytree(trained, workdir)
  os.remove(os.path.join(workdir, "final_params.npz"))
  return os.path.join(workdir, "checkpoints")


# ----------------------------------------------------- Checkpoint settings.


def test_keep_zero_is_refused_before_anything_runs(tmp_path):
  proc = _run(str(tmp_path), "--config.trainer.checkpoint.keep=0", ok=False)
  assert proc.returncode == 2, proc.stderr[-4000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
  error = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert error == [
      "error: config.trainer.checkpoint.keep=0 is not allowed: it must be"
      " >= 1 (0 would delete every checkpoint)"
  ], proc.stderr[-4000:]
  assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("every_steps", 0, "config.trainer.checkpoint.every_steps=0 is not"),
        ("every_steps", -5, "config.trainer.checkpoint.every_steps=-5 is not"),
        ("keep", -1, "config.trainer.checkpoint.keep=-1 is not allowed"),
    ],
)
def test_bad_checkpoint_settings_name_the_key(key, value, message):
  section = {"total_steps": 10, "checkpoint": {key: value}}
  with pytest.raises(config_lib.ConfigError, match="must be >= 1") as e:
    config_lib.from_config(harness.TrainerConfig, section, "config.trainer")
  assert str(e.value).startswith(message)


# ------------------------------------------------- Bad checkpoints at start.


def test_empty_latest_checkpoint_is_set_aside(trained, tmp_path):
  workdir = str(tmp_path / "w")
  ckpt = _damaged_copy(trained, workdir)
  shutil.rmtree(os.path.join(ckpt, "30"))
  os.mkdir(os.path.join(ckpt, "30"))  # Counted as complete before.
  proc = _run(workdir, STEPS_30)
  assert (
      f"Checkpoint {ckpt}/30 is unusable (incomplete: it has no state/,"
      " data/)" in proc.stderr
  ), proc.stderr[-4000:]
  assert "resuming from step 25" in proc.stderr
  assert "Restored step 25" in proc.stderr
  assert os.path.isdir(os.path.join(workdir, "checkpoints.bad", "30"))
  assert _steps(workdir) == [20, 25, 30]
  assert _jsonl_steps(workdir) == list(range(1, 31))
  for k, v in _params(trained).items():  # Bit-exact resume (harness_test).
    np.testing.assert_array_equal(_params(workdir)[k], v, err_msg=k)


def _files(directory):
  return sorted(
      os.path.relpath(p, directory)
      for p in glob.glob(os.path.join(directory, "**"), recursive=True)
  )


def test_truncated_checkpoints_are_set_aside_on_two_processes(
    trained, tmp_path
):
  workdir = str(tmp_path / "w")
  ckpt = _damaged_copy(trained, workdir)
  # Step 30: every array file cut short (a copy or a write cut off).
  _truncate(os.path.join(ckpt, "30", "state", "ocdbt.process_0", "d", "*"))
  # Step 25: its tree metadata cut short.
  _truncate(os.path.join(ckpt, "25", "state", "_METADATA"))
  # A checkpoint set aside by an earlier run keeps its name.
  bad = os.path.join(workdir, "checkpoints.bad")
  os.makedirs(os.path.join(bad, "30"))
  files_30 = _files(os.path.join(ckpt, "30"))
  # Both processes must agree on every verdict; process 0 moves the files.
  for err in harness_runs.run_two_processes(workdir, STEPS_30):
    assert (
        f"Checkpoint {ckpt}/30 is unusable (restoring it failed:" in err
    ), err[-4000:]
    assert f"moving it to {bad}/30.1" in err
    assert (
        f"Checkpoint {ckpt}/25 is unusable (its metadata is unreadable:" in err
    ), err[-4000:]
    assert "resuming from step 20" in err
  assert sorted(os.listdir(bad)) == ["25", "30", "30.1"]
  assert _files(os.path.join(bad, "30.1")) == files_30  # Moved, not deleted.
  assert _steps(workdir) == [20, 25, 30]
  for k, v in _params(trained).items():  # Only the all-reduce order differs.
    np.testing.assert_allclose(_params(workdir)[k], v, atol=1e-6, err_msg=k)


def _abstract(tree):
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree
  )


def test_checkpoint_of_another_model_is_refused_not_set_aside(tmp_path):
  directory = str(tmp_path / "checkpoints")
  config = checkpointing.CheckpointConfig(async_save=False)
  ckpt = checkpointing.Checkpointer(directory, config)
  ckpt.save(7, {"w": np.zeros((3, 2), np.float32)}, {"next_index": 7})
  ckpt.close()
  ckpt = checkpointing.Checkpointer(directory, config)
  other_model = {
      "w": np.zeros((3, 5), np.float32),
      "b": np.zeros((5,), np.float32),
  }
  with pytest.raises(checkpointing.CheckpointMismatchError) as e:
    ckpt.restore_latest(_abstract(other_model))
  ckpt.close()
  message = str(e.value)
  assert f"Checkpoint {directory}/7 does not match the model" in message
  assert "w has shape (3, 2) in the checkpoint, (3, 5) in this run" in message
  assert "b is in this run's state, not in the checkpoint" in message
  assert "new --workdir" in message
  assert os.listdir(directory) == ["7"]
  assert not os.path.exists(directory + ".bad")


def test_no_usable_checkpoint_starts_from_init(tmp_path):
  directory = str(tmp_path / "checkpoints")
  os.makedirs(os.path.join(directory, "4"))
  ckpt = checkpointing.Checkpointer(directory, checkpointing.CheckpointConfig())
  assert ckpt.latest_step() == 4
  assert ckpt.restore_latest(_abstract({"w": np.zeros(3, np.float32)})) is None
  assert ckpt.latest_step() is None
  ckpt.close()
  assert os.listdir(directory) == []
  assert os.listdir(directory + ".bad") == ["4"]


# ----------------------------------------------------------- Failed saves.


def test_failed_async_save_stops_the_run_within_a_few_steps(tmp_path):
  workdir = str(tmp_path)
  ckpt = os.path.join(workdir, "checkpoints")
  work = "--config.step_work=2"  # ~10 ms steps.
  proc = _run(
      workdir,
      "--config.trainer.total_steps=200",
      "--config.trainer.checkpoint.every_steps=50",
      work,
      ok=False,
      HARNESS_JOB_FAIL_SAVES_AFTER="1",  # Step 50 saves, step 100 fails.
  )
  assert proc.returncode != 0
  error = "videopoet.train_lib.checkpointing.CheckpointSaveError: "
  lines = [l for l in proc.stderr.splitlines() if l.startswith(error)]
  assert len(lines) == 1, proc.stderr[-4000:]
  assert lines[0].startswith(
      f"{error}Saving checkpoint {ckpt}/100 failed: OSError: [Errno 28] No"
      " space left on device"
  ), lines[0]
  assert f"The last complete checkpoint is step 50 in {ckpt}" in lines[0]
  # Stopped a few steps after the failed save (102-105 here), not at the
  # next save (150), where it stopped before.
  stopped_at = max(_jsonl_steps(workdir))
  assert 100 <= stopped_at < 140, stopped_at
  assert _steps(workdir) == [50]
  assert any(".orbax-checkpoint-tmp" in d for d in os.listdir(ckpt))
  # The earlier checkpoint restores; the failed save's temporary is removed.
  proc = _run(workdir, "--config.trainer.total_steps=55", work)
  assert "Restored step 50" in proc.stderr, proc.stderr[-4000:]
  assert sorted(os.listdir(ckpt)) == ["50", "55"]
