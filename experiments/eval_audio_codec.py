r"""Evaluates a trained codec at 1, 2, 4 and all RVQ levels.

  python -m experiments.eval_audio_codec --config=configs/eval_audio_codec.py \
      --workdir=runs/codec [--config.data.data_dir=runs/data] \
      [--config.data.source=wav_folder --config.data.data_dir=runs/speech] \
      [--config.metrics="('mel_distance', 'si_sdr', 'visqol', 'pesq')"] \
      [--config.num_clips=32]

Reads the codec with `load_codec(workdir)` (the generator's EMA weights),
reconstructs the first `config.num_clips` clips of the split, and writes
the mean
of every metric at every number of levels to
`<workdir>/eval_<source>_<split>.json` (and prints it). The TFDS name and
data dir default to the run's own config. PESQ and STOI are meant for
speech; ViSQOL runs in audio mode (about 2 s per clip on a CPU core).
"""

import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np

from videopoet.kernels import xla_cpu
from videopoet.tokenizers.soundstream import codec as codec_lib
from videopoet.tokenizers.soundstream import data as audio_data
from videopoet.tokenizers.soundstream import metrics
from videopoet.train_lib import workdir as workdir_lib
# pylint: enable=g-import-not-at-top,g-bad-import-order

_WORKDIR = flags.DEFINE_string("workdir", None, "The codec's run directory.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/eval_audio_codec.py", "configs/eval_audio_codec.py",
    lock_config=True,
)  # fmt: skip


def evaluate(
    workdir: str,
    data: audio_data.DataConfig,
    split: str,
    names: tuple[str, ...],
    levels: tuple[int, ...],
    num_clips: int,
) -> dict[str, float]:
  """Metric means at each number of levels (0: all) on a split's clips."""
  unknown = sorted(set(names) - set(metrics.METRICS))
  if unknown:
    raise ValueError(
        f"unknown metric {unknown[0]!r}; known: " f"{sorted(metrics.METRICS)}"
    )
  codec = codec_lib.load_codec(workdir)
  source = audio_data.audio_source(data, split, codec.config.sample_rate)
  n = min(num_clips, len(source))
  clips = np.stack(
      [np.asarray(source[i]["audio"], np.float32) for i in range(n)]
  )
  levels = tuple(k or codec.num_levels for k in levels)
  result = metrics.evaluate(
      lambda x, k: codec.reconstruct(x, k),
      clips,
      levels,
      names,
      codec.config.sample_rate,
  )
  result["num_clips"] = n
  return result


def main(argv):
  del argv
  workdir = _WORKDIR.value
  config = _CONFIG.value
  # The run's config in today's key names (older workdirs included).
  run_data = workdir_lib.read_family_config(workdir, "audio_codec")["data"]
  data = audio_data.DataConfig(
      source=config.data.source,
      dataset=config.data.dataset or run_data["dataset"],
      data_dir=config.data.data_dir or run_data["data_dir"],
      clip_samples=run_data["clip_samples"],
  )
  result = evaluate(
      workdir,
      data,
      config.split,
      tuple(config.metrics),
      tuple(int(k) for k in config.levels),
      config.num_clips,
  )
  path = os.path.join(workdir, f"eval_{data.source}_{config.split}.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2, sort_keys=True)
  print(json.dumps(result, indent=2, sort_keys=True))
  print(f"wrote {path}")


if __name__ == "__main__":
  # Before JAX creates its backend. (Not through experiments.common: its
  # flags would clash with this job's --workdir.)
  xla_cpu.configure()
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
