"""Tests of the vocabulary and every task builder on a synthetic example."""

import dataclasses

import numpy as np
import pytest

from videopoet import tasks
from videopoet import token_spec
from videopoet import vocab as vocab_lib
from videopoet.tasks import layout

T, H, W, LEVELS, CB, FRAMES, MAX_TEXT = 5, 8, 8, 4, 1024, 106, 16
# The tokens of the tiny random tokenizers: 17x64x64 clips -> 5x8x8 codes.
SPEC = token_spec.TokenSpec(
    video_tokenizer="random", visual_bits=10, time_factor=4, space_factor=8,
    num_frames=17, height=64, width=64, fps=8.0, max_text_len=MAX_TEXT,
    audio_levels=LEVELS, audio_codebook=CB, audio_frames=FRAMES,
    text_size=500,
)  # fmt: skip
V = vocab_lib.Vocab(SPEC.vocab_config(pad_to=128))
CFG = tasks.TaskConfig(text_dropout=0.0)


def _build(task, ex, rng, cfg=CFG, spec=SPEC):
  return tasks.build(task, ex, V, cfg, rng, spec)


def _example(seed=0):
  rng = np.random.default_rng(seed)
  text = np.full(MAX_TEXT, -1, np.int32)
  text[:7] = rng.integers(0, 500, 7)
  return {
      "video": rng.integers(0, 2**10, (T, H, W)).astype(np.int32),
      "structure": rng.integers(0, 2**10, (T, H, W)).astype(np.int32),
      "audio": rng.integers(0, CB, (LEVELS, FRAMES)).astype(np.int32),
      "text": text,
  }


def _seg(kind, n):
  return (kind, n)


# Expected layouts: ('s', name) one special; (range, n) n ids of a range;
# '|' the end of the prefix. F = H*W tokens per latent frame.
F, A = H * W, LEVELS * FRAMES
TEXT = [("s", "<bot_i>"), ("text", MAX_TEXT), ("s", "<eot_i>")]
VIDEO_OUT = [("s", "<bov_o>"), ("visual", T * F), ("s", "<eov_o>")]
EXPECTED = {
    "unconditional_video": ["|", *VIDEO_OUT, ("s", "<eos>")],
    "text_to_video": [*TEXT, "|", *VIDEO_OUT, ("s", "<eos>")],
    "text_to_image": [*TEXT, "|", ("s", "<bov_o>"), ("visual", F)],
    "image_to_video": [
        *TEXT, ("s", "<bov_i>"), ("visual", F), ("s", "<eov_i>"), "|",
        ("s", "<bov_o>"), ("visual", (T - 1) * F), ("s", "<eov_o>"),
        ("s", "<eos>"),
    ],
    "stylization": [
        *TEXT, ("s", "<bov_i>"), ("visual", T * F), ("s", "<eov_i>"), "|",
        *VIDEO_OUT, ("s", "<eos>"),
    ],
    "video_to_audio": [
        ("s", "<bov_i>"), ("visual", T * F), ("s", "<eov_i>"), "|",
        ("s", "<boa_o>"), ("audio", A), ("s", "<eoa_o>"), ("s", "<eos>"),
    ],
    "audio_to_video": [
        ("s", "<boa_i>"), ("audio", A), ("s", "<eoa_i>"), "|", *VIDEO_OUT,
        ("s", "<eos>"),
    ],
    "audio_video_continuation": [
        ("s", "<bov_i>"), ("visual", F), ("s", "<eov_i>"),
        ("s", "<boa_i>"), ("audio", LEVELS * 6), ("s", "<eoa_i>"), "|",
        ("s", "<bov_o>"), ("visual", (T - 1) * F), ("s", "<eov_o>"),
        ("s", "<boa_o>"), ("audio", LEVELS * 100), ("s", "<eoa_o>"),
        ("s", "<eos>"),
    ],
}  # fmt: skip


def _check_layout(seq, task, expected):
  tokens = seq.tokens
  assert tokens[0] == V.special("<bos>") and tokens[1] == V.task(task)
  pos, prefix = 2, None
  for item in expected:
    if item == "|":
      prefix = pos
      continue
    kind, arg = item
    if kind == "s":
      assert tokens[pos] == V.special(arg), (task, pos, arg)
      pos += 1
    else:
      lo, hi = V.range_of(kind)
      chunk = tokens[pos : pos + arg]
      if kind == "text":  # The caption, then <pad>.
        assert np.all((chunk[:7] >= lo) & (chunk[:7] < hi))
        assert np.all(chunk[7:] == V.pad)
      else:
        assert np.all((chunk >= lo) & (chunk < hi)), (task, kind)
      pos += arg
  assert pos == len(tokens), (task, pos, len(tokens))
  assert seq.prefix_len == prefix
  np.testing.assert_array_equal(seq.loss_mask, np.arange(pos) >= prefix)


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_layout(task):
  seq = _build(task, _example(), np.random.default_rng(0))
  _check_layout(seq, task, EXPECTED[task])
  assert seq.max_outputs == seq.loss_mask.sum()


