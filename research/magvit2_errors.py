"""Where a MAGVIT-v2 run's reconstruction error lives, on synth_av clips.

  python -m research.magvit2_errors --workdir=W --config.data.data_dir=D \
      [--config.clips=32]

Reconstructs test clips through the codes (`load_tokenizer`: EMA weights,
encode_to_indices -> decode_from_indices) and splits the squared error by
frame (PSNR per frame index) and by region, from synth_av's `depth` map:
edges (pixels within one pixel of a depth change), object interiors and the
background. Frame groups follow the latent frames: frame 0 (coded alone),
frames 1-4 (latent frame 1), and later ones. Each PSNR is that of the
pooled squared error of its pixels; the eval's `eval/psnr` averages the
PSNRs of single frames, so it reads higher (tiny16: 27.6 vs 26.9 dB).
Prints `RESULT` lines.
"""

from videopoet.kernels import xla_cpu

xla_cpu.configure()  # Before JAX creates its CPU backend.

# pylint: disable=g-import-not-at-top,g-bad-import-order
from absl import app
from absl import flags
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
from scipy import ndimage

from configs import common

from videopoet.data import datasets
from videopoet.tokenizers.magvit2 import program
# pylint: enable=g-import-not-at-top,g-bad-import-order

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_CONFIG = config_flags.DEFINE_config_dict(
    "config",
    ml_collections.ConfigDict(
        dict(
            # The TFDS dataset, its data dir and the split read.
            data=common.data("synth_av/tiny", split="test"),
            clips=32,  # The first clips of the split.
            frames=17,  # Frames per clip.
            batch_size=8,  # Clips per reconstruction call.
        )
    ),
)


def psnr(mse: np.ndarray) -> np.ndarray:
  """PSNR (dB) of a mean squared error on the [-1, 1] scale."""
  return 10 * np.log10(4.0 / mse)


def edges(depth: np.ndarray) -> np.ndarray:
  """bool [n, t, h, w]: pixels within one pixel of a depth change."""
  out = np.zeros(depth.shape, bool)
  for i in np.ndindex(depth.shape[:2]):
    d = depth[i]
    change = ndimage.maximum_filter(d, 3) != ndimage.minimum_filter(d, 3)
    out[i] = ndimage.binary_dilation(change)
  return out


def main(argv):
  del argv
  c = _CONFIG.value
  if not c.data.data_dir:
    raise app.UsageError("set --config.data.data_dir (the TFDS data dir)")
  tok = program.load_tokenizer(_WORKDIR.value)
  src = datasets.open_split(c.data.dataset, c.data.data_dir, c.data.split)
  t = c.frames
  records = [src[i] for i in range(c.clips)]
  video = np.stack([r["video"][:t] for r in records])  # [n, t, h, w, 3]
  depth = np.stack([r["depth"][:t] for r in records])  # [n, t, h, w]
  video = video.astype(np.float32) / 127.5 - 1
  recon = []
  for i in range(0, len(video), c.batch_size):
    ids = tok.encode_to_indices(jnp.asarray(video[i : i + c.batch_size]))
    recon.append(np.asarray(tok.decode_from_indices(ids)))
  se = ((np.concatenate(recon).clip(-1, 1) - video) ** 2).mean(-1)
  print(f"RESULT step={tok.step} clips={len(se)} psnr={psnr(se.mean()):.2f}")
  per_frame = " ".join(f"{p:.1f}" for p in psnr(se.mean((0, 2, 3))))
  print(f"RESULT psnr_per_frame {per_frame}")
  edge = edges(depth)
  regions = {
      "edge": edge,
      "object": (depth > 0) & ~edge,
      "background": (depth == 0) & ~edge,
  }
  for lo, hi in ((0, 1), (1, 5), (5, t)):
    if lo >= t:
      continue
    part = se[:, lo:hi]
    for name, mask in regions.items():
      m = mask[:, lo:hi]
      if not m.any():
        continue
      print(
          f"RESULT frames={lo}-{hi - 1} region={name}"
          f" pixel_share={m.mean():.3f}"
          f" error_share={part[m].sum() / se.sum():.3f}"
          f" psnr={psnr(part[m].mean()):.1f}"
          f" rms_uint8={np.sqrt(part[m].mean()) * 127.5:.1f}"
      )


if __name__ == "__main__":
  app.run(main)
