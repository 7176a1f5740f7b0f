"""The metric writers: TensorBoard events and `metrics.jsonl` read back, and
no TensorFlow imported by them or by the LM training job."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np

from videopoet.train_lib import metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_python(code: str, timeout: int = 120) -> str:
  proc = subprocess.run(
      [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
      timeout=timeout, env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc.stdout


def _scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  # pylint: disable-next=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator

  acc = event_accumulator.EventAccumulator(logdir)
  acc.Reload()
  return {
      tag: [(e.step, e.value) for e in acc.Scalars(tag)]
      for tag in acc.Tags()["scalars"]
  }


def test_scalars_read_back_from_tensorboard_and_jsonl(tmp_path):
  writer = metrics.create_writer(str(tmp_path))
  for step in (1, 2, 3):
    writer.write_scalars(step, {
        "train/loss": np.float32(step / 4),  # all exact in float32
        "train/grad_norm": jnp.asarray(step * 1.5),
        "eval/val/accuracy": step / 8,
    })  # fmt: skip
  writer.flush()
  logdir = tmp_path / "tensorboard"
  (event_file,) = os.listdir(logdir)
  assert event_file.startswith("events.out.tfevents.")
  assert _scalars(str(logdir)) == {
      "train/loss": [(1, 0.25), (2, 0.5), (3, 0.75)],
      "train/grad_norm": [(1, 1.5), (2, 3.0), (3, 4.5)],
      "eval/val/accuracy": [(1, 0.125), (2, 0.25), (3, 0.375)],
  }
  writer.close()
  with open(tmp_path / "metrics.jsonl", encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [1, 2, 3]
  assert [r["train/grad_norm"] for r in rows] == [1.5, 3.0, 4.5]


def test_a_resumed_run_replaces_the_steps_it_logs_again(tmp_path):
  # Killed after logging steps 1..3 with its checkpoint at step 2: the rerun
  # logs steps 3 and 4, and TensorBoard shows step 3 once, the rerun's.
  first = metrics.TensorBoardWriter(str(tmp_path))
  for step in (1, 2, 3):
    first.write_scalars(step, {"loss": float(step)})
  first.close()
  second = metrics.TensorBoardWriter(str(tmp_path), resumed_at=2)
  for step in (3, 4):
    second.write_scalars(step, {"loss": step + 0.5})
  second.close()
  assert len(os.listdir(tmp_path)) == 2
  assert _scalars(str(tmp_path)) == {
      "loss": [(1, 1.0), (2, 2.0), (3, 3.5), (4, 4.5)]
  }


def test_the_writers_import_no_tensorflow(tmp_path):
  out = _run_python(
      "import sys\n"
      "from videopoet.train_lib import metrics\n"
      f"w = metrics.create_writer({str(tmp_path)!r})\n"
      "w.write_scalars(1, {'train/loss': 1.0})\n"
      "w.flush()\n"
      "w.close()\n"
      "print('TF_IMPORTED', 'tensorflow' in sys.modules)\n"
  )
  assert "TF_IMPORTED False" in out, out
  assert os.listdir(tmp_path / "tensorboard")


def test_lm_training_imports_no_tensorflow(tmp_path):
  # The whole job: 2 steps and a validation pass of the tiny LM on random
  # tokens, one task (one compiled shape) to keep it short.
  argv = [
      "train", "--config=configs/videopoet.py:tiny",
      f"--workdir={tmp_path}", "--config.data.source=random",
      "--config.data.batch_size=2", "--config.data.random_size=4",
      "--config.data.eval_batches=1", "--config.trainer.total_steps=2",
      "--config.trainer.log_every=1", "--config.trainer.eval_every=2",
      "--config.mixture.weights=(('text_to_image', 1.0),)",
  ]  # fmt: skip
  out = _run_python(
      "import atexit, runpy, sys\n"
      "atexit.register(lambda: print('TF_IMPORTED',"
      " 'tensorflow' in sys.modules, flush=True))\n"
      f"sys.argv = {argv!r}\n"
      "runpy.run_module('experiments.train', run_name='__main__')\n",
      timeout=300,
  )
  assert "TF_IMPORTED False" in out, out
  tags = _scalars(str(tmp_path / "tensorboard"))
  assert [s for s, _ in tags["train/loss"]] == [1, 2]
  assert [s for s, _ in tags["val/text_to_image/loss"]] == [2]


def test_tokenizer_training_data_modules_import_no_tensorflow():
  # The MAGVIT-v2 and SoundStream jobs read TFDS builds through
  # `datasets.open_split`, which imports these builders (TensorFlow only
  # for `tfds.load`'s tf.data view).
  out = _run_python(
      "import sys\n"
      "from videopoet.data import synth_av_tfds, video_folder, video_folder_tfds\n"
      "print('TF_IMPORTED', 'tensorflow' in sys.modules)\n"
  )
  assert "TF_IMPORTED False" in out, out
