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
          "--config.trainer.checkpoint.every_steps=2",
          "--config.optimizer.microbatches=2", *overrides,
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


def test_microbatches_equal_one_pass():
  """Gradient accumulation gives the one-pass loss, metrics and update even
  when the parts hold different numbers of target tokens."""
  import jax  # pylint: disable=g-import-not-at-top

  from configs import videopoet as videopoet_config  # pylint: disable=g-import-not-at-top
  from videopoet import lm_trainer  # pylint: disable=g-import-not-at-top

  def program(microbatches):
    config = videopoet_config.get_config("tiny")
    config.data.source = "random"
    config.data.random_size = 8
    config.data.eval_batches = 0
    config.optimizer.microbatches = microbatches
    config.mixture.weights = (("text_to_video", 1.0),)
    config.trainer.total_steps = 10
    return lm_trainer.make_program(lm_trainer.parse(config), None)

  one, four = program(1), program(4)
  batch = dict(one.groups["text_to_video"])
  weights = np.array(batch["weights"], np.float32)
  weights[::4] = 0.0  # Part 0 (examples 0, 4) has no targets at all.
  weights[1, : weights.shape[1] // 2] = 0.0
  batch["weights"] = weights
  state = one.init(jax.random.key(0))
  out = [
      jax.jit(p.step, static_argnums=3)(state, batch, None, "text_to_video")
      for p in (one, four)
  ]
  (s1, m1), (s4, m4) = out
  for k in m1:
    np.testing.assert_allclose(m4[k], m1[k], rtol=1e-5, atol=1e-6, err_msg=k)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
      s4["params"], s1["params"],
  )  # fmt: skip
  with pytest.raises(ValueError, match="microbatches=3 must divide"):
    program(3)


def test_a_batch_with_a_longer_prefix_than_its_step_is_refused():
  mix = lm_data.MixtureConfig(weights=(("text_to_video", 1.0),))
  batches = iter([{"prefix_len": np.array([20, 20])}] * 2)
  it = lm_data.TaskMixture({"text_to_video": batches}, mix, 10, 0, {})
  assert next(it)[0] == "text_to_video"  # No bound: nothing checked.
  it = lm_data.TaskMixture(
      {"text_to_video": batches}, mix, 10, 0, {"text_to_video": 19}
  )
  with pytest.raises(ValueError, match="text_to_video: a batch has a prefix"):
    next(it)


def test_tasks_whose_prefix_ends_early_skip_the_unseen_logits(
    attention_lengths,
):
  """The trainer tells attention where a task's prefix ends: a task whose
  prefix ends in the first half of its sequence ('unconditional_video',
  324 tokens, prefix 2) runs its first half of queries on half the keys;
  one past it ('stylization', 664 tokens, prefix 342) keeps whole logits."""
  import jax  # pylint: disable=g-import-not-at-top

  from configs import videopoet as videopoet_config  # pylint: disable=g-import-not-at-top
  from videopoet import lm_trainer  # pylint: disable=g-import-not-at-top

  config = videopoet_config.get_config("small")
  config.data.update(source="random", random_size=2, batch_size=2)
  config.data.eval_batches = 0
  config.optimizer.microbatches = 1
  config.model.num_layers = 1
  config.mixture.weights = (("unconditional_video", 1.0), ("stylization", 1.0))
  config.trainer.total_steps = 10
  program = lm_trainer.make_program(lm_trainer.parse(config), None)
  calls = attention_lengths
  state = jax.eval_shape(program.init, jax.random.key(0))
  lengths = {}
  for task, batch in program.groups.items():
    calls.clear()
    jax.eval_shape(
        lambda s, b, task=task: program.step(s, b, None, task), state, batch
    )
    lengths[task] = set(calls)
  assert lengths == {
      "unconditional_video": {(162, 162), (162, 324)},
      "stylization": {(664, 664)},
  }
