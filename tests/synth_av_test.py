"""Tests of the `synth_av` generator, its TFDS builder and its config file.

A few small builds (tens of examples) go through TFDS; the checks of what is
drawn and heard run on examples from the generator, which are the very
records the builder writes (see `test_tfds_records_are_the_generated_ones`).
"""

import functools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import synth_av as synth_av_configs
from videopoet import config_lib
from videopoet.data import synth_av
from videopoet.data import synth_av_tfds

# Non-default split sizes: loading must read them from the build.
_CFG = synth_av.SynthAVConfig(
    train_size=8, validation_size=3, test_size=2, test_heldout_size=6
)
_T, _RES, _N = _CFG.num_frames, _CFG.resolution, _CFG.max_objects
_EXPECTED = {
    "video": ((_T, _RES, _RES, 3), np.uint8),
    "audio": ((_CFG.num_samples,), np.float32),
    "num_objects": ((), np.int32),
    "object_mask": ((_N,), np.bool_),
    "shape": ((_N,), np.int32),
    "colour": ((_N,), np.int32),
    "size": ((_N,), np.int32),
    "motion": ((_N,), np.int32),
    "velocity": ((_N, 2), np.float32),
    "positions": ((_T, _N, 2), np.float32),
    "bounces": ((_T, _N), np.int32),
    "flow": ((_T, _RES, _RES, 2), np.float16),
    "depth": ((_T, _RES, _RES), np.uint8),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("synth_av"))
  synth_av_tfds.build(_CFG, path)
  return path


def _records(data_dir: str, split: str) -> list[bytes]:
  source = tfds.data_source(
      "synth_av",
      data_dir=data_dir,
      split=split,
      deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES,
  )
  return [source[i] for i in range(len(source))]


def _objects(example: dict) -> list[int]:
  return list(np.flatnonzero(example["object_mask"]))


def _radius(example: dict, n: int) -> float:
  size = synth_av.SIZES[example["size"][n]]
  return synth_av.SIZE_RADIUS[size] * example["video"].shape[1]


def _rgb(example: dict, n: int) -> np.ndarray:
  name = synth_av.COLOUR_NAMES[example["colour"][n]]
  return np.array(synth_av.COLOURS[name], np.float64)


@functools.cache
def _pool_by_split() -> dict[str, tuple[dict, ...]]:
  """Generated examples of every split, for the content checks."""
  sizes = {"train": 120, "validation": 10, "test": 10, "test_heldout": 30}
  return {
      split: tuple(
          synth_av.generate_example(_CFG, split, i) for i in range(count)
      )
      for split, count in sizes.items()
  }


def _pool() -> tuple[dict, ...]:
  return sum(_pool_by_split().values(), ())


def test_tfds_load_yields_every_field(data_dir):
  ds = tfds.load("synth_av", data_dir=data_dir, split="train")
  examples = list(tfds.as_numpy(ds))
  assert len(examples) == _CFG.train_size
  for example in examples:
    assert set(example) == set(_EXPECTED) | {"caption"}
    assert isinstance(example["caption"], bytes) and example["caption"]
    for key, (shape, dtype) in _EXPECTED.items():
      assert example[key].shape == shape, key
      assert example[key].dtype == dtype, key


def test_tfds_records_are_the_generated_ones(data_dir):
  ds = tfds.load("synth_av", data_dir=data_dir, split="test_heldout")
  for index, example in enumerate(tfds.as_numpy(ds)):
    want = synth_av.generate_example(_CFG, "test_heldout", index)
    assert example["caption"].decode() == want["caption"]
    for key in _EXPECTED:
      np.testing.assert_array_equal(example[key], want[key], err_msg=key)
      assert example[key].dtype == want[key].dtype, key


def test_split_sizes_come_from_the_build(data_dir):
  for split in synth_av.SPLITS:
    ds = tfds.load("synth_av", data_dir=data_dir, split=split)
    source = tfds.data_source("synth_av", data_dir=data_dir, split=split)
    assert len(ds) == len(source) == _CFG.split_size(split), split
  sliced = tfds.load("synth_av", data_dir=data_dir, split="train[2:5]")
  assert len(list(sliced)) == 3


