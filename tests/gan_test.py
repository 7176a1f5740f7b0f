"""The StyleGAN discriminator's fast layers equal their plain formulation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet import kernels
from videopoet.tokenizers.common import gan


@pytest.mark.parametrize(
    "shape", [(2, 5, 8, 6, 3), (1, 1, 4, 4, 2), (2, 4, 7, 9, 3)]
)
def test_blur_pool_equals_depthwise_convolution(shape):
  x = jax.random.normal(jax.random.key(0), shape)
  slices = lambda x: kernels.blur_pool3d(x, impl="xla_cpu")
  depthwise = lambda x: kernels.blur_pool3d(x, impl="lax")
  want = depthwise(x)
  got = slices(x)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-6)
  loss = lambda f: lambda x: jnp.sum(jnp.sin(f(x)))
  np.testing.assert_allclose(
      jax.grad(loss(slices))(x), jax.grad(loss(depthwise))(x), atol=1e-6
  )


def test_discriminator_equals_its_lax_form():
  """Same parameters, logits, parameter gradients and R1 penalty as the
  discriminator with impl="lax" (plain `lax` convolutions and the
  depthwise blur)."""
  # 9 frames and 8 filters: without oneDNN, the RGB, time-stacked and
  # per-kernel-frame forms of conv3d_as_2d all run (R1 differentiates their
  # custom VJPs).
  disc = gan.Discriminator(filters=8, channel_multipliers=(2, 4))
  video = jax.random.uniform(jax.random.key(0), (2, 9, 16, 16, 3))
  params = nn.unbox(disc.init(jax.random.key(1), video))

  def run(disc, p):
    logits = disc.apply(p, video)
    g = jax.grad(lambda q: jnp.sum(disc.apply(q, video) ** 2))(p)
    r1 = gan.r1_penalty(lambda x: disc.apply(p, x), video)
    r1_grad = jax.grad(
        lambda q: gan.r1_penalty(lambda x: disc.apply(q, x), video)
    )(p)
    return logits, g, r1, r1_grad

  ours = run(disc, params)
  plain = gan.Discriminator(filters=8, channel_multipliers=(2, 4), impl="lax")
  plain_params = nn.unbox(plain.init(jax.random.key(1), video))
  assert jax.tree.structure(plain_params) == jax.tree.structure(params)
  want = run(plain, params)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-4)
