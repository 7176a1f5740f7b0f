"""MAGVIT-v2 `tiny` variants: PSNR of 32 synth_av test clips against steps.

  python -m research.magvit2_sweep --make_data=/tmp/d   # once, needs TFDS
  python -m research.magvit2_sweep NAMES STEPS         # e.g. base,f32 800

Reconstruction-only steps (the 'recon' phase; `tiny`'s batch of random
training windows unless a variant sets `batch` or `train_frames`), PSNR of
the EMA and raw weights on all 17 frames. The learning rate follows the
config's schedule, ending at the sweep's last step (`tiny`: a cosine to 0;
the sweeps before 2026-12-04 ran at a constant rate, batch 8 x 5 frames).
The data is read from `.gpu/synth.npz` (2,000 train + 32 test clips, 23 MB),
so the sweep runs where TensorFlow is not installed (the lent GPU machine).
The variants (`SWEEP`) override fields of `configs/magvit2.py:tiny`, or of
the preset a variant names with `"preset"` (e.g. tiny16).
"""

import json, os, sys, time
from videopoet.kernels import xla_cpu

xla_cpu.configure()  # Before JAX creates its CPU backend.
import numpy as np, jax, jax.numpy as jnp
from configs import magvit2 as cfgmod
from videopoet import config_lib
from videopoet.tokenizers.magvit2 import model as model_lib, quantizers, train as train_lib
from videopoet.tokenizers.common import perceptual

DATA = ".gpu/synth.npz"


def make_data(data_dir):
  from videopoet.data import datasets  # pylint: disable=g-import-not-at-top

  split = lambda s, n: np.stack(
      [
          np.asarray(r["video"][:17])
          for r in (
              datasets.open_split("synth_av/tiny", data_dir, s)[i]
              for i in range(n)
          )
      ]
  )
  os.makedirs(os.path.dirname(DATA), exist_ok=True)
  np.savez_compressed(DATA, train=split("train", 2000), test=split("test", 32))


if len(sys.argv) > 1 and sys.argv[1].startswith("--make_data="):
  make_data(sys.argv[1].split("=", 1)[1])
  sys.exit()
d = np.load(DATA)
TRAIN, TEST = d["train"], d["test"]


def make(overrides, steps=None):
  c = cfgmod.get_config(overrides.pop("preset", "tiny"))
  if steps:  # The learning rate decays to 0 at the sweep's last step.
    c.trainer.total_steps = steps
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  f = config_lib.from_config
  return c, train_lib.Trainer(
      model=f(model_lib.ModelConfig, c.model, "m"),
      quantizer=f(quantizers.QuantizerConfig, c.quantizer, "q"),
      disc=f(train_lib.DiscriminatorConfig, c.discriminator, "d"),
      loss=f(train_lib.LossConfig, c.loss, "l"),
      optimizer=f(train_lib.OptimizerConfig, c.optimizer, "o"),
      perceptual=f(perceptual.PerceptualConfig, c.perceptual, "p"),
  )


def tofloat(v):
  return v.astype(jnp.float32) / 127.5 - 1


def _no_quantizer(lfq, z, step=None, with_loss=True):
  """LFQ's outputs with the continuous latent passed on and no loss."""
  out = _LFQ_CALL(lfq, z, step, with_loss)
  return out._replace(quantized=z, loss=jnp.float32(0.0))


_LFQ_CALL = quantizers.LFQ.__call__


