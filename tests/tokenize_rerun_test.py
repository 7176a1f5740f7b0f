"""`tokenize_data` reruns into an existing token directory: a finished shard
is reused only when its provenance record says it was made by the same
tokenizers, settings, limit and shard layout; anything else is refused
before a byte is written, or replaced with `overwrite` (tiny random-init
tokenizers, a 32x32 synth_av build of a few examples)."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import tokenize_data as tokenize_configs
from videopoet import lm_data
from videopoet import pretokenize
from videopoet.data import datasets
from videopoet.data import synth_av
from tests import tokenize_data_test

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DATA = synth_av.SynthAVConfig(
    resolution=32, train_size=7, validation_size=2, test_size=1,
    test_heldout_size=1,
)  # fmt: skip
_NAME = "synth_av/r32"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """(root, 10-bit config and tokenizers, 12-bit ones)."""
  root = tmp_path_factory.mktemp("rerun")
  data_dir, sp = tokenize_data_test.build_data_and_text_model(root, _DATA)
  cfg10 = pretokenize.TokenizeConfig(
      data=datasets.DataConfig(_NAME, data_dir), splits=("train",), limit=4,
      text_tokenizer=sp, random_init=True, batch_size=4, audio_levels=1,
      random=pretokenize.RandomInitConfig(**tokenize_configs.random_tokenizers()),
  )  # fmt: skip
  cfg12 = dataclasses.replace(
      cfg10, limit=6, random=pretokenize.RandomInitConfig(
          **tokenize_configs.random_tokenizers(visual_bits=12)
      )
  )
  return (
      root,
      (cfg10, pretokenize.load_tokenizers(cfg10)),
      (cfg12, pretokenize.load_tokenizers(cfg12)),
  )


def _run(cfg, tok, out, overwrite=False, process_index=0, process_count=1):
  """What `experiments.tokenize_data` does, in this process."""
  pretokenize.check_out_dir(cfg, tok, out, process_index, process_count,
                         overwrite)  # fmt: skip
  stats = {
      split: pretokenize.tokenize_split(
          cfg, tok, split, out, process_index, process_count, overwrite
      )  # fmt: skip
      for split in cfg.splits
  }
  if process_index == 0:
    sizes = {s: st["examples"] for s, st in stats.items()}
    pretokenize.write_metadata(out, tok, sizes, overwrite)
  return stats


def _snapshot(out):
  """{name: bytes} of every file in `out`."""
  return {
      name: open(os.path.join(out, name), "rb").read()
      for name in sorted(os.listdir(out))
  }


def _records(out, split="train"):
  src = lm_data.ArrayRecordSource(out, split)
  return [src[i] for i in range(len(src))]


def _meta(out):
  with open(os.path.join(out, "tokens.json")) as f:
    return json.load(f)


def test_rerun_with_other_tokenizers_and_limit_is_refused(setup):
  root, (cfg10, tok10), (cfg12, tok12) = setup
  out = str(root / "refused")
  _run(cfg10, tok10, out)
  before = _snapshot(out)
  assert sorted(before) == [
      "tokens.json", "train-00000-of-00001.array_record",
      "train-00000-of-00001.array_record.json",
  ]  # fmt: skip
  with pytest.raises(pretokenize.StaleTokensError) as err:
    _run(cfg12, tok12, out)
  msg = str(err.value)
  for want in (
      os.path.abspath(out), "train-00000-of-00001.array_record", "tokens.json",
      "visual_bits: 10 -> 12", "random.visual_bits: 10 -> 12",
      "limit: 4 -> 6", "examples: [0, 4] -> [0, 6]", "--workdir",
      "--overwrite",
  ):  # fmt: skip
    assert want in msg, (want, msg)
  # Nothing was written: not a shard, not tokens.json.
  assert _snapshot(out) == before
  # Nor would encoding one split alone, nor describing the other tokens.
  with pytest.raises(pretokenize.StaleTokensError, match="limit: 4 -> 6"):
    pretokenize.tokenize_split(cfg12, tok12, "train", out)
  with pytest.raises(pretokenize.StaleTokensError, match="visual_bits: 10 -> 12"):
    pretokenize.write_metadata(out, tok12, {"train": 6})
  assert _snapshot(out) == before


def test_identical_rerun_skips_finished_shards(setup):
  root, (cfg10, tok10), _ = setup
  out = str(root / "same")
  _run(cfg10, tok10, out)
  before = _snapshot(out)
  stats = _run(cfg10, tok10, out)
  assert stats["train"]["encoded"] == 0
  assert stats["train"]["skipped_shards"] == 1
  assert _snapshot(out) == before
  record = json.loads(before["train-00000-of-00001.array_record.json"])
  # As JSON (the architectures' tuples are lists there).
  assert record["random"] == json.loads(
      json.dumps(dataclasses.asdict(cfg10.random))
  )
  assert record["limit"] == 4 and record["examples"] == [0, 4]
  assert record["text_tokenizer_sha256"] and record["num_frames"] == 17
  # The record holds the whole TokenSpec: grids, rates, audio frames.
  assert (record["time_factor"], record["space_factor"]) == (4, 8)
  assert (record["height"], record["width"], record["fps"]) == (32, 32, 8.0)
  assert (record["audio_levels"], record["audio_frames"]) == (1, 106)
  assert (record["audio_hop"], record["sample_rate"]) == (320, 16000)


def test_shards_recorded_before_the_token_spec_are_refused(setup):
  """A shard whose record lacks the spec's shapes (tokenize_data before
  tokens.json held them) is not reused as if it matched."""
  root, (cfg10, tok10), _ = setup
  out = str(root / "pre_spec")
  _run(cfg10, tok10, out)
  path = pretokenize.provenance_path(pretokenize.shard_path(out, "train", 0, 1))
  with open(path) as f:
    record = json.load(f)
  for key in ("time_factor", "space_factor", "audio_hop", "audio_frames"):
    del record[key]
  with open(path, "w") as f:
    json.dump(record, f)
  with pytest.raises(
      pretokenize.StaleTokensError, match="time_factor: <absent> -> 4"
  ):
    _run(cfg10, tok10, out)


def test_overwrite_reencodes_and_tokens_json_matches_the_shards(setup):
  root, (cfg10, tok10), (cfg12, tok12) = setup
  out = str(root / "overwrite")
  _run(cfg10, tok10, out)
  stats = _run(cfg12, tok12, out, overwrite=True)
  assert stats["train"]["encoded"] == 6
  meta = _meta(out)
  assert meta["visual_bits"] == 12 and meta["random"]["visual_bits"] == 12
  assert meta["splits"] == {"train": 6}
  recs = _records(out)
  assert [int(r["index"]) for r in recs] == list(range(6))
  codes = np.stack([r["video"] for r in recs])
  assert codes.max() < 2**12 and codes.max() >= 2**10  # 12-bit codes.
  with open(pretokenize.provenance_path(
      pretokenize.shard_path(out, "train", 0, 1))) as f:  # fmt: skip
    assert json.load(f)["limit"] == 6
  # Now the directory is the 12-bit run's: a plain rerun reuses it.
  again = _run(cfg12, tok12, out)
  assert again["train"]["encoded"] == 0


def test_shards_without_provenance_are_unknown(setup):
  """Shards written before provenance records existed."""
  root, (cfg10, tok10), _ = setup
  out = str(root / "legacy")
  _run(cfg10, tok10, out)
  os.remove(pretokenize.provenance_path(pretokenize.shard_path(out, "train", 0, 1)))
  before = _snapshot(out)
  with pytest.raises(
      pretokenize.StaleTokensError, match="no provenance record.*--overwrite"
  ):
    _run(cfg10, tok10, out)
  assert _snapshot(out) == before
  assert _run(cfg10, tok10, out, overwrite=True)["train"]["encoded"] == 4
  assert len(_records(out)) == 4


def test_other_shard_layout_or_split_is_refused_then_replaced(setup):
  """A layout of 1 shard, rerun as 2 processes writing 2, would be read
  twice over; a split made by other tokenizers would disagree with
  tokens.json."""
  root, (cfg10, tok10), (cfg12, tok12) = setup
  out = str(root / "layout")
  _run(dataclasses.replace(cfg10, splits=("train", "validation")), tok10, out)
  before = _snapshot(out)
  with pytest.raises(pretokenize.StaleTokensError, match="num_shards: 1 -> 2"):
    _run(cfg10, tok10, out, process_index=1, process_count=2)
  # Encoding train with other tokenizers leaves validation's stale shard.
  with pytest.raises(
      pretokenize.StaleTokensError, match="validation-00000-of-00001"
  ):
    _run(cfg12, tok12, out)
  assert _snapshot(out) == before
  for p in (1, 0):  # Process 0 last: it writes tokens.json.
    _run(cfg12, tok12, out, True, process_index=p, process_count=2)
  assert sorted(n for n in os.listdir(out) if n.endswith(".array_record")) == [
      "train-00000-of-00002.array_record", "train-00001-of-00002.array_record",
  ]  # fmt: skip
  assert [int(r["index"]) for r in _records(out)] == list(range(6))
  meta = _meta(out)
  assert meta["visual_bits"] == 12 and meta["splits"] == {"train": 6}


def _job(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run(
      [sys.executable, "-m", "experiments.tokenize_data", *args], cwd=ROOT,
      env=env, capture_output=True, text=True, timeout=300,
  )  # fmt: skip


def test_job_refuses_then_overwrites(setup):
  root, (cfg10, tok10), _ = setup
  out = str(root / "job")
  # The job's first run, in this process (configs/tokenize_data.py:tiny's
  # values are TokenizeConfig's defaults).
  _run(dataclasses.replace(cfg10, limit=2), tok10, out)
  common = [
      "--config=configs/tokenize_data.py:tiny", f"--workdir={out}",
      f"--config.data.dataset={_NAME}",
      f"--config.data.data_dir={cfg10.data.data_dir}",
      f"--config.text_tokenizer={cfg10.text_tokenizer}",
      "--config.random_init=True", "--config.splits=('train',)",
      "--config.batch_size=4", "--config.audio_levels=1",
  ]  # fmt: skip
  before = _snapshot(out)
  bad = _job(*common, "--config.limit=3", "--config.random.visual_bits=12")
  assert bad.returncode == 2, bad.stderr[-3000:]
  err = bad.stderr.strip().splitlines()[-1]  # One line, no traceback.
  assert err.startswith(f"error: {os.path.abspath(out)} holds tokens"), err
  for want in ("visual_bits: 10 -> 12", "limit: 2 -> 3", "--overwrite"):
    assert want in err, (want, err)
  assert "random.seed" not in err  # Only what differs.
  assert _snapshot(out) == before
  good = _job(*common, "--config.limit=3", "--config.random.visual_bits=12",
              "--overwrite")  # fmt: skip
  assert good.returncode == 0, good.stderr[-3000:]
  assert "3 examples encoded" in good.stdout
  meta = _meta(out)
  assert meta["visual_bits"] == 12 and meta["splits"] == {"train": 3}
