"""The one optimizer factory (`videopoet.train_lib.optim`): its schedules,
and the optimizer state of each family's checkpoints as written before the
factory existed (their own optax chains, rebuilt here) restores into it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from videopoet.train_lib import optim

PARAMS = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}


def _old_magvit2(lr, warmup, clip, b1, b2):
  return optax.chain(
      optax.clip_by_global_norm(clip),
      optax.adam(optax.linear_schedule(0.0, lr, max(1, warmup)), b1=b1, b2=b2),
  )


def _old_soundstream(lr, warmup, clip, b1, b2):
  schedule = optax.join_schedules(
      [optax.linear_schedule(0.0, lr, max(warmup, 1)),
       optax.constant_schedule(lr)],
      [max(warmup, 1)],
  )  # fmt: skip
  chain = [optax.clip_by_global_norm(clip)] if clip > 0 else []
  return optax.chain(*chain, optax.adam(schedule, b1=b1, b2=b2))


def _old_lm(lr, warmup, total, clip, b2, wd):
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, lr, warmup, max(total, warmup + 1)
  )
  return optax.chain(
      optax.clip_by_global_norm(clip),
      optax.adamw(schedule, b2=b2, weight_decay=wd),
  )


CASES = {
    "magvit2": (
        _old_magvit2(1e-3, 5, 1.0, 0.0, 0.99),
        optim.Adam(peak=1e-3, warmup_steps=5, b1=0.0, b2=0.99, grad_clip=1.0),
    ),
    "soundstream": (
        _old_soundstream(2e-3, 3, 0.0, 0.5, 0.9),
        optim.Adam(peak=2e-3, warmup_steps=3, b1=0.5, b2=0.9),
    ),
    "lm": (
        _old_lm(1e-3, 4, 20, 1.0, 0.98, 0.01),
        optim.Adam(peak=1e-3, warmup_steps=4, decay_steps=20, b2=0.98,
                   weight_decay=0.01, grad_clip=1.0),
    ),
}  # fmt: skip


@pytest.mark.parametrize("family", sorted(CASES))
def test_old_optimizer_state_restores_and_steps_identically(family):
  old, new = CASES[family]
  new = new.build()
  state_old, state_new = old.init(PARAMS), new.init(PARAMS)
  assert jax.tree.structure(state_old) == jax.tree.structure(state_new)
  # Steps with the old chain, then carries on with the state it wrote.
  p_old, p_new, s_old = PARAMS, PARAMS, state_old
  for i in range(8):
    g = jax.tree.map(lambda x, i=i: jnp.sin(x + i) * 3.0, p_old)
    u, s_old = old.update(g, s_old, p_old)
    p_old = optax.apply_updates(p_old, u)
  s_new, p_new = s_old, p_old  # The checkpoint, read into the new chain.
  for i in range(8, 12):
    g_old = jax.tree.map(lambda x, i=i: jnp.sin(x + i) * 3.0, p_old)
    u, s_old = old.update(g_old, s_old, p_old)
    p_old = optax.apply_updates(p_old, u)
    g_new = jax.tree.map(lambda x, i=i: jnp.sin(x + i) * 3.0, p_new)
    u, s_new = new.update(g_new, s_new, p_new)
    p_new = optax.apply_updates(p_new, u)
  for a, b in zip(jax.tree.leaves(p_old), jax.tree.leaves(p_new)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_schedules():
  cosine = optim.Adam(peak=1e-3, warmup_steps=10, decay_steps=110,
                      end_fraction=0.1).schedule()  # fmt: skip
  np.testing.assert_allclose(
      [cosine(s) for s in (0, 5, 10, 60, 110, 500)],
      [0.0, 5e-4, 1e-3, 5.5e-4, 1e-4, 1e-4],  # Midway: (1 + 0.1) / 2 peak.
      rtol=1e-5, atol=1e-9,
  )  # fmt: skip
  flat = optim.Adam(peak=2e-3, warmup_steps=4).schedule()
  np.testing.assert_allclose([flat(s) for s in (0, 2, 4, 1000)],
                             [0.0, 1e-3, 2e-3, 2e-3], rtol=1e-6)  # fmt: skip
  # No warm-up: the peak from step 1 (step 0's update is scaled by 0).
  assert optim.Adam(peak=1e-3).schedule()(1) == pytest.approx(1e-3)


def test_weight_decay_and_clip_act():
  clipped = optim.Adam(peak=1.0, grad_clip=1.0).build()
  assert len(clipped.init(PARAMS)) == 2  # clip, adam.
  assert len(optim.Adam(peak=1.0).build().init(PARAMS)) == 1
  # AdamW: with zero gradients only the decay moves the weights.
  adamw = optim.Adam(peak=0.1, weight_decay=0.5).build()
  zero = jax.tree.map(jnp.zeros_like, PARAMS)
  s = adamw.init(PARAMS)
  _, s = adamw.update(zero, s, PARAMS)  # Step 0: learning rate 0.
  u, _ = adamw.update(zero, s, PARAMS)
  np.testing.assert_allclose(u["w"], -0.1 * 0.5 * PARAMS["w"], rtol=1e-6)
