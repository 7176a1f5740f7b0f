"""Config sections the jobs share, built in one place.

`trainer` is the harness's section (`videopoet.train_lib.harness.
TrainerConfig`, its `checkpoint` `checkpointing.CheckpointConfig`) and
`mesh` the device mesh's (`videopoet.sharding.MeshConfig`); the family
configs (`magvit2.py`, `soundstream.py`, `videopoet.py`) take them from
here and set only their sizes. `optimizer` and `data` give those sections
their shared key names; each family adds its own keys.

One vocabulary, in every config: `optimizer` (never `optim`), with
`learning_rate`, `warmup_steps` and, where the family keeps an EMA of its
weights, `ema_decay`; `data.dataset` (a TFDS name with its builder config,
e.g. 'synth_av/tiny'), `data.data_dir` (what the job reads: the TFDS data
directory, or the LM's tokens directory) and `data.batch_size` (the global
batch); `loss.gan_start_step`; `model.channel_multipliers`.
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


def optimizer(
    learning_rate: Any, warmup_steps: Any, **fields: Any
) -> ml_collections.ConfigDict:
  """`config.optimizer`: the peak learning rate, its linear warmup, and
  the family's own keys (`b1`, `b2`, `grad_clip`, `ema_decay`, ...)."""
  return ml_collections.ConfigDict(
      dict(learning_rate=learning_rate, warmup_steps=warmup_steps, **fields)
  )


def data(
    dataset: str | None = None, data_dir: str = "", **fields: Any
) -> ml_collections.ConfigDict:
  """`config.data`: what the job reads, then the job's own keys.

  Args:
    dataset: TFDS name with its builder config ('synth_av/tiny'); None
      for a job whose input names its dataset itself (the LM's tokens).
    data_dir: the TFDS data directory (`experiments.build_data`'s), or
      the LM's tokens directory (`experiments.tokenize_data`'s workdir).
    **fields: the job's own keys (`batch_size` is the global batch).
  """
  named = {} if dataset is None else dict(dataset=dataset)
  return ml_collections.ConfigDict(dict(**named, data_dir=data_dir, **fields))


def mesh(data: int = -1, fsdp: int = 1, tensor: int = 1) -> dict:
  """Mesh axis sizes; -1 takes the devices the others leave."""
  return dict(data=data, fsdp=fsdp, tensor=tensor)
