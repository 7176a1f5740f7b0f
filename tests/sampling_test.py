"""The sampler's tasks and the offline `sample` job, on a random-weights LM.

The LM workdir (`sampling_workdir.make`) is saved as `experiments.train`
saves, with `tokens.json` naming the tiny random tokenizers; every task
runs through `Generator` and through `experiments.sample` in a subprocess
that is SIGKILLed mid-run and rerun.
"""

import json
import os
import signal
import subprocess
import sys
import time

import av
import numpy as np
from PIL import Image
import pytest

from videopoet import decode
from videopoet.data import media
from videopoet.sampling import generate
from videopoet.sampling import job
from videopoet.sampling import models as models_lib
from videopoet.sampling import overview
from videopoet.sampling import requests as requests_lib
from tests import sampling_workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
  return sampling_workdir.make(str(tmp_path_factory.mktemp("sampling")))


@pytest.fixture(scope="module")
def gen(lm_dir):
  return generate.Generator(models_lib.load_models(lm_dir))


def _clip(seed=0, t=9):
  return np.random.default_rng(seed).integers(0, 256, (t, 32, 32, 3), np.uint8)


def test_loader_reads_params_only_and_the_tokens_record(lm_dir, gen):
  lm = gen.models.lm
  assert lm.step == 3 and lm.spec.latent_grid == (3, 4, 4)
  assert lm.vocab.visual_size == 2**10
  assert sorted(lm.params) == sorted(
      k for k in lm.params
  ) and "opt_state" not in lm.params
  assert gen.models.video.tokenizer.quantizer.codebook_size == 2**10
  assert gen.models.codec.config.rvq.codebook_size == 1024


def test_every_task_decodes_to_media_of_its_shape(gen):
  clip, wave = _clip(), np.random.default_rng(1).normal(0, 0.1, 18000)
  video = (2, 9, 32, 32, 3)
  cases = {
      "text_to_video": (lambda: gen.text_to_video("a red circle", 2, 0),
                        video, None),
      "text_to_image": (lambda: gen.text_to_image("a red circle", 2, 0),
                        (2, 1, 32, 32, 3), None),
      "image_to_video": (lambda: gen.image_to_video(clip[0], "a red circle",
                                                    2, 0), video, None),
      "frame_continuation": (lambda: gen.frame_continuation(clip, 2, 0),
                             video, None),
      "inpainting": (lambda: gen.inpainting(clip, num_samples=2), video,
                     None),
      "outpainting": (lambda: gen.outpainting(clip, preset="top",
                                              num_samples=2), video, None),
      "stylization": (lambda: gen.stylization("a blue square", clip, 2, 0),
                      video, None),
      "video_to_audio": (lambda: gen.video_to_audio(clip, 2, 0), video,
                         (2, 18000)),
      "audio_to_video": (lambda: gen.audio_to_video(wave, 2, 0), video,
                         None),
      "audio_video_continuation": (
          lambda: gen.audio_video_continuation(clip, wave, 2, 0), video,
          (2, 18000)),
      "text_to_video_with_audio": (
          lambda: gen.text_to_video_with_audio("a red circle", 2, 0), video,
          (2, 18000)),
      "long_video": (lambda: gen.long_video(3.0, text="a red circle",
                                            num_samples=2), (2, 24, 32, 32, 3),
                     None),
  }  # fmt: skip
  for name, (fn, vshape, ashape) in cases.items():
    r = fn()
    assert (r.video is None) == (vshape is None), name
    assert (r.audio is None) == (ashape is None), name
    if vshape:
      assert r.video.shape == vshape and r.video.dtype == np.uint8, name
    if ashape:
      assert r.audio.shape == ashape and np.isfinite(r.audio).all(), name
    assert r.tokens > 0, name


def test_inputs_are_kept(gen):
  """Frame continuation keeps its context; forced visible cells keep theirs."""
  clip = _clip(3)
  r = gen.frame_continuation(clip, 1, 0, context=1)
  first = gen.decode_video(gen.encode_video(clip[:1])[None])[0, 0]
  np.testing.assert_array_equal(r.video[0, 0], first)
  codes = gen.encode_video(clip)  # [3, 4, 4]
  cells = gen.mask_cells(preset="left", fraction=0.5)  # [4, 4], 2 columns
  assert cells[:, :2].all() and not cells[:, 2:].any()
  ex = {"video": codes, "mask": cells}
  known = gen.visible_ids("outpainting", codes, cells)
  assert (known >= 0).sum() == 3 * 4 * 2
  forced = gen.run("outpainting", ex, 4, 0, known=known).video
  free = gen.run("outpainting", ex, 4, 0).video
  np.testing.assert_array_equal(
      forced[:, :, :, 2:], np.broadcast_to(codes[:, :, 2:], (4, 3, 4, 2))
  )
  assert (free[:, :, :, 2:] != codes[:, :, 2:]).any()  # Random weights.


def test_sampling_is_deterministic_for_a_seed(gen):
  a = gen.text_to_video("a red circle", 1, 5).video
  b = gen.text_to_video("a red circle", 1, 5).video
  c = gen.text_to_video("a red circle", 1, 6).video
  np.testing.assert_array_equal(a, b)
  assert (a != c).any()


