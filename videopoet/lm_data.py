"""LM input pipeline: token records -> per-task batches -> AGD task mixture.

Records (written by `experiments/tokenize_data.py`, or drawn at random for
tests) hold token grids (`video`, `audio`, `structure`, `text`, ...; see
`tasks/builders.py`) whose shapes and id ranges their `token_spec.TokenSpec`
describes: `token_spec.read(tokens_dir)`, or for random records
`RandomConfig.spec()` (`config.data.random`). For each task, a deterministic, checkpointable Grain
iterator (`train_lib.data.batched_iterator`) builds that task's sequences;
`TaskMixture` picks one task per step (so each step has one fixed shape,
VideoPoet's alternating gradient descent) from the mixture weights and the
image/video schedule: image tasks get `image_share_early` of the steps for
the first `image_phase` of training and `image_share_late` after.
"""

import dataclasses
import glob
import os

import array_record.python.array_record_data_source as ards
from flax import serialization
import numpy as np

from videopoet import config_lib
from videopoet import tasks as tasks_lib
from videopoet import token_spec
from videopoet import vocab as vocab_lib
from videopoet.tasks import layout
from videopoet.train_lib import data as data_lib


@dataclasses.dataclass(frozen=True)
class MixtureConfig:
  """Task mixture and schedule (`config.mixture`).

  Attributes:
    weights: (task, weight) pairs; tasks absent or at 0 are not trained.
    image_phase: fraction of the steps in the image-heavy first phase.
    image_share_early: share of steps on image tasks in that phase.
    image_share_late: share of steps on image tasks afterwards.
  """

  weights: tuple[tuple[str, float], ...]
  image_phase: float = 0.25
  image_share_early: float = 0.9
  image_share_late: float = 0.1

  def __post_init__(self):
    for task, w in self.weights:
      if task not in tasks_lib.TASKS:
        raise config_lib.ConfigError(
            f"config.mixture.weights: unknown task {task!r}; known:"
            f" {', '.join(tasks_lib.TASKS)}"
        )
      if w < 0:
        raise config_lib.ConfigError(f"config.mixture.weights[{task}]={w} < 0")

  @property
  def tasks(self) -> tuple[str, ...]:
    return tuple(t for t, w in self.weights if w > 0)

  def probabilities(self, step: int, total_steps: int) -> np.ndarray:
    """P(task) at `step`, in the order of `tasks`."""
    w = np.array([dict(self.weights)[t] for t in self.tasks], np.float64)
    image = np.array([t in tasks_lib.IMAGE_TASKS for t in self.tasks])
    if image.any() and (~image).any():
      early = step < self.image_phase * total_steps
      share = self.image_share_early if early else self.image_share_late
      w = np.where(image, share * w / w[image].sum(), w)
      w = np.where(~image, (1 - share) * w / w[~image].sum(), w)
    return w / w.sum()


def serialize(record: dict) -> bytes:
  """msgpack of a flat record: arrays, and str/bytes kept as they are."""
  return serialization.msgpack_serialize(
      {
          k: v if isinstance(v, (str, bytes)) else np.asarray(v)
          for k, v in record.items()
      }
  )


def deserialize(data: bytes) -> dict:
  return serialization.msgpack_restore(data)


class ArrayRecordSource:
  """Token records from `<path>/<split>-*.array_record` shards."""

  def __init__(self, path: str, split: str):
    files = sorted(glob.glob(os.path.join(path, f"{split}-*.array_record")))
    if not files:
      raise FileNotFoundError(
          f"no {split}-*.array_record shards in {path}; run"
          " experiments.tokenize_data first"
      )
    self._source = ards.ArrayRecordDataSource(files)

  def __len__(self):
    return len(self._source)

  def __getitem__(self, i):
    return deserialize(self._source[i])


@dataclasses.dataclass(frozen=True)
class RandomConfig:
  """The tokens that random records stand for (`config.data.random`).

  With `config.data.source='random'` (tests, benchmarks) no tokenizer ran,
  so this section holds what a `tokens.json` would: `spec()` is their
  `TokenSpec` (the LM's vocabulary, grids and text length come from it).
  Defaults: the tiny random tokenizers of `configs/tokenize_data.py:tiny`
  on synth_av/tiny (17 x 64 x 64 -> 5 x 8 x 8 codes of 10 bits, 2.125 s of
  16 kHz audio -> 4 levels x 106 frames, 16 text ids of a 512-piece model).

  Attributes: as `token_spec.TokenSpec`'s.
  """

  visual_bits: int = 10
  time_factor: int = 4
  space_factor: int = 8
  num_frames: int = 17
  height: int = 64
  width: int = 64
  fps: float = 8.0
  audio_levels: int = 4
  audio_codebook: int = 1024
  sample_rate: int = 16000
  audio_hop: int = 320
  audio_frames: int = 106
  text_size: int = 512
  max_text_len: int = 16
  structure: bool = True
  text_embed_dim: int = 0

  def __post_init__(self):
    self.spec()  # Raises for an impossible shape.

  def spec(self) -> token_spec.TokenSpec:
    """The spec of these random tokens (no tokenizer: `video_tokenizer=''`)."""
    try:
      return token_spec.TokenSpec(
          video_tokenizer="", dataset="random", **dataclasses.asdict(self)
      )
    except ValueError as e:
      raise config_lib.ConfigError(f"config.data.random: {e}") from e


