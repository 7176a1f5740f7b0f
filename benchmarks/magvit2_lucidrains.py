"""lucidrains' `magvit2-pytorch` as a speed peer of our MAGVIT-v2 tokenizer.

  python -m benchmarks.magvit2_lucidrains [--reps=3] [--batch=2]

The most used public PyTorch MAGVIT-v2 (`VideoTokenizer`, version 0.5.1),
built at the configuration closest to `benchmarks.tokenizer_speed`'s: 16
filters, one residual unit per level, channels 16 -> 32 -> 32 -> 64, space
halved three times and time twice (17 x 64 x 64 -> 5 x 8 x 8), LFQ with 18
bits, no GAN and no perceptual loss (so a train step is reconstruction +
LFQ losses, backward, Adam). Its layers are not ours (its residual unit is
conv-GELU-conv with no GroupNorm, 7x7x7 input conv, its own down/upsampling),
so `tokenizer_speed` compares it per FLOP (torch's FlopCounterMode counts).

Importing it needs care here: the package `__init__` imports its trainer
(accelerate, ema-pytorch, torchvision transforms) and the module imports
torchvision for VGG16, whose only local wheel is a CUDA build that does not
load beside the CPU torch. We load the model module alone and, when
torchvision cannot be imported, give it a stub whose `vgg16` raises (VGG is
used only for the perceptual loss, which is off). Install it and what its
model module imports with `make peers` (no dependencies: they would replace
the pinned torch).
"""

import argparse
import importlib
import importlib.util
import sys
import types

from benchmarks import common

# Layers (lucidrains' names) mirroring our tiny-benchmark encoder.
LAYERS = (
    "residual",
    ("compress_space", 32),
    "residual",
    ("compress_space", 32),
    ("compress_time", 32),
    "residual",
    ("compress_space", 64),
    ("compress_time", 64),
    "residual",
)
BITS = 18


def _stub_torchvision():
  """A torchvision with only what the model module names; VGG raises."""
  tv = types.ModuleType("torchvision")
  models = types.ModuleType("torchvision.models")

  class VGG16_Weights:  # pylint: disable=invalid-name
    DEFAULT = None

  def vgg16(*args, **kwargs):
    raise RuntimeError(
        "torchvision is a stub here (no CPU torchvision build): the"
        " perceptual loss of magvit2-pytorch is unavailable"
    )

  models.VGG16_Weights = VGG16_Weights
  models.vgg16 = vgg16
  tv.models = models
  sys.modules["torchvision"] = tv
  sys.modules["torchvision.models"] = models


def load_module():
  """`magvit2_pytorch.magvit2_pytorch`, without the package's trainer."""
  try:
    import torchvision  # pylint: disable=g-import-not-at-top,unused-import
  except (ImportError, RuntimeError, OSError):
    _stub_torchvision()
  if "magvit2_pytorch.magvit2_pytorch" in sys.modules:
    return sys.modules["magvit2_pytorch.magvit2_pytorch"]
  spec = importlib.util.find_spec("magvit2_pytorch")
  if spec is None:
    raise ImportError("magvit2-pytorch is not installed: make peers")
  # A bare package object: submodule imports work, __init__ does not run.
  pkg = types.ModuleType("magvit2_pytorch")
  pkg.__path__ = list(spec.submodule_search_locations)
  sys.modules.setdefault("magvit2_pytorch", pkg)
  try:
    return importlib.import_module("magvit2_pytorch.magvit2_pytorch")
  except ImportError as e:
    raise ImportError(f"magvit2-pytorch needs {e.name}: make peers") from e


def build_peer(res: int, filters: int = 16, layers=LAYERS):
  """lucidrains' VideoTokenizer at our benchmark's closest configuration."""
  module = load_module()
  return module.VideoTokenizer(
      image_size=res,
      channels=3,
      init_dim=filters,
      layers=layers,
      codebook_size=2**BITS,
      use_gan=False,
      perceptual_loss_weight=0.0,
      flash_attn=False,
  )


def time_peer(batch, frames, res, reps, device="cpu") -> dict:
  """Train step and encode+decode times and FLOPs of lucidrains' model."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  model = build_peer(res).to(device)
  opt = torch.optim.Adam(model.parameters(), 1e-4)
  video = torch.rand(batch, 3, frames, res, res, device=device) * 2 - 1

  def train_step():
    opt.zero_grad(set_to_none=True)
    loss = model(video, return_loss=True)
    loss = loss[0] if isinstance(loss, tuple) else loss
    loss.backward()
    opt.step()

  def codec():
    with torch.inference_mode():
      codes = model.tokenize(video)
      return model.decode_from_code_indices(codes)

  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  flops = {}
  for name, fn in (("train", train_step), ("codec", codec)):
    with FlopCounterMode(display=False) as counter:
      fn()
    flops[name] = counter.get_total_flops()
  return dict(
      train=common.median_seconds(lambda: (train_step(), sync()), reps),
      codec=common.median_seconds(lambda: (codec(), sync()), reps),
      flops=flops,
      params=sum(p.numel() for p in model.parameters()),
      recon_shape=tuple(codec().shape),
  )


def main():
  # argparse, not absl flags: tokenizer_speed imports this module and
  # defines flags of the same names.
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--frames", type=int, default=17)
  parser.add_argument("--res", type=int, default=64)
  args = parser.parse_args()
  r = time_peer(args.batch, args.frames, args.res, args.reps)
  print(f"magvit2-pytorch 0.5.1, layers {LAYERS}, {r['params'] / 1e6:.2f}M")
  for k in ("train", "codec"):
    print(
        f"{k}: {r[k]:.3f} s, {r['flops'][k] / 1e9:.1f} GFLOP,"
        f" {r['flops'][k] / r[k] / 1e9:.1f} GFLOP/s"
    )


if __name__ == "__main__":
  main()
