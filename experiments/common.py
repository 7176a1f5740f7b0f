"""Flags and start-up shared by every job in `experiments/`.

Every job is `python -m experiments.<job> --config=configs/<file>.py:<arg>
--workdir=<dir> [--config.key=value ...]`, plus the `jax.distributed` flags
below for multi-process runs (see WORKSPACE.md).
"""

from absl import flags
from absl import logging
import logging as py_logging

import jax

from videopoet.train_lib import runtime

WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory: checkpoints, metrics, config.json.")
COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None,
    "host:port of process 0 for jax.distributed (multi-process runs).")
NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Number of processes in a jax.distributed job.")
PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index in a jax.distributed job.")
DISTRIBUTED_AUTO = flags.DEFINE_bool(
    "distributed_auto", False,
    "Call jax.distributed.initialize() with no arguments (TPU pods, SLURM,"
    " Kubernetes: the cluster tells JAX its peers).")


class _QuietLibraries(py_logging.Filter):
  """Drops INFO chatter of orbax/grain so the progress line stays readable."""

  _NOISY = ("/orbax/", "/grain/", "/tensorflow_datasets/")

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or not any(
        part in record.pathname for part in self._NOISY)


def init_runtime() -> None:
  """Joins the processes of the job (when asked) and logs the devices."""
  for handler in py_logging.getLogger().handlers + [logging.get_absl_handler()]:
    handler.addFilter(_QuietLibraries())
  runtime.initialize(COORDINATOR.value, NUM_PROCESSES.value, PROCESS_ID.value,
                     auto=DISTRIBUTED_AUTO.value)
  logging.info("JAX %s: process %d/%d, %d local / %d global %s devices",
               jax.__version__, jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count(),
               jax.default_backend())
