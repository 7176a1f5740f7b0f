"""Codec speed: our SoundStream (JAX) against EnCodec (PyTorch), same CPU.

  python -m benchmarks.codec_speed [--reps=5] [--seconds=10] [--batch=8]

Peer: the `encodec` package's model built with random weights (no download)
at our geometry: 16 kHz, ratios (8, 5, 4, 2) -> 50 frames/s, C=32, RVQ of
8 x 1,024 codes (4 kbps). Ours: `configs/soundstream.py:base` (C=32) with the
same 8 levels. Figures (medians over `--reps`, after warm-up):

  * encode + decode of `--seconds` of audio (batch 1, inference): the
    real-time factor (audio seconds per second) of each, and the ratio of
    our time to EnCodec's;
  * a generator train step on `--batch` clips of 1 s: encoder -> RVQ in
    training mode (straight-through, commitment, EMA) -> decoder, the
    multi-scale mel loss, backward and an Adam update (the `encodec`
    package ships no discriminators, so the GAN part is timed for ours only,
    printed for information).

Two peers: EnCodec as shipped (one residual unit per block with kernel 3
and half-width hidden channels, two LSTM layers: ~4x fewer FLOPs than the
paper's SoundStream), and the same `encodec` code at SoundStream's layer
geometry (three residual units per block, kernel 7, dilations 1/3/9, no
bottleneck, no LSTM, D = our embed_dim), which does our arithmetic. FLOPs
per second of audio and per generator step are printed for each (XLA's
cost analysis, torch's FlopCounterMode), and against each peer the time
ratios per FLOP too (`..._per_flop_ratio...`: seconds per FLOP, ours over
EnCodec's).

Ends with `RESULT` lines (docs/design.md); ratio <= 1.0 means ours is at
least as fast. Install the peer with `pip install --no-deps encodec==0.1.1`
(its `torchaudio` requirement would pull a torch other than the pinned one);
`torchaudio` is not needed: when it is absent a stub stands in for it
(EnCodec imports it only for file I/O and resampling).
"""

import importlib.metadata
import os
import sys
import types

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common
from configs import soundstream as soundstream_config
from videopoet import config_lib
from videopoet.tokenizers.soundstream import losses
from videopoet.tokenizers.soundstream import model as model_lib
from videopoet.tokenizers.soundstream import rvq

from videopoet.kernels import xla_cpu

xla_cpu.configure()  # Before JAX creates its CPU backend.

_REPS = flags.DEFINE_integer("reps", 5, "Timed repetitions (median).")
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Audio length for RTF.")
_BATCH = flags.DEFINE_integer("batch", 8, "Clips of 1 s per train step.")
_FULL_STEP = flags.DEFINE_bool(
    "full_step",
    True,
    "Also time our full GAN step (the trainer; it imports the training"
    " harness and with it TensorFlow through clu's metric writers).",
)
LEVELS = 8
SR = 16000


# ------------------------------------------------------------------- Ours.
def _our_config():
  config = soundstream_config.get_config("base")
  config.model.rvq.num_levels = LEVELS
  config.data.data_dir = "unused"
  config.data.segment_samples = SR
  # The full step is timed with the discriminators on (its 'gan' phase).
  config.loss.gan_start_step = 0
  return config


def _full_step_time(config, clips, reps):
  """Our trainer's whole 'gan' step (generator, discriminators, EMA)."""
  # Imported here: the trainer brings the harness, clu and TensorFlow, which
  # a GPU machine without TensorFlow lacks (--nofull_step).
  # pylint: disable-next=g-import-not-at-top
  from videopoet.tokenizers.soundstream import trainer

  init, step = trainer.make_step(trainer.parse(config))
  full = jax.jit(init)(jax.random.key(0))
  full_step = jax.jit(lambda s, b, r: step(s, b, r, "gan"), donate_argnums=(0,))
  holder = [full]

  def run_full():
    new, m = full_step(holder[0], {"audio": clips}, jax.random.key(1))
    holder[0] = new
    m["train/loss"].block_until_ready()

  return common.median_seconds(run_full, reps, warmup=2)


