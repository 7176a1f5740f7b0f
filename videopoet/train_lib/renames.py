"""Config keys and train-state keys that were renamed: the one table.

The families once named the same things differently (SoundStream's
`optim`, `data.global_batch_size`, `data.name`, `optim.disc_start_step`,
`model.channel_mults`, state `gen`/`gen_ema`/`disc`; MAGVIT-v2's
`loss.ema_decay` and state `d_params`; the LM's and the SR transformer's
`data.path`). Workdirs and token directories written before keep their old
names on disk; everything that reads them goes through this module, so they
load as written today:

  * `upgrade_config(saved, family)`: a workdir's `config.json` (the rerun
    comparison, every loader), one log line naming what was renamed;
  * `upgrade_tokens_record(record)`: a `tokens.json` or shard provenance
    record (its `random.codec_model`, a SoundStream model config);
  * `STATE_RENAMES`: top-level train-state keys, renamed when a checkpoint
    is restored (`checkpointing.Checkpointer`, `loading.restore_params`);
    the files themselves are never rewritten.
"""

import copy
from typing import Any, Iterable

from absl import logging

# family (`workdir.FAMILIES`) -> ((old dotted key, new dotted key), ...),
# applied in order; a key names a leaf or a whole section.
CONFIG_RENAMES = {
    "audio_codec": (
        ("optim.disc_start_step", "loss.gan_start_step"),
        ("optim", "optimizer"),
        ("data.global_batch_size", "data.batch_size"),
        ("data.name", "data.dataset"),
        ("model.channel_mults", "model.channel_multipliers"),
    ),
    "video_tokenizer": (("loss.ema_decay", "optimizer.ema_decay"),),
    "lm": (("data.path", "data.data_dir"),),
    "superres": (("data.path", "data.data_dir"),),
}
# What tokens.json (and each shard's provenance record) names: the random
# codec's architecture is a SoundStream model config.
TOKENS_RENAMES = (
    (
        "random.codec_model.channel_mults",
        "random.codec_model.channel_multipliers",
    ),
)
# Old top-level train-state key -> today's (no old key is a key today).
STATE_RENAMES = {
    "gen": "params",  # SoundStream
    "gen_ema": "ema_params",  # SoundStream
    "disc": "disc_params",  # SoundStream
    "d_params": "disc_params",  # MAGVIT-v2
}


def _pop(tree: dict, key: str) -> tuple[bool, Any]:
  *parents, leaf = key.split(".")
  for part in parents:
    tree = tree.get(part)
    if not isinstance(tree, dict):
      return False, None
  if leaf not in tree:
    return False, None
  return True, tree.pop(leaf)


def _set(tree: dict, key: str, value: Any) -> bool:
  """Sets `key` unless it is there already (a config with both keeps the
  new one); returns whether it set it."""
  *parents, leaf = key.split(".")
  for part in parents:
    tree = tree.setdefault(part, {})
    if not isinstance(tree, dict):
      return False
  if leaf in tree:
    if isinstance(tree[leaf], dict) and isinstance(value, dict):
      for k, v in value.items():
        tree[leaf].setdefault(k, v)
      return True
    return False
  tree[leaf] = value
  return True


def rename_keys(
    record: Any, table: tuple[tuple[str, str], ...]
) -> tuple[Any, list[str]]:
  """`(record with table's old keys renamed, ['old -> new', ...])`.

  `record` (nested JSON values) is not modified; a record without any old
  key comes back equal, with an empty list.
  """
  if not isinstance(record, dict):
    return record, []
  out, done = copy.deepcopy(record), []
  for old, new in table:
    found, value = _pop(out, old)
    if found and _set(out, new, value):
      done.append(f"{old} -> {new}")
  return out, done


def upgrade_config(saved: Any, family: str | None, origin: str = "") -> Any:
  """A saved config of `family` in today's key names (logged when any
  key was renamed); other values, and unknown families, as they are."""
  new, done = rename_keys(saved, CONFIG_RENAMES.get(family or "", ()))
  if done:
    logging.info(
        "%s was written with older key names; read as renamed: %s",
        origin or "config.json",
        ", ".join(done),
    )
  return new


def upgrade_tokens_record(record: Any) -> Any:
  """A tokens.json or shard provenance record in today's key names."""
  return rename_keys(record, TOKENS_RENAMES)[0]


def stored_names(stored: Any, wanted: Iterable[str]) -> dict[str, str]:
  """{today's key: the key the checkpoint stores it under} for the keys in
  `wanted` (top-level state keys) that the checkpoint's top-level `stored`
  holds under an old name."""
  if not hasattr(stored, "keys"):
    return {}
  if hasattr(wanted, "keys"):
    wanted = wanted.keys()
  elif not isinstance(wanted, (list, tuple, set)):
    return {}  # Not a state dict: nothing was renamed.
  stored, wanted = set(stored.keys()), set(wanted)
  return {
      new: old
      for old, new in STATE_RENAMES.items()
      if old in stored and new not in stored and new in wanted
  }


def to_stored(tree: Any, names: dict[str, str]) -> Any:
  """`tree` (a state dict) with its keys renamed to the stored ones."""
  if not names:
    return tree
  return {names.get(k, k): v for k, v in tree.items()}


def from_stored(tree: Any, names: dict[str, str]) -> Any:
  """A restored state dict with its old keys renamed to today's."""
  if not names:
    return tree
  back = {old: new for new, old in names.items()}
  return {back.get(k, k): v for k, v in tree.items()}
