r"""MAGVIT-v2 video tokenizer (causal 3D CNN + LFQ, 2^18 codes).

  python -m experiments.build_data --config=configs/synth_av.py:tiny \
      --config.data.data_dir=DATA
  python -m experiments.train_video_tokenizer \
      --config=configs/magvit2.py:tiny --workdir=W --config.data.data_dir=DATA

Args (the `:arg` suffix):
  tiny:  64x64x17 synth_av -> 5x8x8 codes; CPU tests and `make demo`.
  tiny16: tiny with space halved twice, not three times, and time once:
         64x64x17 -> 9x16x16 (a code covers 4x4 pixels of 2 frames), FSQ
         (2^18 codes), reconstruction only, 3,100 steps: the 30-minute CPU
         quality run (README, Results).
  demo:  tiny's 5x8x8 grid with 2^10 FSQ codes (levels 8, 8, 4, 4; the LM's
         vocabulary stays small), reconstruction only, 600 steps, one
         32-clip eval at the end: `make demo`'s ~5 CPU minutes.
  quality: demo trained 2,000 steps (`make quality`, ~15 CPU minutes).
  small: 128x128x17 (video_folder 'square' clips) -> 5x16x16, filters 32.
  base:  the paper: 128x128x17 -> 5x16x16, filters 128, multipliers
         (1, 2, 2, 4), 4 res blocks, 2^18 LFQ codes (~376M parameters).
Every field is documented in the dataclass it builds
(`videopoet.tokenizers.magvit2.{model,quantizers,train,program}`).
"""

import ml_collections

from configs import common

_ARGS = ("tiny", "tiny16", "demo", "quality", "small", "base")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The MAGVIT-v2 config for `arg` in `_ARGS` (default tiny)."""
  arg = arg or "tiny"
  if arg not in _ARGS:
    raise ValueError(f"unknown magvit2 config {arg!r}; allowed: {_ARGS}")
  if arg == "tiny16":
    return _tiny16(get_config("tiny"))
  if arg == "demo":
    return _demo(get_config("tiny"))
  if arg == "quality":
    return _quality(_demo(get_config("tiny")))
  tiny, base = arg == "tiny", arg == "base"
  c = ml_collections.ConfigDict()
  # One reference: `--config.trainer.total_steps=N` also moves the end of
  # the learning-rate decay and the GAN start of short runs.
  total_steps = ml_collections.FieldReference(
      {"tiny": 2000, "small": 2000, "base": 500_000}[arg]
  )
  # Harness: steps, seed, logging, evaluation and checkpoints.
  c.trainer = common.trainer(
      total_steps,
      log_every=10 if tiny else 50,
      eval_every={"tiny": 200, "small": 500, "base": 5000}[arg],
      checkpoint_every=100 if tiny else 1000,
  )
  c.mesh = common.mesh()
  # Encoder/decoder (ModelConfig).
  c.model = dict(
      filters={"tiny": 16, "small": 32, "base": 128}[arg],
      channel_multipliers=(1, 2, 2, 4),
      num_res_blocks=1 if tiny else (2 if arg == "small" else 4),
      temporal_downsample=(False, True, True),
      num_groups=8 if tiny else 32,
      dtype="float32",
  )
  # Quantizer: 'lfq' with 18 bits (2^18 codes) or 'fsq' with the same size.
  c.quantizer = dict(
      kind="lfq",
      lfq=dict(
          num_bits=18,
          commitment_weight=0.25,
          # The paper's 0.1 (base). Short CPU runs: 0.02 without the 3x
          # warm-start (H100 sweep of tiny, README: 21.3 vs 18.7 dB PSNR at
          # step 800, the most of any change tried).
          entropy_weight=0.1 if base else 0.02,
          diversity_weight=1.0,
          inv_temperature=100.0,
          anneal_factor=3.0 if base else 1.0,
          anneal_steps=2000,
          log_mode="exact",
      ),
      fsq=dict(levels=(8, 8, 4, 4, 4, 4, 4, 4), eps=1e-3),
  )
  # StyleGAN discriminator.
  c.discriminator = dict(
      filters={"tiny": 16, "small": 32, "base": 128}[arg],
      channel_multipliers=(2, 4, 4, 4),
  )
  # Loss weights (praxis VQGANLoss); the GAN starts later on short runs.
  c.loss = dict(
      recon_weight=5.0,
      adversarial_weight=0.1,
      # Short runs: the last quarter (GAN steps cost 1.5x on CPU and trade
      # PSNR for sharpness; README, Results).
      gan_start_step=0 if base else total_steps * 3 // 4,
      r1_weight=10.0,
      r1_every=1 if base else 4,
      lecam_weight=0.001,
      lecam_decay=0.999,
      image_fraction=0.25,
  )
  # Adam(b1=0, b2=0.99); short runs warm up faster and use a larger rate.
  c.optimizer = common.optimizer(
      learning_rate=1e-4 if base else 1e-3,
      warmup_steps=500 if base else 50,
      disc_learning_rate=1e-4 if base else 1e-3,
      # praxis's b1=0 steadies long GAN runs; short runs converge faster
      # with momentum before the GAN starts.
      b1=0.0 if base else 0.9,
      b2=0.99,
      grad_clip=1.0,
      # Short runs end on a cosine decay to 0; base keeps praxis's constant
      # rate.
      decay_steps=0 if base else total_steps.identity(),
      end_fraction=0.0,
      # EMA of the generator's weights (what `load_tokenizer` loads).
      ema_decay=0.99 if tiny else 0.999,
  )
  # Perceptual loss: ResNet-50 logits from a local msgpack ('' = disabled).
  c.perceptual = dict(
      weights_path="",
      stage_sizes=(3, 4, 6, 3),
      width=64,
      num_classes=1000,
      weight=0.1,
  )
  c.data = common.data(
      "synth_av/tiny" if tiny else "video_folder/square",
      train_split="train",
      eval_split="test" if tiny else "train",
      batch_size=4 if tiny else 8,
      num_frames=17,
      # tiny trains on random 9-frame windows (1.9x cheaper steps on CPU)
      # and is evaluated on all 17 frames.
      train_num_frames=9 if tiny else 0,
  )
  c.eval = dict(batch_size=8, num_batches=0 if tiny else 8)
  return c


def _tiny16(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`tiny` with 9x16x16 latents, FSQ, no GAN: >= 30 dB in 30 CPU minutes.

  Two spatial downsamplings instead of three, the second also halving time:
  a code covers 4x4 pixels of 2 frames (tiny: 8x8 pixels of 4 frames), so a
  17-frame clip is 9 x 16 x 16 = 2,304 tokens (tiny: 320). README, Results:
  16x16 latents +3.7 dB at step 1,000; FSQ +1.9 dB at step 600 and 10 %
  faster steps; 9 latent frames instead of 5 +1.6 dB at step 1,200 for
  15-20 % slower steps.
  """
  c.model.update(
      channel_multipliers=(1, 2, 4), temporal_downsample=(False, True)
  )
  c.loss.adversarial_weight = 0.0  # The GAN trades PSNR for sharpness.
  c.quantizer.kind = "fsq"  # LFQ's 2^18 codes, learned faster.
  c.trainer.total_steps = 3100  # ~28 min on a 2-core CPU (2.0-2.3 steps/s).
  return c