def ours(reps, seconds, batch, full_step):
  config = _our_config()
  model_config = config_lib.from_config(
      model_lib.ModelConfig, config.model, "config.model"
  )
  model = model_lib.SoundStream(model_config)
  variables = model_lib.init_variables(model, jax.random.key(0))
  n_params = sum(x.size for x in jax.tree.leaves(variables["params"]))
  audio = jnp.asarray(
      np.random.default_rng(0).uniform(-0.5, 0.5, (1, int(seconds * SR))),
      jnp.float32,
  )
  encode = jax.jit(lambda v, x: model.apply(v, x, method=model.encode))
  decode = jax.jit(lambda v, c: model.apply(v, c, method=model.decode))
  codec_time = common.median_seconds(
      lambda: decode(variables, encode(variables, audio)).block_until_ready(),
      reps,
      warmup=2,
  )
  codes = jax.eval_shape(encode, variables, audio)
  flops = sum(
      fn.lower(variables, arg).compile().cost_analysis()["flops"]
      for fn, arg in ((encode, audio), (decode, codes))
  )

  tx = optax.adam(3e-4, b1=0.5, b2=0.9)
  clips = jnp.asarray(
      np.random.default_rng(1).uniform(-0.5, 0.5, (batch, SR)), jnp.float32
  )

  def gen_step(params, quantizer, opt, x, key):
    def loss_fn(p):
      (rec, _, aux), new = model.apply(
          {"params": p, "quantizer": quantizer},
          x,
          train=True,
          mutable=[rvq.COLLECTION],
          rngs={rvq.COLLECTION: key},
      )
      loss = losses.multiscale_mel_loss(x, rec, SR) + aux["commit_loss"]
      return loss, new[rvq.COLLECTION]

    (loss, quantizer), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), quantizer, opt, loss

  state = [
      variables["params"],
      variables["quantizer"],
      tx.init(variables["params"]),
  ]
  key = jax.random.key(0)
  # Compiled once: timed, and asked for its FLOPs.
  gen_step = (
      jax.jit(gen_step, donate_argnums=(0, 1, 2))
      .lower(*state, clips, key)
      .compile()
  )
  gen_flops = gen_step.cost_analysis()["flops"]

  def run_gen():
    p, q, o, loss = gen_step(*state, clips, key)
    state[:] = [p, q, o]
    loss.block_until_ready()

  gen_time = common.median_seconds(run_gen, reps, warmup=2)

  full_time = _full_step_time(config, clips, reps) if full_step else np.nan
  return dict(
      params=n_params,
      codec=codec_time,
      gen_step=gen_time,
      full_step=full_time,
      flops_per_s=flops / seconds,
      gen_step_flops=gen_flops,
  )


# ---------------------------------------------------------------- EnCodec.
def _import_encodec():
  try:
    # pylint: disable-next=g-import-not-at-top,unused-import
    import torchaudio  # noqa: F401
  except ImportError:
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
  import encodec  # pylint: disable=g-import-not-at-top

  return encodec


def _encodec_model(encodec, geometry: str, embed_dim: int):
  """EnCodec at 16 kHz, hop 320, 8 x 1,024 codes; see the module doc."""
  bandwidth = LEVELS * 10 * 50 / 1000
  if geometry == "encodec":
    return encodec.EncodecModel._get_model(  # pylint: disable=protected-access
        [bandwidth], sample_rate=SR, channels=1, causal=True
    )
  seanet = dict(
      channels=1,
      dimension=embed_dim,
      n_filters=32,
      n_residual_layers=3,
      ratios=[8, 5, 4, 2],
      residual_kernel_size=7,
      dilation_base=3,
      compress=1,
      lstm=0,
      causal=True,
      norm="weight_norm",
  )
  m = encodec.modules
  quantizer = encodec.quantization.ResidualVectorQuantizer(
      dimension=embed_dim, n_q=LEVELS, bins=1024
  )
  return encodec.EncodecModel(
      m.SEANetEncoder(**seanet),
      m.SEANetDecoder(**seanet),
      quantizer,
      [bandwidth],
      SR,
      1,
  )


