"""Flags and start-up shared by every job in `experiments/`.

Every job is `python -m experiments.<job> --config=configs/<file>.py:<arg>
--workdir=<dir> [--config.key=value ...]`, plus the `jax.distributed` flags
below for multi-process runs (see WORKSPACE.md).
"""

from absl import flags
from absl import logging
import logging as py_logging
import re
import sys
from typing import Callable

from absl import app
import jax

from videopoet import config_lib
from videopoet.kernels import xla_cpu
from videopoet.train_lib import runtime

WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory: checkpoints, metrics, config.json."
)
COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0 for jax.distributed (multi-process runs).",
)
NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Number of processes in a jax.distributed job."
)
PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index in a jax.distributed job."
)
DISTRIBUTED_AUTO = flags.DEFINE_bool(
    "distributed_auto",
    False,
    "Call jax.distributed.initialize() with no arguments (TPU pods, SLURM,"
    " Kubernetes: the cluster tells JAX its peers).",
)


class _QuietLibraries(py_logging.Filter):
  """Drops INFO chatter of orbax/grain so the progress line stays readable."""

  _NOISY = ("/orbax/", "/grain/", "/tensorflow_datasets/")

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or not any(
        part in record.pathname for part in self._NOISY
    )


def built_data(config):
  """`config.data` of a job that reads a dataset experiments.build_data
  built (named errors for a bad key or an empty data_dir)."""
  from videopoet.data import datasets  # pylint: disable=g-import-not-at-top

  data = config_lib.from_config(
      datasets.DataConfig, config.data, "config.data"
  )
  if not data.data_dir:
    raise config_lib.ConfigError(
        "config.data.data_dir is empty: pass --config.data.data_dir=DIR, the"
        " TFDS data directory of experiments.build_data"
    )
  return data


def init_runtime() -> None:
  """Joins the processes of the job (when asked) and logs the devices."""
  for handler in py_logging.getLogger().handlers + [logging.get_absl_handler()]:
    handler.addFilter(_QuietLibraries())
  runtime.initialize(
      COORDINATOR.value,
      NUM_PROCESSES.value,
      PROCESS_ID.value,
      auto=DISTRIBUTED_AUTO.value,
  )
  logging.info(
      "JAX %s: process %d/%d, %d local / %d global %s devices",
      jax.__version__,
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
      jax.default_backend(),
  )


def _config_flag_naming(key: str) -> str:
  """The `--config.*` argument that mentions `key`, for error messages."""
  for arg in sys.argv[1:]:
    name = arg.split("=", 1)[0]
    if name.startswith("--config.") and key in name.split("."):
      return arg
  return f"--config...{key}"


def run(main: Callable[[list[str]], None]) -> None:
  """`app.run(main)`, turning config mistakes into one-line errors.

  A key that does not exist (`--config.modle.width=3`) and a value outside
  what a field allows exit with status 2 and a message naming the key,
  instead of a traceback.
  """
  xla_cpu.configure()  # Before JAX creates its backend (CPU jobs only).
  # `--help` of a job lists the shared flags it uses beside its own: the
  # multi-process ones, and --workdir where the job requires it.
  shared = [COORDINATOR, NUM_PROCESSES, PROCESS_ID, DISTRIBUTED_AUTO]
  if flags.FLAGS[WORKDIR.name].validators:  # mark_flags_as_required.
    shared.insert(0, WORKDIR)
  for flag in shared:
    flags.FLAGS.register_key_flag_for_module(
        sys.argv[0], flags.FLAGS[flag.name]
    )
  parsed = []

  def _main(argv):
    parsed.append(True)
    return main(argv)

  try:
    app.run(_main)
  except (KeyError, AttributeError) as e:
    if parsed:  # Raised by the job itself, not by the config overrides.
      raise
    # ml_collections raises KeyError("'key'\nDid you mean ...?") for a missing
    # section and AttributeError for a missing leaf.
    text = str(e.args[0]) if e.args else ""
    found = re.search(r"'([^'\\]+)\\?'(.*)", text, re.S)
    key = found.group(1) if found else text
    hint = re.search(r"Did you mean [^?]*\?", text)
    print(
        f"error: unknown config key '{key}' in {_config_flag_naming(key)}."
        + (f" {hint.group(0)}" if hint else ""),
        file=sys.stderr,
    )
    sys.exit(2)
  except config_lib.ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
