"""`tokenize_data`: records, shards across processes, resuming, and the
`train` job reading the shards (tiny random-init tokenizers, a 32x32
synth_av build of a few examples)."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import tokenize_data as tokenize_configs
from videopoet import config_lib
from videopoet import lm_data
from videopoet import text_tokenizer
from videopoet import token_spec
from videopoet import pretokenize
from videopoet.data import datasets
from videopoet.data import synth_av
from videopoet.data import synth_av_tfds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DATA = synth_av.SynthAVConfig(
    resolution=32, train_size=7, validation_size=4, test_size=1,
    test_heldout_size=1,
)  # fmt: skip
_NAME = "synth_av/r32"
_D = datasets.DataConfig(_NAME, "d")  # A config that needs no data.


def build_data_and_text_model(root, data=_DATA):
  """synth_av/r32 under `root/data` and a 64-piece text model of its
  captions; returns (data_dir, text model path)."""
  data_dir = str(root / "data")
  synth_av_tfds.build(data, data_dir, name="r32")
  src = tfds.data_source(_NAME, split="train", data_dir=data_dir)
  captions = [src[i]["caption"] for i in range(len(src))]
  captions = [c.decode() if isinstance(c, bytes) else c for c in captions]
  return data_dir, text_tokenizer.train(captions, str(root / "text"), 64)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("tokenize")
  data_dir, sp = build_data_and_text_model(root)
  cfg = pretokenize.TokenizeConfig(
      data=datasets.DataConfig(_NAME, data_dir),
      splits=("train", "validation"),
      text_tokenizer=sp, random_init=True, batch_size=4,
      random=pretokenize.RandomInitConfig(**tokenize_configs.random_tokenizers()),
  )  # fmt: skip
  return root, cfg, pretokenize.load_tokenizers(cfg)


def _records(out, split):
  src = lm_data.ArrayRecordSource(str(out), split)
  return [src[i] for i in range(len(src))]


def test_records_round_trip_with_ids_in_range(setup):
  root, cfg, tok = setup
  out = root / "single"
  stats = pretokenize.tokenize_split(cfg, tok, "train", str(out))
  assert stats["encoded"] == 7 and stats["examples_per_s"] > 0
  assert sorted(os.listdir(out)) == [
      "train-00000-of-00001.array_record",
      "train-00000-of-00001.array_record.json",  # Its provenance record.
  ]
  recs = _records(out, "train")
  src = tfds.data_source(_NAME, split="train", data_dir=cfg.data.data_dir)
  sp = text_tokenizer.load(cfg.text_tokenizer)
  assert [int(r["index"]) for r in recs] == list(range(7))
  for r in recs:
    ex = src[int(r["index"])]
    assert r["video"].shape == r["structure"].shape == (5, 4, 4)
    assert r["video"].dtype == np.int32
    for k in ("video", "structure"):
      assert 0 <= r[k].min() and r[k].max() < 2**tok.visual_bits
    assert r["audio"].shape == (4, 106)  # 34,000 samples / 320.
    assert 0 <= r["audio"].min() and r["audio"].max() < 1024
    caption = ex["caption"]
    caption = caption.decode() if isinstance(caption, bytes) else caption
    assert r["caption"] == caption
    np.testing.assert_array_equal(
        r["text"], text_tokenizer.encode(sp, caption, cfg.max_text_len)
    )
    assert r["text"].max() < tok.metadata["text_size"]
    np.testing.assert_array_equal(r["text_mask"], r["text"] >= 0)
    np.testing.assert_array_equal(r["gt_positions"], ex["positions"])
    np.testing.assert_array_equal(r["gt_colour"], ex["colour"])
  # The random tokenizer still tells clips apart.
  assert len({r["video"].tobytes() for r in recs}) == 7
  # Structure (flow + depth) is encoded, not a copy of the RGB codes.
  assert any((r["video"] != r["structure"]).any() for r in recs)


def test_two_processes_cover_every_example_once(setup):
  root, cfg, tok = setup
  out = str(root / "two")
  import dataclasses  # pylint: disable=g-import-not-at-top

  cfg = dataclasses.replace(cfg, num_shards=3)
  a = pretokenize.tokenize_split(cfg, tok, "train", out, 0, 2)
  b = pretokenize.tokenize_split(cfg, tok, "train", out, 1, 2)
  assert a["encoded"] + b["encoded"] == 7
  files = sorted(
      os.path.basename(f) for f in glob.glob(out + "/*.array_record")
  )
  assert files == [f"train-{i:05d}-of-00003.array_record" for i in range(3)]
  assert sorted(int(r["index"]) for r in _records(out, "train")) == list(
      range(7)
  )


def test_rerun_skips_finished_shards_and_redoes_a_killed_one(setup):
  root, cfg, tok = setup
  out = str(root / "resume")
  import dataclasses  # pylint: disable=g-import-not-at-top

  cfg = dataclasses.replace(cfg, num_shards=2)
  pretokenize.tokenize_split(cfg, tok, "validation", out)
  first, second = (pretokenize.shard_path(out, "validation", i, 2) for i in (0, 1))
  mtime = os.path.getmtime(first)
  again = pretokenize.tokenize_split(cfg, tok, "validation", out)
  assert again["encoded"] == 0 and again["skipped_shards"] == 2
  assert os.path.getmtime(first) == mtime
  # A process killed while writing shard 1 leaves only its temp file.
  os.remove(second)
  with open(second + ".tmp", "wb") as f:
    f.write(b"half a shard")
  redo = pretokenize.tokenize_split(cfg, tok, "validation", out)
  assert redo["encoded"] == 2 and redo["skipped_shards"] == 1
  assert not os.path.exists(second + ".tmp")
  assert os.path.exists(pretokenize.provenance_path(second))
  assert sorted(int(r["index"]) for r in _records(out, "validation")) == [
      0, 1, 2, 3,
  ]  # fmt: skip
  assert os.path.getmtime(first) == mtime


def test_empty_tokenizer_paths_are_clear_errors(setup):
  _, cfg, _ = setup
  with pytest.raises(config_lib.ConfigError, match="video_tokenizer is empty"):
    pretokenize.TokenizeConfig(data=_D, text_tokenizer=cfg.text_tokenizer)
  with pytest.raises(config_lib.ConfigError, match="text_tokenizer is empty"):
    pretokenize.TokenizeConfig(
        data=_D, random_init=True,
        random=pretokenize.RandomInitConfig(
            **tokenize_configs.random_tokenizers()
        ),
    )  # fmt: skip
  with pytest.raises(config_lib.ConfigError, match="architectures"):
    pretokenize.TokenizeConfig(data=_D, random_init=True, text_tokenizer="t")
  with pytest.raises(config_lib.ConfigError, match="data_dir is empty"):
    pretokenize.TokenizeConfig(random_init=True, text_tokenizer="t")


def _job(*args, timeout=400):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=timeout,
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc


def test_jobs_tokenize_then_train_on_the_shards(setup):
  """The jobs end to end; stylization, video_to_audio and text_to_video
  need structure, audio and text from the shards."""
  root, cfg, _ = setup
  tokens, lm = str(root / "job_tokens"), str(root / "lm")
  proc = _job(
      "experiments.tokenize_data", "--config=configs/tokenize_data.py:tiny",
      f"--workdir={tokens}", f"--config.data.dataset={_NAME}",
      f"--config.data.data_dir={cfg.data.data_dir}",
      f"--config.text_tokenizer={cfg.text_tokenizer}",
      "--config.random_init=True", "--config.splits=('train', 'validation')",
      "--config.batch_size=4", "--process_index=0", "--process_count=1",
  )  # fmt: skip
  assert "RANDOMLY INITIALIZED" in proc.stdout + proc.stderr
  with open(os.path.join(tokens, "tokens.json")) as f:
    meta = json.load(f)
  assert meta["splits"] == {"train": 7, "validation": 4}
  assert meta["random_init"] and meta["visual_bits"] == 10
  # Every TokenSpec field, from the tokenizers, the codec and the data.
  spec = token_spec.read(tokens)
  assert spec.latent_grid == (5, 4, 4) and spec.time_factor == 4
  assert (spec.space_factor, spec.height, spec.width) == (8, 32, 32)
  assert (spec.num_frames, spec.fps, spec.sample_rate) == (17, 8.0, 16000)
  assert (spec.audio_levels, spec.audio_codebook) == (4, 1024)
  assert (spec.audio_hop, spec.audio_frames) == (320, 106)
  assert spec.max_text_len == 40 and spec.text_size == 64
  assert spec.video_tokenizer == spec.audio_codec == "random"
  tasks = (
      "(('stylization', 1.0), ('video_to_audio', 1.0),"
      " ('text_to_video', 1.0))"
  )
  common = [
      "experiments.train", "--config=configs/videopoet.py:tiny",
      f"--workdir={lm}", f"--config.data.data_dir={tokens}",
      "--config.data.batch_size=2", "--config.data.eval_batches=1",
      "--config.trainer.total_steps=3", "--config.trainer.log_every=1",
      "--config.trainer.eval_every=3", f"--config.mixture.weights={tasks}",
  ]  # fmt: skip
  _job(*common)  # Its vocabulary and text length are the tokens'.
  with open(os.path.join(lm, "metrics.jsonl")) as f:
    keys = set().union(*(json.loads(line) for line in f))
  for t in ("stylization", "video_to_audio", "text_to_video"):
    assert f"val/{t}/loss" in keys
  # The LM's workdir keeps the tokens.json it was trained on, as it was.
  with open(os.path.join(lm, "tokens.json"), "rb") as f:
    with open(os.path.join(tokens, "tokens.json"), "rb") as g:
      assert f.read() == g.read()
  # Resuming it on other tokens (as if retokenized in place with 12-bit
  # codes) is refused before anything is written, naming what differs.
  meta["visual_bits"] = 12
  with open(os.path.join(tokens, "tokens.json"), "w") as f:
    json.dump(meta, f)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  bad = subprocess.run(
      [sys.executable, "-m", *common, "--config.trainer.total_steps=6"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=200,
  )  # fmt: skip
  assert bad.returncode == 2, bad.stderr[-3000:]
  err = bad.stderr.strip().splitlines()[-1]
  for want in ("holds an LM trained on other tokens", "visual_bits: 10 -> 12",
               "new --workdir"):  # fmt: skip
    assert want in err, (want, err)
  assert token_spec.read(lm).visual_bits == 10


def _fake_workdir(root, name, config):
  """A workdir with `config.json` and an empty `checkpoints/`."""
  workdir = root / name
  os.makedirs(workdir / "checkpoints")
  (workdir / "config.json").write_text(config.to_json())
  return str(workdir)


def test_wrong_kind_of_workdir_is_named(tmp_path):
  """An audio codec's workdir as the video tokenizer and the other way
  round, an LM's, and workdirs missing config.json or checkpoints."""
  from configs import magvit2 as magvit2_configs  # pylint: disable=g-import-not-at-top
  from configs import soundstream as soundstream_configs  # pylint: disable=g-import-not-at-top
  from configs import videopoet as videopoet_configs  # pylint: disable=g-import-not-at-top
  from videopoet.tokenizers.magvit2 import program  # pylint: disable=g-import-not-at-top
  from videopoet.tokenizers.soundstream import codec as codec_lib  # pylint: disable=g-import-not-at-top

  codec = _fake_workdir(
      tmp_path, "codec", soundstream_configs.get_config("tiny")
  )
  video = _fake_workdir(tmp_path, "video", magvit2_configs.get_config("tiny"))
  lm = _fake_workdir(tmp_path, "lm", videopoet_configs.get_config("tiny"))
  with pytest.raises(
      config_lib.ConfigError,
      match=f"{codec} is not a video tokenizer workdir: its config.json is an"
      r" audio codec config \(configs/soundstream.py\); pass the workdir of"
      " experiments.train_video_tokenizer",
  ):
    program.load_tokenizer(codec)
  with pytest.raises(
      config_lib.ConfigError,
      match=f"{video} is not an audio codec workdir: its config.json is a"
      r" video tokenizer config \(configs/magvit2.py\); pass the workdir of"
      " experiments.train_audio_codec",
  ):
    codec_lib.load_codec(video)
  with pytest.raises(config_lib.ConfigError, match="VideoPoet LM config"):
    program.load_tokenizer(lm)
  os.makedirs(os.path.join(lm, "checkpoints", "5"))
  with pytest.raises(config_lib.ConfigError, match="VideoPoet LM config"):
    codec_lib.load_codec(os.path.join(lm, "checkpoints", "5"))
  # The right kind, but nothing saved in checkpoints/ yet.
  with pytest.raises(FileNotFoundError, match=f"no checkpoint under {video}"):
    program.load_tokenizer(video)
  with pytest.raises(FileNotFoundError, match=f"no checkpoint under {codec}"):
    codec_lib.load_codec(codec)
  empty = str(tmp_path / "empty")
  os.makedirs(empty)
  for load in (program.load_tokenizer, codec_lib.load_codec):
    with pytest.raises(FileNotFoundError, match=f"{empty} has no config.json"):
      load(empty)
    with pytest.raises(FileNotFoundError, match="nothere is not a directory"):
      load(str(tmp_path / "nothere"))
  assert not os.listdir(empty)  # Nothing created in a wrong directory.
  # The tokenize_data job names the flag (a one-line error, exit 2).
  cfg = pretokenize.TokenizeConfig(
      data=_D, text_tokenizer="t", video_tokenizer=codec,
      audio_codec=video,
  )  # fmt: skip
  with pytest.raises(
      config_lib.ConfigError,
      match=f"config.video_tokenizer='{codec}' cannot be loaded as the video"
      " tokenizer: .* is not a video tokenizer workdir",
  ):
    pretokenize.load_tokenizers(cfg)


