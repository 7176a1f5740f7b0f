"""Device mesh and the logical-axis rules: the one place mesh names appear.

Modules name logical axes only: parameters through
`nn.with_logical_partitioning(init, ('embed', 'mlp'))`, activations through
`nn.with_logical_constraint(x, ('activation_batch', 'activation_length',
'activation_embed'))` at block boundaries. This module maps those names onto
the three mesh axes

  * `data`:   pure data parallelism (parameters replicated),
  * `fsdp`:   data parallelism with parameters and optimizer state sharded
              (ZeRO-3 style, gathered per layer by XLA),
  * `tensor`: tensor (model) parallelism inside a layer (Megatron style),

whose sizes come from the config (`config.mesh`). The names follow MaxText
(2024) so the rules read the same as the reference code.
"""

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from videopoet import config_lib

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis -> mesh axes. Parameters first, then activations. An axis
# mapped to None is replicated. Flax applies the first rule whose mesh axes
# are still free, so a tensor never uses one mesh axis twice.
LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    # Parameters.
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("kv", None),
    ("vocab", "tensor"),
    ("norm", None),
    ("layers", None),
    # Convolution kernels [kt, kh, kw, in, out]: shard the output channels.
    ("conv_window", None),
    ("conv_in", None),
    ("conv_out", "fsdp"),
    # Activations.
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", None),
    # The residual stream is replicated over `tensor` (Megatron tensor
    # parallelism without sequence parallelism). Sharding it over `tensor`
    # too gave wrong sums on XLA:CPU (jax 0.10.2; tests/model_sharding_test).
    ("activation_embed", None),
    ("activation_mlp", "tensor"),
    ("activation_heads", "tensor"),
    ("activation_kv", None),
    ("activation_vocab", "tensor"),
    ("activation_time", None),
    ("activation_height", None),
    ("activation_width", None),
    ("activation_channels", None),
    # The KV cache of decoding [layers, b, length, kv heads, head dim]: split
    # like the activations that fill it.
    ("cache_batch", ("data", "fsdp")),
    ("cache_length", None),
    ("cache_kv_heads", "tensor"),
    ("cache_kv", None),
)

# The batch dimension of input data, sharded over every data-parallel axis.
BATCH_AXES = ("activation_batch",)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Mesh shape. One axis may be -1: it takes the devices left over.

  Attributes:
    data: size of the `data` axis.
    fsdp: size of the `fsdp` axis.
    tensor: size of the `tensor` axis.
  """

  data: int = -1
  fsdp: int = 1
  tensor: int = 1

  def __post_init__(self):
    sizes = dataclasses.astuple(self)
    if sum(s == -1 for s in sizes) > 1:
      raise config_lib.ConfigError(
          f"config.mesh: at most one axis may be -1, got {self}"
      )
    for name, size in zip(MESH_AXES, sizes):
      if size == 0 or size < -1:
        raise config_lib.ConfigError(
            f"config.mesh.{name}={size} is not allowed: it must be a positive"
            " size or -1 (fill with the remaining devices)"
        )

  def shape(self, num_devices: int) -> tuple[int, int, int]:
    """The concrete mesh shape for `num_devices` devices."""
    sizes = list(dataclasses.astuple(self))
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
      if num_devices % known:
        raise config_lib.ConfigError(
            f"config.mesh={self} does not divide {num_devices} devices"
        )
      sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
      raise config_lib.ConfigError(
          f"config.mesh={self} has {math.prod(sizes)} devices but"
          f" {num_devices} are available"
      )
    return tuple(sizes)


def create_mesh(
    config: MeshConfig, devices: Sequence[jax.Device] | None = None
) -> jax.sharding.Mesh:
  """A (`data`, `fsdp`, `tensor`) mesh over all (or the given) devices."""
  devices = jax.devices() if devices is None else list(devices)
  shape = config.shape(len(devices))
  auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)


def logical_sharding(
    tree: Any, mesh: jax.sharding.Mesh, rules=LOGICAL_AXIS_RULES
) -> Any:
  """NamedShardings for a tree whose leaves may be `nn.LogicallyPartitioned`.

  Args:
    tree: usually `jax.eval_shape(init_fn, ...)`: boxed leaves carry their
      logical axis names, plain leaves are replicated.
    mesh: the device mesh.
    rules: logical -> mesh axis rules.

  Returns:
    A tree of `NamedSharding`s with the structure of `nn.unbox(tree)`.
  """
  specs = nn.get_partition_spec(tree)
  return nn.logical_to_mesh_sharding(specs, mesh, list(rules))


def batch_sharding(
    mesh: jax.sharding.Mesh, ndim: int, rules=LOGICAL_AXIS_RULES
) -> NamedSharding:
  """Sharding of an input array: leading batch axis over data-parallel axes."""
  spec = nn.logical_to_mesh_axes(BATCH_AXES + (None,) * (ndim - 1), list(rules))
  return NamedSharding(mesh, spec)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_parallel_size(
    mesh: jax.sharding.Mesh, rules=LOGICAL_AXIS_RULES
) -> int:
  """How many ways the batch axis is split (the global batch must divide)."""
  axes = nn.logical_to_mesh_axes(BATCH_AXES, list(rules))[0] or ()
  axes = (axes,) if isinstance(axes, str) else axes
  return math.prod(mesh.shape[a] for a in axes)


def global_batch(
    local_batch: Any, mesh: jax.sharding.Mesh, rules=LOGICAL_AXIS_RULES
) -> Any:
  """Assembles process-local numpy batches into global sharded jax.Arrays.

  Each process passes its own rows (the global batch split evenly over
  processes in process order); the result has the global batch size.
  """

  def put(x):
    x = np.asarray(x)
    sharding = batch_sharding(mesh, x.ndim, rules)
    return jax.make_array_from_process_local_data(sharding, x)

  return jax.tree.map(put, local_batch)
