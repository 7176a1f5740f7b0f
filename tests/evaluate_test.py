"""The eval sweep (`experiments.evaluate`) and its report in a real browser.

A random-weights LM (`sampling_workdir.make`: 32 x 32 x 9 clips, 2 audio
levels) and a `synth_av` build at the same clip shape (`eval32`: 32 px, 9
frames, 8 fps, 16 kHz, 3 clips per test split), so no resizing is needed
in the sweep (`sweep.fit_record`, which fits other shapes, is tested on its
own). The sweep runs in a subprocess: once whole (`:tiny`: text_to_video and
video_to_audio, one setting, the test split), then with more cells
(guidance 1 and 3, both test splits) SIGKILLed as soon as its first new
model cell is written, then rerun: only the missing cells are computed.
report.html is then opened in headless Chromium, whose findings the page's
own self-check script writes into the DOM (`report.browser_check`).
"""

import csv
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from configs import evaluate as evaluate_configs
from tests import sampling_workdir
from videopoet import config_lib
from videopoet import token_spec
from videopoet.data import synth_av
from videopoet.data import synth_av_tfds
from videopoet.eval import oracle
from videopoet.eval import report
from videopoet.eval import sweep
from videopoet.sampling import generate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET = "synth_av/eval32"
_EVAL32 = synth_av.SynthAVConfig(
    resolution=32, num_frames=9, fps=8, sample_rate=16000, train_size=0,
    validation_size=0, test_size=3, test_heldout_size=3,
)  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("eval_data"))
  synth_av_tfds.build(_EVAL32, d, name="eval32")
  return d


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
  """The random LM, its text block widened to hold synth_av's captions
  (its 48-piece text model, trained on other captions, spells their new
  words letter by letter: up to ~100 pieces). Only sequence lengths
  change; the parameters do not depend on them."""
  lm = sampling_workdir.make(str(tmp_path_factory.mktemp("eval_lm")))
  spec = token_spec.read(lm)
  token_spec.write(lm, dataclasses.replace(spec, max_text_len=128))
  return lm


def _config(arg: str, **overrides) -> sweep.EvalConfig:
  c = evaluate_configs.get_config(arg)
  for k, v in overrides.items():
    setattr(c.data if k in ("dataset", "data_dir") else c, k, v)
  return config_lib.from_config(sweep.EvalConfig, c, "config")


def _csv(path) -> list[dict]:
  with open(path, encoding="utf-8") as f:
    return list(csv.DictReader(f))


def test_config_variants_and_errors():
  default = _config("ground_truth")
  assert default.references_only and set(default.tasks) == set(sweep.TASKS)
  assert set(evaluate_configs.ALL_TASKS) == set(sweep.TASKS)
  assert default.splits == ("test", "test_heldout")
  with pytest.raises(config_lib.ConfigError, match="config.lms is empty"):
    _config("default")
  with pytest.raises(config_lib.ConfigError, match="the sweep scores"):
    _config("ground_truth", tasks=("text_to_speech",))
  # Guidance only where text is read; ids name every setting.
  cfg = _config("tiny", lms=(("/x/lm", 5),), guidance=(1.0, 2.5))
  assert len(sweep.settings_grid(cfg, "text_to_video")) == 2
  assert len(sweep.settings_grid(cfg, "video_to_audio")) == 1
  shape = sweep.ClipShape(9, 32, 32, 8.0, 16000)
  s = sweep.settings_grid(cfg, "text_to_video")[1]
  cell = sweep.model_cell("/x/lm", 5, "text_to_video", "test", shape, s)
  assert re.fullmatch(
      r"lm-[0-9a-f]{6}\.s5\.text_to_video\.test\.T1\.k0\.g2\.5", cell.id
  ), cell.id
  ref = sweep.reference_cell("shuffled", "inpainting", "test_heldout", shape)
  assert ref.id == "shuffled.inpainting.test_heldout.9x32x32"


