"""Orbax checkpoints of the train state together with the data iterator.

A checkpoint at step k holds the state after k updates and the input
iterator positioned at the batch of step k + 1, so a resumed run is the
uninterrupted run. Saves are asynchronous (training goes on while the arrays
are written) and atomic: orbax writes into a temporary directory and renames
it when complete, so a job killed mid-save resumes from the previous one.
Restoring takes the *current* mesh's shardings, so a checkpoint written on
one mesh restores onto another (e.g. 2 processes -> 1).
"""

import dataclasses
import os
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """Attributes:
  every_steps: save every this many steps (and at the last step).
  keep: how many recent checkpoints to keep.
  async_save: write in a background thread while training goes on.
  """

  every_steps: int = 100
  keep: int = 3
  async_save: bool = True


class Checkpointer:
  """Saves and restores `(state, data_iterator_state)` under `directory`."""

  def __init__(self, directory: str, config: CheckpointConfig):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=config.keep,
        enable_async_checkpointing=config.async_save,
        create=True,
        # Leftovers of a save cut short by a kill are removed at start.
        cleanup_tmp_directories=True,
    )
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=("state", "data")
    )

  def latest_step(self) -> int | None:
    """The newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict | None) -> None:
    """Starts saving; returns once the arrays are safe to donate."""
    # The iterator state is the same on every process (see data.py), so the
    # primary host's JSON copy is everyone's.
    items = {"state": ocp.args.StandardSave(state)}
    items["data"] = ocp.args.JsonSave(data_state or {})
    self._manager.save(step, args=ocp.args.Composite(**items), force=True)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores onto the shardings in `abstract_state` (ShapeDtypeStructs)."""
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=ocp.args.JsonRestore(),
        ),
    )
    logging.info("Restored step %d from %s", step, self.directory)
    return restored["state"], dict(restored["data"] or {})

  def wait(self) -> None:
    """Blocks until a pending asynchronous save is complete."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_like(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of `tree` placed with `shardings` (restore targets)."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree,
      shardings,
  )
