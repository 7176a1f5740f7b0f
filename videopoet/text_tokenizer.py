"""Sentencepiece text tokenizer trained on a dataset's captions.

`train(captions, prefix, vocab_size)` writes `<prefix>.model`; `encode`
turns a caption into the fixed-length id array the task builders read
(`-1` after the caption, which they turn into `<pad>`).
"""

import io

import numpy as np
import sentencepiece as spm


def train(captions, prefix: str, vocab_size: int) -> str:
  """Trains a BPE model on `captions`; returns the `.model` path.

  BPE, not sentencepiece's default unigram: on a small caption set
  (synth_av's 512 train captions, ~60 distinct words) unigram stopped at 87
  pieces, mostly single letters, 46 pieces a caption on average; BPE keeps
  every word whole (417 pieces, 19 a caption, 35 at most), so the LM's
  text segment holds whole captions. `vocab_size` is an upper bound.
  """
  captions = [c for c in captions if c]
  if not captions:
    raise ValueError("no captions to train the text tokenizer on")
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(captions),
      model_prefix=prefix,
      vocab_size=vocab_size,
      model_type="bpe",
      character_coverage=1.0,
      hard_vocab_limit=False,  # Tiny caption sets have few pieces.
      bos_id=-1, eos_id=-1, pad_id=-1, unk_id=0,
      minloglevel=2,
  )  # fmt: skip
  return prefix + ".model"


def load(path: str) -> spm.SentencePieceProcessor:
  return spm.SentencePieceProcessor(model_file=path)


def encode(sp: spm.SentencePieceProcessor, caption: str, max_len: int):
  """int32 [max_len]: the caption's piece ids (truncated), then -1."""
  ids = sp.encode(caption)[:max_len]
  out = np.full(max_len, -1, np.int32)
  out[: len(ids)] = ids
  return out
