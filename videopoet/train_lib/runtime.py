"""Process-level setup: `jax.distributed` for multi-host runs.

One process per host (TPU VM, GPU node, or a CPU process in tests). On a
TPU pod slice or under SLURM/Kubernetes `jax.distributed.initialize()` finds
the coordinator itself; elsewhere the three values are passed explicitly
(see WORKSPACE.md).
"""

from absl import logging
import jax


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    cpu_collectives: str = "gloo",
    auto: bool = False,
) -> None:
  """Joins the job's processes; a no-op for a single local process.

  Args:
    coordinator_address: `host:port` of process 0, or None to auto-detect
      (TPU pods, SLURM) or run single-process.
    num_processes: total processes, with `coordinator_address`.
    process_id: this process, with `coordinator_address`.
    cpu_collectives: cross-process collectives on CPU ('gloo' or 'mpi').
    auto: with no address, let `jax.distributed.initialize()` detect the
      cluster (TPU pod slices, SLURM, Kubernetes).
  """
  if coordinator_address is None and num_processes is None and not auto:
    return
  # Only affects the CPU backend; set before any backend is created, since
  # `initialize` must run before the first JAX computation.
  jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
  jax.distributed.initialize(
      coordinator_address=coordinator_address,
      num_processes=num_processes,
      process_id=process_id,
  )
  logging.info(
      "Process %d of %d: %d local / %d global devices",
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
  )
