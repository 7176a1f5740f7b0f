"""Residual VQ: golden numpy math, torch parity, EMA, k-means, dead codes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videopoet.tokenizers.soundstream import rvq

L, K, D = 3, 16, 8


def _model(**kw):
  cfg = rvq.RVQConfig(num_levels=L, codebook_size=K, **kw)
  return rvq.ResidualVQ(cfg, dim=D)


def _variables(model, codebooks=None):
  z = jnp.zeros((1, 4, D))
  v = model.init(jax.random.key(0), z, train=False)
  if codebooks is not None:
    q = dict(v["quantizer"])
    q["codebook"] = jnp.asarray(codebooks, jnp.float32)
    q["embed_sum"] = q["codebook"] * q["cluster_size"][..., None]
    q["initialized"] = jnp.array(True)  # injected: no k-means
    v = {"quantizer": q}
  return v


def _golden_encode(z, codebooks):
  """Transcription of the reference math (float64)."""
  r = z.reshape(-1, z.shape[-1]).astype(np.float64)
  codes = []
  for cb in codebooks.astype(np.float64):
    dist = (r**2).sum(1, keepdims=True) - 2 * r @ cb.T + (cb**2).sum(1)[None]
    idx = dist.argmin(1)
    r = r - cb[idx]
    codes.append(idx)
  return np.stack(codes, 0).reshape(len(codebooks), *z.shape[:2]), r


def test_encode_decode_matches_golden_math():
  rng = np.random.default_rng(0)
  codebooks = rng.normal(size=(L, K, D))
  z = rng.normal(size=(2, 5, D))
  model = _model()
  v = _variables(model, codebooks)
  codes = model.apply(v, jnp.asarray(z, jnp.float32), method=model.encode)
  want, residual = _golden_encode(z, codebooks)
  np.testing.assert_array_equal(np.asarray(codes), want.transpose(1, 0, 2))
  z_hat = model.apply(v, codes, method=model.decode)
  np.testing.assert_allclose(
      np.asarray(z_hat), z - residual.reshape(z.shape), atol=1e-5
  )
  # Fewer levels: the first codes are the same, decode sums only those.
  two = model.apply(v, jnp.asarray(z, jnp.float32), 2, method=model.encode)
  np.testing.assert_array_equal(np.asarray(two), np.asarray(codes)[:, :2])
  with pytest.raises(ValueError, match="n_levels=4"):
    model.apply(v, jnp.asarray(z, jnp.float32), 4, method=model.encode)


def test_parity_with_vector_quantize_pytorch():
  """[parity] Same codes and reconstructions as lucidrains' ResidualVQ."""
  torch = pytest.importorskip("torch")
  vqp = pytest.importorskip("vector_quantize_pytorch")
  rng = np.random.default_rng(1)
  codebooks = rng.normal(size=(L, K, D)).astype(np.float32)
  z = rng.normal(size=(3, 7, D)).astype(np.float32)
  ref = vqp.ResidualVQ(
      dim=D,
      num_quantizers=L,
      codebook_size=K,
      decay=0.99,
      kmeans_init=False,
      threshold_ema_dead_code=0,
      rotation_trick=False,
  )
  ref.eval()
  with torch.no_grad():
    for layer, cb in zip(ref.layers, codebooks):
      layer._codebook.embed.copy_(torch.from_numpy(cb)[None])
    quantized, indices, _ = ref(torch.from_numpy(z))  # [b, t, d], [b, t, L]
    from_indices = ref.get_output_from_indices(indices)
  model = _model()
  v = _variables(model, codebooks)
  codes = model.apply(v, jnp.asarray(z), method=model.encode)  # [b, L, t]
  np.testing.assert_array_equal(
      np.asarray(codes), indices.numpy().transpose(0, 2, 1)
  )
  z_hat = np.asarray(model.apply(v, codes, method=model.decode))
  np.testing.assert_allclose(z_hat, quantized.numpy(), atol=1e-5)
  np.testing.assert_allclose(z_hat, from_indices.numpy(), atol=1e-5)


def test_dropout_mask_covers_one_to_all_levels():
  mask = rvq.dropout_mask(jax.random.key(0), 4000, L, 1.0)
  n = np.asarray(mask).sum(1)
  assert set(n.tolist()) == set(range(1, L + 1))  # 1..N, N included
  # A prefix of levels: level q is used only if level q - 1 is.
  assert np.all(np.asarray(mask)[:, 0])
  assert np.all(np.diff(np.asarray(mask).astype(int), axis=1) <= 0)
  counts = np.bincount(n, minlength=L + 1)[1:]
  assert counts.min() > 0.8 * 4000 / L  # roughly uniform
  half = np.asarray(rvq.dropout_mask(jax.random.key(1), 4000, L, 0.5))
  assert 0.55 < np.mean(half.sum(1) == L) < 0.8  # 0.5 + 0.5 / 3