def test_data_source_gives_random_access(data_dir):
  source = tfds.data_source("synth_av", data_dir=data_dir, split="train")
  for index in (5, 0, 7):
    want = synth_av.generate_example(_CFG, "train", index)
    np.testing.assert_array_equal(source[index]["video"], want["video"])
    assert source[index]["caption"].decode() == want["caption"]


def test_builds_with_one_seed_are_identical_and_seeds_differ(
    data_dir, tmp_path
):
  again = str(tmp_path / "again")
  summary = synth_av_tfds.build(_CFG, again)
  assert summary["examples"] == {s: _CFG.split_size(s) for s in synth_av.SPLITS}
  assert summary["bytes"] > 0 and not summary["reused"]
  for split in synth_av.SPLITS:
    assert _records(data_dir, split) == _records(again, split), split

  other = str(tmp_path / "other")
  reseeded = synth_av.SynthAVConfig(
      train_size=8, validation_size=0, test_size=0, test_heldout_size=0, seed=1
  )
  synth_av_tfds.build(reseeded, other)
  first, second = _records(data_dir, "train"), _records(other, "train")
  assert all(a != b for a, b in zip(first, second))


def test_build_refuses_stale_data_and_pinned_shapes(data_dir):
  summary = synth_av_tfds.build(_CFG, data_dir)
  assert summary["reused"]
  reseeded = synth_av.SynthAVConfig(
      train_size=8, validation_size=3, test_size=2, test_heldout_size=6, seed=5
  )
  with pytest.raises(ValueError, match="another config"):
    synth_av_tfds.build(reseeded, data_dir)
  with pytest.raises(config_lib.ConfigError, match="resolution"):
    synth_av_tfds.build(synth_av.SynthAVConfig(resolution=32), data_dir)


def test_generation_is_a_function_of_seed_split_and_index():
  first = synth_av.generate_example(_CFG, "train", 3)
  again = synth_av.generate_example(_CFG, "train", 3)
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  for split, index in (("train", 4), ("validation", 3)):
    other = synth_av.generate_example(_CFG, split, index)
    assert not np.array_equal(first["video"], other["video"])


def _triples(example: dict) -> set[tuple[str, str, str]]:
  return {
      (
          synth_av.SHAPES[example["shape"][n]],
          synth_av.COLOUR_NAMES[example["colour"][n]],
          synth_av.MOTIONS[example["motion"][n]],
      )
      for n in _objects(example)
  }


def test_heldout_triples_only_in_test_heldout(data_dir):
  heldout = set(_CFG.heldout)
  for split in synth_av.SPLITS:
    source = tfds.data_source("synth_av", data_dir=data_dir, split=split)
    for index in range(len(source)):
      triples = _triples(source[index])
      if split == "test_heldout":
        assert triples and triples <= heldout, (split, index, triples)
      else:
        assert not triples & heldout, (split, index, triples)
  for split, examples in _pool_by_split().items():
    for example in examples:
      triples = _triples(example)
      assert (
          triples <= heldout
          if split == "test_heldout"
          else not triples & heldout
      ), (split, triples)


def test_object_fields_are_padded_consistently():
  for example in _pool():
    count = int(example["num_objects"])
    assert 1 <= count <= _N
    assert list(example["object_mask"]) == [True] * count + [False] * (
        _N - count
    )
    for key in ("shape", "colour", "size", "motion"):
      assert (example[key][count:] == -1).all(), key
      assert (example[key][:count] >= 0).all(), key
    assert not example["positions"][:, count:].any()
    assert not example["bounces"][:, count:].any()


def test_audio_lasts_exactly_the_clip_and_does_not_clip():
  for example in _pool()[:20]:
    audio = example["audio"]
    assert audio.dtype == np.float32
    assert len(audio) / _CFG.sample_rate == _CFG.num_frames / _CFG.fps
    assert 0.05 < np.abs(audio).max() <= 1.0


