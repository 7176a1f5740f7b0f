"""The one optimizer factory of every trainer (as big_vision's `optax.py`).

Adam, or AdamW when `weight_decay > 0`, behind an optional global-norm
clip, on a learning rate that warms up linearly from 0 to its peak and then
either stays there (`decay_steps = 0`; MAGVIT-v2 and SoundStream) or follows
a cosine to `end_fraction` of the peak at step `decay_steps` (the LM, and
MAGVIT-v2 configs with a decay) and holds there:

  lr(s) = peak * s / warmup                              s < warmup
        = peak                                           decay_steps = 0
        = peak * (f + (1 - f) (1 + cos(pi p)) / 2),      p = (s - warmup) /
                                                          (decay - warmup)

The chain's structure (clip, then adam / adamw) is what every family's
checkpoints hold as optimizer state, so checkpoints written before this
module existed restore into it (`tests/optim_test.py`).
"""

import dataclasses

import optax


@dataclasses.dataclass(frozen=True)
class Adam:
  """One model's optimizer.

  Attributes:
    peak: the peak learning rate.
    warmup_steps: linear warm-up from 0 to `peak` over these steps.
    decay_steps: 0 keeps `peak` after the warm-up; N > 0 decays it along a
      cosine to `end_fraction * peak` at step N (counted from 0, warm-up
      included; at least warmup_steps + 1) and holds it there.
    end_fraction: the decayed rate over the peak.
    b1: Adam's first-moment decay.
    b2: Adam's second-moment decay.
    weight_decay: > 0 makes it AdamW (decoupled decay, on every parameter).
    grad_clip: clip the gradients' global norm to this (0: no clip).
  """

  peak: float
  warmup_steps: int = 0
  decay_steps: int = 0
  end_fraction: float = 0.0
  b1: float = 0.9
  b2: float = 0.999
  weight_decay: float = 0.0
  grad_clip: float = 0.0

  def schedule(self) -> optax.Schedule:
    """The learning rate at each step."""
    if not self.decay_steps:
      return optax.linear_schedule(0.0, self.peak, max(1, self.warmup_steps))
    return optax.warmup_cosine_decay_schedule(
        0.0,
        self.peak,
        self.warmup_steps,
        max(self.decay_steps, self.warmup_steps + 1),
        self.peak * self.end_fraction,
    )

  def build(self) -> optax.GradientTransformation:
    """The clipped Adam(W) transformation on `schedule()`."""
    lr = self.schedule()
    if self.weight_decay > 0:
      adam = optax.adamw(lr, b1=self.b1, b2=self.b2,
                         weight_decay=self.weight_decay)  # fmt: skip
    else:
      adam = optax.adam(lr, b1=self.b1, b2=self.b2)
    clip = [optax.clip_by_global_norm(self.grad_clip)] if self.grad_clip else []
    return optax.chain(*clip, adam)
