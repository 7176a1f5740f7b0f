"""`token_spec`: the typed view of `tokens.json` (shapes, vocabulary, JSON),
and the random tokens' spec (`lm_data.RandomConfig`)."""

import dataclasses
import json
import os

import pytest

from videopoet import config_lib
from videopoet import lm_data
from videopoet import token_spec

# The tiny random tokenizers on synth_av/tiny: 17x64x64 -> 5x8x8.
TINY = token_spec.TokenSpec(
    video_tokenizer="random", visual_bits=10, time_factor=4, space_factor=8,
    num_frames=17, height=64, width=64, fps=8.0, max_text_len=16,
    audio_codec="random", audio_levels=4, audio_codebook=1024,
    audio_frames=106, text_size=512, extra={"splits": {"train": 32}},
)  # fmt: skip


def test_shapes():
  assert TINY.latent_grid == (5, 8, 8)
  assert [TINY.pixel_frames(n) for n in range(4)] == [0, 1, 5, 9]
  assert TINY.latent_frames(17) == 5 and TINY.latent_frames(1) == 1
  with pytest.raises(ValueError, match="16 frames is not 1 . 4 . k"):
    TINY.latent_frames(16)
  assert TINY.seconds == 17 / 8 and TINY.has_audio
  # tiny16: time factor 2, 4x4 pixels per code.
  tiny16 = dataclasses.replace(TINY, time_factor=2, space_factor=4)
  assert tiny16.latent_grid == (9, 16, 16)
  assert tiny16.pixel_frames(9) == 17


def test_audio_frames_for_latent_frames():
  assert TINY.audio_frames_for(1) == round(106 / 17) == 6
  assert TINY.audio_frames_for(5) == 106
  # A record's own counts: 53 audio frames over 9 latent frames at time
  # factor 2 (17 pixel frames) or 4 (33).
  tiny16 = dataclasses.replace(TINY, time_factor=2, space_factor=4)
  assert tiny16.audio_frames_for(1, audio_frames=53) == 3
  assert TINY.audio_frames_for(1, 53, clip_latent_frames=9) == 2


def test_vocab_config_is_read_from_the_tokens():
  c = TINY.vocab_config(pad_to=128)
  assert (c.visual_bits, c.audio_levels, c.audio_codebook) == (10, 4, 1024)
  assert c.text_size == 512 and c.pad_to == 128
  assert TINY.vocab_config(pad_to=64, text_mode="embeddings").text_size == 0
  silent = dataclasses.replace(TINY, audio_levels=0, audio_codebook=0)
  c = silent.vocab_config(pad_to=128)
  assert (c.audio_levels, c.audio_codebook) == (1, 1) and not silent.has_audio


def test_json_round_trip_keeps_unknown_keys(tmp_path):
  record = TINY.to_json()
  assert record["splits"] == {"train": 32} and "extra" not in record
  assert token_spec.TokenSpec.from_json(record) == TINY
  path = token_spec.write(str(tmp_path), TINY)
  assert path == os.path.join(tmp_path, "tokens.json")
  assert token_spec.read(str(tmp_path)) == TINY
  with open(path) as f:
    assert json.load(f) == json.loads(json.dumps(record))


def test_missing_old_or_invalid_files_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="experiments.tokenize_data"):
    token_spec.read(str(tmp_path))
  old = {  # What tokenize_data wrote before the spec: no shapes.
      k: v for k, v in TINY.to_json().items()
      if k not in ("time_factor", "space_factor", "height", "width", "fps")
  }  # fmt: skip
  (tmp_path / "tokens.json").write_text(json.dumps(old))
  with pytest.raises(
      config_lib.ConfigError,
      match="lacks fps, height, space_factor, time_factor, width: .*tokenize"
      " again",
  ):
    token_spec.read(str(tmp_path))
  bad = dict(TINY.to_json(), num_frames=16)
  with pytest.raises(config_lib.ConfigError, match="num_frames=16 is not"):
    token_spec.TokenSpec.from_json(bad)


def test_random_config_is_a_spec():
  spec = lm_data.RandomConfig().spec()
  assert spec.latent_grid == (5, 8, 8) and spec.video_tokenizer == ""
  assert spec.vocab_config(128) == TINY.vocab_config(128)
  src = lm_data.RandomSource(spec, 3)
  r = src[0]
  assert r["video"].shape == r["structure"].shape == (5, 8, 8)
  assert r["video"].max() < 2**10 and r["audio"].shape == (4, 106)
  assert r["text"].shape == (16,)
  silent = lm_data.RandomConfig(audio_levels=0, structure=False).spec()
  assert set(lm_data.RandomSource(silent, 1)[0]) == {
      "video",
      "text",
      "text_mask",
  }
  with pytest.raises(
      config_lib.ConfigError, match="config.data.random: height=60"
  ):
    lm_data.RandomConfig(height=60)