class RandomSource:
  """Random token records of the shapes and ranges of `spec` (tests)."""

  def __init__(self, spec: token_spec.TokenSpec, size: int):
    self._spec, self._n = spec, size

  def __len__(self):
    return self._n

  def __getitem__(self, i):
    rng = np.random.default_rng([7, i])
    s = self._spec
    text = np.full(s.max_text_len, -1, np.int32)
    k = int(rng.integers(1, s.max_text_len + 1))
    text[:k] = rng.integers(0, max(s.text_size, 1), k)
    codes = lambda: rng.integers(0, 2**s.visual_bits, s.latent_grid, np.int32)
    out = {"video": codes()}
    if s.structure:
      out["structure"] = codes()
    if s.has_audio:
      out["audio"] = rng.integers(
          0, s.audio_codebook, (s.audio_levels, s.audio_frames), np.int32
      )
    out = dict(out, text=text, text_mask=text >= 0)
    if s.text_embed_dim:  # Random "T5" states of the first k positions.
      mask = np.arange(s.max_text_len) < k
      emb = rng.normal(size=(s.max_text_len, s.text_embed_dim))
      out["text_embeddings"] = np.where(mask[:, None], emb, 0).astype(
          np.float32
      )
      out["text_embeddings_mask"] = mask
    return out


class TaskSource:
  """`source` seen through one task's builder; `copies` fresh draws each.

  Index i is record `i % len(source)` with its own random draws (masks,
  context length, caption dropout) seeded by (seed, task, i), so a
  multi-epoch run sees varied masks and stays deterministic. `spec` is what
  made the records (`token_spec.TokenSpec`).
  """

  def __init__(self, source, task, vocab, task_config, spec, seed=0, copies=16):
    self._src, self._task, self._v, self._cfg = source, task, vocab, task_config
    self._spec, self._seed, self._copies = spec, seed, copies
    self._task_id = list(tasks_lib.TASKS).index(task)

  def __len__(self):
    return len(self._src) * self._copies

  def __getitem__(self, i):
    record = self._src[i % len(self._src)]
    rng = np.random.default_rng([self._seed, self._task_id, i])
    seq = tasks_lib.build(
        self._task, record, self._v, self._cfg, rng, self._spec
    )
    out = layout.to_lm_example(seq)
    if self._cfg.text_mode == "embeddings":  # Every task: one batch layout.
      out["text_embeddings"] = tasks_lib.text_embeddings(
          record, seq, self._v, self._spec
      )  # [max_text_len, d]
    return out


class TaskMixture:
  """Yields `(task, batch)`: one task per step, drawn by the schedule.

  `prefix_bound` ({task: int or None}, optional): the longest prefix each
  task's steps were compiled for; a batch with a longer one is refused.
  """

  def __init__(
      self, iterators, mixture: MixtureConfig, total_steps, seed,
      prefix_bound=None,
  ):  # fmt: skip
    self._its, self._mix = iterators, mixture
    self._total, self._seed, self._step = total_steps, seed, 0
    self._bound = prefix_bound or {}

  def __iter__(self):
    return self

  def task_at(self, step: int) -> str:
    p = self._mix.probabilities(step, self._total)
    rng = np.random.default_rng([self._seed, step])
    return self._mix.tasks[int(rng.choice(len(p), p=p))]

  def __next__(self):
    task = self.task_at(self._step)
    self._step += 1
    batch = next(self._its[task])
    bound, longest = self._bound.get(task), int(np.max(batch["prefix_len"]))
    if bound is not None and longest > bound:
      raise ValueError(
          f"task {task}: a batch has a prefix of {longest} tokens, past the"
          f" first half of its sequence ({bound} tokens); its step was"
          " compiled for a prefix that ends there (add the task to"
          " tasks.DRAWN_PREFIX_TASKS if its prefix length varies)"
      )
    return task, batch

  def get_state(self) -> dict:
    return {
        "step": self._step,
        "tasks": {t: it.get_state() for t, it in self._its.items()},
    }

  def set_state(self, state: dict) -> None:
    self._step = state["step"]
    for t, s in state["tasks"].items():
      self._its[t].set_state(s)


def task_iterators(source, mixture, vocab, task_config, spec, batch_size, seed):
  """One batched Grain iterator per task of the mixture."""
  return {
      t: data_lib.batched_iterator(
          TaskSource(source, t, vocab, task_config, spec, seed),
          global_batch_size=batch_size,
          seed=seed + i,
      )
      for i, t in enumerate(mixture.tasks)
  }
