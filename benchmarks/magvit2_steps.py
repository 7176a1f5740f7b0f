"""Seconds per MAGVIT-v2 train step, per step program (recon / gan / gan_r1).

  python -m benchmarks.magvit2_steps [--config=tiny] [--batch=8]
      [--frames=5] [--reps=3] [--reference_disc]

The trainer of `configs/magvit2.py:<config>` on random clips of the
config's resolution; medians over `--reps` after a compile. `--reference_disc`
times the discriminator in its reference form instead
(`config.discriminator.kernels="lax"`: plain `lax` convolutions and the
depthwise blur pool), the form the discriminator had before its CPU work:
the two runs give the speedup.
Prints `RESULT` lines (docs/design.md).
"""

from videopoet.kernels import xla_cpu

# Before JAX creates its CPU backend (the data modules program imports may
# create it).
xla_cpu.configure()

# pylint: disable=g-import-not-at-top,g-bad-import-order
from absl import app
from absl import flags
import jax

from benchmarks import common
from configs import magvit2 as magvit2_config
from videopoet.tokenizers.magvit2 import program
# pylint: enable=g-import-not-at-top,g-bad-import-order

_CONFIG = flags.DEFINE_string("config", "tiny", "configs/magvit2.py arg.")
_BATCH = flags.DEFINE_integer("batch", 8, "Clips per step.")
_FRAMES = flags.DEFINE_integer("frames", 5, "Frames per clip (1 + 4k).")
_REPS = flags.DEFINE_integer("reps", 3, "Timed repetitions (median).")
_REFERENCE = flags.DEFINE_bool(
    "reference_disc", False, "Reference-form discriminator."
)
_RES = {"tiny": 64, "small": 128, "base": 128}


def main(argv):
  del argv
  config = magvit2_config.get_config(_CONFIG.value)
  if _REFERENCE.value:
    config.discriminator.kernels = "lax"
  trainer = program.trainer_from_config(config)
  res = _RES[_CONFIG.value]
  video = jax.random.uniform(
      jax.random.key(0),
      (_BATCH.value, _FRAMES.value, res, res, 3),
      minval=-1,
      maxval=1,
  )
  state = jax.jit(trainer.init)(jax.random.key(0), video[:1])
  form = "reference" if _REFERENCE.value else "ours"
  for phase in ("recon", "gan", "gan_r1"):
    step = jax.jit(
        lambda s, v, r, phase=phase: trainer.step(s, v, r, phase=phase)
    )
    run = lambda: jax.block_until_ready(step(state, video, jax.random.key(1)))
    seconds = common.median_seconds(run, _REPS.value)  # Warm-up compiles.
    print(
        f"RESULT magvit2_{_CONFIG.value}_{phase}_step_s={seconds:.3f}"
        f" disc={form}"
        f" clips={tuple(video.shape)}"
    )


if __name__ == "__main__":
  app.run(main)