def run(name, overrides, steps, evals):
  overrides = dict(overrides)
  continuous = overrides.pop("no_quantizer", False)
  win = overrides.pop("train_frames", None)
  batch = overrides.pop("batch", None)
  quantizers.LFQ.__call__ = _no_quantizer if continuous else _LFQ_CALL
  c, tr = make(overrides, steps)
  if continuous and c.quantizer.kind != "lfq":
    raise ValueError(f"{name}: no_quantizer bypasses LFQ only")
  batch = batch or c.data.batch_size
  win = win or c.data.train_num_frames or c.data.num_frames
  rng = np.random.default_rng(0)
  state = jax.jit(tr.init)(
      jax.random.key(0), tofloat(jnp.asarray(TRAIN[:1, :win]))
  )
  step = jax.jit(
      lambda s, v, r: tr.step(s, v, r, phase="recon"), donate_argnums=0
  )
  tok = tr.tokenizer
  recon = jax.jit(lambda p, v: tok.apply(p, v)[0])
  test = tofloat(jnp.asarray(TEST))
  out = []
  t0 = time.time()
  for i in range(1, steps + 1):
    idx = rng.integers(0, len(TRAIN), batch)
    st = rng.integers(0, 17 - win + 1, batch)
    v = np.stack([TRAIN[j, s : s + win] for j, s in zip(idx, st)])
    state, m = step(state, tofloat(jnp.asarray(v)), jax.random.key(i))
    if i in evals:
      ps = []
      for p in ("ema_params", "params"):
        r = np.asarray(recon(state[p], test))
        se = (r.clip(-1, 1) - np.asarray(test)) ** 2
        psnr = lambda mse: float(np.mean(10 * np.log10(4 / mse)))
        ps.append(psnr(np.mean(se, axis=(1, 2, 3, 4))))
        if p == "ema_params":  # Frames inside / past a training window.
          split = (
              psnr(np.mean(se[:, :win], axis=(1, 2, 3, 4))),
              psnr(np.mean(se[:, win:], axis=(1, 2, 3, 4))),
          )
      out.append(
          (i, round(ps[0], 2), round(ps[1], 2), round(float(m["train/l2"]), 5))
      )
      print(
          name,
          i,
          "psnr ema/raw",
          ps,
          f"ema frames <{win} / >={win}",
          split,
          "l2",
          float(m["train/l2"]),
          f"{time.time()-t0:.0f}s",
          flush=True,
      )
  return out


_T16_T5 = {"preset": "tiny16", "model.temporal_downsample": (True, True)}
_T16_T5_LFQ = {**_T16_T5, "quantizer.kind": "lfq"}
SWEEP = {
    "base": {},
    # Diagnostics: the autoencoder alone (the continuous latent decoded, no
    # quantizer loss), and FSQ with the same 2^18 codes.
    "no_quantizer": {"no_quantizer": True},
    "fsq": {"quantizer.kind": "fsq"},
    # 9- and 17-frame training windows (tiny trains on 5, evaluates on 17).
    "win9": {"train_frames": 9},
    "win17": {"train_frames": 17},
    "no_clip": {"optimizer.grad_clip": 1e9},
    # tiny's recipe before 2026-12-04: batch 8 x 5-frame windows.
    "win5_b8": {"train_frames": 5, "batch": 8},
    # Whole 17-frame clips at a batch of as many frames (3 x 17 ~ 8 x 5).
    "win17_b3": {"train_frames": 17, "batch": 3},
    "win9_b4": {"train_frames": 9, "batch": 4},
    # Smaller batches: as many frames per second, more steps.
    "b4": {"batch": 4, "train_frames": 5},
    "b2": {"batch": 2, "train_frames": 5},
    "entropy_0": {"quantizer.lfq.entropy_weight": 0.0},
    "no_entropy_anneal": {"quantizer.lfq.anneal_factor": 1.0},
    "entropy_0.02": {
        "quantizer.lfq.entropy_weight": 0.02,
        "quantizer.lfq.anneal_factor": 1.0,
    },
    "lr3e-3": {"optimizer.learning_rate": 3e-3},
    "space4x": {
        "model.channel_multipliers": (1, 2, 4),
        "model.temporal_downsample": (True, True),
    },
    "f32": {"model.filters": 32},
    # tiny16 (9x16x16 latents, FSQ, no GAN) and the steps to it. t5: 5
    # latent frames (a code covers 4 frames, not 2); lfq: the paper's LFQ.
    "t16": {"preset": "tiny16"},
    "t16_t5": _T16_T5,
    "t16_t5_lr2e-3": {**_T16_T5, "optimizer.learning_rate": 2e-3},
    "t16_lfq": {"preset": "tiny16", "quantizer.kind": "lfq"},
    "t16_t5_lfq": _T16_T5_LFQ,
    # The continuous 18-channel latent decoded: what LFQ costs.
    "t16_t5_lfq_noq": {**_T16_T5_LFQ, "no_quantizer": True},
    "t16_t5_lfq_lr2e-3": {**_T16_T5_LFQ, "optimizer.learning_rate": 2e-3},
    "t16_t5_lfq_f24": {**_T16_T5_LFQ, "model.filters": 24},
    "e002_space4x": {
        "quantizer.lfq.entropy_weight": 0.02,
        "quantizer.lfq.anneal_factor": 1.0,
        "model.channel_multipliers": (1, 2, 4),
        "model.temporal_downsample": (True, True),
    },
}
names = sys.argv[1].split(",") if len(sys.argv) > 1 else list(SWEEP)
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 700
res = {}
for n in names:
  res[n] = run(n, SWEEP[n], steps, {steps // 8, steps // 4, steps // 2, steps})
print(json.dumps(res))
