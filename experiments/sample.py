r"""Offline sampling: a prompts file in, videos with sound out.

  python -m experiments.sample --config=configs/sample.py \
      --workdir=runs/samples --config.lm=runs/lm \
      --config.prompts=prompts.jsonl

Writes `<workdir>/<line>_<task>/sample_<i>.{mp4,gif,png,wav}`, one row per
request in `<workdir>/manifest.jsonl` (see videopoet/sampling/job.py and
requests.py) and, from a single process, `<workdir>/overview.png` (a row of
frames per finished request; videopoet/sampling/overview.py). A rerun skips the requests already done. Several processes
split the requests: `--process_index=i --process_count=n`, or jax's own
under `jax.distributed` (see experiments/common.py). Imports no TensorFlow.
"""

from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from experiments import common
from videopoet import config_lib
from videopoet.sampling import job
from videopoet.sampling import overview

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/sample.py", "configs/sample.py:<arg>", lock_config=True
)
_INDEX = flags.DEFINE_integer(
    "process_index", None, "This process's index (default jax's)."
)
_COUNT = flags.DEFINE_integer(
    "process_count", None, "Number of processes (default jax's)."
)


def main(argv):
  del argv
  common.init_runtime()
  cfg = config_lib.from_config(job.SampleConfig, _CONFIG.value, "config")
  index = jax.process_index() if _INDEX.value is None else _INDEX.value
  count = jax.process_count() if _COUNT.value is None else _COUNT.value
  if not 0 <= index < count:
    raise ValueError(f"--process_index={index} not in [0, {count})")
  summary = job.run(cfg, common.WORKDIR.value, index, count)
  logging.info("sample: %s", summary)
  if count == 1:  # Several processes: each knows only its own rows.
    try:
      logging.info("sample: overview %s", overview.write(common.WORKDIR.value))
    except ValueError as e:  # No request finished: nothing to picture.
      logging.info("sample: no overview (%s)", e)
  print(
      f"samples: {summary['done']} requests done, {summary['errors']} failed"
      f" (manifest: {common.WORKDIR.value}/{job.MANIFEST})"
  )


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  common.run(main)
