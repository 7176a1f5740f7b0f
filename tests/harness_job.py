"""A tiny job on the shared harness, for the harness tests.

An MLP with logically partitioned kernels regresses a fixed random map on a
synthetic, deterministic dataset. At the end, process 0 writes the final
parameters to `<workdir>/final_params.npz` so tests can compare runs bit for
bit.

Test hook: with `HARNESS_JOB_FAIL_SAVES_AFTER=n` in the environment, every
checkpoint save after the first n fails in its background write with
`OSError(ENOSPC)`, as on a full disk.
"""

import errno
import os
import time

from absl import flags
import flax.linen as nn
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
import optax
import orbax.checkpoint as ocp

from experiments import common
from videopoet.train_lib import data as data_lib
from videopoet.train_lib import harness
from videopoet.train_lib import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Job config.", lock_config=True
)

IN_DIM, OUT_DIM = 16, 4


class MLP(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x):  # [b, in]
    for i, (features, axes) in enumerate(
        [(self.width, ("embed", "mlp")), (OUT_DIM, ("mlp", "embed"))]
    ):
      x = nn.Dense(
          features,
          name=f"dense{i}",
          kernel_init=(
              nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes)
          ),
      )(x)
      if i == 0:
        x = nn.gelu(x)
    return x  # [b, out]


class _DiskFull:
  """A commit future whose write fails as on a full disk."""

  def __init__(self, directory):
    self._directory = str(directory)

  def result(self, timeout=None):
    del timeout
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._directory)

  def cancel(self):
    pass


def _fail_saves_after(n: int) -> None:
  """Makes the background write of every save after the first `n` fail."""
  original = ocp.StandardCheckpointHandler.async_save
  saves = [0]

  async def async_save(self, directory, *args, **kwargs):
    futures = list(await original(self, directory, *args, **kwargs) or [])
    saves[0] += 1
    if saves[0] > n:
      # After the real writes (none left running), as a disk fills up.
      futures.append(_DiskFull(directory))
    return futures

  ocp.StandardCheckpointHandler.async_save = async_save


def make_records(n: int, nan_records=()) -> list[dict]:
  rng = np.random.default_rng(1234)
  w = rng.normal(size=(IN_DIM, OUT_DIM)).astype(np.float32)
  x = rng.normal(size=(n, IN_DIM)).astype(np.float32)
  y = np.tanh(x @ w)
  x[list(nan_records)] = np.nan
  return [{"x": x[i], "y": y[i]} for i in range(n)]


def make_program(config) -> harness.Program:
  model = MLP(config.width)
  tx = optax.adam(config.learning_rate)

  def init(rng):
    params = model.init(rng, jnp.zeros((1, IN_DIM)))["params"]
    return {"params": params, "opt_state": tx.init(params)}

  def step(state, batch, rng):
    del rng

    def loss_fn(params):
      pred = model.apply({"params": params}, batch["x"])
      return jnp.mean((pred - batch["y"]) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state["params"])
    if config.step_work:
      # `step_work` 512^2 matmuls of real computation (a host callback
      # would run synchronously), so the host can dispatch ahead of them.
      x = jax.lax.fori_loop(
          0,
          config.step_work,
          lambda _, x: jnp.tanh(x @ x),
          jnp.full((512, 512), 1e-3, jnp.float32) + loss,
      )
      grads = jax.tree.map(lambda g: g + 0.0 * jnp.sum(x), grads)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {"train/loss": loss, "train/grad_norm": optax.global_norm(grads)}
    return {"params": params, "opt_state": opt_state}, metrics

  def slow(record):
    time.sleep(config.data_delay_s / config.batch_size)
    return record

  records = make_records(config.num_records, config.nan_records)
  it = data_lib.batched_iterator(
      records,
      global_batch_size=config.batch_size,
      seed=0,
      shuffle=not config.nan_records,
      transform=slow if config.data_delay_s else None,
  )
  return harness.Program(init=init, step=step, data=it)


def run(config, workdir: str):
  # The pacing knobs slow a run down without changing what it computes.
  trainer, mesh = harness.setup(
      config,
      workdir,
      workdir_lib.RESUMABLE + ("data_delay_s", "step_work"),
  )
  state = harness.train(trainer, mesh, workdir, make_program(config))
  params = multihost_utils.process_allgather(state["params"], tiled=True)
  if jax.process_index() == 0:
    flat = {
        "/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
        for path, v in jax.tree_util.tree_leaves_with_path(params)
    }
    np.savez(os.path.join(workdir, "final_params.npz"), **flat)
  return state


def main(argv):
  del argv
  if "HARNESS_JOB_FAIL_SAVES_AFTER" in os.environ:
    _fail_saves_after(int(os.environ["HARNESS_JOB_FAIL_SAVES_AFTER"]))
  common.init_runtime()
  run(_CONFIG.value, common.WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  common.run(main)
