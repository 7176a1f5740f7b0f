"""StyleGAN-style 3D discriminator and the GAN losses of MAGVIT(-v2).

The discriminator follows praxis `vqvae.py::Discriminator`: conv3 -> leaky
ReLU, residual blocks that blur-pool (filter [1, 2, 1]^3, stride 2 in t, h
and w) with channel multipliers, conv3, then a 2-layer MLP to one logit. No
normalization layers; R1 and LeCam regularize it instead. Losses: the
non-saturating GAN loss, LeCam regularization (Tseng et al. 2021) against
EMAs of the logits, and the R1 gradient penalty.
"""

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from videopoet.tokenizers.common import affine
from videopoet.tokenizers.common import conv3d

_KERNEL = nn.with_logical_partitioning(
    nn.initializers.lecun_normal(),
    ("conv_window", None, None, "conv_in", "conv_out"),
)
_BIAS = nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",))


def _leaky(x):
  return nn.leaky_relu(x, 0.2)


def blur_pool(x: jax.Array) -> jax.Array:
  """[1, 2, 1]^3 / 64 blur, stride 2, 'SAME': [b, t, h, w, c] -> halves.

  The depthwise 3D filter is separable: one [1, 2, 1] / 4 pass per axis,
  each as three strided slices of the zero-padded input (same numbers as
  the depthwise `conv_general_dilated`, which XLA:CPU runs, and
  differentiates, far slower). Odd sizes round up, as 'SAME' does.
  """
  for axis in (1, 2, 3):
    n = x.shape[axis]
    out = -(-n // 2)
    pad = max(2 * (out - 1) + 3 - n, 0)  # 'SAME': low side gets the floor.
    widths = [(0, 0)] * x.ndim
    widths[axis] = (pad // 2, pad - pad // 2)
    xp = jnp.pad(x, widths)
    tap = lambda j, xp=xp, axis=axis, out=out: jax.lax.slice_in_dim(
        xp, j, j + 2 * (out - 1) + 1, stride=2, axis=axis
    )
    x = (tap(0) + 2 * tap(1) + tap(2)) * 0.25
  return x


def blur_pool_depthwise(x: jax.Array) -> jax.Array:
  """`blur_pool` as one depthwise 3D convolution (the reference form)."""
  f = np.array([1.0, 2.0, 1.0])
  f = np.einsum("i,j,k->ijk", f, f, f)
  f = (f / f.sum()).astype(np.float32)[..., None, None]
  c = x.shape[-1]
  return jax.lax.conv_general_dilated(
      x,
      jnp.tile(jnp.asarray(f, x.dtype), (1, 1, 1, 1, c)),
      (2, 2, 2),
      "SAME",
      feature_group_count=c,
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
  )


class Conv3D(nn.Module):
  """'SAME' 3D convolution (stride 1) through `conv3d.conv3d`.

  The parameters of flax's `nn.Conv` (kernel [k, k, k, c, f], bias [f]), so
  checkpoints of either load; on CPU the convolution runs as 2D ones.

  Attributes:
    features: output channels.
    kernel_size: k of the k x k x k kernel.
    use_bias: add a bias.
  """

  features: int
  kernel_size: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # [b, t, h, w, c]
    k = self.kernel_size
    kernel = self.param(
        "kernel", _KERNEL, (k, k, k, x.shape[-1], self.features)
    )
    lo, hi = (k - 1) // 2, k // 2
    x = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (lo, hi), (0, 0)))
    y = conv3d.conv3d(x, kernel, (1, 1, 1))  # [b, t, h, w, features]
    if self.use_bias:
      bias = self.param("bias", _BIAS, (self.features,))
      y = affine.shift(y, bias)
    return y


def _conv(features, k, use_bias, name):
  return Conv3D(features, k, use_bias, name=name)


def conv_reference(features, k, use_bias, name):
  """`_conv` as flax's `nn.Conv` (the reference form; same parameters)."""
  return nn.Conv(
      features, (k, k, k), padding="SAME", use_bias=use_bias, name=name
  )


class DiscriminatorBlock(nn.Module):
  """conv3 -> leaky -> blur -> conv3 -> leaky, plus blur -> conv1 shortcut."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = _leaky(_conv(x.shape[-1], 3, True, "conv_first")(x))
    y = _leaky(_conv(self.features, 3, True, "conv_last")(blur_pool(y)))
    res = _conv(self.features, 1, False, "conv_residual")(blur_pool(x))
    return (y + res) / math.sqrt(2.0)


class Discriminator(nn.Module):
  """Video [b, t, h, w, 3] (any t) -> logits [b].

  Attributes:
    filters: channels of the first conv.
    channel_multipliers: per residual (downsampling) block.
  """

  filters: int = 128
  channel_multipliers: tuple[int, ...] = (2, 4, 4, 4)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = _leaky(_conv(self.filters, 3, True, "conv_first")(x))
    for i, mult in enumerate(self.channel_multipliers):
      x = DiscriminatorBlock(self.filters * mult, name=f"block_{i}")(x)
    x = _leaky(_conv(x.shape[-1], 3, True, "conv_last")(x))
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
