"""The training loop every trainer (tokenizer, codec, LM) runs.

A trainer describes *what* to train as a `Program` (pure init and step
functions plus a checkpointable data iterator); this module does the rest,
the same way for all of them:

  mesh & shardings -> init (or resume) -> jitted, donated step -> metrics,
  progress line, non-finite guard, periodic async checkpoints, SIGTERM save.

Resume order: the newest usable checkpoint in `<workdir>/checkpoints`,
else `Program.init`. An incomplete or unreadable one is named in a warning
and moved to `<workdir>/checkpoints.bad/` (never deleted) before the next
newest is tried; one written for another model stops the run with
`checkpointing.CheckpointMismatchError`. The step RNG is
`fold_in(PRNGKey(seed), step)`, so a resumed run draws exactly the numbers
of an uninterrupted one. A checkpoint save that fails (disk full, ...) stops
the run as soon as its background write ends, a few steps later, with
`checkpointing.CheckpointSaveError`; the previous checkpoint stays intact.
"""

import dataclasses
import os
import signal
import threading
from typing import Any, Callable, Iterator, Mapping

from absl import logging
from clu import parameter_overview
import flax.linen as nn
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from videopoet import config_lib
from videopoet import sharding
from videopoet.train_lib import checkpointing
from videopoet.train_lib import metrics as metrics_lib
from videopoet.train_lib import workdir as workdir_lib

State = Any
Batch = Mapping[str, np.ndarray]
Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
  """The harness's part of a config (`config.trainer`).

  Attributes:
    total_steps: train until this step.
    seed: seeds init (`fold_in(key, 0)`... see `_rngs`) and per-step RNG.
    log_every: write metrics and the progress line every this many steps;
      the non-finite guard also checks at these steps.
    eval_every: run `Program.evaluate` every this many steps (0: never).
    checkpoint: when and how to save.
  """

  total_steps: int
  seed: int = 0
  log_every: int = 10
  eval_every: int = 0
  checkpoint: checkpointing.CheckpointConfig = checkpointing.CheckpointConfig()

  def __post_init__(self):
    if self.total_steps < 1:
      raise config_lib.ConfigError(
          f"config.trainer.total_steps={self.total_steps} must be >= 1"
      )
    if self.log_every < 1:
      raise config_lib.ConfigError(
          f"config.trainer.log_every={self.log_every} must be >= 1"
      )


@dataclasses.dataclass
class Program:
  """What a trainer hands the harness.

  Attributes:
    init: `rng -> state`, a pytree (usually a dict); parameter leaves may be
      `nn.LogicallyPartitioned` boxes naming their logical axes.
    step: pure `(state, batch, rng) -> (state, metrics)`; metrics are
      scalars named `train/...`. Jitted once with the state donated.
    data: an iterator of process-local numpy batches with
      `get_state()`/`set_state()` (see `train_lib.data`).
    evaluate: optional `(state, step) -> {name: scalar}`, run on every
      process every `eval_every` steps.
    guard: metric names checked for NaN/Inf (missing ones are skipped).
    groups: optional `{group: example process-local batch}` for trainers
      whose batches come in several fixed shapes (alternating gradient
      descent over task groups). Then `data` yields `(group, batch)` pairs,
      `step` is called as `step(state, batch, rng, group)` with `group`
      static, and every group's step is compiled ahead of time at start.
  """

  init: Callable[[jax.Array], State]
  step: Callable[[State, Batch, jax.Array], tuple[State, Metrics]]
  data: Iterator[Batch]
  evaluate: Callable[[State, int], Mapping[str, Any]] | None = None
  guard: tuple[str, ...] = ("train/loss", "train/grad_norm")
  groups: Mapping[Any, Batch] | None = None
  compiler_options: Mapping[str, str] | None = None


class NonFiniteError(RuntimeError):
  """A metric became NaN or infinite; training stopped."""


class _Preemption:
  """Turns SIGTERM into a request to save and stop at the next step."""

  def __init__(self):
    self.requested = False
    self._previous = None
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM: saving a checkpoint and stopping.")
    self.requested = True

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _rngs(seed: int) -> tuple[jax.Array, jax.Array]:
  """Independent keys for init and for the per-step fold_in."""
  root = jax.random.key(seed)
  return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)