def test_fit_record_keeps_the_truth_at_the_lm_shape():
  """A 64 x 64 x 17 clip fitted to 32 x 32 x 9: pixels, tracks and sound
  shrink together, so the oracle still finds the clip's own objects."""
  native = sweep.ClipShape(17, 64, 64, 8.0, 16000)
  small = sweep.ClipShape(9, 32, 32, 8.0, 16000)
  cfg = synth_av.SynthAVConfig()
  scores = []
  for i in range(4):
    rec = sweep.fit_record(
        synth_av.generate_example(cfg, "test", i), small, native
    )
    assert rec["video"].shape == (9, 32, 32, 3)
    assert rec["audio"].shape == (18000,) and rec["bounces"].shape[0] == 9
    scores.append(oracle.score_text_to_video(rec["video"], rec))
  assert np.mean([s["colour_acc"] for s in scores]) >= 0.75
  with pytest.raises(config_lib.ConfigError, match="fps"):
    sweep.fit_record(
        synth_av.generate_example(cfg, "test", 0),
        sweep.ClipShape(9, 32, 32, 4.0, 16000), native,
    )  # fmt: skip


def test_ground_truth_variant_needs_no_model(data_dir, tmp_path):
  cfg = _config(
      "ground_truth", data_dir=data_dir, dataset=DATASET, num_examples=3,
      fvd=False, screenshot=False,
  )  # fmt: skip
  lines = []
  summary = sweep.run(cfg, str(tmp_path), log=lines.append)
  assert summary["cells"] == summary["computed"] == len(sweep.TASKS) * 2 * 2
  assert summary["errors"] == 0, lines
  rows = _csv(tmp_path / "results.csv")
  assert {r["row"] for r in rows} == {"ground_truth", "shuffled"}
  by = {(r["row"], r["task"], r["split"]): r for r in rows}
  gt = by["ground_truth", "text_to_video", "test"]
  assert float(gt["colour_acc"]) == 1.0 and float(gt["count_acc"]) == 1.0
  assert float(by["ground_truth", "inpainting", "test"]["psnr_inside"]) == 100
  assert float(by["shuffled", "inpainting", "test"]["psnr_inside"]) < 30
  assert float(by["ground_truth", "video_to_audio", "test"]["pitch_acc"]) == 1
  chain = by["ground_truth", "text_to_video_with_audio", "test_heldout"]
  assert float(chain["pitch_acc"]) == float(chain["colour_acc"]) == 1
  for task in ("frame_continuation", "long_video", "stylization"):
    assert float(by["ground_truth", task, "test"]["position_acc"]) >= 0.9
  for name in ("results.md", "report.html"):
    assert (tmp_path / name).exists()
  assert not (tmp_path / "plots").exists()  # One point per task: no plot.
  assert "## video_to_audio" in (tmp_path / "results.md").read_text()
  html = (tmp_path / "report.html").read_text()
  assert 'class="results"' in html and "<video" in html
  # A rerun has nothing left to compute.
  assert sweep.run(cfg, str(tmp_path), log=lines.append)["computed"] == 0


