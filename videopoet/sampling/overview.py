"""One picture of a sampling job's outputs: `<out>/overview.png`.

A row per finished request, in manifest order: the task and its text on the
left, then up to `max_frames` frames of its first sample, evenly spaced in
time (an image is one frame), each enlarged `scale` times without smoothing
so the token grid stays visible. Failed requests are left out.

  python -m videopoet.sampling.overview runs/demo/samples
"""

import os
import sys
import textwrap

import numpy as np
from PIL import Image
from PIL import ImageDraw

from videopoet.data import media
from videopoet.sampling import job

OVERVIEW = "overview.png"
_LABEL_WIDTH = 220  # Pixels left of the frames for the task and its text.
_GAP = 4  # Pixels between frames and between rows.
_BACKGROUND = (24, 24, 24)
_INK = (235, 235, 235)


def _frames(out_dir: str, output: dict, max_frames: int) -> np.ndarray:
  """Up to `max_frames` frames of one sample, evenly spaced: [n, h, w, 3]."""
  if "mp4" in output:
    video = media.read_video(os.path.join(out_dir, output["mp4"]))[0]
  else:  # An image: its PNG is the frame itself.
    png = Image.open(os.path.join(out_dir, output["png"])).convert("RGB")
    video = np.asarray(png)[None]
  keep = np.linspace(0, len(video) - 1, min(max_frames, len(video)))
  return video[np.round(keep).astype(int)]


def _label(row: dict) -> str:
  fields = row.get("request", {})
  text = fields.get("text", "")
  return row["task"] + ("\n" + "\n".join(textwrap.wrap(text, 34)[:4])
                        if text else "")  # fmt: skip


def render(out_dir: str, max_frames: int = 6, scale: int = 2) -> Image.Image:
  """The overview of the finished requests in `out_dir`'s manifest.

  Raises:
    ValueError: no request in the manifest has finished.
  """
  rows = [r for r in job.read_manifest(out_dir)
          if r.get("status") == "done" and r.get("outputs")]  # fmt: skip
  if not rows:
    raise ValueError(f"{out_dir}: no finished request in {job.MANIFEST}")
  strips = []
  for row in rows:
    frames = _frames(out_dir, row["outputs"][0], max_frames)  # [n, h, w, 3]
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, _ = frames.shape
    strip = np.full((h, n * w + (n - 1) * _GAP, 3), _BACKGROUND, np.uint8)
    for i, frame in enumerate(frames):
      strip[:, i * (w + _GAP):i * (w + _GAP) + w] = frame
    strips.append(strip)
  width = _LABEL_WIDTH + max(s.shape[1] for s in strips) + _GAP
  height = sum(s.shape[0] for s in strips) + _GAP * (len(strips) + 1)
  sheet = Image.new("RGB", (width, height), _BACKGROUND)
  draw = ImageDraw.Draw(sheet)
  y = _GAP
  for row, strip in zip(rows, strips):
    draw.multiline_text((_GAP, y), _label(row), fill=_INK)
    sheet.paste(Image.fromarray(strip), (_LABEL_WIDTH, y))
    y += strip.shape[0] + _GAP
  return sheet


def write(out_dir: str, path: str | None = None, **kwargs) -> str:
  """Renders `out_dir`'s overview to `path` (default `<out>/overview.png`)."""
  path = path or os.path.join(out_dir, OVERVIEW)
  media.write_png(path, np.asarray(render(out_dir, **kwargs)))
  return path


if __name__ == "__main__":
  if len(sys.argv) not in (2, 3):
    sys.exit("usage: python -m videopoet.sampling.overview OUT_DIR [PNG]")
  print(write(*sys.argv[1:]))
