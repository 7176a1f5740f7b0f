"""The sampling job's super-resolution stages (`config.superres`): an LM
workdir and two SR workdirs made without training (random parameters,
saved as the trainers save them), through `sampling.job.run`."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import sample as sample_configs
from configs import superres as superres_configs
from tests import sampling_workdir
from videopoet import config_lib
from videopoet import token_spec
from videopoet.data import media
from videopoet.sampling import job
from videopoet.superres import model as model_lib
from videopoet.superres import trainer
from videopoet.train_lib import checkpointing

# The LM's 3 x 4 x 4 codes (9 frames of 32 x 32): windows that tile the
# 3 x 8 x 8 and 3 x 16 x 16 grids the stages make.
_WINDOWS = ((1, 4, 2), (1, 2, 4), (3, 2, 2))


def make_superres_workdir(root: str, lm_dir: str, name: str) -> str:
  """An SR workdir on the LM's tokens (its tokens.json with
  superres_factor=2), random parameters at step 1."""
  workdir = os.path.join(root, name)
  record = json.load(open(token_spec.path_in(lm_dir)))
  record["superres_factor"] = 2
  os.makedirs(workdir)
  with open(token_spec.path_in(workdir), "w") as f:
    json.dump(record, f)
  config = superres_configs.get_config("tiny")
  config.data.update(
      source="arrayrecord", data_dir=os.path.join(root, "tokens")
  )
  config.model.windows = _WINDOWS
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f)
  spec = token_spec.read(workdir)
  model = model_lib.SRTransformer(
      trainer.model_config(config.model, trainer.token_facts(spec))
  )
  grid, low = spec.latent_grid, (3, 2, 2)
  params = nn.unbox(model.init(
      jax.random.key(0), jnp.zeros((1, *grid), jnp.int32),
      jnp.zeros((1, *low), jnp.int32), jnp.zeros((1, 24), jnp.int32),
      jnp.ones((1, 24), bool),
  )["params"])  # fmt: skip
  ckpt = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"),
      checkpointing.CheckpointConfig(async_save=False),
  )
  ckpt.save(1, {"params": params, "opt_state": optax.adam(1e-3).init(params)},
            {})  # fmt: skip
  ckpt.wait()
  ckpt.close()
  return workdir


@pytest.mark.slow
def test_two_superres_stages_quadruple_the_video(tmp_path):
  root = str(tmp_path)
  lm_dir = sampling_workdir.make(
      root, tasks=("text_to_video", "text_to_image")
  )
  sr1 = make_superres_workdir(root, lm_dir, "sr1")
  sr2 = make_superres_workdir(root, lm_dir, "sr2")
  prompts = tmp_path / "prompts.jsonl"
  prompts.write_text(
      '{"task": "text_to_video", "text": "a red circle", "seed": 1}\n'
      '{"task": "text_to_image", "text": "a red circle"}\n'
  )
  c = sample_configs.get_config("demo")
  c.update(lm=lm_dir, prompts=str(prompts), superres=f"{sr1},{sr2}",
           formats=("mp4", "png"))  # fmt: skip
  c.superres_sampling.update(steps=4, guidance_text=2.0)
  cfg = config_lib.from_config(job.SampleConfig, c, "config")
  out = str(tmp_path / "samples")
  summary = job.run(cfg, out)
  assert summary["errors"] == 0, job.read_manifest(out)
  rows = {r["index"]: r for r in job.read_manifest(out)}
  video = rows[0]
  assert [s["grid"] for s in video["superres"]] == [[3, 8, 8], [3, 16, 16]]
  assert [s["workdir"] for s in video["superres"]] == [sr1, sr2]
  assert all(s["step"] == 1 and s["steps"] == 4 for s in video["superres"])
  frames, _ = media.read_video(os.path.join(out, video["outputs"][0]["mp4"]))
  assert frames.shape == (9, 128, 128, 3)
  assert "superres" not in rows[1]  # An image stays as the LM made it.
  record = json.load(open(os.path.join(out, job.RECORD)))
  assert record["superres"] == [
      {"workdir": sr1, "step": 1}, {"workdir": sr2, "step": 1}
  ]  # fmt: skip
  # An SR model of another tokenizer's tokens is refused, named.
  other = make_superres_workdir(root, lm_dir, "sr_other")
  path = token_spec.path_in(other)
  record = json.load(open(path))
  record["video_tokenizer"] = "/elsewhere"
  json.dump(record, open(path, "w"))
  c.superres = other
  with pytest.raises(config_lib.ConfigError, match="sr_other.*elsewhere"):
    job.run(config_lib.from_config(job.SampleConfig, c, "config"),
            str(tmp_path / "refused"))  # fmt: skip