def _train(model, v, z, key=1, mask=None):
  (z_q, codes, aux), new = model.apply(
      v,
      z,
      train=True,
      level_mask=mask,
      mutable=["quantizer"],
      rngs={"quantizer": jax.random.key(key)},
  )
  return z_q, codes, aux, new


def test_masked_levels_do_not_quantize_or_update():
  rng = np.random.default_rng(2)
  codebooks = rng.normal(size=(L, K, D))
  model = _model(dead_code_threshold=0.0)
  v = _variables(model, codebooks)
  z = jnp.asarray(rng.normal(size=(2, 6, D)), jnp.float32)
  mask = jnp.array([[True, False, False], [True, True, True]])
  z_q, codes, _, new = _train(model, v, z, mask=mask)
  codes = np.asarray(codes)
  assert np.all(codes[0, 1:] == -1) and np.all(codes[1] >= 0)
  # Example 0 is its level-0 code alone.
  np.testing.assert_allclose(
      np.asarray(z_q)[0], codebooks[0][codes[0, 0]], atol=1e-5
  )
  # Level 1's EMA saw example 1 only: counts sum to 6 frames' worth.
  got = np.asarray(new["quantizer"]["cluster_size"])[1]
  want = 0.99 * 1.0 + 0.01 * np.bincount(codes[1, 1], minlength=K)
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_ema_step_matches_formula():
  rng = np.random.default_rng(3)
  codebooks = rng.normal(size=(L, K, D))
  model = _model(dead_code_threshold=0.0, decay=0.9)
  v = _variables(model, codebooks)
  z = rng.normal(size=(2, 10, D))
  _, codes, _, new = _train(model, v, jnp.asarray(z, jnp.float32))
  x = z.reshape(-1, D)
  idx = np.asarray(codes)[:, 0].reshape(-1)
  n = np.bincount(idx, minlength=K)
  s = np.zeros((K, D))
  np.add.at(s, idx, x)
  size = 0.9 * 1.0 + 0.1 * n
  total = size.sum()
  embed = (0.9 * codebooks[0] + 0.1 * s) / (
      (size + 1e-5) / (total + K * 1e-5) * total
  )[:, None]
  np.testing.assert_allclose(new["quantizer"]["codebook"][0], embed, atol=1e-5)


def test_dead_code_replacement_survives_its_step():
  rng = np.random.default_rng(4)
  codebooks = rng.normal(size=(L, K, D))
  model = _model(dead_code_threshold=0.5)
  v = _variables(model, codebooks)
  # Codes 0..3 of level 0 are far away (never assigned) with count 0: dead.
  q = dict(v["quantizer"])
  q["codebook"] = q["codebook"].at[0, :4].set(100.0)
  q["cluster_size"] = q["cluster_size"].at[0, :4].set(0.0)
  q["embed_sum"] = q["codebook"] * q["cluster_size"][..., None]
  v = {"quantizer": q}
  z = jnp.asarray(rng.normal(size=(2, 10, D)), jnp.float32)
  _, _, aux, new = _train(model, v, z)
  assert int(aux["dead"][0]) >= 4
  cb = np.asarray(new["quantizer"]["codebook"][0])
  frames = np.asarray(z).reshape(-1, D)
  for k in range(4):  # Each is exactly a frame of the batch.
    assert np.min(np.abs(frames - cb[k]).max(1)) < 1e-6, k
  # The EMA sums agree with the new code, so the next step keeps it.
  size = np.asarray(new["quantizer"]["cluster_size"][0, :4])
  np.testing.assert_allclose(size, 0.5)
  np.testing.assert_allclose(
      np.asarray(new["quantizer"]["embed_sum"][0, :4]) / size[:, None],
      cb[:4],
      atol=1e-6,
  )
  # The next step does not shrink them: a code the batch does not use keeps
  # (almost) its value, as embed_sum / count is the code itself.
  far = jnp.full((1, 4, D), 1e3, jnp.float32)  # assigned to none of 0..3
  zz = jnp.concatenate([z[:, :6], far.repeat(2, 0)], axis=1)
  model_keep = _model(dead_code_threshold=0.0)
  _, codes2, _, newer = _train(
      model_keep, {"quantizer": new["quantizer"]}, zz, key=2
  )
  unused = [k for k in range(4) if k not in np.asarray(codes2)[:, 0]]
  assert unused
  np.testing.assert_allclose(
      np.asarray(newer["quantizer"]["codebook"][0])[unused],
      cb[unused],
      rtol=0.05,
  )


