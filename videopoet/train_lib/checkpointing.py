"""Orbax checkpoints of the train state together with the data iterator.

A checkpoint at step k holds the state after k updates and the input
iterator positioned at the batch of step k + 1, so a resumed run is the
uninterrupted run. Saves are asynchronous (training goes on while the arrays
are written) and atomic: orbax writes into a temporary directory and renames
it when complete, so a job killed mid-save resumes from the previous one.
Restoring takes the *current* mesh's shardings, so a checkpoint written on
one mesh restores onto another (e.g. 2 processes -> 1).

What can go wrong, and what happens:

  * `CheckpointConfig` refuses `every_steps < 1` and `keep < 1` when the
    config is parsed (`keep=0` would have orbax delete every checkpoint).
  * An incomplete or unreadable checkpoint (an empty `<step>/` directory, a
    truncated or missing file, metadata that does not parse) is found by
    `restore_latest`: it is named, with the reason, in a WARNING, moved to
    `<directory>.bad/<step>` (`<step>.1`, ... if taken; never deleted), and
    the next newest is tried; with none left the run starts from init. Every
    process agrees on each verdict; process 0 does the renaming. A restore
    that runs out of memory is raised, not taken for a bad checkpoint.
  * A checkpoint whose arrays do not fit the current model (other names or
    shapes, checked against its stored metadata before reading any array) is
    not corruption: `CheckpointMismatchError` names it and stops the run.
  * A checkpoint written before a train-state key was renamed (SoundStream's
    `gen`, `gen_ema`, `disc`; MAGVIT-v2's `d_params`: `renames.
    STATE_RENAMES`) restores under today's names, said in one log line; its
    files are not rewritten.
  * A failed asynchronous save (disk full, permissions, ...) is noticed by
    `poll_save`, cheap enough to call every step, as soon as its background
    write ends: `CheckpointSaveError` names the checkpoint and the reason.
    The failed save stays a temporary directory (never counted as complete,
    removed at the next start) and nothing older is deleted.
"""

import dataclasses
import itertools
import os
from typing import Any

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from videopoet import config_lib
from videopoet.train_lib import renames

# The items of a step directory: `<step>/state/`, `<step>/data/`.
_ITEMS = ("state", "data")
# Differences listed in a `CheckpointMismatchError` before "... and N more".
_MAX_LISTED = 5


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """When and how the harness saves (`config.trainer.checkpoint`).

  Attributes:
    every_steps: save every this many steps (and at the last step); >= 1.
    keep: how many recent checkpoints to keep; >= 1.
    async_save: write in a background thread while training goes on.
  """

  every_steps: int = 100
  keep: int = 3
  async_save: bool = True

  def __post_init__(self):
    key = "config.trainer.checkpoint"
    if self.every_steps < 1:
      raise config_lib.ConfigError(
          f"{key}.every_steps={self.every_steps} is not allowed: it must be"
          " >= 1 (the number of steps between checkpoints)"
      )
    if self.keep < 1:
      raise config_lib.ConfigError(
          f"{key}.keep={self.keep} is not allowed: it must be >= 1"
          + (
              " (0 would delete every checkpoint)"
              if self.keep == 0
              else " (the number of recent checkpoints kept)"
          )
      )


class CheckpointSaveError(RuntimeError):
  """Writing a checkpoint failed; the message names its path and why."""


class CheckpointMismatchError(ValueError):
  """A checkpoint's arrays do not fit this run's model (names or shapes)."""


def _one_line(error: BaseException, limit: int = 300) -> str:
  """`Type: first line of the message`, at most `limit` characters."""
  text = str(error).strip().splitlines()
  text = text[0] if text else ""
  if len(text) > limit:
    text = text[: limit - 3] + "..."
  return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _out_of_memory(error: BaseException) -> bool:
  """A restore that ran out of host or device memory (not a bad file)."""
  return isinstance(error, MemoryError) or "RESOURCE_EXHAUSTED" in str(error)


