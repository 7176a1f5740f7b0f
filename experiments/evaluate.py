r"""Eval sweeps: LM checkpoints x tasks x sampling settings x splits.

  python -m experiments.evaluate --config=configs/evaluate.py \
      --workdir=runs/eval --config.data.data_dir=D \
      --config.lms="(('runs/lm', 0),)"
  python -m experiments.evaluate --config=configs/evaluate.py:ground_truth \
      --workdir=runs/eval_gt --config.data.data_dir=D

Runs every cell (videopoet/eval/sweep.py) that `<workdir>/cells/` does not
hold yet, one progress line per cell with the ETA, then writes
`results.csv`, `results.md`, `plots/*.png`, `report.html` and `report.png`
(videopoet/eval/report.py). A killed run, rerun, computes only the missing
cells. `:ground_truth` needs no model: the `ground_truth` and `shuffled`
reference rows of every task and split alone.
"""

import json
import os

from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import common
from videopoet import config_lib
from videopoet.eval import sweep

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/evaluate.py", "configs/evaluate.py:<arg>",
    lock_config=True,
)  # fmt: skip


def main(argv):
  del argv
  common.init_runtime()
  cfg = config_lib.from_config(sweep.EvalConfig, _CONFIG.value, "config")
  workdir = common.WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "evaluate.json")  # What this run asked.
  with open(f"{path}.tmp", "w", encoding="utf-8") as f:
    f.write(config_lib.to_json(_CONFIG.value))
  os.replace(f"{path}.tmp", path)
  summary = sweep.run(cfg, workdir, log=logging.info)
  logging.info("evaluate: %s", json.dumps(summary))
  print(
      f"evaluate: {summary['cells']} cells: {summary['computed']} computed"
      f" ({summary['errors']} failed), {summary['skipped']} done before;"
      f" report: {os.path.join(workdir, 'report.html')}",
      flush=True,
  )


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  common.run(main)
