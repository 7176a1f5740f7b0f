"""The sampling job's overview picture (`videopoet.sampling.overview`)."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from videopoet.data import media
from videopoet.sampling import overview

_COLOURS = np.array(
    [[230, 30, 30], [30, 230, 30], [30, 30, 230], [230, 230, 30],
     [30, 230, 230], [230, 30, 230], [200, 200, 200], [90, 90, 90]],
    np.uint8,
)  # fmt: skip


def _manifest(out_dir, rows):
  with open(os.path.join(out_dir, "manifest.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)


def test_rows_hold_evenly_spaced_frames_and_skip_failed_requests(tmp_path):
  out = str(tmp_path)
  video = np.repeat(_COLOURS[:, None, None], 16, 1).repeat(16, 2)  # [8,16,16,3]
  media.write_mp4(os.path.join(out, "0_t2v/sample_0.mp4"), video, 8.0)
  image = np.zeros((16, 16, 3), np.uint8)
  image[:, 8:] = 255  # Black left half, white right half.
  os.makedirs(os.path.join(out, "2_t2i"))
  media.write_png(os.path.join(out, "2_t2i/sample_0.png"), image)
  _manifest(out, [
      {"task": "text_to_video", "status": "done",
       "request": {"text": "a red square"},
       "outputs": [{"sample": 0, "mp4": "0_t2v/sample_0.mp4"}]},
      {"task": "inpainting", "status": "error", "reason": "no such file"},
      {"task": "text_to_image", "status": "done", "request": {},
       "outputs": [{"sample": 0, "png": "2_t2i/sample_0.png"}]},
  ])  # fmt: skip

  path = overview.write(out, max_frames=4, scale=2)

  sheet = np.asarray(Image.open(path).convert("RGB")).astype(int)
  gap, left = overview._GAP, overview._LABEL_WIDTH
  # Two rows of 32-pixel frames; the failed request has none.
  assert sheet.shape[0] == 2 * 32 + 3 * gap
  # Row 1: frames 0, 2, 5, 7 of 8 (evenly spaced), each 32 px wide.
  for slot, frame in enumerate([0, 2, 5, 7]):
    x = left + slot * (32 + gap) + 16
    assert np.abs(sheet[gap + 16, x] - _COLOURS[frame]).max() < 40, slot
  assert sheet.shape[1] == left + 4 * 32 + 3 * gap + gap
  # Row 2: the image, enlarged without smoothing, then background.
  y = 2 * gap + 32 + 16
  assert (sheet[y, left:left + 16] == 0).all()
  assert (sheet[y, left + 16:left + 32] == 255).all()
  assert (sheet[y, left + 32 + gap:] == overview._BACKGROUND).all()


def test_a_manifest_without_finished_requests_is_an_error(tmp_path):
  _manifest(str(tmp_path), [{"task": "inpainting", "status": "error"}])
  with pytest.raises(ValueError, match="no finished request"):
    overview.render(str(tmp_path))
