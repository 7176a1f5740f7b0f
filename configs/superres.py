r"""The super-resolution (SR) transformer (`experiments/train_superres.py`).

  python -m experiments.train_superres --config=configs/superres.py:synth \
      --workdir=runs/superres --config.data.data_dir=runs/tokens_sr

The tokens come from `experiments.tokenize_data` with
`--config.superres_factor=2` (each record holds `video` and `video_low`, the
codes of the clip bicubic-downsampled by 2); their `tokens.json` gives the
code bits, the text and the grids. Rerunning with the same workdir resumes.

Args (`:arg`): `tiny` (tests: random records, one block), `demo` (make
demo: a few CPU minutes), `synth` (synth_av 32x32 -> 64x64: grids 5x4x4 ->
5x8x8; 6,000 steps, ~50 CPU minutes, above bicubic upsampling in
docs/results.md), `paper` (VideoPoet's stage 1 shape: 5x56x32 tokens, its
windows).

Windows are (t, h, w) on the high-resolution token grid, one per layer of a
block (vertical, horizontal, temporal). VideoPoet's stage 1 on its 5x56x32
grid: (1, 56, 4), (1, 8, 32), (5, 8, 8); scaled to our 5x8x8 grid (one
column-pair, one row-pair, the whole clip over 2x2 cells):
(1, 8, 2), (1, 2, 8), (5, 2, 2). The low-resolution windows are half the
spatial size, so both grids have the same windows.
"""

import ml_collections

from configs import common

_ARGS = ("tiny", "demo", "synth", "paper")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or "synth"
  if arg not in _ARGS:
    raise ValueError(f"unknown superres config {arg!r}; allowed: {_ARGS}")
  c = ml_collections.ConfigDict()
  steps = dict(tiny=4, demo=300, synth=6000, paper=1_000_000)[arg]
  c.trainer = common.trainer(
      steps, log_every=dict(tiny=1, demo=50).get(arg, 100), eval_every=0,
      checkpoint_every=dict(tiny=2, demo=300).get(arg, 500),
  )  # fmt: skip
  c.mesh = common.mesh()
  # data_dir: the tokens (tokenize_data's workdir, superres_factor=2).
  c.data = common.data(
      source="random" if arg == "tiny" else "arrayrecord",
      split="train",
      batch_size=dict(tiny=2, demo=8, synth=16, paper=256)[arg],
      # Random records (source='random'): 2x4x4 codes of 4 bits.
      random=dict(size=8, visual_bits=4, grid=(2, 4, 4), text_size=32,
                  max_text_len=8),  # fmt: skip
  )
  # VideoPoet: a random subset of the low-resolution tokens resampled; text
  # and condition each dropped for 10% of the examples (guidance).
  c.masking = dict(noise_max=0.2, drop_text=0.1, drop_low=0.1)
  c.optimizer = dict(
      learning_rate=dict(tiny=1e-3, demo=2e-3, synth=2e-3, paper=1e-4)[arg],
      warmup_steps=dict(tiny=1, demo=30, synth=100, paper=10_000)[arg],
      weight_decay=0.01, b2=0.98, grad_clip=1.0,
  )  # fmt: skip
  windows = {
      "tiny": ((1, 4, 2), (1, 2, 4), (2, 2, 2)),
      "demo": ((1, 8, 2), (1, 2, 8), (5, 2, 2)),
      "synth": ((1, 8, 2), (1, 2, 8), (5, 2, 2)),
      "paper": ((1, 56, 4), (1, 8, 32), (5, 8, 8)),
  }[arg]
  width, blocks, heads = dict(
      tiny=(32, 1, 2), demo=(64, 1, 4), synth=(64, 2, 4),
      paper=(1536, 8, 16),
  )[arg]  # fmt: skip
  c.model = dict(
      width=width, num_blocks=blocks, num_heads=heads, mlp_dim=2 * width,
      windows=windows,
      # k output heads: 2^K codes as k digits of K/k bits (VideoPoet: k=2,
      # 2^18 -> two 512-way heads).
      factor_heads=2, dtype="float32",
  )  # fmt: skip
  return c