class _CodecGenerator:
  """A generator whose tokenizers hand the clip back (lossless) or with
  its pixels quantized to `step` levels (lossy); counts its encodes."""

  def __init__(self, step: int = 1):
    self.step, self.encodes = step, 0
    self.spec = types.SimpleNamespace(time_factor=4, space_factor=8)
    self.models = types.SimpleNamespace(
        lm=types.SimpleNamespace(workdir="/x/lm"), codec=object()
    )

  def encode_video(self, frames):
    self.encodes += 1
    return frames // self.step

  def decode_video(self, codes):
    return (codes * self.step + self.step // 2).astype(np.uint8)

  def encode_audio(self, wave):
    return wave[None]

  def decode_audio(self, codes, samples):
    return codes[:, 0, :samples]


def test_the_tokenizer_row_scores_the_clips_through_the_tokenizers(
    data_dir, tmp_path
):
  """Lossless tokenizers: the tokenizer row equals ground truth; pixels
  quantized to 64 levels: PSNR falls to what that quantization costs, the
  objects are still found. Each clip is encoded once for all tasks."""
  cfg = _config(
      "tiny", lms=(("/x/lm", 1),), data_dir=data_dir, dataset=DATASET,
      num_examples=3, report_samples=1,
  )  # fmt: skip
  data = sweep.Data(DATASET, data_dir, 3)
  shape = data.native_shape("test")
  recs = data.records("test", shape)
  fvd = sweep.Fvd(False, print)
  cells = {t: sweep.tokenizer_cell("/x/lm", 1, t, "test", shape)
           for t in ("text_to_video", "inpainting", "video_to_audio")}  # fmt: skip
  assert cells["inpainting"].id.endswith(".tokenizer.inpainting.test")
  assert cells["inpainting"].label == "tokenizer"

  def means(gen, task, roundtrip):
    body = sweep.run_reference(cells[task], recs, cfg, str(tmp_path), fvd,
                               gen.spec, gen, roundtrip)  # fmt: skip
    return sweep._means(body["samples"]), body  # pylint: disable=protected-access

  gen, roundtrip = _CodecGenerator(), sweep.Roundtrip()
  m, body = means(gen, "inpainting", roundtrip)
  assert m["psnr_inside"] == m["psnr_outside"] == 100
  assert (tmp_path / body["media"][0]["samples"][0]).exists()
  assert means(gen, "text_to_video", roundtrip)[0]["colour_acc"] == 1.0
  assert means(gen, "video_to_audio", roundtrip)[0]["pitch_acc"] == 1.0
  assert gen.encodes == 3  # Once per clip, not per task.
  lossy = _CodecGenerator(step=4)
  m, _ = means(lossy, "inpainting", sweep.Roundtrip())
  assert 35 < m["psnr_inside"] < 60, m  # 64 levels: ~ 41 dB.
  assert means(lossy, "text_to_video", sweep.Roundtrip())[0]["colour_acc"] >= 0.6


class _EchoGenerator:
  """Answers text_to_video with the clip whose caption it is given (a
  perfect model), and refuses the captions in `refuse`."""

  spec = types.SimpleNamespace(
      num_frames=9, height=32, width=32, fps=8.0, sample_rate=16000
  )

  def __init__(self, recs, refuse=()):
    self.clips = {r["caption"]: r["video"] for r in recs}
    self.refuse = set(refuse)

  def text_to_video(self, text, num_samples, seed, sampling):
    del seed, sampling
    if text in self.refuse:
      raise generate.RequestError(f"cannot serve {text!r}")
    return generate.Result(video=np.stack([self.clips[text]] * num_samples))


def test_a_model_cell_scores_samples_and_records_failed_examples(
    data_dir, tmp_path
):
  cfg = _config(
      "tiny", lms=(("/x/lm", 1),), data_dir=data_dir, dataset=DATASET,
      num_examples=3, num_samples=2, report_samples=1,
  )  # fmt: skip
  data = sweep.Data(DATASET, data_dir, 3)
  shape = data.native_shape("test")
  recs = data.records("test", shape)
  s = sweep.settings_grid(cfg, "text_to_video")[0]
  cell = sweep.model_cell("/x/lm", 1, "text_to_video", "test", shape, s)
  fvd = sweep.Fvd(False, print)
  gen = _EchoGenerator(recs, refuse=[recs[1]["caption"]])
  body = sweep.run_model(cell, gen, recs, cfg, str(tmp_path), fvd)
  assert [r["example"] for r in body["samples"]] == [0, 0, 2, 2]
  assert all(r["metrics"]["colour_acc"] == 1.0 for r in body["samples"])
  assert [f["example"] for f in body["failed_examples"]] == [1]
  assert (tmp_path / body["media"][0]["samples"][1]).exists()
  assert (tmp_path / body["media"][0]["truth"]).exists()
  gen = _EchoGenerator(recs, refuse=[r["caption"] for r in recs])
  with pytest.raises(generate.RequestError, match="cannot serve"):
    sweep.run_model(cell, gen, recs, cfg, str(tmp_path), fvd)


def _evaluate(workdir, lm_dir, data_dir, *extra):
  return subprocess.Popen(
      [sys.executable, "-m", "experiments.evaluate",
       "--config=configs/evaluate.py:tiny", f"--workdir={workdir}",
       f"--config.data.data_dir={data_dir}",
       f"--config.data.dataset={DATASET}",
       f"--config.lms=(('{lm_dir}', 0),)", *extra],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )  # fmt: skip


def _cells(workdir) -> dict[str, float]:
  d = workdir / sweep.CELLS_DIR
  return {p.stem: p.stat().st_mtime_ns for p in d.glob("*.json")}


def test_sweep_resumes_cell_by_cell_and_the_report_plays(
    lm_dir, data_dir, tmp_path
):
  work = tmp_path / "eval"
  proc = _evaluate(work, lm_dir, data_dir)
  log, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, log
  # 2 tasks x (ground_truth, shuffled, tokenizer, the LM).
  assert "8 cells: 8 computed (0 failed), 0 done before" in log, log
  assert re.search(r"cell 8/8 .* ETA 0:00:00", log), log
  rows = _csv(work / "results.csv")
  assert len(rows) == 8
  assert {r["row"] for r in rows} >= {"ground_truth", "shuffled", "tokenizer"}
  tok = [r for r in rows if r["row"] == "tokenizer"]
  assert all(r["status"] == "done" and r["n"] == "2" for r in tok), tok
  model = [r for r in rows if r["row"].startswith("lm-")]
  assert {r["task"] for r in model} == {"text_to_video", "video_to_audio"}
  assert all(r["status"] == "done" and r["n"] == "2" for r in model)
  assert model[0]["step"] == "3"  # Step 0 resolved to the latest.
  assert (work / "results.md").exists() and (work / "report.html").exists()
  assert not (work / "plots").exists()  # A single setting: no plot.
  chromium = report.find_chromium()
  assert (work / "report.png").exists() == (chromium is not None)

  # More cells: guidance 1 and 3 (text_to_video only) on both test splits:
  # 2 tasks x 2 splits x 3 reference rows + (2 + 1) x 2 model cells.
  more = ("--config.guidance=(1.0, 3.0)",
          "--config.splits=('test', 'test_heldout')")  # fmt: skip
  before = _cells(work)
  proc = _evaluate(work, lm_dir, data_dir, *more)
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if any(".s3." in k for k in set(_cells(work)) - set(before)):
      os.kill(proc.pid, signal.SIGKILL)
      break
    time.sleep(0.05)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, proc.stdout.read()
  killed = _cells(work)
  assert 8 < len(killed) < 18
  proc = _evaluate(work, lm_dir, data_dir, *more)
  log, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, log
  left = 18 - len(killed)
  assert f"18 cells: {left} computed (0 failed), {len(killed)} done" in log
  after = _cells(work)
  assert len(after) == 18
  assert all(after[k] == t for k, t in killed.items())  # Not redone.
  assert len(_csv(work / "results.csv")) == 18
  plots = sorted(os.listdir(work / "plots"))
  assert "text_to_video.colour_acc.vs_guidance.png" in plots, plots
  assert not [p for p in plots if p.startswith("video_to_audio.")]
  assert not [p for p in plots if p.endswith("vs_step.png")]  # One step.

  if chromium is None:
    pytest.skip(
        "no chromium binary (apt-get install chromium): the browser check"
        " of report.html did not run"
    )
  found = report.browser_check(str(work / "report.html"))
  assert found.get("done"), found
  assert not found["errors"], found
  assert not found["console_errors"], found
  assert not found["broken_images"], found
  assert found["results_tables"] == 2
  samples = [v for v in found["videos"] if "/lm-" in v["src"]]
  sound = [v for v in samples if ".video_to_audio." in v["src"]]
  assert samples and sound, found["videos"]
  for v in found["videos"]:
    assert v["error"] is None and v["duration"] and v["duration"] > 0, v
  assert all(v["audio"] for v in sound), sound


@pytest.mark.slow
def test_every_task_runs_through_the_sweep(lm_dir, data_dir, tmp_path):
  """Each task's inputs, generation, scores and media, in process (with
  FVD where its weights are installed)."""
  cfg = _config(
      "tiny", lms=((lm_dir, 0),), data_dir=data_dir, dataset=DATASET,
      tasks=sweep.TASKS, num_examples=2, num_samples=2, screenshot=False,
      long_video_seconds=1.5, fvd=True,
  )  # fmt: skip
  lines = []
  summary = sweep.run(cfg, str(tmp_path), log=lines.append)
  assert summary["errors"] == 0, lines
  rows = {r["task"]: r for r in _csv(tmp_path / "results.csv")
          if r["row"].startswith("lm-")}  # fmt: skip
  assert set(rows) == set(sweep.TASKS)
  assert all(r["n"] == "4" for r in rows.values()), rows
  assert (
      rows["inpainting"]["psnr_outside"]
      and rows["long_video"]["drift_px_per_s"]
  )
  media_dir = tmp_path / sweep.MEDIA_DIR
  assert list(media_dir.glob("*.text_to_image.*/000_0.png"))
  assert list(media_dir.glob("*.inpainting.*/000_input.mp4"))
  assert list(media_dir.glob("*.image_to_video.*/000_input.png"))


def test_a_missing_checkpoint_is_a_config_error(lm_dir, data_dir, tmp_path):
  cfg = _config("tiny", lms=((lm_dir, 7),), data_dir=data_dir)
  with pytest.raises(config_lib.ConfigError, match="no checkpoint 7.*: 3"):
    sweep.run(cfg, str(tmp_path))


def test_headline_rows_targets_and_references(tmp_path):
  """headline.md: one row per (task, metric, split); the best LM value over
  guidance judged against the target on test_heldout only."""

  def row(kind, split, value, guidance=None, label=None):
    return {"status": "done", "kind": kind, "task": "text_to_video",
            "split": split, "guidance": guidance, "step": 7 if guidance else None,
            "label": label or kind, "means": {"colour_acc": value}}  # fmt: skip

  rows = [
      row("model", "test_heldout", 0.85, 1.0, "lm-a"),
      row("model", "test_heldout", 0.92, 3.0, "lm-a"),
      row("model", "test", 0.5, 1.0, "lm-a"),
      row("ground_truth", "test_heldout", 1.0),
      row("shuffled", "test_heldout", 0.2),
      row("tokenizer", "test_heldout", 0.95),
      {"status": "error", "kind": "model", "task": "text_to_video",
       "split": "test", "guidance": 3.0, "step": 7, "label": "lm-a",
       "means": {}},
  ]  # fmt: skip
  path = tmp_path / "headline.md"
  report.write_headline(str(path), rows, (
      ("text_to_video", "colour_acc", ">= 0.9"),
      ("text_to_video", "colour_acc", ">= 0.95"),
  ))  # fmt: skip
  lines = path.read_text().splitlines()
  assert lines[0] == (
      "| task | metric | split | target | lm-a s7 g1 | lm-a s7 g3 | met |"
      " tokenizer | ground_truth | shuffled |"
  )
  assert lines[2] == (
      "| text_to_video | colour_acc | test_heldout | >= 0.9 | 0.85 | 0.92 |"
      " yes | 0.95 | 1 | 0.2 |"
  )
  assert lines[3] == (
      "| text_to_video | colour_acc | test |  | 0.5 |  |  |  |  |  |"
  )
  assert "| >= 0.95 | 0.85 | 0.92 | no |" in lines[4]
  assert report._target_met(0.3, "<= 0.5") and report._target_met(1, "") is None  # pylint: disable=protected-access
