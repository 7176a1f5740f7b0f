"""Metric writers (TensorBoard + `metrics.jsonl`) and the progress line.

Process 0 writes TensorBoard event files under `<workdir>/tensorboard/` and
one JSON object per step to `<workdir>/metrics.jsonl`; other processes only
log. Keys are slash-namespaced: `train/loss`, `eval/<name>/<metric>`.

No TensorFlow: clu's writers (and `tensorboard`'s own `EventFileWriter`,
whose `tf.io.gfile` imports TensorFlow whenever it is installed) would pull
it into every training job. The event file here is written with the
`tensorboard` package's protos and record framing only, so a GPU or TPU
host needs JAX, Grain and the media libraries, not TensorFlow.
"""

import itertools
import json
import os
import socket
import time
from typing import Any, Mapping, Sequence

from absl import logging
import jax
import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer import record_writer


class MetricWriter:
  """What the harness calls on a writer: scalars by step, flush, close."""

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    raise NotImplementedError

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


class MultiWriter(MetricWriter):
  """Forwards every call to each of `writers` (none: writes nothing)."""

  def __init__(self, writers: Sequence[MetricWriter]):
    self._writers = tuple(writers)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    for w in self._writers:
      w.write_scalars(step, scalars)

  def flush(self) -> None:
    for w in self._writers:
      w.flush()

  def close(self) -> None:
    for w in self._writers:
      w.close()


class JsonlWriter(MetricWriter):
  """Appends `{"step": s, <metric>: value, ...}` lines to a file."""

  def __init__(self, path: str):
    self._path = path
    # Line-buffered: a killed job keeps every row it logged.
    self._file = open(path, "a", encoding="utf-8", buffering=1)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    row = {"step": int(step)}
    row.update({k: float(np.asarray(v)) for k, v in scalars.items()})
    self._file.write(json.dumps(row) + "\n")

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


_file_ids = itertools.count()


class TensorBoardWriter(MetricWriter):
  """Scalars as TensorBoard events in a new `events.out.tfevents.*` file.

  The file is TensorFlow's: TFRecord-framed `Event` protos, the first one
  naming the format (`brain.Event:2`), scalars as `simple_value`s (what
  `tf.compat.v1.summary.scalar` and `torch.utils.tensorboard` write). Each
  write reaches the file before returning, so a killed job keeps every step
  it logged, like `metrics.jsonl`.

  A run resumed from a checkpoint at step s logs steps s + 1.. again: with
  `resumed_at=s` the new file starts with a `SessionLog.START` event at
  step s + 1, which tells TensorBoard to drop the older files' events from
  that step on (what `truncate_jsonl` does to `metrics.jsonl`).
  """

  def __init__(self, logdir: str, resumed_at: int = 0):
    os.makedirs(logdir, exist_ok=True)
    # TensorFlow's name: TensorBoard reads the files named *tfevents*.
    name = (
        f"events.out.tfevents.{int(time.time()):010d}"
        f".{socket.gethostname()}.{os.getpid()}.{next(_file_ids)}"
    )
    self.path = os.path.join(logdir, name)
    self._records = record_writer.RecordWriter(open(self.path, "wb"))
    self._write(event_pb2.Event(file_version="brain.Event:2"))
    if resumed_at > 0:
      start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
      self._write(event_pb2.Event(step=resumed_at + 1, session_log=start))

  def _write(self, event: event_pb2.Event) -> None:
    event.wall_time = time.time()
    self._records.write(event.SerializeToString())
    self._records.flush()

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    values = [
        summary_pb2.Summary.Value(tag=k, simple_value=float(np.asarray(v)))
        for k, v in scalars.items()
    ]
    summary = summary_pb2.Summary(value=values)
    self._write(event_pb2.Event(step=int(step), summary=summary))

  def flush(self) -> None:
    self._records.flush()

  def close(self) -> None:
    if not self._records.closed:
      self._records.close()


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


def create_writer(workdir: str, first_step: int = 0) -> MetricWriter:
  """TensorBoard + JSONL writers on process 0, none elsewhere (the progress
  line logs the scalars on every process); `first_step`: the step the run
  starts after (its restored checkpoint's, 0 for a new run)."""
  if jax.process_index() > 0:
    return MultiWriter([])
  tensorboard = TensorBoardWriter(
      os.path.join(workdir, "tensorboard"), resumed_at=first_step
  )
  return MultiWriter(
      [tensorboard, JsonlWriter(os.path.join(workdir, "metrics.jsonl"))]
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
