"""What a rerun may change in a workdir's config, and what it refuses.

A workdir's `config.json` is the record the loaders build models from
(`load_tokenizer`, `load_codec`, the LM's), so it must always describe the
checkpoints beside it. A rerun with the same workdir is a resume: its config
is compared with the saved one *before anything is written*, and

  * a change to a key that shapes the model or the data (architecture,
    quantizer, vocabulary, tasks, dataset, batch, seed, ...) is refused with
    a `WorkdirConfigError` naming every key that differs and suggesting a
    new workdir; `config.json` stays byte-identical;
  * a change to a setting that may change on resume (`RESUMABLE`: how long
    to train, logging and checkpoint intervals, the mesh, learning rates and
    gradient clipping, evaluation settings) is allowed: `config.json` is
    rewritten with it and the change is appended to `config_changes.jsonl`
    (time, key, old and new value).

A workdir whose config.json has no checkpoint beside it (a first run that
stopped before its first save) takes the new config, with a warning.

A config.json written with key names since renamed is read in today's
names (`renames.upgrade_config`, one log line), so it compares equal to
today's config of the same run and every loader reads it.
"""

import datetime
import fnmatch
import json
import os
from typing import Any, Iterable

from absl import logging
import jax
import ml_collections

from videopoet import config_lib
from videopoet.train_lib import renames

CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.jsonl"

# Dotted config keys (fnmatch patterns) that a resumed run may change: none
# of them changes a parameter's shape, the model's function or the data
# stream. Learning rates and clipping are here because lowering them is the
# remedy for a non-finite loss (WORKSPACE.md); the schedule keys because
# configs tie them to `trainer.total_steps` (a longer run decays later).
RESUMABLE = (
    "trainer.total_steps",
    "trainer.log_every",
    "trainer.eval_every",
    "trainer.checkpoint.*",
    "mesh.*",
    "optimizer.learning_rate",
    "optimizer.disc_learning_rate",
    "optimizer.grad_clip",
    "optimizer.warmup_steps",
    "optimizer.decay_steps",
    "optimizer.end_fraction",
    "optimizer.gen_grad_clip",
    "optimizer.disc_grad_clip",
    "loss.gan_start_step",
    "optimizer.microbatches",  # Gradient accumulation: the same sums.
    "model.remat",  # Recomputation only: the same function and parameters.
    "eval.*",
    "data.eval_split",
    "data.eval_batches",
    "data.eval_clips",
    "data.eval_levels",
)


class WorkdirConfigError(config_lib.ConfigError):
  """A rerun's config differs from its workdir's in a key it cannot change."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{'model.filters': 64, ...} of a nested dict (leaves: JSON values)."""
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


_MISSING = "<absent>"


