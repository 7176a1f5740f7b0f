"""VideoPoet LM configs: `configs/videopoet.py:<size>`.

  python -m experiments.train --config=configs/videopoet.py:tiny \\
      --workdir=runs/lm --config.data.data_dir=runs/tokens

Sizes (VideoPoet gives none beyond "300M, 1B, 8B"; these are Llama-like
shapes chosen here): `tiny` (tests, demo), `mini` (4 x 128, GQA 4/2),
`small` (benchmarks), `300m`
(24 x 1024, MHA), `1b` (24 x 2048, GQA 16/8), `8b` (Llama-3-8B's
32 x 4096, GQA 32/8, SwiGLU 14336). Counts exclude the ~270K x d embedding
and unembedding tables of the full vocabulary. `quality` is `mini` with the
schedule of `make quality` (8,000 steps of batch 8, ~25 CPU minutes).

The vocabulary's id ranges (visual bits, audio levels and codebook, text
pieces) and the text length are not set here: they are read from the
tokens' `tokens.json` (`videopoet.token_spec`), or with
`data.source='random'` from `data.random`.
"""

import ml_collections

from configs import common

from videopoet import vocab as vocab_lib

_SIZES = {
    # layers, width, heads, kv heads, head dim, mlp
    "tiny": (2, 64, 4, 2, 16, 256),
    "mini": (4, 128, 4, 2, 32, 512),
    "small": (4, 256, 8, 4, 32, 1024),
    "300m": (24, 1024, 16, 16, 64, 2816),
    "1b": (24, 2048, 16, 8, 128, 5632),
    "8b": (32, 4096, 32, 8, 128, 14336),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The LM config of size `arg` (default 'tiny')."""
  arg = arg or "tiny"
  if arg == "quality":
    return _quality(get_config("mini"))
  if arg not in _SIZES:
    allowed = ", ".join((*_SIZES, "quality"))
    raise ValueError(f"unknown size {arg!r}; allowed: {allowed}")
  small = arg in ("tiny", "mini", "small")
  c = ml_collections.ConfigDict()
  c.trainer = common.trainer(
      300 if small else 300_000,  # VideoPoet 300M: 300k steps.
      log_every=10 if small else 100,
      eval_every=100 if small else 5000,
      checkpoint_every=100 if small else 2000,
  )
  c.mesh = common.mesh() if small else common.mesh(data=1, fsdp=-1)
  # The id ranges come from the tokens (tokens.json); the LM only pads
  # them: pad_to keeps the vocab divisible by the CE chunks x tensor.
  c.vocab = dict(pad_to=128 if small else 2048)
  layers, width, heads, kv, head_dim, mlp = _SIZES[arg]
  c.model = dict(
      num_layers=layers, embed_dim=width, num_heads=heads, num_kv_heads=kv,
      head_dim=head_dim, mlp_dim=mlp,
      dtype="float32" if small else "bfloat16",  # Compute dtype.
      param_dtype="float32",  # Parameters and optimizer state.
      # "nested" keeps O(sqrt(layers)) block inputs for one more forward.
      remat="none" if small else "full",
      scan_layers=not small,  # CPU: a scan zero-fills its stacked residuals.
      # Vocabulary slices of the cross-entropy and the embedding lookup.
      vocab_chunks=1 if small else 32,
      # SwiGLU as slices of its width, 512 units each (128-lane multiples):
      # memory at scale; 300m and below: speed.
      mlp_chunks={"1b": 11, "8b": 28}.get(arg, 1),
      # text_mode='embeddings': the tokens' T5 width (tokens.json's
      # text_embed_dim, T5-XL: 2048) is used; 0 here, or that width.
      text_embed_dim=0,
      # 'auto': cuDNN flash attention on GPU, splash on TPU, on CPU blockwise
      # (flash-style) from 1,024 keys on; or 'xla' (materialized [b, h, s, s]
      # logits), 'blockwise', 'cudnn', 'splash' (videopoet/model/attention.py).
      attention_impl="auto",
  )  # fmt: skip
  c.tasks = dict(
      # text_mode="embeddings": frozen T5 states that tokenize_data wrote
      # (its config.text_encoder.path), projected by one dense layer.
      text_mode="ids", text_dropout=0.1,
      min_context_frames=1, inpaint_fraction=(0.25, 0.5),
      outpaint_fraction=(0.25, 0.75), stylization_first_frame=False,
  )  # fmt: skip
  # Task weights (VideoPoet does not publish its mixture; uniform here).
  c.mixture = dict(
      weights=tuple((t, 1.0) for t in vocab_lib.TASK_NAMES),
      image_phase=0.25, image_share_early=0.9, image_share_late=0.1,
  )  # fmt: skip
  # source='random' (tests, benchmarks): random records of the tokens that
  # `random` describes, in tokens.json's terms (videopoet.lm_data.
  # RandomConfig): tiny, the random tokenizers of `make demo` on
  # synth_av/tiny (17x64x64 -> 5x8x8 codes of 10 bits); else the paper's
  # (17x128x128 -> 5x16x16 codes of 18 bits, 64 text ids of 32k pieces).
  # data_dir: the tokens (experiments.tokenize_data's workdir).
  c.data = common.data(
      source="arrayrecord", batch_size=8 if small else 1024,
      eval_batches=2, random_size=64,
      random=dict(
          visual_bits=10 if small else 18, time_factor=4, space_factor=8,
          num_frames=17, height=64 if small else 128,
          width=64 if small else 128, fps=8.0, audio_levels=4,
          audio_codebook=1024, sample_rate=16000, audio_hop=320,
          audio_frames=106, text_size=512 if small else 32_000,
          max_text_len=16 if small else 64, structure=True,
          text_embed_dim=0,  # >0: random "T5" embeddings of this width.
      ),
  )  # fmt: skip
  c.optimizer = common.optimizer(
      learning_rate=1e-3, warmup_steps=20 if small else 1000,
      weight_decay=0.01, b2=0.98, grad_clip=1.0,
      # Gradient accumulation. On CPU 4 parts of 2 examples keep each
      # part's activations in cache: `small` step 0.91 s -> 0.83 s.
      microbatches=4 if arg == "small" else 1,
  )  # fmt: skip
  return c


def _quality(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`mini` for `make quality`: 8,000 steps of batch 8 on all 11 tasks,
  cosine decay to 0 there, ~5.5 steps/s on a 2-core CPU on the 5x8x8
  tokens of `configs/magvit2.py:quality`; checkpoints every 500 steps
  (the job resumes), one validation pass at the end."""
  c.trainer.update(total_steps=8000, log_every=50, eval_every=8000)
  c.trainer.checkpoint.update(every_steps=500, keep=2)
  c.optimizer.update(learning_rate=2e-3, warmup_steps=200)
  c.data.eval_batches = 4
  return c
