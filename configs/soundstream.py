"""SoundStream audio codec configs (`experiments/train_audio_codec.py`).

  python -m experiments.train_audio_codec --config=configs/soundstream.py:tiny \
      --workdir=runs/codec --config.data.data_dir=runs/data

Variants (`:arg`): `tiny` (CPU tests: C=8), `demo` (tiny, reconstruction
only, 600 steps: `make demo`'s ~4 CPU minutes), `quality` (demo for 1,500
steps: `make quality`, ~9 CPU minutes), `small` (C=16),
`base` (the paper's C=32, 12 x 1,024 levels as AudioLM's SoundStream). All
share VideoPoet's geometry: 16 kHz, strides (2, 4, 5, 8) -> 50 frames/s,
1,024 codes per level; the LM keeps the first 4 levels. Train on any TFDS
dataset with an `audio` field (`--config.data.dataset=...`) or a folder of
audio files (`--config.data.source=wav_folder --config.data.data_dir=DIR`).
"""

import ml_collections

from configs import common

_ARGS = ("tiny", "demo", "quality", "small", "base")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The codec config for `arg` in `_ARGS` (default "tiny")."""
  arg = arg or "tiny"
  if arg not in _ARGS:
    raise ValueError(
        f"unknown soundstream config {arg!r}; allowed: {', '.join(_ARGS)}"
    )
  if arg == "demo":
    return _demo(get_config("tiny"))
  if arg == "quality":
    return _demo(get_config("tiny"), steps=1500)
  tiny, base = arg == "tiny", arg == "base"
  config = ml_collections.ConfigDict()

  config.trainer = common.trainer(
      {"tiny": 800, "small": 20000, "base": 200000}[arg],
      log_every=10 if tiny else 50,
      # On `data.eval_split`.
      eval_every={"tiny": 400, "small": 2000, "base": 10000}[arg],
      checkpoint_every={"tiny": 100, "small": 1000, "base": 5000}[arg],
  )
  config.mesh = common.mesh()

  config.model = dict(
      # C: encoder channels C -> 16C, decoder mirrored (paper: 32).
      channels={"tiny": 8, "small": 16, "base": 32}[arg],
      # Block channels in units of C (paper: 2, 4, 8, 16).
      channel_multipliers=(2, 4, 8, 16),
      # Downsampling per block: hop 320 -> 50 frames/s at 16 kHz.
      strides=(2, 4, 5, 8),
      # Dilations of the three residual units of each block.
      dilations=(1, 3, 9),
      # D, the width of the quantized latent.
      embed_dim={"tiny": 64, "small": 128, "base": 256}[arg],
      # Hz; VideoPoet: 2.125 s = 34,000 samples -> 106 frames.
      sample_rate=16000,
      rvq=dict(
          # Quantizer depth N_q (AudioLM: 12; VideoPoet keeps 4).
          num_levels=12 if base else 8,
          # Codes per level (VideoPoet: 1,024, disjoint ids per level).
          codebook_size=1024,
          # EMA decay of the codebooks (paper: 0.99).
          decay=0.99,
          # EMA count below which a code is replaced by a batch frame.
          # Paper: 2 at >= 3k frames per batch; here scaled to ~1/4 of the
          # mean count (frames per batch / 1,024); lower it with the batch
          # (the trainer refuses one over half the mean).
          dead_code_threshold={"tiny": 0.05, "small": 0.2, "base": 0.5}[arg],
          # k-means on the first batch, and its iterations.
          kmeans_init=True,
          kmeans_iters=10,
          # Fraction of examples with n_q ~ U{1..N_q} (paper: 1.0).
          dropout_prob=1.0,
          # Laplace smoothing of the EMA counts.
          eps=1e-5,
      ),
  )

  config.discriminator = dict(
      # Waveform discriminators at x1, x2, x4 pooling (paper: 3).
      wave_scales=3,
      # MelGAN channels: first conv, cap (paper lineage: 16, 1024).
      wave_channels=4 if tiny else 16,
      wave_max_channels={"tiny": 64, "small": 256, "base": 1024}[arg],
      # Grouped strided convs per waveform discriminator.
      wave_downsamples=4,
      # STFT discriminator: channels of the first conv (paper: 32), window
      # and hop (paper: 1024, 256).
      stft_channels=8 if tiny else 32,
      stft_window=1024,
      stft_hop=256,
  )

  # Loss weights (paper: adversarial 1, feature 100, reconstruction 1).
  config.loss = dict(
      adversarial=1.0,
      feature=100.0,
      reconstruction=1.0,
      commitment=1.0,
      # Clamp of mel magnitudes before the log of L_rec (~-54 dB of full
      # scale; see trainer.LossConfig).
      mel_floor=1e-3,
      # L1 between waveforms (EnCodec's; not in the paper). `tiny` needs
      # it, and its higher learning rate, to get pitch and phase right in a
      # short run (see trainer.LossConfig).
      waveform=1000.0 if tiny else 0.0,
      # Adversarial training starts here (reconstruction-only before).
      gan_start_step={"tiny": 300, "small": 2000, "base": 5000}[arg],
  )

  config.optimizer = common.optimizer(
      # Adam peak learning rates (generator, discriminators).
      learning_rate=2e-3 if tiny else 3e-4,
      # Linear warmup of both learning rates.
      warmup_steps={"tiny": 50, "small": 1000, "base": 5000}[arg],
      disc_learning_rate=3e-4,
      # Adam betas (EnCodec: 0.5, 0.9).
      b1=0.5,
      b2=0.9,
      # Global-norm clipping (0: none) of the generator and discriminators.
      gen_grad_clip=0.0,
      disc_grad_clip=1.0,
      # EMA of the generator's weights (what `load_codec` loads).
      ema_decay=0.99 if tiny else 0.999,
  )

  config.data = common.data(
      # TFDS name/config and data dir (build with experiments.build_data),
      # or with source='wav_folder' the folder of audio files as data_dir.
      "synth_av/tiny",
      # 'tfds' (any dataset with `audio`) or 'wav_folder'.
      source="tfds",
      train_split="train",
      eval_split="test",
      # Clip length of wav_folder records (2.125 s).
      clip_samples=34000,
      # Random crop trained on (multiple of 320, >= 2048).
      segment_samples=8000 if tiny else 16000,
      # Clips per step over all processes.
      batch_size={"tiny": 8, "small": 16, "base": 32}[arg],
      # Evaluation: first clips of eval_split, at these numbers of levels
      # (0: all).
      eval_clips=16 if tiny else 32,
      eval_levels=(1, 2, 4, 0),
  )
  return config


def _demo(
    config: ml_collections.ConfigDict, steps: int = 600
) -> ml_collections.ConfigDict:
  """`tiny` trained in ~4 CPU minutes for `make demo`: reconstruction only.

  GAN steps cost ~2.5x a reconstruction step on CPU; in the same time,
  600 reconstruction steps beat tiny's 300 + 100 GAN steps (SI-SDR 0.6 vs
  0.1 dB, mel distance 5.83 vs 6.16 on 16 test clips; docs/results.md) and
  decode every synth_av tone at its pitch. One eval (16 test clips) at the
  last step. The harness still compiles the (unused) GAN step at start.
  `quality`: the same for `steps` = 1,500.
  """
  config.trainer.update(total_steps=steps, eval_every=steps)
  config.trainer.checkpoint.update(every_steps=200, keep=1)
  # Batch i >= gan_start_step trains with the GAN (0-based): never here.
  config.loss.gan_start_step = steps
  return config
