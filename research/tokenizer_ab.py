"""A/B of one MAGVIT-v2 speed change, both variants in one process.

  python -m research.tokenizer_ab --change=widening [--rounds=12]

Timings on a shared machine drift by tens of percent within the hour, more
than most single changes gain; two benchmark runs one after the other can
disagree on the sign. Here both variants of `--change` are traced and
compiled under their setting (`tokenizer_speed.our_step_and_codec`: the
same train step and encode+decode), then timed in turns, `--rounds` times,
so drift hits both alike. Changes:

  * `widening`: convolutions with at least 2x more outputs than inputs
    gather their kernel frames as channels (`conv3d._WIDENING`), against
    the time-stacked form they took before;
  * `edge_pad`: the causal edge pad as one gather (`layers.edge_pad`),
    against `jnp.pad(mode='edge')` (a concatenation per padded axis) with
    the same gradient.

Prints the median and the minimum of each variant, and a `RESULT` line with
the ratio new / old of the medians (< 1: the change is faster).
"""

import functools
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from benchmarks import tokenizer_speed
from videopoet.tokenizers.common import conv3d
from videopoet.tokenizers.magvit2 import layers

from videopoet import xla_cpu

xla_cpu.configure()  # Before JAX creates its CPU backend.

_CHANGE = flags.DEFINE_enum(
    "change", "widening", ["widening", "edge_pad"], "The change to time."
)
_ROUNDS = flags.DEFINE_integer("rounds", 12, "Timed calls per variant.")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _concatenating_edge_pad(x, pads):
  return jnp.pad(x, pads, mode="edge")


_GATHER_EDGE_PAD = layers.edge_pad
_concatenating_edge_pad.defvjp(
    lambda x, pads: (jnp.pad(x, pads, mode="edge"), None),
    layers._edge_pad_bwd,  # pylint: disable=protected-access
)

# change -> {variant: function that applies it}; "old" first.
_VARIANTS = {
    "widening": {
        "old": lambda: setattr(conv3d, "_WIDENING", float("inf")),
        "new": lambda: setattr(conv3d, "_WIDENING", 2),
    },
    "edge_pad": {
        "old": lambda: setattr(layers, "edge_pad", _concatenating_edge_pad),
        "new": lambda: setattr(layers, "edge_pad", _GATHER_EDGE_PAD),
    },
}


def main(argv):
  del argv
  video = jax.random.uniform(jax.random.key(0), (2, 17, 64, 64, 3)) * 2 - 1
  variants = _VARIANTS[_CHANGE.value]
  calls = {}
  try:
    for name, apply in variants.items():
      apply()
      run_step, run_codec, _ = tokenizer_speed.our_step_and_codec(video)
      calls[name] = {"train": run_step, "encode+decode": run_codec}
  finally:
    variants["new"]()  # Leave the library as it ships.
  times = {(v, k): [] for v in calls for k in calls[v]}
  for _ in range(_ROUNDS.value):
    for v, fns in calls.items():
      for k, fn in fns.items():
        start = time.perf_counter()
        fn()
        times[v, k].append(time.perf_counter() - start)
  for (v, k), ts in times.items():
    print(
        f"{_CHANGE.value} {v}: {k} median {statistics.median(ts) * 1e3:.0f}"
        f" ms, min {min(ts) * 1e3:.0f} ms"
    )
  for k in ("train", "encode+decode"):
    ratio = statistics.median(times["new", k]) / statistics.median(
        times["old", k]
    )
    print(
        f"RESULT tokenizer_ab_{_CHANGE.value}_{k.replace('+', '_')}"
        f"_new_over_old={ratio:.2f} target<1.0 peer=same-process-old-form"
    )


if __name__ == "__main__":
  app.run(main)