def test_audio_hums_at_the_shapes_pitch():
  # Each shape hums at a pitch of its own.
  assert len(set(synth_av.PITCH_HZ.values())) == len(synth_av.SHAPES)
  for example in _pool()[:20]:
    spectrum = np.abs(np.fft.rfft(example["audio"]))
    freqs = np.fft.rfftfreq(len(example["audio"]), 1 / _CFG.sample_rate)
    loudest = freqs[np.argmax(spectrum)]
    pitches = {
        synth_av.PITCH_HZ[synth_av.SHAPES[example["shape"][n]]]
        for n in _objects(example)
    }
    assert min(abs(loudest - p) for p in pitches) < 2, (loudest, pitches)


def _centroid(mask: np.ndarray) -> np.ndarray:
  rows, cols = np.nonzero(mask)
  return np.array([cols.mean() + 0.5, rows.mean() + 0.5])


def test_positions_agree_with_the_video():
  checked = 0
  for example in _pool():
    if example["num_objects"] != 1:
      continue
    colour, radius = _rgb(example, 0), _radius(example, 0)
    # The triangle's centroid lies r/3 below its box centre.
    is_triangle = synth_av.SHAPES[example["shape"][0]] == "triangle"
    offset = np.array([0, radius / 3 if is_triangle else 0])
    for t in range(_T):
      near = np.abs(example["video"][t] - colour).max(-1) < 30  # [H, W]
      error = _centroid(near) - (example["positions"][t, 0] + offset)
      assert np.abs(error).max() < 1.0, (t, error)
    checked += 1
  assert checked >= 20


def _check_motion(example: dict, n: int):
  """Constant velocity between walls; a bounce flips the wall's component."""
  positions = example["positions"][:, n].astype(np.float64)  # [T, 2]
  bounces = example["bounces"][:, n]
  radius = _radius(example, n)
  assert (positions >= radius - 1e-3).all()
  assert (positions <= _RES - radius + 1e-3).all()
  velocity = example["velocity"][n].astype(np.float64)
  direction = synth_av.MOTION_DIRECTIONS[synth_av.MOTIONS[example["motion"][n]]]
  speed = np.hypot(*velocity)
  np.testing.assert_allclose(velocity, speed * np.array(direction), atol=1e-5)
  for t in range(1, _T):
    step = positions[t] - positions[t - 1]
    if not bounces[t]:
      np.testing.assert_allclose(step, velocity, atol=1e-3)
      continue
    free = positions[t - 1] + velocity
    hit = (free < radius) | (free > _RES - radius)
    assert hit.any(), t
    assert not np.allclose(step, velocity, atol=1e-3)
    velocity = np.where(hit, -velocity, velocity)


def test_objects_move_straight_and_bounce_off_the_walls():
  bounced = 0
  for example in _pool():
    for n in _objects(example):
      _check_motion(example, n)
      bounced += example["bounces"][:, n].sum()
      if synth_av.MOTIONS[example["motion"][n]] == "still":
        assert not example["velocity"][n].any()
  assert bounced >= 50


