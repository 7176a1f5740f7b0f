"""Codec data: WAV folders cut into clips, disjoint train/test files."""

import numpy as np
import pytest

from videopoet.data import media
from videopoet.tokenizers.soundstream import data as audio_data


def test_wav_folder_clips_and_splits(tmp_path):
  rng = np.random.default_rng(0)
  lengths = {}
  for i in range(30):
    n = int(rng.integers(3000, 9000))
    lengths[f"s{i}.wav"] = n
    media.write_wav(
        str(tmp_path / f"s{i}.wav"),
        0.1 * rng.standard_normal(n).astype(np.float32),
    )
  (tmp_path / "notes.txt").write_text("not audio")
  every = audio_data.wav_folder_clips(str(tmp_path), "all", 4000, 16000)
  # A file of n samples gives n // 4000 clips, plus one if the rest is at
  # least half a clip (zero-padded).
  want = sum(n // 4000 + (n % 4000 >= 2000) for n in lengths.values())
  assert len(every) == want
  assert all(
      r["audio"].shape == (4000,) and r["audio"].dtype == np.float32
      for r in every
  )
  train = audio_data.wav_folder_clips(str(tmp_path), "train", 4000, 16000)
  test = audio_data.wav_folder_clips(str(tmp_path), "test", 4000, 16000)
  assert len(train) + len(test) == len(every) and test and train
  train_set = {r["audio"].tobytes() for r in train}
  assert not any(r["audio"].tobytes() in train_set for r in test)
  with pytest.raises(ValueError, match="split 'val'"):
    audio_data.wav_folder_clips(str(tmp_path), "val", 4000, 16000)
  with pytest.raises(ValueError, match="no audio clips"):
    audio_data.wav_folder_clips(str(tmp_path / "none"), "all", 4000, 16000)
