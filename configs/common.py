"""Config sections every training family shares, built in one place.

`trainer` is the harness's section (`videopoet.train_lib.harness.
TrainerConfig`, its `checkpoint` `checkpointing.CheckpointConfig`) and
`mesh` the device mesh's (`videopoet.sharding.MeshConfig`); the family
configs (`magvit2.py`, `soundstream.py`, `videopoet.py`) take them from
here and set only their sizes.
"""

from typing import Any

import ml_collections


def trainer(
    total_steps: Any,
    *,
    log_every: int,
    eval_every: int,
    checkpoint_every: int,
    keep: int = 3,
    seed: int = 0,
) -> ml_collections.ConfigDict:
  """The harness's section.

  Args:
    total_steps: optimizer steps of the run (an int, or a
      `FieldReference` other sections read too).
    log_every: steps between metric lines (and NaN checks).
    eval_every: steps between evaluations (0: never).
    checkpoint_every: steps between checkpoints (and one at the end).
    keep: checkpoints kept.
    seed: seeds init, the data order and every step's randomness.
  """
  return ml_collections.ConfigDict(
      dict(
          total_steps=total_steps,
          seed=seed,
          log_every=log_every,
          eval_every=eval_every,
          checkpoint=dict(
              every_steps=checkpoint_every,
              keep=keep,
              # Save in the background while training goes on.
              async_save=True,
          ),
      )
  )


def mesh(data: int = -1, fsdp: int = 1, tensor: int = 1) -> dict:
  """Mesh axis sizes; -1 takes the devices the others leave."""
  return dict(data=data, fsdp=fsdp, tensor=tensor)