def _click_onsets(audio: np.ndarray) -> np.ndarray:
  """Start times (s) of bursts of high-frequency energy (2 ms windows)."""
  window = _CFG.sample_rate // 500
  edges = np.diff(audio.astype(np.float64))  # Hums barely pass a difference.
  frames = edges[: len(edges) // window * window].reshape(-1, window)
  loud = np.sqrt((frames**2).mean(-1)) > 0.12
  starts = np.flatnonzero(loud & ~np.concatenate([[False], loud[:-1]]))
  return starts * window / _CFG.sample_rate


def test_each_bounce_clicks_in_the_audio_at_its_time():
  clicks = 0
  for example in _pool():
    frames = np.flatnonzero(example["bounces"].any(axis=1))
    # The wall is touched between frames t - 1 and t.
    windows = [
        ((t - 1) / _CFG.fps - 0.003, t / _CFG.fps + 0.003) for t in frames
    ]
    onsets = _click_onsets(example["audio"])
    for lo, hi in windows:
      assert ((onsets >= lo) & (onsets <= hi)).any(), (lo, hi, onsets)
    for onset in onsets:
      assert any(lo <= onset <= hi for lo, hi in windows), onset
    clicks += len(onsets)
  assert clicks >= 50


def test_flow_is_the_visible_objects_displacement():
  for example in _pool():
    flow = example["flow"].astype(np.float32)  # [T, H, W, 2]
    depth = example["depth"]
    assert not flow[-1].any()
    assert not flow[depth == 0].any()
    for n in _objects(example):
      steps = np.diff(example["positions"][:, n], axis=0)  # [T - 1, 2]
      for t in range(_T - 1):
        visible = flow[t][depth[t] == n + 1]  # [P, 2]
        assert len(visible), (n, t)
        np.testing.assert_allclose(
            visible, np.broadcast_to(steps[t], visible.shape), atol=5e-3
        )


def _coverage(example: dict, n: int) -> np.ndarray:
  """How much of each pixel shows object n's colour: [T, H, W] ~ 0..1."""
  video = example["video"].astype(np.float64)
  background = np.median(video.reshape(-1, 3), axis=0)
  colour = _rgb(example, n) - background
  return (video - background) @ colour / (colour @ colour)


def test_depth_marks_exactly_the_object_pixels():
  for example in _pool():
    if example["num_objects"] != 1:
      continue
    coverage = _coverage(example, 0)
    inside = example["depth"] == 1
    assert ((example["depth"] == 0) | inside).all()
    assert (coverage[inside] > 0.4).all()
    assert (coverage[~inside] < 0.6).all()
    # Half-covered pixels may go either way; the rest may not.
    assert (inside == (coverage > 0.5))[np.abs(coverage - 0.5) > 0.1].all()


def test_nearer_objects_hide_farther_ones():
  overlaps = 0
  for example in _pool():
    if (
        example["num_objects"] != 2
        or example["colour"][0] == example["colour"][1]
    ):
      continue
    depth = example["depth"]
    padded = np.pad(depth, ((0, 0), (1, 1), (1, 1)))  # 0 beyond the edge.
    # Pixels whose 3x3 neighbourhood has one depth are covered by that
    # object alone, but for the faint anti-aliasing of a nearby sharp
    # corner (a few levels; any two colours differ by 80 or more).
    same = np.ones(depth.shape, bool)
    for dy in range(3):
      for dx in range(3):
        same &= padded[:, dy : dy + _RES, dx : dx + _RES] == depth
    for n in (0, 1):
      pixels = example["video"][same & (depth == n + 1)].astype(np.float64)
      assert (np.abs(pixels - _rgb(example, n)).max(-1) <= 12).all(), n
    # The near object covers pixels inside the far one's outline.
    far = example["positions"][:, 0]
    near = example["positions"][:, 1]
    gap = np.abs(far - near).max(-1)
    overlaps += (gap < _radius(example, 0) - 2).sum()
  assert overlaps > 0


def test_caption_names_every_object():
  for example in _pool():
    caption = example["caption"]
    for n in _objects(example):
      noun = " ".join(
          (
              synth_av.SIZES[example["size"][n]],
              synth_av.COLOUR_NAMES[example["colour"][n]],
              synth_av.SHAPES[example["shape"][n]],
          )
      )
      assert noun in caption, (noun, caption)
      if synth_av.MOTIONS[example["motion"][n]] == "still":
        assert any(p in caption for p in ("still", "not move", "in place"))


@pytest.mark.parametrize("arg", [None, "tiny", "base"])
def test_config_file_matches_the_registered_builder_configs(arg):
  config = synth_av_configs.get_config(arg)
  dataset = config_lib.from_config(
      synth_av.SynthAVConfig, config.dataset, "config.dataset"
  )
  assert config.data.dataset == f"synth_av/{arg or 'tiny'}"
  assert dataset == synth_av_tfds.PRESETS[arg or "tiny"]


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="tiny, base"):
    synth_av_configs.get_config("huge")
  with pytest.raises(config_lib.ConfigError, match="resolution"):
    synth_av.SynthAVConfig(resolution=16)
  with pytest.raises(config_lib.ConfigError, match="colours are: red"):
    synth_av.SynthAVConfig(heldout=(("circle", "pink", "left"),))
  with pytest.raises(config_lib.ConfigError, match="motions are: left"):
    synth_av.SynthAVConfig(heldout=(("circle", "red", "sideways"),))
  with pytest.raises(config_lib.ConfigError, match="sample_rate"):
    synth_av.SynthAVConfig(sample_rate=16001)
