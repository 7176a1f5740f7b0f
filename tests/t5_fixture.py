"""A tiny RANDOMLY INITIALIZED T5 encoder checkpoint for tests.

`tiny_t5(dir)` writes what `videopoet.text_encoder.load` reads (config.json,
model.safetensors, spiece.model with T5's pad 0, </s> 1, unk 2) in the
Hugging Face layout, so the torch `T5EncoderModel` reads it too.
"""

import os

import sentencepiece as spm

from videopoet import text_encoder

# 2 gated-GELU layers of width 32 (t5-v1_1's block), 8 buckets up to 20.
CONFIG = text_encoder.T5Config(
    vocab_size=128, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
    relative_attention_num_buckets=8, relative_attention_max_distance=20,
    feed_forward_proj="gated-gelu",
)  # fmt: skip
CAPTIONS = [
    f"a {s} {c} {sh} moves {m}"
    for s in ("small", "large")
    for c in ("red", "green", "blue", "yellow")
    for sh in ("circle", "square", "triangle")
    for m in ("left", "right", "up", "down")
]


def tiny_t5(path: str, seed: int = 0, config=CONFIG) -> str:
  """Writes the tiny random T5 to `path` (a directory); returns it."""
  os.makedirs(path, exist_ok=True)
  prefix = os.path.join(path, "sp")
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(CAPTIONS * 3), model_prefix=prefix,
      vocab_size=config.vocab_size, model_type="bpe",
      character_coverage=1.0, hard_vocab_limit=False,
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
  )  # fmt: skip
  params = text_encoder.random_params(config, seed)
  text_encoder.save(path, config, params, prefix + ".model")
  os.remove(prefix + ".model")
  os.remove(prefix + ".vocab")
  return path
