"""The sharded LM on 8 fake CPU devices (data 2 x fsdp 2 x tensor 2) gives
the single-device loss and gradients within 1e-5 in f32."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sharded_loss_and_grads_match_single_device():
  env = dict(os.environ)
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run(
      [sys.executable, "-m", "tests.model_sharding_check"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-4000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert abs(out["loss"] - out["ref_loss"]) < 1e-5, out
  assert out["max_grad_diff"] < 1e-5, out
  assert out["max_grad"] > 1e-3, out  # Gradients are not trivially zero.
  # Parameters really are split: the MLP kernel over fsdp x tensor (with
  # the scanned `layers` axis first), the embedding over tensor x fsdp.
  assert out["specs"]["mlp_wi_0"] == "P(None, 'fsdp', 'tensor')"
  assert out["specs"]["embedding"] == "P('tensor', 'fsdp')"
  assert out["specs"]["grad_wi_0"] == out["specs"]["mlp_wi_0"]
