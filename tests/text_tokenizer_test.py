"""The sentencepiece tokenizer trains on captions and round-trips them."""

import numpy as np
import pytest

from videopoet import text_tokenizer

CAPTIONS = [
    f"a {s} {c} {sh} moves {m}"
    for s in ("small", "large")
    for c in ("red", "green", "blue", "yellow")
    for sh in ("circle", "square", "triangle")
    for m in ("left", "right", "up", "down")
]


def test_train_encode_decode(tmp_path):
  path = text_tokenizer.train(CAPTIONS * 3, str(tmp_path / "text"), 64)
  sp = text_tokenizer.load(path)
  assert sp.get_piece_size() <= 64
  ids = text_tokenizer.encode(sp, CAPTIONS[5], 48)
  assert ids.shape == (48,) and ids.dtype == np.int32
  valid = ids[ids >= 0]
  assert np.all(ids[len(valid) :] == -1)
  assert sp.decode(valid.tolist()) == CAPTIONS[5]
  assert (
      text_tokenizer.encode(sp, CAPTIONS[5], 2).tolist() == valid[:2].tolist()
  )


def test_no_captions_is_an_error(tmp_path):
  with pytest.raises(ValueError, match="no captions"):
    text_tokenizer.train(["", ""], str(tmp_path / "t"), 64)


def test_words_of_a_small_caption_set_stay_whole(tmp_path):
  """BPE keeps each word one piece (unigram gave mostly single letters)."""
  path = text_tokenizer.train(CAPTIONS * 3, str(tmp_path / "text"), 512)
  sp = text_tokenizer.load(path)
  assert sp.encode("a small blue circle moves left", out_type=str) == [
      "▁a", "▁small", "▁blue", "▁circle", "▁moves", "▁left"
  ]  # fmt: skip
