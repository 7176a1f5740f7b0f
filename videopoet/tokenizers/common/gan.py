"""StyleGAN-style 3D discriminator and the GAN losses of MAGVIT(-v2).

The discriminator follows praxis `vqvae.py::Discriminator`: conv3 -> leaky
ReLU, residual blocks that blur-pool (filter [1, 2, 1]^3, stride 2 in t, h
and w) with channel multipliers, conv3, then a 2-layer MLP to one logit. No
normalization layers; R1 and LeCam regularize it instead. Losses: the
non-saturating GAN loss, LeCam regularization (Tseng et al. 2021) against
EMAs of the logits, and the R1 gradient penalty.
"""

import functools
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from videopoet import kernels

_KERNEL = nn.with_logical_partitioning(
    nn.initializers.lecun_normal(),
    ("conv_window", None, None, "conv_in", "conv_out"),
)
_BIAS = nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",))


def _leaky(x):
  return nn.leaky_relu(x, 0.2)


class Conv3D(nn.Module):
  """'SAME' 3D convolution (stride 1) through `kernels.conv3d`.

  The parameters of flax's `nn.Conv` (kernel [k, k, k, c, f], bias [f]), so
  checkpoints of either load.

  Attributes:
    features: output channels.
    kernel_size: k of the k x k x k kernel.
    use_bias: add a bias.
    impl: `kernels` form ("auto", or "lax" for the plain convolution).
  """

  features: int
  kernel_size: int
  use_bias: bool = True
  impl: kernels.Impl = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, h, w, c]
    k = self.kernel_size
    kernel = self.param(
        "kernel", _KERNEL, (k, k, k, x.shape[-1], self.features)
    )
    lo, hi = (k - 1) // 2, k // 2
    x = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (lo, hi), (0, 0)))
    y = kernels.conv3d(x, kernel, impl=self.impl)  # [b, t, h, w, features]
    if self.use_bias:
      bias = self.param("bias", _BIAS, (self.features,))
      y = kernels.shift(y, bias, impl=self.impl)
    return y


class DiscriminatorBlock(nn.Module):
  """conv3 -> leaky -> blur -> conv3 -> leaky, plus blur -> conv1 shortcut."""

  features: int
  impl: kernels.Impl = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(Conv3D, impl=self.impl)
    blur = functools.partial(kernels.blur_pool3d, impl=self.impl)
    y = _leaky(conv(x.shape[-1], 3, name="conv_first")(x))
    y = _leaky(conv(self.features, 3, name="conv_last")(blur(y)))
    res = conv(self.features, 1, False, name="conv_residual")(blur(x))
    return (y + res) / math.sqrt(2.0)


class Discriminator(nn.Module):
  """Video [b, t, h, w, 3] (any t) -> logits [b].

  Attributes:
    filters: channels of the first conv.
    channel_multipliers: per residual (downsampling) block.
    impl: `kernels` form of the convolutions and blur pools: "auto" (the
      fast one for the backend) or "lax" (plain `lax` ops, the reference).
  """

  filters: int = 128
  channel_multipliers: tuple[int, ...] = (2, 4, 4, 4)
  impl: kernels.Impl = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(Conv3D, impl=self.impl)
    x = _leaky(conv(self.filters, 3, name="conv_first")(x))
    for i, mult in enumerate(self.channel_multipliers):
      block = DiscriminatorBlock(
          self.filters * mult, self.impl, name=f"block_{i}"
      )
      x = block(x)
    x = _leaky(conv(x.shape[-1], 3, name="conv_last")(x))
    # Averaging over time lets one discriminator judge images (t = 1) and
    # videos; praxis flattens t too, for videos only.
    x = jnp.mean(x, axis=1).reshape(x.shape[0], -1)  # [b, h' * w' * c]
    hidden = self.filters * self.channel_multipliers[-1]
    x = _leaky(nn.Dense(hidden, name="dense_0")(x))
    return nn.Dense(1, name="dense_1")(x)[:, 0]  # [b]


def d_loss_nonsaturating(
    real_logits: jax.Array, fake_logits: jax.Array
) -> jax.Array:
  """softplus(-D(real)) + softplus(D(fake)), averaged."""
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(
      jax.nn.softplus(fake_logits)
  )


def g_loss_nonsaturating(fake_logits: jax.Array) -> jax.Array:
  """softplus(-D(fake)), averaged."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


def lecam(
    real_logits: jax.Array,
    fake_logits: jax.Array,
    ema_real: jax.Array,
    ema_fake: jax.Array,
) -> jax.Array:
  """LeCam: relu(D(real) - ema_fake)^2 + relu(ema_real - D(fake))^2."""
  return jnp.mean(jax.nn.relu(real_logits - ema_fake) ** 2) + jnp.mean(
      jax.nn.relu(ema_real - fake_logits) ** 2
  )


def r1_penalty(
    d_fn: Callable[[jax.Array], jax.Array], real: jax.Array
) -> jax.Array:
  """E ||dD(real)/d real||^2 over the batch (sum over pixels)."""
  grads = jax.grad(lambda x: jnp.sum(d_fn(x)))(real)
  return jnp.mean(jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim))))