def test_random_video_tokenizer_decodes():
  """Random tokenizers (tests, demo) decode codes back to video."""
  tok = pretokenize._random_video_tokenizer(
      pretokenize.RandomInitConfig(**tokenize_configs.random_tokenizers())
  )  # pylint: disable=protected-access
  video = np.random.default_rng(0).uniform(-1, 1, (1, 5, 64, 64, 3))
  ids = tok.encode_to_indices(video.astype(np.float32))
  assert ids.shape == (1, 2, 8, 8)
  out = np.asarray(tok.decode_from_indices(ids))
  assert out.shape == (1, 5, 64, 64, 3) and np.isfinite(out).all()
  assert out.std() > 0  # A real decoder, not zeros.


def test_superres_factor_writes_the_downsampled_clips_codes(setup):
  """`superres_factor=2`: `video_low` holds the codes of the clip
  bicubic-downsampled by 2, and tokens.json says so."""
  import dataclasses  # pylint: disable=g-import-not-at-top

  from videopoet.superres import data as superres_data  # pylint: disable=g-import-not-at-top

  root, cfg, _ = setup
  cfg = dataclasses.replace(cfg, superres_factor=2, limit=2, structure=False,
                            audio_levels=0)  # fmt: skip
  tok = pretokenize.load_tokenizers(cfg)
  out = str(root / "superres")
  pretokenize.tokenize_split(cfg, tok, "train", out)
  pretokenize.write_metadata(out, tok, {"train": 2})
  spec = token_spec.read(out)
  assert superres_data.low_factor(spec) == 2
  assert superres_data.low_grid(spec) == (5, 2, 2)
  recs = _records(out, "train")
  src = tfds.data_source(_NAME, split="train", data_dir=cfg.data.data_dir)
  clips = np.stack([np.asarray(src[i]["video"])[:17] for i in range(2)])
  small = superres_data.resize_clips(clips / 127.5 - 1.0, 16, 16)
  assert small.shape == (2, 17, 16, 16, 3)
  pad = np.concatenate([small, np.repeat(small[-1:], 2, 0)])  # Batch of 4.
  want = np.asarray(tok.encode_video(pad))[:2]
  for r, w in zip(recs, want):
    assert r["video"].shape == (5, 4, 4) and r["video_low"].shape == (5, 2, 2)
    np.testing.assert_array_equal(r["video_low"], w)
  # Without the option, the settings (so provenance) are as before.
  assert "superres_factor" in tok.metadata
  off = pretokenize._settings(dataclasses.replace(cfg, superres_factor=0))  # pylint: disable=protected-access
  assert "superres_factor" not in off