def test_kmeans_init_lowers_first_batch_error():
  rng = np.random.default_rng(5)
  centres = rng.normal(size=(K, D)) * 3
  z = centres[rng.integers(0, K, size=(8, 32))] + 0.1 * rng.normal(
      size=(8, 32, D)
  )
  z = jnp.asarray(z, jnp.float32)

  def first_batch_error(kmeans_init):
    model = _model(kmeans_init=kmeans_init, dead_code_threshold=0.0)
    v = model.init(jax.random.key(0), z, train=False)
    _, _, _, new = _train(model, v, z)
    assert bool(new["quantizer"]["initialized"])
    z_hat = model.apply(
        new, model.apply(new, z, method=model.encode), method=model.decode
    )
    return float(jnp.mean((z - z_hat) ** 2))

  with_kmeans, random = first_batch_error(True), first_batch_error(False)
  assert with_kmeans < 0.1 * random, (with_kmeans, random)


def test_commitment_gradient_reaches_input_from_every_level():
  rng = np.random.default_rng(6)
  model = _model()
  v = _variables(model, rng.normal(size=(L, K, D)))
  z = jnp.asarray(rng.normal(size=(1, 5, D)), jnp.float32)

  def loss(z):
    z_q, _, aux = model.apply(v, z, train=False)
    return aux["commit_loss"], z_q

  grad, z_q = jax.grad(loss, has_aux=True)(z)
  # d/dz of sum_q |r_q - sg(e_q)|^2 / (n d) = 2 sum_q (r_q - e_q) / (n d):
  # every level counts (EnCodec's residual keeps only the first).
  want = 0
  r = np.asarray(z).reshape(-1, D)
  codes, _ = _golden_encode(
      np.asarray(z), np.asarray(v["quantizer"]["codebook"])
  )
  for q in range(L):
    e = np.asarray(v["quantizer"]["codebook"][q])[codes[q].reshape(-1)]
    want = want + 2 * (r - e) / r.size
    r = r - e
  np.testing.assert_allclose(np.asarray(grad).reshape(-1, D), want, atol=1e-5)
  # Straight-through: the quantized output passes gradients as identity.
  g = jax.grad(lambda z: jnp.sum(model.apply(v, z, train=False)[0]))(z)
  np.testing.assert_allclose(np.asarray(g), 1.0)


def test_level_no_example_reaches_is_left_alone():
  rng = np.random.default_rng(7)
  model = _model(dead_code_threshold=5.0)  # every code counts as dead
  v = _variables(model, rng.normal(size=(L, K, D)))
  z = jnp.asarray(rng.normal(size=(2, 6, D)), jnp.float32)
  mask = jnp.array([[True, False, False], [True, True, False]])
  _, _, aux, new = _train(model, v, z, mask=mask)
  dead = np.asarray(aux["dead"])
  assert dead[0] == K and dead[2] == 0  # no frames: nothing to sample
  np.testing.assert_allclose(
      new["quantizer"]["codebook"][2], v["quantizer"]["codebook"][2], rtol=1e-4
  )
  # k-means on the first batch fills every level, masked or not.
  fresh = _model()
  v = fresh.init(jax.random.key(0), z, train=False)
  _, _, _, new = _train(fresh, v, z, mask=mask)
  # Its counts are the 12 frames of the batch (EMA: 0.99 x k-means counts
  # + 0.01 x this step's zero assignments), so its codes are not dead.
  np.testing.assert_allclose(
      np.asarray(new["quantizer"]["cluster_size"][2]).sum(),
      0.99 * 12,
      rtol=1e-5,
  )


def test_weighted_sample_draws_rows_in_proportion():
  """Rows of weight 0 are never drawn (frames that quantizer dropout keeps
  from a level); the others in proportion to their weights."""
  x = jnp.arange(5.0)[:, None] * jnp.ones((1, 3))  # row i is all i
  w = jnp.array([0.0, 1.0, 0.0, 3.0, 0.0])
  rows = rvq._weighted_sample(jax.random.key(0), x, w, 40000)
  assert rows.shape == (40000, 3)
  counts = np.bincount(np.asarray(rows[:, 0], np.int64), minlength=5)
  assert counts[0] == counts[2] == counts[4] == 0, counts
  assert counts[3] / counts[1] == pytest.approx(3.0, rel=0.05), counts
  # No weight at all: still rows of x (replace_dead then replaces nothing).
  rows = rvq._weighted_sample(jax.random.key(0), x, jnp.zeros(5), 4)
  assert rows.shape == (4, 3) and bool(jnp.all(rows == 4.0))
