"""End-to-end tests of the data jobs, run as a user runs them."""

import json
import os
import subprocess
import sys

import av
import numpy as np
import pytest

from videopoet.data import media

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _job(*args):
  return subprocess.run(
      [sys.executable, "-m", *args],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
  )


def test_build_data_then_export_clips(tmp_path):
  data_dir, out_dir = str(tmp_path / "data"), str(tmp_path / "clips")
  proc = _job(
      "experiments.build_data",
      "--config=configs/synth_av.py:tiny",
      f"--config.data.data_dir={data_dir}",
      "--config.dataset.train_size=6",
      "--config.dataset.validation_size=2",
      "--config.dataset.test_size=2",
      "--config.dataset.test_heldout_size=2",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads(proc.stdout)
  assert summary["examples"] == {
      "train": 6,
      "validation": 2,
      "test": 2,
      "test_heldout": 2,
  }
  proc = _job(
      "experiments.export_clips",
      f"--config.data.data_dir={data_dir}",
      f"--out_dir={out_dir}",
      "--config.num=2",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(out_dir, "captions.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["file"] for r in rows] == ["train_0.mp4", "train_1.mp4"]
  assert all(r["caption"] for r in rows)
  with av.open(os.path.join(out_dir, "train_0.mp4")) as c:
    kinds = sorted(s.type for s in c.streams)
    assert kinds == ["audio", "video"]
    assert sum(1 for _ in c.decode(video=0)) == 17


@pytest.mark.parametrize(
    "flag, key",
    [
        ("--config.datset.train_size=3", "datset"),
        ("--config.dataset.trian_size=3", "trian_size"),
    ],
)
def test_build_data_config_typo_names_the_key(tmp_path, flag, key):
  proc = _job(
      "experiments.build_data",
      "--config=configs/synth_av.py",
      f"--config.data.data_dir={tmp_path}",
      flag,
  )
  assert proc.returncode == 2
  assert f"'{key}'" in proc.stderr, proc.stderr[-2000:]


def test_build_data_bad_value_names_the_key(tmp_path):
  proc = _job(
      "experiments.build_data",
      "--config=configs/synth_av.py",
      f"--config.data.data_dir={tmp_path}",
      "--config.dataset.resolution=8",
  )
  assert proc.returncode == 2
  assert "resolution" in proc.stderr, proc.stderr[-2000:]


def test_video_folder_needs_manual_dir(tmp_path):
  proc = _job(
      "experiments.build_data",
      "--config=configs/video_folder.py",
      f"--config.data.data_dir={tmp_path}",
  )
  assert proc.returncode == 2
  assert "config.data.manual_dir is required" in proc.stderr


def _one_error_line(stderr: str) -> str:
  """The job's error line; there is exactly one and no traceback."""
  assert "Traceback" not in stderr, stderr[-3000:]
  errors = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, stderr[-3000:]
  return errors[0]


def test_export_clips_from_an_empty_data_dir_fails_clearly(tmp_path):
  empty, out_dir = tmp_path / "empty", tmp_path / "clips"
  empty.mkdir()
  proc = _job(
      "experiments.export_clips",
      f"--config.data.data_dir={empty}",
      f"--out_dir={out_dir}",
  )
  assert proc.returncode == 2, proc.stderr[-3000:]
  error = _one_error_line(proc.stderr)
  assert f"data_dir {empty} " in error
  assert (
      "python -m experiments.build_data --config=configs/synth_av.py"
      f" --config.data.data_dir={empty}" in error
  )
  assert not os.listdir(empty) and not out_dir.exists()


def test_build_data_refuses_a_changed_config_until_overwrite(tmp_path):
  sizes = (
      "--config.dataset.train_size=2",
      "--config.dataset.validation_size=1",
      "--config.dataset.test_size=1",
      "--config.dataset.test_heldout_size=0",
  )
  args = (
      "experiments.build_data",
      "--config=configs/synth_av.py",
      f"--config.data.data_dir={tmp_path}",
      *sizes,
  )
  assert _job(*args).returncode == 0
  proc = _job(*args, "--config.dataset.seed=3")
  assert proc.returncode == 2
  error = _one_error_line(proc.stderr)
  assert "another config (seed: 0 -> 3)" in error and "--overwrite" in error
  proc = _job(*args, "--config.dataset.seed=3", "--overwrite")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not json.loads(proc.stdout)["reused"]


def test_build_data_video_folder_notices_an_added_clip(tmp_path):
  folder, data_dir = tmp_path / "clips", tmp_path / "data"
  video = np.zeros((10, 16, 16, 3), np.uint8)
  media.write_mp4(str(folder / "a.mp4"), video, 8)
  args = (
      "experiments.build_data",
      "--config=configs/video_folder.py",
      f"--config.data.manual_dir={folder}",
      f"--config.data.data_dir={data_dir}",
      "--config.dataset.height=16",
      "--config.dataset.width=16",
      "--config.dataset.num_frames=5",
  )
  proc = _job(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout)["report"]["clips_written"] == 2
  media.write_mp4(str(folder / "b.mp4"), video, 8)
  proc = _job(*args)
  assert proc.returncode == 2
  error = _one_error_line(proc.stderr)
  assert "added since the build: b.mp4" in error and "--overwrite" in error
  proc = _job(*args, "--overwrite")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout)["report"]["clips_written"] == 4