def test_res_token_marks_non_square_outputs():
  """A portrait grid [t', 14, 8] puts `<res>` last in the prefix of every
  task with a video output (and nowhere else); square grids have none."""
  rng = np.random.default_rng(3)
  ex = dict(_example())
  for name in ("video", "structure"):
    ex[name] = rng.integers(0, 2**10, (T, 14, 8)).astype(np.int32)
  res = V.special("<res>")
  for task in tasks.TASKS:
    square = _build(task, _example(), np.random.default_rng(0))
    assert res not in square.tokens, task
    seq = _build(task, ex, np.random.default_rng(0))
    if task == "video_to_audio":
      assert res not in seq.tokens
      continue
    assert seq.tokens[seq.prefix_len - 1] == res, task
    assert (seq.tokens == res).sum() == 1, task
    assert not seq.loss_mask[seq.prefix_len - 1]


def test_every_task_has_a_builder_and_a_token():
  assert set(tasks.TASKS) == set(vocab_lib.TASK_NAMES)
  ids = {V.task(t) for t in tasks.TASKS}
  assert len(ids) == len(tasks.TASKS) and max(ids) < vocab_lib.NUM_SPECIAL


def test_outputs_carry_the_ground_truth():
  ex = _example()
  seq = _build("text_to_video", ex, np.random.default_rng(0))
  out = seq.tokens[seq.loss_mask][1:-2]  # Between <bov_o> and <eov_o>.
  np.testing.assert_array_equal(
      V.ids_to_visual(out).reshape(T, H, W), ex["video"]
  )
  seq = _build("video_to_audio", ex, np.random.default_rng(0))
  out = seq.tokens[seq.loss_mask][1:-2]
  np.testing.assert_array_equal(V.ids_to_audio(out), ex["audio"])


def test_frame_continuation_varies_the_prefix_at_fixed_length():
  ex, seen = _example(), set()
  for seed in range(20):
    seq = _build("frame_continuation", ex, np.random.default_rng(seed))
    k = (seq.prefix_len - 3) // F  # <bos> <task> <bov_i> k*F <eov_i>
    assert seq.prefix_len == 4 + k * F and 1 <= k < T
    assert len(seq.tokens) == 2 + 2 + T * F + 3
    assert seq.max_outputs == (T - 1) * F + 3
    given = V.ids_to_visual(seq.tokens[3 : 3 + k * F]).reshape(k, H, W)
    np.testing.assert_array_equal(given, ex["video"][:k])
    lm = layout.to_lm_example(seq)
    assert lm["weights"].sum() == seq.loss_mask.sum()
    seen.add(k)
  assert seen == {1, 2, 3, 4}


@pytest.mark.parametrize("task", ["inpainting", "outpainting"])
def test_painting_masks(task):
  ex, shapes = _example(), set()
  mask_id = V.special("<mask>")
  for seed in range(30):
    seq = _build(task, ex, np.random.default_rng(seed))
    assert seq.prefix_len == 4 + T * F
    grid = seq.tokens[3 : 3 + T * F].reshape(T, H, W)
    hidden = grid == mask_id
    assert hidden.any() and not hidden.all()
    assert (hidden == hidden[:1]).all()  # Same region in every frame.
    np.testing.assert_array_equal(
        V.ids_to_visual(grid[~hidden]), ex["video"][~hidden]
    )
    # The output is the whole video.
    out = V.ids_to_visual(seq.tokens[seq.prefix_len + 1 : -2])
    np.testing.assert_array_equal(out.reshape(T, H, W), ex["video"])
    h = hidden[0]
    if task == "inpainting":  # A centred box off the border.
      assert not (h[0].any() or h[-1].any() or h[:, 0].any() or h[:, -1].any())
    else:  # A band touching exactly one side.
      sides = (h[:, 0].all(), h[:, -1].all(), h[0].all(), h[-1].all())
      assert sum(sides) == 1
      shapes.add((sides, int(h.sum())))
  if task == "outpainting":
    assert len({s for s, _ in shapes}) == 4 and len(shapes) > 6


