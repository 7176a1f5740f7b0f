"""lucidrains' magvit2-pytorch peer of tokenizer_speed builds, trains, decodes.

Skipped unless the peer is installed (`make peers`): it is a benchmark
dependency, installed without its dependencies beside the pinned torch.
"""

import importlib.util

import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("magvit2_pytorch") is None:
  pytest.skip("magvit2-pytorch not installed (make peers)", allow_module_level=True)

from benchmarks import magvit2_lucidrains  # pylint: disable=g-import-not-at-top


def test_peer_trains_and_reconstructs_at_our_geometry():
  # 17 x 64 x 64 -> 5 x 8 x 8 as our tiny benchmark; 1 clip, 1 rep.
  r = magvit2_lucidrains.time_peer(batch=1, frames=17, res=64, reps=1)
  assert r["recon_shape"] == (1, 3, 17, 64, 64)
  assert r["flops"]["train"] > 2 * r["flops"]["codec"] > 0
  model = magvit2_lucidrains.build_peer(64)
  codes = model.tokenize(torch.zeros(1, 3, 17, 64, 64))
  assert tuple(codes.shape) == (1, 5, 8, 8)
  assert int(codes.max()) < 2**magvit2_lucidrains.BITS