def _first_non_finite(
    history: list[tuple[int, Metrics]], names: tuple[str, ...]
) -> tuple[int, str, float] | None:
  for step, m in history:
    for name in names:
      if name in m:
        value = float(np.asarray(m[name]))
        if not np.isfinite(value):
          return step, name, value
  return None


def _arrays_by_path(tree: Any) -> dict[str, Any]:
  """`{'params/dense0/kernel': leaf}` for every array leaf of the state."""
  return {
      jax.tree_util.keystr(path, simple=True, separator="/"): leaf
      for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
      if hasattr(leaf, "shape")
  }


def setup(
    config: ml_collections.ConfigDict,
    workdir: str,
    resumable: tuple[str, ...] = workdir_lib.RESUMABLE,
) -> tuple[TrainerConfig, jax.sharding.Mesh]:
  """Validates `config.trainer`, builds the mesh, records `config.json`.

  What `train_lib.family.run` does before it builds a program. On a rerun the
  config is checked against the workdir's before anything is written: a
  change to the model or the data is refused (`workdir_lib.check_config`);
  `resumable` names the keys a rerun may change.
  """
  trainer = config_lib.from_config(
      TrainerConfig, config.trainer, "config.trainer"
  )
  mesh = sharding.create_mesh(
      config_lib.from_config(sharding.MeshConfig, config.mesh, "config.mesh")
  )
  changes = workdir_lib.check_config(workdir, config, resumable)
  workdir_lib.write_config(workdir, config, changes)
  return trainer, mesh


