"""Reconstruction metrics of the video tokenizer: PSNR and SSIM per frame.

Inputs are [..., h, w, 3] in [-1, 1]; both metrics are computed on [0, 1]
(clipped) and averaged over frames and the batch.
"""

import jax
import jax.numpy as jnp
import numpy as np


def _unit(x: jax.Array) -> jax.Array:
  return jnp.clip((x.astype(jnp.float32) + 1) / 2, 0, 1)


def psnr(real: jax.Array, fake: jax.Array) -> jax.Array:
  """Mean over frames of 10 log10(1 / MSE), [..., h, w, c] -> scalar dB."""
  mse = jnp.mean(jnp.square(_unit(real) - _unit(fake)), axis=(-3, -2, -1))
  return jnp.mean(10 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10)))


def _gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
  x = np.arange(size) - (size - 1) / 2
  g = np.exp(-(x**2) / (2 * sigma**2))
  return (g / g.sum()).astype(np.float32)


def _blur(x: jax.Array) -> jax.Array:
  """Separable 11x11 Gaussian, 'VALID', on [n, h, w, c]."""
  g = jnp.asarray(_gaussian())
  c = x.shape[-1]
  kh = jnp.tile(g[:, None, None, None], (1, 1, 1, c))
  kw = jnp.tile(g[None, :, None, None], (1, 1, 1, c))
  dn = ("NHWC", "HWIO", "NHWC")
  x = jax.lax.conv_general_dilated(
      x, kh, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c
  )
  return jax.lax.conv_general_dilated(
      x, kw, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c
  )


def ssim(real: jax.Array, fake: jax.Array) -> jax.Array:
  """Mean SSIM (Wang et al. 2004; 11x11 Gaussian, sigma 1.5) over frames."""
  a = _unit(real).reshape(-1, *real.shape[-3:])  # [n, h, w, c]
  b = _unit(fake).reshape(-1, *fake.shape[-3:])
  c1, c2 = 0.01**2, 0.03**2
  mu_a, mu_b = _blur(a), _blur(b)
  var_a = _blur(a * a) - mu_a**2
  var_b = _blur(b * b) - mu_b**2
  cov = _blur(a * b) - mu_a * mu_b
  s = (
      (2 * mu_a * mu_b + c1)
      * (2 * cov + c2)
      / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
  )
  return jnp.mean(s)