def config_differences(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
  """`{key: (old, new)}` for every dotted key whose value differs."""
  a, b = _flatten(old), _flatten(new)
  return {
      k: (a.get(k, _MISSING), b.get(k, _MISSING))
      for k in sorted(set(a) | set(b))
      if a.get(k, _MISSING) != b.get(k, _MISSING)
  }


def _resumable(key: str, patterns: Iterable[str]) -> bool:
  return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def has_checkpoint(workdir: str) -> bool:
  ckpt = os.path.join(workdir, "checkpoints")
  return os.path.isdir(ckpt) and any(
      name.isdigit() for name in os.listdir(ckpt)
  )


def read_config(workdir: str) -> dict | None:
  """The saved config of `workdir` as a dict in today's key names (see
  `renames`), or None without one."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    try:
      saved = json.load(f)
    except json.JSONDecodeError as e:
      raise WorkdirConfigError(
          f"{path} is not valid JSON ({e}); it is the record of what this"
          " workdir's checkpoints are. Restore it or use a new --workdir"
      ) from None
  return renames.upgrade_config(saved, config_family(saved), path)


def _show(value: Any) -> str:
  return json.dumps(value) if value is not _MISSING else _MISSING


def check_config(
    workdir: str,
    config: ml_collections.ConfigDict,
    resumable: Iterable[str] = RESUMABLE,
) -> dict[str, tuple[Any, Any]]:
  """Compares `config` with the workdir's; returns the allowed changes.

  Raises:
    WorkdirConfigError: a key outside `resumable` differs while the workdir
      holds checkpoints; the message names each such key with both values.
  """
  old = read_config(workdir)
  if old is None:
    return {}
  new = json.loads(config_lib.to_json(config))
  diffs = config_differences(old, new)
  if not diffs:
    return {}
  if not has_checkpoint(workdir):
    logging.warning(
        "%s has no checkpoint yet: its config.json is replaced (changed: %s)",
        workdir,
        ", ".join(diffs),
    )
    return diffs
  resumable = tuple(resumable)
  refused = {k: v for k, v in diffs.items() if not _resumable(k, resumable)}
  if refused:
    lines = "; ".join(
        f"{k}: {_show(a)} -> {_show(b)}" for k, (a, b) in refused.items()
    )
    raise WorkdirConfigError(
        f"--workdir={workdir} holds a run with another model or data config;"
        f" refusing to resume it with: {lines}. Use a new --workdir for a new"
        " run (a resume may change only: " + ", ".join(resumable) + ")"
    )
  return diffs


def write_config(
    workdir: str,
    config: ml_collections.ConfigDict,
    changes: dict[str, tuple[Any, Any]] | None = None,
) -> None:
  """Writes `config.json` atomically (process 0) and logs `changes`."""
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(config_lib.to_json(config))
  os.replace(path + ".tmp", path)
  if changes:
    when = datetime.datetime.now(datetime.timezone.utc).isoformat()
    with open(os.path.join(workdir, CHANGES_FILE), "a", encoding="utf-8") as f:
      for key, (old, new) in changes.items():
        row = {"time": when, "key": key, "old": old, "new": new}
        f.write(json.dumps(row, default=str) + "\n")
    shown = "; ".join(
        f"{k}: {_show(a)} -> {_show(b)}" for k, (a, b) in changes.items()
    )
    logging.info("Resuming with changed settings: %s", shown)


# What each trainer's workdir holds (configs/<family>.py), and the markers
# that tell the families' configs apart: robust to sections added later, and
# never shared between families.
FAMILIES = {  # family: (what it is, its config file, the job that trains it)
    "video_tokenizer": (
        "a video tokenizer",
        "configs/magvit2.py",
        "experiments.train_video_tokenizer",
    ),
    "audio_codec": (
        "an audio codec",
        "configs/soundstream.py",
        "experiments.train_audio_codec",
    ),
    "lm": (
        "a VideoPoet LM config",
        "configs/videopoet.py",
        "experiments.train",
    ),
    "superres": (
        "a super-resolution transformer",
        "configs/superres.py",
        "experiments.train_superres",
    ),
}


def config_family(saved: Any) -> str | None:
  """'video_tokenizer', 'audio_codec', 'lm', 'superres' or None for a saved
  config."""
  if not isinstance(saved, dict):
    return None
  model = saved.get("model")
  model = model if isinstance(model, dict) else {}
  if "rvq" in model:
    return "audio_codec"
  if "windows" in model and "masking" in saved:
    return "superres"
  if "vocab" in saved and "tasks" in saved:
    return "lm"
  if "quantizer" in saved and "filters" in model:
    return "video_tokenizer"
  return None


def read_family_config(workdir: str, family: str) -> dict:
  """The saved config of a `family` workdir, or an error saying what it is.

  Raises:
    FileNotFoundError: no config.json (the message names the directory).
    config_lib.ConfigError: config.json is unreadable or another family's
      (an audio codec's workdir passed as a video tokenizer, ...).
  """
  name, config_file, job = FAMILIES[family]
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    raise FileNotFoundError(
        f"{workdir} has no config.json, so it is not {name} workdir; pass"
        f" the workdir of {job}"
    )
  saved = read_config(workdir)
  found = config_family(saved)
  if found != family:
    if found is not None:
      kind = "{} config ({})".format(*FAMILIES[found][:2])
    elif isinstance(saved, dict):
      kind = "an unknown config (top-level sections: {})".format(
          ", ".join(sorted(saved)) or "none"
      )
    else:
      kind = f"not a config (a JSON {type(saved).__name__})"
    raise config_lib.ConfigError(
        f"{workdir} is not {name} workdir: its config.json is {kind}; pass"
        f" the workdir of {job} ({config_file})"
    )
  return saved