def test_bad_requests_are_named(tmp_path, gen):
  clip = tmp_path / "clip.mp4"
  media.write_mp4(clip, _clip(), 8.0)
  parse = lambda line: requests_lib.parse(0, line, str(tmp_path))
  for line, reason in [
      ("{not json", "not valid JSON"),
      ('{"task": "text_to_sound", "text": "x"}', "unknown task"),
      ('{"task": "text_to_video", "txt": "x"}', "unknown key"),
      ('{"task": "inpainting"}', "needs 'video'"),
      ('{"task": "inpainting", "video": "gone.mp4"}', "does not exist"),
      ('{"task": "text_to_video", "text": "x", "num_samples": 0}',
       "num_samples"),
      ('{"task": "text_to_video", "text": "x", "top_p": 2}', "top_p"),
      ('{"task": "text_to_video", "text": 3}', "wrong type"),
  ]:  # fmt: skip
    with pytest.raises(generate.RequestError, match=reason):
      parse(line)
  ok = parse('{"task": "inpainting", "video": "clip.mp4", "mask": "box"}')
  assert ok.fields["video"] == str(clip)
  with pytest.raises(generate.RequestError, match="at most 24"):
    gen.encode_text("a " * 40)
  with pytest.raises(generate.RequestError, match="unknown mask preset"):
    gen.mask_cells(preset="middle")


def _job(workdir, lm_dir, prompts):
  code = (
      "import sys, runpy, atexit\n"
      "atexit.register(lambda: print('TF_LOADED', 'tensorflow' in"
      " sys.modules, flush=True))\n"
      f"sys.argv = ['sample', '--config=configs/sample.py:demo',"
      f" '--workdir={workdir}', '--config.lm={lm_dir}',"
      f" '--config.prompts={prompts}']\n"
      "runpy.run_module('experiments.sample', run_name='__main__')\n"
  )
  return subprocess.Popen(
      [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )  # fmt: skip


def test_job_killed_and_rerun_serves_every_request_once(tmp_path, lm_dir):
  clip = tmp_path / "clip.mp4"
  media.write_mp4(clip, _clip(), 8.0, np.zeros(18000, np.float32))
  lines = [
      '{"task": "text_to_video_with_audio", "text": "a red circle"}',
      '{"task": "text_to_image", "text": "a blue square", "num_samples": 2}',
      "",
      '{"task": "inpainting", "video": "clip.mp4", "mask": "box"}',
      "{broken",
      '{"task": "video_to_audio", "video": "missing.mp4"}',
      '{"task": "text_to_video", "text": "' + "long " * 40 + '"}',
      '{"task": "long_video", "text": "a red circle", "seconds": 2}',
      '{"task": "frame_continuation", "video": "clip.mp4", "seed": 4}',
  ]
  prompts = tmp_path / "prompts.jsonl"
  prompts.write_text("\n".join(lines) + "\n")
  out = tmp_path / "samples"
  manifest = out / job.MANIFEST
  proc = _job(out, lm_dir, prompts)
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if manifest.exists() and len(manifest.read_text().splitlines()) >= 1:
      os.kill(proc.pid, signal.SIGKILL)
      break
    time.sleep(0.05)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, proc.stdout.read()
  first = len(manifest.read_text().splitlines())
  assert 1 <= first < 8
  proc = _job(out, lm_dir, prompts)
  log, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, log
  assert "TF_LOADED False" in log  # The sampler never imports TensorFlow.
  rows = job.read_manifest(str(out))
  assert sorted(r["index"] for r in rows) == [0, 1, 3, 4, 5, 6, 7, 8]
  by = {r["index"]: r for r in rows}
  assert {i for i, r in by.items() if r["status"] == "done"} == {0, 1, 3, 7, 8}
  assert "not valid JSON" in by[4]["reason"]
  assert "does not exist" in by[5]["reason"]
  assert "the model takes at most 24" in by[6]["reason"]
  assert len(by[1]["outputs"]) == 2 and by[0]["tokens"] > 0
  # The chained text-to-video-with-sound MP4 carries an audio stream.
  mp4 = out / by[0]["outputs"][0]["mp4"]
  with av.open(str(mp4)) as c:
    assert c.streams.video and c.streams.audio
  frames, fps = media.read_video(str(mp4))
  assert frames.shape == (9, 32, 32, 3) and fps == 8.0
  long_frames, _ = media.read_video(str(out / by[7]["outputs"][0]["mp4"]))
  assert len(long_frames) == 16
  assert (out / by[1]["outputs"][1]["png"]).exists()
  assert (out / by[0]["outputs"][0]["wav"]).exists()
  assert not [p for p in out.rglob("*.tmp*")]  # No half-written file left.
  # The overview: a row per finished request (5), 32-px frames at scale 2.
  sheet = np.asarray(Image.open(out / "overview.png"))
  assert sheet.shape[0] == 5 * 64 + 6 * overview._GAP
  # A third run has nothing left to do.
  proc = _job(out, lm_dir, prompts)
  log, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0 and "0 requests done, 0 failed" in log, log
  assert len(job.read_manifest(str(out))) == 8


def test_manifest_survives_a_cut_row_and_a_changed_lm_is_refused(tmp_path):
  out = str(tmp_path)
  job.append_row(out, {"index": 0, "key": "a"})
  with open(tmp_path / job.MANIFEST, "a") as f:
    f.write('{"index": 1, "ke')  # A kill in the middle of a row.
  job._end_cut_line(out)  # pylint: disable=protected-access
  job.append_row(out, {"index": 2, "key": "c"})
  assert [r["index"] for r in job.read_manifest(out)] == [0, 2]
  record = {"lm": "/runs/lm", "lm_step": 100, "sampling": {"top_k": 0}}
  job.check_record(out, record)
  job.check_record(out, dict(record))  # The same: a resume.
  before = (tmp_path / job.RECORD).read_bytes()
  with pytest.raises(job.SamplerChangedError, match="lm_step: 100 -> 200"):
    job.check_record(out, dict(record, lm_step=200))
  assert (tmp_path / job.RECORD).read_bytes() == before