def _demo(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`tiny` (5x8x8 codes) with 2^10 FSQ codes, trained in ~4 CPU minutes.

  The LM of `make demo` trains minutes on CPU on these tokens, so the grid
  stays tiny's 5 x 8 x 8 = 320 tokens a clip and the codebook 2^10 (LM
  visual bits 10, not 18). FSQ, not LFQ: FSQ learned faster in every CPU
  comparison at 2^18 codes (docs/results.md). Reconstruction only; the
  learning rate decays to 0 at step 600 (~2.4 steps/s on an idle 2-core
  CPU), where the one eval (32 test clips) runs. docs/results.md: at step
  450, 20.7 dB PSNR, SSIM 0.68; positions and motion right, shapes
  blurred, colours washed out.
  """
  c.quantizer.kind = "fsq"
  c.quantizer.fsq.levels = (8, 8, 4, 4)  # 1,024 codes.
  c.loss.adversarial_weight = 0.0
  c.trainer.total_steps = 600
  c.trainer.eval_every = 600
  # Every 200 steps so an interrupted demo resumes; the last at step 600.
  c.trainer.checkpoint.update(every_steps=200, keep=1)
  c.eval.num_batches = 4
  return c


def _quality(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`demo` (5x8x8 codes of 2^10) trained 2,000 steps for `make quality`.

  The same tokens as the demo's, so the LM of `make quality` stays CPU
  sized; the longer cosine schedule buys reconstruction (docs/results.md).
  """
  c.trainer.total_steps = 2000
  c.trainer.eval_every = 2000
  c.trainer.checkpoint.update(every_steps=400, keep=1)
  return c
