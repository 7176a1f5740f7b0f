"""End-to-end tests of the data jobs, run as a user runs them."""

import json
import os
import subprocess
import sys

import av
import pytest

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
      "--dataset=synth_av",
      f"--data_dir={data_dir}",
      "--config=configs/synth_av.py:tiny",
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
      f"--data_dir={data_dir}",
      f"--out_dir={out_dir}",
      "--num=2",
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
      "--dataset=synth_av",
      f"--data_dir={tmp_path}",
      "--config=configs/synth_av.py",
      flag,
  )
  assert proc.returncode == 2
  assert f"'{key}'" in proc.stderr, proc.stderr[-2000:]


def test_build_data_bad_value_names_the_key(tmp_path):
  proc = _job(
      "experiments.build_data",
      "--dataset=synth_av",
      f"--data_dir={tmp_path}",
      "--config=configs/synth_av.py",
      "--config.dataset.resolution=8",
  )
  assert proc.returncode == 2
  assert "resolution" in proc.stderr, proc.stderr[-2000:]


def test_video_folder_needs_manual_dir(tmp_path):
  proc = _job(
      "experiments.build_data",
      "--dataset=video_folder",
      f"--data_dir={tmp_path}",
  )
  assert proc.returncode == 2
  assert "--manual_dir is required" in proc.stderr