def _any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any of them."""
  if jax.process_count() == 1:
    return flag
  flags = multihost_utils.process_allgather(np.array([flag], np.int32))
  return bool(np.max(flags))


def _leaves_by_path(tree: Any) -> dict[str, Any]:
  """`{'params/dense0/kernel': leaf}`; tuples and lists index as '0', '1'."""
  return {
      jax.tree_util.keystr(path, simple=True, separator="/"): leaf
      for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
  }


class Checkpointer:
  """Saves and restores `(state, data_iterator_state)` under `directory`."""

  def __init__(self, directory: str, config: CheckpointConfig):
    self.directory = os.path.abspath(directory)
    # Where unreadable checkpoints are moved: a sibling, which orbax does not
    # scan for steps.
    self.bad_directory = self.directory + ".bad"
    self._async = config.async_save
    options = ocp.CheckpointManagerOptions(
        max_to_keep=config.keep,
        enable_async_checkpointing=config.async_save,
        create=True,
        # Leftovers of a save cut short by a kill are removed at start.
        cleanup_tmp_directories=True,
    )
    # Handlers named up front (not inferred at the first save or restore),
    # so that `item_metadata` can read a step before anything is restored.
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=options,
        item_handlers={
            "state": ocp.StandardCheckpointHandler(),
            "data": ocp.JsonCheckpointHandler(),
        },
    )
    # The step of an asynchronous save not yet known to have succeeded.
    self._pending: int | None = None

  def step_path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def latest_step(self) -> int | None:
    """The newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  # --------------------------------------------------------------- Saving.

  def save(self, step: int, state: Any, data_state: dict | None) -> None:
    """Starts saving; returns once the arrays are safe to donate.

    Raises:
      CheckpointSaveError: the previous asynchronous save failed, or this
        (synchronous) one did.
    """
    self.wait()
    # The iterator state is the same on every process (see data.py), so the
    # primary host's JSON copy is everyone's.
    items = {"state": ocp.args.StandardSave(state)}
    items["data"] = ocp.args.JsonSave(data_state or {})
    try:
      self._manager.save(step, args=ocp.args.Composite(**items), force=True)
    except Exception as e:  # pylint: disable=broad-exception-caught
      raise self._save_error(step, e) from e
    if self._async:
      self._pending = step

  def poll_save(self) -> CheckpointSaveError | None:
    """The error of a finished asynchronous save; never blocks.

    Cheap (a flag read while a save is being written), so the harness calls
    it every step: a failed save is noticed as soon as its write ends, not
    at the next save. Returns the error (once) instead of raising it, so
    that all processes can agree on stopping first.
    """
    if self._pending is None or self._manager.is_saving_in_progress():
      return None
    step, self._pending = self._pending, None
    try:
      # The save has ended: this only joins its finished thread.
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-exception-caught
      return self._save_error(step, e)
    return None

  def save_failed_elsewhere(self) -> CheckpointSaveError:
    """The error of a save that failed on another process, not this one."""
    step, self._pending = self._pending, None
    self._manager.reload()
    return CheckpointSaveError(
        f"Saving {self._describe(step)} failed on another process (its log"
        " names the reason)." + self._last_good()
    )

  def wait(self) -> None:
    """Blocks until a pending asynchronous save is complete.

    Raises:
      CheckpointSaveError: the save failed.
    """
    step, self._pending = self._pending, None
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-exception-caught
      raise self._save_error(step, e) from e

  def close(self) -> None:
    """Waits for a pending save (raising its error), then closes."""
    try:
      self.wait()
    finally:
      self._manager.close()

  def _save_error(
      self, step: int | None, error: Exception
  ) -> CheckpointSaveError:
    # A failed step is dropped from the manager's list, and the steps the
    # save would have replaced are still on disk: read the disk again.
    self._manager.reload()
    return CheckpointSaveError(
        f"Saving {self._describe(step)} failed: {_one_line(error)}."
        + self._last_good()
    )

  def _describe(self, step: int | None) -> str:
    if step is None:
      return f"a checkpoint in {self.directory}"
    return f"checkpoint {self.step_path(step)}"

  def _last_good(self) -> str:
    latest = self.latest_step()
    if latest is None:
      return f" No complete checkpoint is in {self.directory}."
    return (
        f" The last complete checkpoint is step {latest} in"
        f" {self.directory}; a rerun resumes from it."
    )

  # ------------------------------------------------------------ Restoring.

  def _stored_state(self, step: int) -> Any:
    """The stored state's metadata tree of `step` (None: unreadable)."""
    metadata = self._manager.item_metadata(step)
    stored = metadata.get("state") if metadata is not None else None
    return getattr(stored, "tree", stored)

  def _old_names(self, step: int, stored: Any, abstract_state: Any) -> dict:
    """`renames.stored_names` of `step`, logged when there are any."""
    names = renames.stored_names(stored, abstract_state)
    if names:
      logging.info(
          "Checkpoint %s holds state keys under their old names; restoring"
          " them as %s",
          self.step_path(step),
          ", ".join(f"{old} -> {new}" for new, old in sorted(names.items())),
      )
    return names

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores onto the shardings in `abstract_state` (ShapeDtypeStructs)."""
    try:
      stored = self._stored_state(step)
    except Exception:  # pylint: disable=broad-exception-caught
      stored = None  # The restore names what is wrong.
    names = self._old_names(step, stored, abstract_state)
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(
                renames.to_stored(abstract_state, names)
            ),
            data=ocp.args.JsonRestore(),
        ),
    )
    logging.info("Restored step %d from %s", step, self.directory)
    state = renames.from_stored(restored["state"], names)
    return state, dict(restored["data"] or {})

  def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
    """Restores the newest readable checkpoint, setting aside broken ones.

    Args:
      abstract_state: ShapeDtypeStructs with the current shardings.

    Returns:
      `(step, state, data_state)`, or None when no checkpoint is usable (the
      run starts from init).

    Raises:
      CheckpointMismatchError: the newest readable checkpoint's arrays do not
        fit `abstract_state` (another model config wrote it).
    """
    set_aside = []
    while (step := self.latest_step()) is not None:
      problem = self._check(step, abstract_state)
      restored = None
      if problem is None:
        try:
          restored = self.restore(step, abstract_state)
        except Exception as e:  # pylint: disable=broad-exception-caught
          if _out_of_memory(e):
            raise  # Not the checkpoint's fault: every step would fail.
          problem = f"restoring it failed: {_one_line(e)}"
      if _any_process(problem is not None):
        self._set_aside(step, problem or "unreadable on another process")
        set_aside.append(step)
        continue
      if set_aside:
        logging.warning(
            "Set aside %d unusable checkpoint(s) %s in %s; resuming from"
            " step %d.",
            len(set_aside), set_aside, self.bad_directory, step,
        )  # fmt: skip
      else:
        logging.info("Resuming from step %d.", step)
      return step, *restored
    if set_aside:
      logging.warning(
          "No usable checkpoint is left in %s (set aside %s in %s): starting"
          " from init.",
          self.directory, set_aside, self.bad_directory,
      )  # fmt: skip
    else:
      logging.info("No checkpoint in %s: starting from init.", self.directory)
    return None

  def _check(self, step: int, abstract_state: Any) -> str | None:
    """Why `step` cannot be restored, or None if it looks complete.

    Raises:
      CheckpointMismatchError: its stored metadata does not fit
        `abstract_state`.
    """
    path = epath.Path(self.step_path(step))
    missing = [item for item in _ITEMS if not (path / item).is_dir()]
    if missing:
      return "incomplete: it has no " + ", ".join(f"{m}/" for m in missing)
    try:
      stored = self._stored_state(step)
    except Exception as e:  # pylint: disable=broad-exception-caught
      return f"its metadata is unreadable: {_one_line(e)}"
    if stored is not None:  # None: no `_METADATA`; the restore will tell.
      names = renames.stored_names(stored, abstract_state)
      stored = renames.from_stored(stored, names)
      self._check_fits(step, stored, abstract_state)
    return None

  def _check_fits(self, step: int, stored: Any, abstract_state: Any) -> None:
    """Raises `CheckpointMismatchError` unless names and shapes match."""
    ours = _leaves_by_path(abstract_state)
    theirs = _leaves_by_path(stored)
    differences = [
        f"{name} is in this run's state, not in the checkpoint"
        for name in sorted(set(ours) - set(theirs))
    ] + [
        f"{name} is in the checkpoint, not in this run's state"
        for name in sorted(set(theirs) - set(ours))
    ]
    for name in sorted(set(ours) & set(theirs)):
      shape = getattr(theirs[name], "shape", None)
      if shape is not None and tuple(shape) != tuple(ours[name].shape):
        differences.append(
            f"{name} has shape {tuple(shape)} in the checkpoint,"
            f" {tuple(ours[name].shape)} in this run"
        )
    if not differences:
      return
    more = len(differences) - _MAX_LISTED
    raise CheckpointMismatchError(
        f"Checkpoint {self.step_path(step)} does not match the model of this"
        " run: "
        + "; ".join(differences[:_MAX_LISTED])
        + (f"; and {more} more" if more > 0 else "")
        + ". The model config of this run is not the one that wrote the"
        " checkpoint: rerun with that config, or pass a new --workdir to"
        " train this model from scratch."
    )

  def _set_aside(self, step: int, reason: str) -> None:
    """Moves `step` to `bad_directory` (process 0), then rescans the steps."""
    source = epath.Path(self.step_path(step))
    bad = epath.Path(self.bad_directory)
    # Every process names the same destination before anything moves.
    names = itertools.chain(
        [str(step)], (f"{step}.{i}" for i in itertools.count(1))
    )
    dest = next(bad / n for n in names if not (bad / n).exists())
    logging.warning(
        "Checkpoint %s is unusable (%s): moving it to %s and trying the"
        " previous one.",
        source, reason, dest,
    )  # fmt: skip
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"checkpoint_set_aside_{step}")
    error = None
    if jax.process_index() == 0:
      try:
        bad.mkdir(parents=True, exist_ok=True)
        source.rename(dest)
      except OSError as e:
        error = e
    # Also the barrier after the move: every process rescans after it.
    if _any_process(error is not None):
      raise RuntimeError(
          f"Could not move the unusable checkpoint {source} to {dest}"
          + (f" ({_one_line(error)})" if error else " (see process 0's log)")
          + "; move or delete it by hand and rerun."
      ) from error
    self._manager.reload()


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of `tree` placed with `shardings` (restore targets)."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree,
      shardings,
  )
