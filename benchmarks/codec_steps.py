"""Seconds per SoundStream train step, per step program (recon / gan).

  python -m benchmarks.codec_steps [--config=small] [--batch=8]
      [--samples=8000] [--reps=5] [--reference_disc]

The trainer of `configs/soundstream.py:<config>` on random clips of
`--samples` samples (8 x 0.5 s: the CPU runs of the README); medians over
`--reps` after a compile, the k-means step and one warm-up step (the first
call after that still ran 3x slower), so the timed steps skip the k-means
initialization as training does. `--reference_disc` times the
discriminators in their reference form instead
(`config.discriminator.kernels="lax"`: plain `lax` convolutions): the two
runs give what the CPU forms of `videopoet.kernels` buy them.
Prints `RESULT` lines (docs/design.md).
"""

import math

from videopoet.kernels import xla_cpu

# Before JAX creates its CPU backend.
xla_cpu.configure()

# pylint: disable=g-import-not-at-top,g-bad-import-order
from absl import app
from absl import flags
import jax

from benchmarks import common
from configs import soundstream as soundstream_config
from videopoet.tokenizers.soundstream import trainer
# pylint: enable=g-import-not-at-top,g-bad-import-order

_CONFIG = flags.DEFINE_string("config", "small", "configs/soundstream.py arg.")
_BATCH = flags.DEFINE_integer("batch", 8, "Clips per step.")
_SAMPLES = flags.DEFINE_integer("samples", 8000, "Samples per clip.")
_REPS = flags.DEFINE_integer("reps", 5, "Timed repetitions (median).")
_REFERENCE = flags.DEFINE_bool(
    "reference_disc", False, "Reference-form discriminators."
)


def main(argv):
  del argv
  config = soundstream_config.get_config(_CONFIG.value)
  if _REFERENCE.value:
    config.discriminator.kernels = "lax"
  config.data.data_dir = "unused"
  config.data.batch_size = _BATCH.value
  config.data.segment_samples = _SAMPLES.value
  rvq = config.model.rvq
  frames = _BATCH.value * (_SAMPLES.value // math.prod(config.model.strides))
  # A threshold the trainer accepts at this batch (README: a quarter of a
  # code's mean EMA count).
  rvq.dead_code_threshold = min(
      rvq.dead_code_threshold, frames / rvq.codebook_size / 4
  )
  init, step = trainer.make_step(trainer.parse(config))
  state = jax.jit(init)(jax.random.key(0))
  clips = 0.1 * jax.random.normal(
      jax.random.key(2), (_BATCH.value, _SAMPLES.value)
  )
  form = "reference" if _REFERENCE.value else "ours"
  for phase in ("recon", "gan"):
    fn = jax.jit(lambda s, b, r, phase=phase: step(s, b, r, phase))
    batch = {"audio": clips}
    state = fn(state, batch, jax.random.key(1))[0]  # Compiles; k-means.
    run = lambda: jax.block_until_ready(fn(state, batch, jax.random.key(1)))
    seconds = common.median_seconds(run, _REPS.value)
    print(
        f"RESULT soundstream_{_CONFIG.value}_{phase}_step_s={seconds:.3f}"
        f" disc={form}"
        f" clips={tuple(clips.shape)}"
    )


if __name__ == "__main__":
  app.run(main)
