"""Deterministic, checkpointable input pipelines (Grain) for every trainer.

Every process walks the same stream of *global* batches of record indices
(shuffled per epoch from the seed) and reads only its own contiguous slice of
each. So

  * the global batch at step k is the same whatever the number of processes
    (a 2-process run sees exactly the batches of a 1-process run), and
  * the iterator state (`get_state()`, a small dict) is the same on every
    process: the harness saves it once with the checkpoint and a resumed run
    continues with exactly the batch it would have seen.

A source is anything with `__len__` and `__getitem__` returning a dict of
arrays: `tfds.data_source(...)`, an ArrayRecord data source, or a list.
"""

from typing import Any, Callable, Mapping, Sequence

import grain
import jax
import numpy as np

Record = Mapping[str, Any]


def _stack(records: Sequence[Record]) -> dict[str, np.ndarray]:
  return {k: np.stack([np.asarray(r[k]) for r in records]) for k in records[0]}


def batched_iterator(
    source: Sequence[Record],
    *,
    global_batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_epochs: int | None = None,
    transform: Callable[[Record], Record] | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.DatasetIterator:
  """An iterator of process-local batches (dicts of numpy arrays).

  Args:
    source: random-access records.
    global_batch_size: rows per step over all processes; must divide by the
      process count. A last incomplete batch of an epoch is dropped.
    seed: shuffle seed (each epoch gets its own order from it).
    shuffle: whether to shuffle.
    num_epochs: None repeats forever.
    transform: applied to each record after reading (decode, crop, ...).
    process_index: this process (default `jax.process_index()`).
    process_count: number of processes (default `jax.process_count()`).

  Returns:
    A Grain iterator with `get_state()`/`set_state()`, yielding
    `{key: [global_batch_size // process_count, ...]}`.
  """
  process_index = (
      jax.process_index() if process_index is None else process_index
  )
  process_count = (
      jax.process_count() if process_count is None else process_count
  )
  if global_batch_size % process_count:
    raise ValueError(
        f"global batch size {global_batch_size} does not divide"
        f" over {process_count} processes"
    )
  if len(source) < global_batch_size:
    raise ValueError(
        f"the source has {len(source)} records, fewer than one"
        f" global batch of {global_batch_size}"
    )
  local = global_batch_size // process_count
  lo = process_index * local

  def read(indices: np.ndarray) -> dict[str, np.ndarray]:
    records = [source[int(i)] for i in indices[lo : lo + local]]
    if transform is not None:
      records = [transform(r) for r in records]
    return _stack(records)

  ds = grain.MapDataset.range(len(source))
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.batch(global_batch_size, drop_remainder=True)  # [global_b] int
  ds = ds.repeat(num_epochs).map(read)
  return iter(ds.to_iter_dataset())


def example_batch(record: Record, global_batch_size: int) -> Record:
  """This process's share of a batch of copies of `record`: the shape a
  step program is compiled for ahead of time (`harness.Program.groups`)."""
  local = global_batch_size // jax.process_count()
  return {k: np.stack([np.asarray(v)] * local) for k, v in record.items()}


def random_windows(x: jax.Array, length: int, rng: jax.Array) -> jax.Array:
  """A random window of `length` along axis 1 of each row of x [b, n, ...].

  Jit-friendly (drawn from `rng` inside the step): audio crops, video clips
  of fewer frames.
  """
  b, n = x.shape[:2]
  starts = jax.random.randint(rng, (b,), 0, n - length + 1)
  take = lambda row, s: jax.lax.dynamic_slice_in_dim(row, s, length, axis=0)
  return jax.vmap(take)(x, starts)  # [b, length, ...]


class PhasedBatches:
  """Yields `(phase, batch)` pairs for a trainer with several step programs.

  `phase_of(i)` names the program of the i-th batch (0-based: the batch the
  state with `step == i` trains on), e.g. 'recon' before a GAN starts, then
  'gan'. The harness compiles one program per phase ahead of time (its
  `Program.groups`) instead of a `lax.cond` in one step: XLA:CPU runs the
  convolutions inside a conditional's branches ~50x slower. The batch count
  is saved with the iterator's state, so a resumed run keeps its phase.
  """

  def __init__(self, batches, phase_of: Callable[[int], str]):
    self._batches, self._phase_of, self._count = batches, phase_of, 0

  def __iter__(self):
    return self

  def __next__(self):
    phase = self._phase_of(self._count)
    batch = next(self._batches)
    self._count += 1
    return phase, batch

  def get_state(self) -> dict:
    return {"batches": self._batches.get_state(), "count": self._count}

  def set_state(self, state: dict) -> None:
    self._batches.set_state(state["batches"])
    self._count = int(state["count"])
