r"""Encodes a dataset with the trained tokenizers into LM token shards.

  python -m experiments.tokenize_data --config=configs/tokenize_data.py:tiny \
      --workdir=runs/demo/tokens --config.data.data_dir=runs/demo/data \
      --config.video_tokenizer=W1 --config.audio_codec=W2 \
      --config.text_tokenizer=runs/demo/text/text.model

Writes `<workdir>/<split>-%05d-of-%05d.array_record` (read by
`videopoet.lm_data.ArrayRecordSource`, i.e. `experiments.train` with
`--config.data.data_dir=<workdir>`) and `<workdir>/tokens.json`, the record of
what made the tokens (`videopoet.token_spec`; the LM's vocabulary is read
from it). Several processes split the shards: `--process_index=i
--process_count=n` (no coordination needed), or under `jax.distributed`
(`--coordinator_address`, ..., see experiments/common.py) jax's own process
index and count. With `--config.text_encoder.path=DIR` (a local T5
checkpoint: config.json, model.safetensors, spiece.model) the records also
carry the captions' T5 embeddings, for the LM's
`--config.tasks.text_mode=embeddings`.

Rerunning skips finished shards made with the same tokenizers, settings,
limit and shard layout (each shard's `<shard>.json` provenance record). A
workdir holding shards or a `tokens.json` made differently (or shards with
no record, from before records existed) is refused before anything is
written, naming each difference; pass a new --workdir, or `--overwrite` to
replace them.
"""

from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from configs import tokenize_data as tokenize_configs
from experiments import common
from videopoet import config_lib
from videopoet import pretokenize

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/tokenize_data.py:<arg>", lock_config=True
)
_INDEX = flags.DEFINE_integer(
    "process_index", None, "This process's index (default jax's)."
)
_COUNT = flags.DEFINE_integer(
    "process_count", None, "Number of processes (default jax's)."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace the shards and tokens.json in --workdir that were made with"
    " other tokenizers or settings (or have no provenance record) instead"
    " of refusing; finished shards that match are still reused.",
)


def _resolve_random(config) -> dict:
  """The config with `random`'s preset names replaced by the architectures
  they name (what tokens.json records)."""
  section = config.to_dict()
  names = section.get("random", {})
  try:
    section["random"] = tokenize_configs.random_tokenizers(**names)
  except TypeError as e:
    raise config_lib.ConfigError(
        f"config.random: {e}; its keys: video_config, visual_bits,"
        " codec_config, seed"
    ) from None
  except ValueError as e:  # An unknown preset.
    raise config_lib.ConfigError(f"config.random: {e}") from None
  return section


def main(argv):
  del argv
  common.init_runtime()
  cfg = config_lib.from_config(
      pretokenize.TokenizeConfig, _resolve_random(_CONFIG.value), "config"
  )
  index = jax.process_index() if _INDEX.value is None else _INDEX.value
  count = jax.process_count() if _COUNT.value is None else _COUNT.value
  if not 0 <= index < count:
    raise ValueError(f"--process_index={index} not in [0, {count})")
  out = common.WORKDIR.value
  overwrite = _OVERWRITE.value
  tok = pretokenize.load_tokenizers(cfg)
  # Every split is checked before any is written.
  pretokenize.check_out_dir(cfg, tok, out, index, count, overwrite)
  sizes = {}
  for split in cfg.splits:
    stats = pretokenize.tokenize_split(
        cfg, tok, split, out, index, count, overwrite
    )
    sizes[split] = stats["examples"]
    print(
        f"tokenize_data {split}: {stats['encoded']} examples encoded,"
        f" {stats['skipped_shards']} finished shards skipped,"
        f" {stats['examples_per_s']:.2f} examples/s (process {index}/{count})",
        flush=True,
    )
  if index == 0:
    path = pretokenize.write_metadata(out, tok, sizes, overwrite)
    logging.info("Wrote %s", path)
  spec = tok.spec
  print(
      f"tokens={out} visual_bits={spec.visual_bits}"
      f" grid={'x'.join(map(str, spec.latent_grid))}"
      f" time_factor={spec.time_factor} audio_levels={spec.audio_levels}"
      f" audio_frames={spec.audio_frames} text_size={spec.text_size}"
      f" random_init={cfg.random_init}"
      + (
          f" text_encoder={spec.text_encoder} (d={spec.text_embed_dim})"
          if spec.text_embed_dim
          else ""
      )
  )
  if cfg.random_init:
    print("NOTE: tokens from RANDOMLY INITIALIZED tokenizers (random_init).")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  common.run(main)
