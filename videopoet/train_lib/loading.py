"""Loading a trained model's parameters from its workdir: one way for all.

Every trainer checkpoints `<workdir>/checkpoints/<step>/state` (the whole
train state: parameters, optimizer moments, EMA, discriminators). Inference
needs a few subtrees of it; `restore_params` reads only those (orbax partial
restore: the optimizer state is never read), placed with the caller's
shardings, so an LM restores straight onto the sampler's mesh.

    workdir, step = loading.find_workdir(path, "lm", "experiments.train")
    step, trees = loading.restore_params(workdir, ("params",), step=step,
                                         shardings={"params": shardings})

The model families' loaders (`videopoet.sampling.models.load_lm`,
`magvit2.program.load_tokenizer`, `soundstream.codec.load_codec`) are thin
layers over these two functions.
"""

import os
from typing import Any, Callable, Sequence

import jax
import orbax.checkpoint as ocp

from videopoet.train_lib import renames
from videopoet.train_lib import workdir as workdir_lib

Sharding = jax.sharding.Sharding


def checkpoint_steps(workdir: str) -> list[int]:
  """The complete checkpoint steps under `<workdir>/checkpoints`, ascending."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(
      int(name)
      for name in os.listdir(directory)
      if name.isdigit()
      and os.path.isdir(os.path.join(directory, name, "state"))
  )


def find_workdir(path: str, family: str, job: str) -> tuple[str, int | None]:
  """(workdir, step or None) of a workdir or a `<workdir>/checkpoints/<step>`.

  Args:
    path: what the user passed.
    family: the workdir family expected (`workdir.FAMILIES`), checked
      against its config.json.
    job: the job that makes such workdirs (named in errors).

  Raises:
    FileNotFoundError: `path` is not such a directory, or no checkpoint.
    config_lib.ConfigError: the workdir is another family's (named).
  """
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path} is not a directory; pass the workdir of {job}")
  step = None
  if os.path.basename(path) == "checkpoints":
    path = os.path.dirname(path)
  elif os.path.basename(os.path.dirname(path)) == "checkpoints":
    if not os.path.basename(path).isdigit():
      raise FileNotFoundError(f"{path} is not a checkpoints/<step> directory")
    step = int(os.path.basename(path))
    path = os.path.dirname(os.path.dirname(path))
  workdir_lib.read_family_config(path, family)  # Names a wrong family.
  steps = checkpoint_steps(path)
  if not steps:
    raise FileNotFoundError(
        f"no checkpoint under {os.path.join(path, 'checkpoints')}: the run in"
        f" {path} has not saved one yet (train it longer with {job})"
    )
  if step is not None and step not in steps:
    raise FileNotFoundError(
        f"no checkpoint of step {step} under {path}/checkpoints (it has"
        f" {steps})"
    )
  return path, step


def stored_shapes(workdir: str, step: int) -> dict[str, Any]:
  """The checkpointed state's tree of `jax.ShapeDtypeStruct`s (no data read)."""
  directory = os.path.join(workdir, "checkpoints", str(step), "state")
  meta = ocp.PyTreeCheckpointer().metadata(directory).item_metadata
  meta = meta.tree if hasattr(meta, "tree") else meta
  return jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype),
      dict(meta),
      is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"),
  )


def restore_params(
    workdir: str,
    select: Sequence[str],
    step: int | None = None,
    shardings: dict[str, Any] | Callable[[str, Any], Any] | None = None,
) -> tuple[int, dict[str, Any]]:
  """Restores only the top-level state entries `select` of a checkpoint.

  Args:
    workdir: a trainer's workdir (`find_workdir`).
    select: keys of the train state to read, e.g. ("params",) or
      ("ema_params", "quantizer"); the rest (optimizer state, ...) is not
      read. A checkpoint that stores a key under its old name
      (`renames.STATE_RENAMES`) is read under today's.
    step: the checkpoint; None: the latest.
    shardings: per selected key, a tree of shardings matching its shapes,
      or a function (key, shapes tree) -> such a tree; None (or a missing
      key): every array on the first local device.

  Returns:
    (step, {key: tree of jax.Array}).

  Raises:
    FileNotFoundError: no checkpoint (of `step`).
    KeyError: a selected key is not in the checkpoint (names what is).
  """
  steps = checkpoint_steps(workdir)
  if step is None:
    if not steps:
      raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints")
    step = steps[-1]
  elif step not in steps:
    raise FileNotFoundError(
        f"no checkpoint of step {step} under {workdir}/checkpoints (it has"
        f" {steps})"
    )
  shapes = stored_shapes(workdir, step)
  names = renames.stored_names(shapes, select)
  shapes = renames.from_stored(shapes, names)
  missing = [k for k in select if k not in shapes]
  if missing:
    raise KeyError(
        f"the checkpoint {workdir}/checkpoints/{step} has no {missing}; its"
        f" state holds {sorted(shapes)}"
    )
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = {}
  for key in select:
    placed = shardings(key, shapes[key]) if callable(shardings) else (
        (shardings or {}).get(key)
    )
    if placed is None:
      placed = jax.tree.map(lambda _: device, shapes[key])
    target[key] = jax.tree.map(
        lambda s, p: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=p),
        shapes[key],
        placed,
    )
  target = renames.to_stored(target, names)
  restore_args = jax.tree.map(
      lambda s: ocp.ArrayRestoreArgs(sharding=s.sharding), target
  )
  directory = os.path.join(workdir, "checkpoints", str(step), "state")
  restored = ocp.PyTreeCheckpointer().restore(
      directory,
      args=ocp.args.PyTreeRestore(
          item=target, restore_args=restore_args, partial_restore=True
      ),
  )
  restored = renames.from_stored(restored, names)
  return step, {k: restored[k] for k in select}
