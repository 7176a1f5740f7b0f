"""Metric writers (TensorBoard + `metrics.jsonl`) and the progress line.

Process 0 writes TensorBoard event files under `<workdir>/tensorboard/` and
one JSON object per step to `<workdir>/metrics.jsonl`; other processes only
log. Keys are slash-namespaced: `train/loss`, `eval/<name>/<metric>`.
"""

import json
import os
import time
from typing import Any, Mapping

from absl import logging
from clu import metric_writers
import jax
import numpy as np


class JsonlWriter(metric_writers.MetricWriter):
  """Appends `{"step": s, <metric>: value, ...}` lines to a file."""

  def __init__(self, path: str):
    self._path = path
    # Line-buffered: a killed job keeps every row it logged.
    self._file = open(path, "a", encoding="utf-8", buffering=1)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    row = {"step": int(step)}
    row.update({k: float(np.asarray(v)) for k, v in scalars.items()})
    self._file.write(json.dumps(row) + "\n")

  def write_summaries(self, step, values, metadata=None):
    del step, values, metadata

  def write_images(self, step, images):
    del step, images

  def write_videos(self, step, videos):
    del step, videos

  def write_audios(self, step, audios, *, sample_rate):
    del step, audios, sample_rate

  def write_texts(self, step, texts):
    del step, texts

  def write_histograms(self, step, arrays, num_buckets=None):
    del step, arrays, num_buckets

  def write_hparams(self, hparams):
    del hparams

  def flush(self):
    self._file.flush()

  def close(self):
    self._file.close()


def truncate_jsonl(path: str, last_step: int) -> None:
  """Drops rows after `last_step`: a resumed run rewrites those steps."""
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8") as f:
    rows = [line for line in f if line.strip()]
  keep = []
  for line in rows:
    try:
      if json.loads(line)["step"] <= last_step:
        keep.append(line)
    except (ValueError, KeyError):  # A line cut by a kill mid-write.
      continue
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(keep)


def create_writer(workdir: str) -> metric_writers.MetricWriter:
  """TensorBoard + JSONL writers on process 0, logging only elsewhere."""
  if jax.process_index() > 0:
    return metric_writers.MultiWriter([])
  # No clu LoggingWriter: the progress line already logs the scalars.
  tb = metric_writers.SummaryWriter(os.path.join(workdir, "tensorboard"))
  return metric_writers.MultiWriter(
      [tb, JsonlWriter(os.path.join(workdir, "metrics.jsonl"))]
  )


def _hms(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
  """The progress line: step, steps/s, ETA and the headline metrics."""

  def __init__(self, total_steps: int, first_step: int, name: str = "train"):
    self._total = total_steps
    self._name = name
    self._last_step = first_step
    self._last_time = time.monotonic()

  def line(self, step: int, scalars: Mapping[str, Any]) -> str:
    now = time.monotonic()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    eta = (self._total - step) / rate if rate > 0 else float("inf")
    shown = " | ".join(
        f"{k.split('/', 1)[-1]} {float(v):.4g}" for k, v in scalars.items()
    )
    return (
        f"[{self._name}] step {step}/{self._total}"
        f" ({100 * step / self._total:.0f}%) | {rate:.2f} steps/s"
        f" | ETA {_hms(eta) if rate > 0 else '?'} | {shown}"
    )

  def report(self, step: int, scalars: Mapping[str, Any]) -> None:
    logging.info("%s", self.line(step, scalars))