def test_text_dropout_and_embeddings():
  ex = _example()
  cfg = tasks.TaskConfig(text_dropout=1.0)
  seq = _build("text_to_video", ex, np.random.default_rng(0), cfg)
  assert np.all(seq.tokens[3 : 3 + MAX_TEXT] == V.pad)
  cfg = tasks.TaskConfig(text_mode="embeddings", text_dropout=0.0)
  ex = dict(ex, text_embeddings_mask=np.arange(MAX_TEXT) < 5)
  seq = _build("text_to_image", ex, np.random.default_rng(0), cfg)
  text = seq.tokens[layout.TEXT_OFFSET : layout.TEXT_OFFSET + MAX_TEXT]
  assert np.all(text[:5] == V.special("<text_emb>")) and np.all(
      text[5:] == V.pad
  )


def test_lm_example_targets_are_next_tokens():
  seq = _build("text_to_image", _example(), np.random.default_rng(0))
  lm = layout.to_lm_example(seq)
  assert lm["inputs"].shape == (len(seq.tokens) - 1,)
  assert lm["target_positions"][0] == seq.prefix_len - 1
  np.testing.assert_array_equal(
      lm["targets"], seq.tokens[lm["target_positions"] + 1]
  )
  np.testing.assert_array_equal(lm["targets"], seq.tokens[seq.loss_mask])


def test_vocab_ranges_and_errors():
  v = vocab_lib.Vocab(vocab_lib.VocabConfig())  # VideoPoet's sizes.
  assert v.range_of("visual") == (256, 262_400)
  assert v.range_of("audio") == (262_400, 266_496)
  assert v.padded_size % 128 == 0 and v.padded_size >= v.size
  codes = np.arange(8).reshape(4, 2) % 1024
  ids = v.audio_to_ids(codes)
  assert list(ids[::2]) == [262_400 + 1024 * l + 2 * l for l in range(4)]
  np.testing.assert_array_equal(v.ids_to_audio(ids), codes)
  with pytest.raises(
      ValueError, match=r"visual codes must lie in \[0, 262144\)"
  ):
    v.visual_to_ids([2**18])
  with pytest.raises(ValueError, match="audio range"):
    v.ids_to_audio([5])
  with pytest.raises(ValueError, match="no text range"):
    v.text_to_ids([1])
  with pytest.raises(KeyError, match="needs the field 'audio'"):
    _build(
        "video_to_audio",
        {"video": np.zeros((5, 8, 8), int)},
        np.random.default_rng(0),
    )


def _audio_video_cut(spec, video_frames, audio_frames):
  """Audio frames in the prefix of audio_video_continuation."""
  rng = np.random.default_rng(0)
  ex = {
      "video": rng.integers(0, 2**10, (video_frames, 4, 4)).astype(np.int32),
      "audio": rng.integers(0, CB, (LEVELS, audio_frames)).astype(np.int32),
  }
  seq = _build("audio_video_continuation", ex, rng, spec=spec)
  boa, eoa = V.special("<boa_i>"), V.special("<eoa_i>")
  start = int(np.flatnonzero(seq.tokens == boa)[0])
  end = int(np.flatnonzero(seq.tokens == eoa)[0])
  audio_in = end - start - 1
  assert audio_in % LEVELS == 0
  return audio_in // LEVELS


def test_audio_video_split_uses_the_tokens_time_factor():
  """tiny16 tokens (time factor 2: 17 frames -> 9 latent frames, 16x16):
  the first latent frame is 1 of 17 pixel frames, so its audio is
  round(53 / 17) = 3 of 53 frames; a time factor of 4 would cut at
  round(53 / 33) = 2. The record's own counts are used, not the spec's."""
  tiny16 = dataclasses.replace(
      SPEC, time_factor=2, space_factor=4, audio_frames=106
  )
  assert tiny16.latent_grid == (9, 16, 16)
  assert _audio_video_cut(tiny16, 9, 53) == round(53 * 1 / 17) == 3
  assert _audio_video_cut(SPEC, 9, 53) == round(53 * 1 / 33) == 2
  # The tiny grid (time factor 4): 106 frames over 17 pixel frames.
  assert _audio_video_cut(SPEC, 5, 106) == 6


def test_text_length_is_the_tokens():
  ex = _example()
  short = dataclasses.replace(SPEC, max_text_len=MAX_TEXT - 1)
  with pytest.raises(ValueError, match="max_text_len .tokens.json. is 15"):
    _build("text_to_video", ex, np.random.default_rng(0), spec=short)


def test_only_the_declared_tasks_draw_their_prefix_length():
  # The LM trainer compiles a task's step for its first example's prefix
  # unless the task is in DRAWN_PREFIX_TASKS (lm_trainer.make_program).
  cfg = dataclasses.replace(CFG, text_dropout=0.5)
  for task in tasks.TASKS:
    lens = {
        _build(task, _example(seed), np.random.default_rng(seed), cfg).prefix_len
        for seed in range(12)
    }
    assert (len(lens) > 1) == (task in tasks.DRAWN_PREFIX_TASKS), (task, lens)
