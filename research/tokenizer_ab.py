"""A/B of one MAGVIT-v2 speed change, both variants in one process.

  python -m research.tokenizer_ab --change=widening [--rounds=12]

Timings on a shared machine drift by tens of percent within the hour, more
than most single changes gain; two benchmark runs one after the other can
disagree on the sign. Here both variants of `--change` are traced and
compiled under their setting (`tokenizer_speed.our_step_and_codec`: the
same train step and encode+decode), then timed in turns, `--rounds` times,
so drift hits both alike. Changes:

  * `widening`: convolutions with at least 2x more outputs than inputs
    gather their kernel frames as channels (`conv3d_xla._WIDENING`),
    against the time-stacked form they took before (both with the XLA
    forms of `kernels.conv3d`, which oneDNN replaces where it is built);
  * `edge_pad`: the causal edge pad as one gather with its own gradient
    (`kernels.edge_pad`'s "xla_cpu" form), against `jnp.pad(mode='edge')`
    (a concatenation per padded axis) and its autodiff gradient (its "lax"
    form).

Prints the median and the minimum of each variant, and a `RESULT` line with
the ratio new / old of the medians (< 1: the change is faster).
"""

import statistics
import time

from absl import app
from absl import flags
import jax

from benchmarks import tokenizer_speed
from videopoet import kernels
from videopoet.kernels import conv3d_xla
from videopoet.kernels import xla_cpu

xla_cpu.configure()  # Before JAX creates its CPU backend.

_CHANGE = flags.DEFINE_enum(
    "change", "widening", ["widening", "edge_pad"], "The change to time."
)
_ROUNDS = flags.DEFINE_integer("rounds", 12, "Timed calls per variant.")


# change -> {variant: function that applies it}; "old" first. The
# widening threshold is a tuning constant of the XLA forms, set here only.
_VARIANTS = {
    "widening": {
        "old": lambda: setattr(conv3d_xla, "_WIDENING", float("inf")),
        "new": lambda: setattr(conv3d_xla, "_WIDENING", 2),
    },
    "edge_pad": {"old": lambda: None, "new": lambda: None},
}

# change -> variant -> the `kernels` forms it is timed with (`widening`
# tunes the XLA forms of conv3d, which oneDNN replaces where built).
_FORMS = {
    "widening": {v: {"conv3d": "xla_cpu"} for v in ("old", "new")},
    "edge_pad": {"old": {"edge_pad": "lax"}, "new": {}},
}


def main(argv):
  del argv
  video = jax.random.uniform(jax.random.key(0), (2, 17, 64, 64, 3)) * 2 - 1
  variants = _VARIANTS[_CHANGE.value]
  calls = {}
  try:
    for name, apply in variants.items():
      apply()
      with kernels.override(**_FORMS[_CHANGE.value][name]):
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
