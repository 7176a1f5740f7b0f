"""Tests of `videopoet.data.datasets`: reading jobs never build data.

A wrong or empty data directory must be an error naming the directory and
the `experiments.build_data` command, with nothing created on disk; before,
`tfds.data_source` silently generated `synth_av` there.
"""

import json
import os
import types

import pytest

from configs import tokenize_data as tokenize_configs
from videopoet import config_lib
from videopoet import pretokenize
from videopoet.data import datasets
from videopoet.data import synth_av
from videopoet.data import synth_av_tfds
from videopoet.tokenizers.magvit2 import program as magvit2_program
from videopoet.tokenizers.soundstream import data as audio_data

# A 4-fps build: 17 frames over 4.25 s of audio.
_FPS4 = synth_av.SynthAVConfig(
    fps=4, train_size=2, validation_size=1, test_size=1, test_heldout_size=0
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """A data dir holding synth_av/tiny_fps4 only."""
  data_dir = str(tmp_path_factory.mktemp("data"))
  synth_av_tfds.build(_FPS4, data_dir, name="tiny_fps4")
  return data_dir


def _files_under(path) -> list[str]:
  return [
      os.path.join(root, name)
      for root, dirs, names in os.walk(path)
      for name in names + dirs
  ]


@pytest.mark.parametrize(
    "name, command",
    [
        (
            "synth_av",
            "--config=configs/synth_av.py --config.data.data_dir={d}",
        ),
        (
            "synth_av/base",
            "--config=configs/synth_av.py:base --config.data.data_dir={d}",
        ),
        (
            "synth_av/tiny_fps4",
            "--config=configs/synth_av.py:<variant> --config.data.data_dir={d}"
            " --config.data.dataset=synth_av/tiny_fps4",
        ),
        (
            "video_folder",
            "--config=configs/video_folder.py --config.data.data_dir={d}"
            " --config.data.manual_dir=FOLDER",
        ),
        (
            "video_folder/portrait",
            "--config=configs/video_folder.py:portrait"
            " --config.data.data_dir={d} --config.data.manual_dir=FOLDER",
        ),
    ],
)
def test_empty_data_dir_names_the_dir_and_the_build_command(
    tmp_path, name, command
):
  with pytest.raises(datasets.DatasetNotFoundError) as raised:
    datasets.open_split(name, str(tmp_path), "train")
  message = str(raised.value)
  assert f"data_dir {tmp_path} " in message
  assert (
      "python -m experiments.build_data " + command.format(d=tmp_path)
      in message
  )
  assert "\n" not in message
  assert not _files_under(tmp_path)  # Nothing generated, nothing created.
  # Both a config mistake (jobs print it as one line) and a missing file.
  assert isinstance(raised.value, config_lib.ConfigError)
  assert isinstance(raised.value, FileNotFoundError)


def test_missing_data_dir_is_not_created(tmp_path):
  missing = tmp_path / "typo"
  with pytest.raises(datasets.DatasetNotFoundError, match="does not exist"):
    datasets.open_split("synth_av/tiny", str(missing), "train")
  assert not missing.exists()


def test_another_build_in_the_dir_is_named(built):
  before = _files_under(built)
  with pytest.raises(
      datasets.DatasetNotFoundError,
      match="builds there: synth_av/tiny_fps4:1.0.0",
  ):
    datasets.open_split("synth_av", built, "train")
  assert _files_under(built) == before  # No synth_av/tiny generated.


def test_open_split_reads_the_build_and_checks_the_split(built):
  source = datasets.open_split("synth_av/tiny_fps4", built, "train")
  assert len(source) == 2
  assert source[1]["video"].shape == (17, 64, 64, 3)
  both = datasets.open_split("synth_av/tiny_fps4", built, "train[:1]+test")
  assert len(both) == 2
  with pytest.raises(config_lib.ConfigError) as raised:
    datasets.open_split("synth_av/tiny_fps4", built, "tset")
  assert "'tset'" in str(raised.value)
  assert "the splits there are train, validation, test" in str(raised.value)


def test_bad_name_is_a_config_error(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="'synth av'"):
    datasets.open_split("synth av", str(tmp_path), "train")


# pylint: disable=protected-access
def test_reading_jobs_never_build(tmp_path):
  """tokenize_data and the MAGVIT-v2 and SoundStream trainers' readers."""
  data_dir = str(tmp_path)
  readers = {
      "tokenize": lambda: pretokenize._source(
          pretokenize.TokenizeConfig(
              data=datasets.DataConfig("synth_av/tiny", data_dir),
              random_init=True,
              random=pretokenize.RandomInitConfig(
                  **tokenize_configs.random_tokenizers()
              ),
              text_tokenizer="text.model",
          ),
          "train",
      ),
      "magvit2": lambda: magvit2_program._source(
          magvit2_program.DataConfig(dataset="synth_av", data_dir=data_dir),
          "train",
      ),
      "soundstream": lambda: audio_data.audio_source(
          audio_data.DataConfig(dataset="synth_av/tiny", data_dir=data_dir),
          "train",
          16000,
      ),
  }
  for reader, read in readers.items():
    with pytest.raises(datasets.DatasetNotFoundError) as raised:
      read()
    assert str(tmp_path) in str(raised.value), reader
    assert (
        "experiments.build_data --config=configs/synth_av.py"
        f" --config.data.data_dir={tmp_path}"
    ) in str(raised.value)
    assert not _files_under(tmp_path), reader


def test_media_rates_from_metadata_description_and_shapes(built, tmp_path):
  source = datasets.open_split("synth_av/tiny_fps4", built, "train")
  info = source.dataset_info
  version_dir = info.data_dir
  with open(os.path.join(version_dir, "metadata.json")) as f:
    assert json.load(f) == {"fps": 4, "sample_rate": 16000}
  rates = datasets.media_rates(info)
  assert (rates.fps, rates.sample_rate) == (4, 16000)
  assert rates.origin.endswith("metadata.json")
  # A build from before metadata.json: synth_av's config description.
  old = types.SimpleNamespace(
      data_dir=str(tmp_path),
      config_description=info.config_description,
      features=info.features,
  )
  rates = datasets.media_rates(old)
  assert (rates.fps, rates.sample_rate) == (4, 16000)
  assert "description" in rates.origin
  # video_folder before metadata.json: its build report's config.
  (tmp_path / "build_report.json").write_text(
      json.dumps({"config": {"fps": 5, "sample_rate": 8000}})
  )
  rates = datasets.media_rates(_replaced(old, config_description=""))
  assert (rates.fps, rates.sample_rate) == (5, 8000)
  # Nothing recorded: frames / fps last as long as the audio, at 16 kHz.
  os.remove(tmp_path / "build_report.json")
  rates = datasets.media_rates(_replaced(old, config_description=""))
  assert (rates.fps, rates.sample_rate) == (4, 16000)
  assert rates.origin == "the clip and audio lengths"


def _replaced(namespace, **changes):
  """A copy of a SimpleNamespace with `changes`."""
  return types.SimpleNamespace(**{**vars(namespace), **changes})
