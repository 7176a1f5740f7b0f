"""End-to-end `train` job on random token records: steps run per task shape,
per-task metrics are written, and a rerun resumes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from videopoet import lm_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(workdir, *overrides):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [
          sys.executable, "-m", "experiments.train",
          "--config=configs/videopoet.py:tiny", f"--workdir={workdir}",
          "--config.data.source=random", "--config.data.batch_size=2",
          "--config.data.random_size=8", "--config.data.eval_batches=1",
          "--config.trainer.log_every=1", "--config.trainer.eval_every=2",
          "--config.trainer.checkpoint.every_steps=2", *overrides,
      ],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc


def test_train_two_steps_then_resume(tmp_path):
  workdir = str(tmp_path / "lm")
  tasks = "(('text_to_video', 1.0), ('text_to_image', 1.0), ('video_to_audio', 1.0))"
  _run(
      workdir,
      "--config.trainer.total_steps=2",
      f"--config.mixture.weights={tasks}",
  )
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  keys = set().union(*rows)
  assert any(k.startswith("train/") and k.endswith("/accuracy") for k in keys)
  for t in ("text_to_video", "text_to_image", "video_to_audio"):
    assert f"val/{t}/loss" in keys
  assert all(np.isfinite(r["train/loss"]) for r in rows if "train/loss" in r)
  # Resume: two more steps from the step-2 checkpoint.
  proc = _run(
      workdir,
      "--config.trainer.total_steps=4",
      f"--config.mixture.weights={tasks}",
  )
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints")))[-1] == "4"
  assert "Training steps 3..4" in proc.stderr


def test_schedule_is_image_heavy_first():
  mix = lm_data.MixtureConfig(
      weights=(
          ("text_to_image", 1.0),
          ("text_to_video", 1.0),
          ("inpainting", 2.0),
      )
  )
  early, late = mix.probabilities(0, 100), mix.probabilities(30, 100)
  np.testing.assert_allclose(early, [0.9, 0.1 / 3, 0.2 / 3])
  np.testing.assert_allclose(late, [0.1, 0.3, 0.6])
  it = lm_data.TaskMixture({}, mix, 1000, seed=0)
  picks = [it.task_at(s) for s in range(1000)]
  first = np.mean([p == "text_to_image" for p in picks[:250]])
  rest = np.mean([p == "text_to_image" for p in picks[250:]])
  assert 0.85 < first < 0.95 and 0.07 < rest < 0.13