def train(
    config: TrainerConfig,
    mesh: jax.sharding.Mesh,
    workdir: str,
    program: Program,
    rules=sharding.LOGICAL_AXIS_RULES,
) -> State:
  """Runs (or resumes) training to `config.total_steps`.

  Args:
    config: the harness config.
    mesh: device mesh (`sharding.create_mesh`).
    workdir: holds `checkpoints/`, `tensorboard/`, `metrics.jsonl`.
    program: the trainer's init/step/data.
    rules: logical axis rules.

  Returns:
    The final state (sharded jax.Arrays).

  Raises:
    NonFiniteError: a guarded metric was NaN/Inf. The message names the step
      and metric; checkpoints after the last finite step are never written.
    checkpointing.CheckpointSaveError: writing a checkpoint failed (disk
      full, ...). Asynchronous saves are polled every step, so the run stops
      as soon as the failed write ends, not at the next save; the message
      names the checkpoint, the reason and the last complete checkpoint,
      which is left intact.
    checkpointing.CheckpointMismatchError: the checkpoint to resume from
      does not fit this run's model (another model config wrote it).
  """
  os.makedirs(workdir, exist_ok=True)
  init_rng, step_rng = _rngs(config.seed)

  # ------------------------------------------------------------- Shardings.
  with nn.logical_axis_rules(list(rules)):
    boxed = jax.eval_shape(program.init, init_rng)
    state_sharding = sharding.logical_sharding(boxed, mesh, rules)
  abstract = checkpointing.abstract_like(nn.unbox(boxed), state_sharding)
  repl = sharding.replicated(mesh)

  # ------------------------------------------------------ Init or restore.
  ckpt = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), config.checkpoint
  )
  # Unusable checkpoints (incomplete, unreadable) are set aside, logged.
  restored = ckpt.restore_latest(abstract)
  first_step = 0
  if restored is not None:
    first_step, state, data_state = restored
    if data_state:
      program.data.set_state(data_state)
  else:
    init = jax.jit(
        lambda rng: nn.unbox(program.init(rng)), out_shardings=state_sharding
    )
    with nn.logical_axis_rules(list(rules)):
      state = init(init_rng)
  jsonl = os.path.join(workdir, "metrics.jsonl")
  if jax.process_index() == 0:
    metrics_lib.truncate_jsonl(jsonl, first_step)
  writer = metrics_lib.create_writer(workdir, first_step)
  if first_step == 0 and jax.process_index() == 0:
    # Shapes only (abstract): nothing is fetched from the devices.
    parameter_overview.log_parameter_overview(
        _arrays_by_path(abstract), include_stats=False
    )
  logging.info(
      "Training steps %d..%d of %d",
      first_step + 1,
      config.total_steps,
      config.total_steps,
  )

  # ------------------------------------------------------------ Step fn.
  def step_fn(state, batch, step, group=None):
    rng = jax.random.fold_in(step_rng, step)
    with nn.logical_axis_rules(list(rules)):
      if program.groups is None:
        return program.step(state, batch, rng)
      return program.step(state, batch, rng, group)

  step_fn = jax.jit(
      step_fn,
      out_shardings=(state_sharding, repl),
      donate_argnums=(0,),
      static_argnames=("group",),
      compiler_options=program.compiler_options,
  )
  compiled = {}
  with jax.set_mesh(mesh):
    for group, example in (program.groups or {}).items():
      # Ahead of time, one executable per batch shape: a shape that does
      # not fit in memory fails here, not hours into the run.
      compiled[group] = step_fn.lower(
          abstract, sharding.global_batch(example, mesh, rules), np.int32(0),
          group=group,
      ).compile()  # fmt: skip
  if compiled:
    logging.info("Compiled %d step shapes: %s", len(compiled), list(compiled))

  # --------------------------------------------------------- Train loop.
  progress = metrics_lib.Progress(config.total_steps, first_step)
  preemption = _Preemption()
  history: list[tuple[int, Metrics]] = []
  last_saved = first_step
  step = first_step
  try:
    with jax.set_mesh(mesh):
      for step in range(first_step + 1, config.total_steps + 1):
        group, batch = None, next(program.data)
        if program.groups is not None:
          group, batch = batch
        batch = sharding.global_batch(batch, mesh, rules)
        if group in compiled:
          state, m = compiled[group](state, batch, np.int32(step))
        else:
          state, m = step_fn(state, batch, np.int32(step), group=group)
        history.append((step, m))
        # At most two steps in flight: the host may prepare step s + 1
        # while step s runs, but no further, so a SIGTERM's checkpoint waits
        # for one step, not for every step queued since the last log line
        # (XLA:CPU dispatch is asynchronous: 50 queued 10-second steps would
        # outlast a preemption's grace period).
        if len(history) > 1:
          jax.block_until_ready(history[-2][1])
        # A failed asynchronous save stops the run now, not at the next
        # save; every process agrees on the step at which all of them save
        # (SIGTERM) or stop (a save failed on any of them).
        save_error = ckpt.poll_save()
        flags = np.array([preemption.requested, save_error is not None])
        if jax.process_count() > 1:
          flags = multihost_utils.process_allgather(flags.astype(np.int32))
          flags = flags.max(axis=0).astype(bool)
        stop, save_failed = bool(flags[0]), bool(flags[1])
        if save_failed:
          raise save_error or ckpt.save_failed_elsewhere()
        last = step == config.total_steps
        save = stop or last or step % config.checkpoint.every_steps == 0
        if save or step % config.log_every == 0:
          bad = _first_non_finite(history, program.guard)
          if bad is not None:
            ckpt.wait()
            bad_step, name, value = bad
            raise NonFiniteError(
                f"{name}={value} at step {bad_step}; stopped. The last good"
                f" checkpoint is step {ckpt.latest_step()} in"
                f" {ckpt.directory}"
            )
          # The latest value of every metric since the last write (groups
          # may report different names, e.g. per-task losses).
          scalars = {}
          for _, m_ in history:
            scalars.update({k: np.asarray(v) for k, v in m_.items()})
          writer.write_scalars(step, scalars)
          progress.report(step, scalars)
          history.clear()
        if (
            program.evaluate
            and config.eval_every
            and (step % config.eval_every == 0 or last)
        ):
          writer.write_scalars(step, dict(program.evaluate(state, step)))
        if save:
          ckpt.save(step, state, program.data.get_state())
          writer.flush()
          last_saved = step
        if stop:
          logging.warning(
              "Stopped at step %d after SIGTERM; resume by"
              " rerunning with the same workdir.",
              step,
          )
          break
    # The last save must be complete (or its error raised) before "Done".
    ckpt.wait()
  finally:
    preemption.restore()
    writer.close()
    ckpt.close()
  logging.info(
      "Done at step %d; last checkpoint %d in %s",
      step,
      last_saved,
      ckpt.directory,
  )
  return state
