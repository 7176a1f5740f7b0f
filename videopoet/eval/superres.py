"""PSNR of the SR transformer against bicubic upsampling, in pixels.

For each test clip with low-resolution codes (`tokenize_data` with
`superres_factor=2`), against the clip's ground truth at full resolution:

  sr        decode(SR(low codes))        the SR transformer's output,
  bicubic   bicubic_up(decode(low codes)) the same low-resolution codes
            decoded by the same tokenizer, then upsampled 2x,
  ceiling   decode(codes of the full-resolution clip): the tokenizer's own
            reconstruction (what a perfect SR model could reach).

`evaluate` returns the mean per-frame PSNR (dB, `eval.metrics.psnr`) of
each row and the clip count; `experiments.eval_superres` writes it.
"""

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from videopoet import lm_data
from videopoet.data import datasets
from videopoet.eval import metrics
from videopoet.sampling import models as models_lib
from videopoet.superres import data as superres_data
from videopoet.superres import sample as sample_lib


def _pixels(x) -> np.ndarray:
  """float [-1, 1] -> uint8."""
  x = np.asarray(x, np.float32)
  return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class EvalDataConfig:
  """`config.data` of `configs/eval_superres.py`: the ground-truth clips.

  Attributes:
    dataset: their TFDS name ('': the one the tokens' tokens.json names).
    data_dir: the TFDS data directory (`experiments.build_data`'s).
  """

  dataset: str = ""
  data_dir: str = ""


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """A `configs/eval_superres.py` config, checked.

  Attributes:
    data: the ground-truth clips.
    tokens: tokens with `video_low` of those clips ('': the SR run's
      `data.data_dir`).
    split: the split scored.
    num_clips: clips scored (the first ones).
    batch_size: clips per SR call.
    seed: the SR sampler's seed (batch i uses seed + i).
    sampling: the SR sampler's settings.
  """

  data: EvalDataConfig = EvalDataConfig()
  tokens: str = ""
  split: str = "test"
  num_clips: int = 64
  batch_size: int = 8
  seed: int = 0
  sampling: sample_lib.SRSamplingConfig = sample_lib.SRSamplingConfig()


def evaluate(
    loaded: Any,
    tokens_dir: str,
    data_dir: str,
    split: str = "test",
    num_clips: int = 64,
    batch_size: int = 8,
    sampling: sample_lib.SRSamplingConfig = sample_lib.SRSamplingConfig(),
    seed: int = 0,
    dataset: str = "",
) -> dict[str, Any]:
  """The PSNR table of `loaded` (`superres.trainer.load`) on `split`.

  Args:
    loaded: the SR transformer.
    tokens_dir: tokens with `video_low` of the clips (their `index` names
      the clip in `split` of the dataset).
    data_dir: the TFDS data directory of the tokens' dataset.
    split: the split.
    num_clips: clips scored (the first ones).
    batch_size: clips per SR call.
    sampling: the SR sampler's settings.
    seed: the SR sampler's seed (batch i uses seed + i).
    dataset: the clips' TFDS name ('': the tokens' `dataset`).
  """
  spec = loaded.spec
  video = models_lib.load_video_tokenizer(spec)
  records = lm_data.ArrayRecordSource(tokens_dir, split)
  source = datasets.open_split(dataset or spec.dataset, data_dir, split)
  n = min(num_clips, len(records))
  sampler = sample_lib.make_sampler(loaded.model, sampling)
  decode = lambda c: _pixels(
      video.decode_from_indices(jnp.asarray(c, jnp.int32))
  )
  rows = {"sr": [], "bicubic": [], "ceiling": []}
  start = time.time()
  for i, lo in enumerate(range(0, n, batch_size)):
    recs = [records[j] for j in range(lo, min(lo + batch_size, n))]
    truth = np.stack([
        np.asarray(source[int(r["index"])]["video"])[: spec.num_frames]
        for r in recs
    ])  # uint8 [b, t, H, W, 3]
    low = np.stack([r["video_low"] for r in recs])
    text = np.stack([r["text"] for r in recs])
    mask = np.stack([r["text_mask"] for r in recs])
    high, _ = sampler(
        loaded.params, jnp.asarray(low), jnp.asarray(text), jnp.asarray(mask),
        jax.random.key(seed + i),
    )  # fmt: skip
    small = np.asarray(
        video.decode_from_indices(jnp.asarray(low, jnp.int32)), np.float32
    )  # [b, t, H/2, W/2, 3] in [-1, 1]
    up = _pixels(
        superres_data.resize_clips(small, spec.height, spec.width)
    )
    ceiling = decode(np.stack([r["video"] for r in recs]))
    for name, out in (("sr", decode(high)), ("bicubic", up),
                      ("ceiling", ceiling)):  # fmt: skip
      rows[name].extend(metrics.psnr_frames(out, truth).mean(-1).tolist())
  return {
      "psnr_db": {k: float(np.mean(v)) for k, v in rows.items()},
      "clips": n,
      "split": split,
      "sr_step": loaded.step,
      "sr_workdir": loaded.workdir,
      "sampling": dataclasses.asdict(sampling),
      "seconds": round(time.time() - start, 1),
  }
