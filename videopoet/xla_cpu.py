"""XLA:CPU options that our convolution-heavy models need to run fast.

XLA:CPU runs the weight gradient of a 2D convolution (a contraction over
batch x height x width) through Eigen at ~7 GFLOP/s on a 2-core machine;
routed through YNNPACK's dot kernels (`--xla_cpu_experimental_ynn_fusion_type
=dot`) the same gradient is 5x faster (measured on 34 frames of 64x64x16:
74 ms -> 14 ms). With the 3D convolutions of MAGVIT-v2 written as sums of 2D
ones (`videopoet_tokenizers.magvit2.layers.CausalConv`), a 3x3x3 layer's
forward + backward drops from 4.3x to ~1.5x PyTorch's oneDNN time
(README, Results). Other backends ignore the flag.

The flag must be in XLA_FLAGS before JAX creates its CPU backend: every job
(`experiments/common.py`), benchmark and the test suite call `configure()`
first. Set VIDEOPOET_XLA_CPU_DEFAULTS=0 to leave XLA_FLAGS untouched.
"""

import os

FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=dot",)


def configure() -> None:
  """Appends `FLAGS` to XLA_FLAGS unless already set or opted out."""
  if os.environ.get("VIDEOPOET_XLA_CPU_DEFAULTS", "1") == "0":
    return
  current = os.environ.get("XLA_FLAGS", "")
  for flag in FLAGS:
    name = flag.split("=")[0]
    if name not in current:
      current = f"{current} {flag}".strip()
  os.environ["XLA_FLAGS"] = current