def peer(reps, seconds, batch, geometry, embed_dim):
  import torch  # pylint: disable=g-import-not-at-top
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(os.cpu_count())
  device = common.torch_device(torch)
  encodec = _import_encodec()
  torch.manual_seed(0)
  model = _encodec_model(encodec, geometry, embed_dim).to(device)
  assert model.quantizer.n_q == LEVELS and model.encoder.hop_length == 320
  model.set_target_bandwidth(LEVELS * 10 * 50 / 1000)
  n_params = sum(p.numel() for p in model.parameters())
  audio = torch.from_numpy(
      np.random.default_rng(0)
      .uniform(-0.5, 0.5, (1, 1, int(seconds * SR)))
      .astype(np.float32)
  ).to(device)
  model.eval()

  def codec():
    with torch.inference_mode():
      model.decode(model.encode(audio))

  sync = lambda fn: common.synchronized(torch, device, fn)
  codec_time = common.median_seconds(sync(codec), reps, warmup=2)
  with FlopCounterMode(display=False) as counter:
    codec()
  codec_flops = counter.get_total_flops() / seconds

  mels = {
      s: torch.from_numpy(losses.mel_filterbank(s, SR, losses.MEL_BINS)).to(
          device
      )
      for s in losses.MEL_SCALES
  }
  windows = {s: torch.hann_window(s, device=device) for s in losses.MEL_SCALES}

  def mel_loss(x, y):
    total = 0.0
    for s in losses.MEL_SCALES:

      def mel(a):
        spec = torch.stft(
            a, s, s // 4, window=windows[s], center=False, return_complex=True
        ).abs() / (s / 2)
        return spec.transpose(1, 2) @ mels[s]

      sx, sy = mel(x), mel(y)
      log_diff = sx.clamp(min=1e-5).log() - sy.clamp(min=1e-5).log()
      total = (
          total
          + (sx - sy).abs().sum(-1).mean()
          + (s / 2) ** 0.5 * ((log_diff**2).sum(-1) + 1e-12).sqrt().mean()
      )
    return total

  model.train()
  opt = torch.optim.Adam(model.parameters(), lr=3e-4, betas=(0.5, 0.9))
  clips = torch.from_numpy(
      np.random.default_rng(1)
      .uniform(-0.5, 0.5, (batch, 1, SR))
      .astype(np.float32)
  ).to(device)

  def gen_step():
    opt.zero_grad()
    emb = model.encoder(clips)
    q = model.quantizer(emb, model.frame_rate, model.bandwidth)
    rec = model.decoder(q.quantized)[..., :SR]
    loss = mel_loss(clips[:, 0], rec[:, 0]) + q.penalty
    loss.backward()
    opt.step()

  gen_time = common.median_seconds(sync(gen_step), reps, warmup=2)
  with FlopCounterMode(display=False) as counter:
    gen_step()
  return dict(
      params=n_params,
      codec=codec_time,
      gen_step=gen_time,
      flops_per_s=codec_flops,
      gen_step_flops=counter.get_total_flops(),
      version=f"encodec-{importlib.metadata.version('encodec')}"
      f"-torch-{torch.__version__.split('+')[0]}-{device}",
  )


def main(argv):
  del argv
  reps, seconds, batch = _REPS.value, _SECONDS.value, _BATCH.value
  print(common.describe_device())
  a = ours(reps, seconds, batch, _FULL_STEP.value)
  embed_dim = _our_config().model.embed_dim
  peers = {
      g: peer(reps, seconds, batch, g, embed_dim)
      for g in ("encodec", "soundstream")
  }
  print(
      f"ours:    {a['params'] / 1e6:.2f} M params"
      f" {a['flops_per_s'] / 1e9:.2f} GFLOP per audio second | encode+decode"
      f" {seconds:g} s in {a['codec']:.3f} s (RTF {seconds / a['codec']:.1f}x)"
      f" | generator step {a['gen_step']:.3f} s"
      f" ({a['gen_step_flops'] / 1e9:.0f} GFLOP) | full GAN step "
      f"{a['full_step']:.3f} s (batch {batch} x 1 s)"
  )
  print(
      f"RESULT codec_rtf_ours={seconds / a['codec']:.2f} target>=1.0 "
      "peer=real-time"
  )
  for geometry, b in peers.items():
    print(
        f"encodec ({geometry} geometry): {b['params'] / 1e6:.2f} M params"
        f" {b['flops_per_s'] / 1e9:.2f} GFLOP per audio second |"
        f" encode+decode {seconds:g} s in {b['codec']:.3f} s (RTF"
        f" {seconds / b['codec']:.1f}x) | generator step"
        f" {b['gen_step']:.3f} s ({b['gen_step_flops'] / 1e9:.0f} GFLOP)"
    )
    suffix = "" if geometry == "encodec" else "_soundstream_geometry"
    peer_name = f"{b['version']}-random-weights-16kHz-C32-8x1024-{geometry}"
    print(
        f"RESULT codec_encode_decode_time_ratio_vs_encodec{suffix}="
        f"{a['codec'] / b['codec']:.2f} target<=1.0 peer={peer_name}"
    )
    print(
        f"RESULT codec_train_step_time_ratio_vs_encodec{suffix}="
        f"{a['gen_step'] / b['gen_step']:.2f} target<=1.0 peer={peer_name}"
    )
    # Seconds per FLOP, ours over EnCodec's: how fast each runs the
    # arithmetic its own architecture asks for.
    codec_per_flop = (a["codec"] / a["flops_per_s"]) / (
        b["codec"] / b["flops_per_s"]
    )
    step_per_flop = (a["gen_step"] / a["gen_step_flops"]) / (
        b["gen_step"] / b["gen_step_flops"]
    )
    print(
        f"RESULT codec_encode_decode_time_per_flop_ratio_vs_encodec{suffix}="
        f"{codec_per_flop:.2f} target<=1.0 peer={peer_name}"
    )
    print(
        f"RESULT codec_train_step_time_per_flop_ratio_vs_encodec{suffix}="
        f"{step_per_flop:.2f} target<=1.0 peer={peer_name}"
    )


if __name__ == "__main__":
  app.run(main)
