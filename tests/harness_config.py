"""Config of the harness test job (`tests/harness_job.py`).

python -m tests.harness_job --config=tests/harness_config.py --workdir=W
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  config = ml_collections.ConfigDict()
  config.trainer = dict(
      total_steps=40,
      seed=0,
      log_every=1,
      eval_every=0,
      checkpoint=dict(every_steps=5, keep=3, async_save=True),
  )
  config.mesh = dict(data=-1, fsdp=1, tensor=1)
  # Records in the synthetic regression set; rows per global batch.
  config.num_records = 256
  config.batch_size = 8  # The global batch.
  # Seconds the input pipeline sleeps per batch (makes a kill land mid-run).
  config.data_delay_s = 0.0
  # 512^2 matmuls each step computes (slow steps the host can run ahead of).
  config.step_work = 0
  # Record indices whose inputs are NaN (tests the non-finite guard).
  config.nan_records = ()
  config.width = 32
  config.learning_rate = 1e-2
  return config
