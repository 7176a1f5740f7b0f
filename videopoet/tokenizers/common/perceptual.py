"""Perceptual loss: L2 between a frozen pretrained ResNet's logits.

MAGVIT(-v2) compares ResNet-50 logits of the real and reconstructed frames
(`perceptual_loss_on_logit`, weight 0.1). Weights are never downloaded:
`PerceptualConfig.weights_path` names a local flax msgpack file holding the
`ResNet` parameters (see `save_weights`); without one the loss is disabled
and `load` logs one line saying so. Batch norms are frozen (an affine scale
and bias per channel), as for any pretrained feature network.
"""

import dataclasses
import os

from absl import logging
import flax.linen as nn
from flax import serialization
import jax
import jax.numpy as jnp
import numpy as np

# ImageNet normalization of the network's inputs (RGB in [0, 1]).
# numpy, not jnp: a jnp array here would create the JAX backend at import,
# before `videopoet.kernels.xla_cpu.configure()` can set its flags.
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclasses.dataclass(frozen=True)
class PerceptualConfig:
  """`config.perceptual`.

  Attributes:
    weights_path: local msgpack of `ResNet` params; '' disables the loss.
    stage_sizes: bottleneck blocks per stage ((3, 4, 6, 3) = ResNet-50).
    width: channels of the first stage (64 for ResNet-50).
    num_classes: logits.
    weight: loss weight (MAGVIT: 0.1).
  """

  weights_path: str = ""
  stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
  width: int = 64
  num_classes: int = 1000
  weight: float = 0.1


class _Affine(nn.Module):
  """A frozen batch norm: per-channel scale and bias."""

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    return x * self.param("scale", nn.initializers.ones, (c,)) + self.param(
        "bias", nn.initializers.zeros, (c,)
    )


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (strided) -> 1x1 (x4) bottleneck with projection shortcut."""

  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    y = nn.relu(_Affine()(nn.Conv(self.features, (1, 1), use_bias=False)(x)))
    y = nn.Conv(self.features, (3, 3), self.stride, use_bias=False)(y)
    y = nn.relu(_Affine()(y))
    y = _Affine()(nn.Conv(self.features * 4, (1, 1), use_bias=False)(y))
    if x.shape[-1] != self.features * 4 or self.stride != 1:
      x = nn.Conv(self.features * 4, (1, 1), self.stride, use_bias=False)(x)
      x = _Affine()(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """Images [n, h, w, 3] in [-1, 1] -> logits [n, num_classes]."""

  stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
  width: int = 64
  num_classes: int = 1000

  @nn.compact
  def __call__(self, x):
    x = ((x + 1) / 2 - _MEAN) / _STD
    x = nn.Conv(self.width, (7, 7), 2, use_bias=False)(x)
    x = nn.relu(_Affine()(x))
    x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        x = Bottleneck(self.width * 2**i, 2 if i > 0 and j == 0 else 1)(x)
    return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))


def network(cfg: PerceptualConfig) -> ResNet:
  return ResNet(cfg.stage_sizes, cfg.width, cfg.num_classes)


def save_weights(path: str, params) -> None:
  """Writes `ResNet` params where `weights_path` can read them."""
  with open(path, "wb") as f:
    f.write(serialization.to_bytes(params))


def load(cfg: PerceptualConfig):
  """The frozen params, or None (disabled) when no weights path is given."""
  if not cfg.weights_path:
    logging.info(
        "Perceptual loss disabled: config.perceptual.weights_path"
        " is empty (no pretrained weights are downloaded)."
    )
    return None
  if not os.path.exists(cfg.weights_path):
    raise FileNotFoundError(
        f"config.perceptual.weights_path={cfg.weights_path!r} does not exist"
    )
  net = network(cfg)
  template = jax.eval_shape(
      net.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3))
  )["params"]
  with open(cfg.weights_path, "rb") as f:
    params = serialization.from_bytes(template, f.read())
  logging.info(
      "Perceptual loss: ResNet%s logits from %s",
      cfg.stage_sizes,
      cfg.weights_path,
  )
  return jax.tree.map(jnp.asarray, params)


def loss(
    cfg: PerceptualConfig, params, real: jax.Array, fake: jax.Array
) -> jax.Array:
  """Mean squared logit difference over all frames of [b, t, h, w, 3]."""
  net = network(cfg)
  both = jnp.concatenate([real, fake]).reshape(-1, *real.shape[-3:])
  logits = net.apply({"params": jax.lax.stop_gradient(params)}, both)
  lr, lf = jnp.split(logits, 2)
  return jnp.mean(jnp.square(jax.lax.stop_gradient(lr) - lf))
