#!/usr/bin/env bash
# `make demo`: the pipeline on tiny configs, end to end, on this machine.
#
# Builds `synth_av` (tiny), writes a few clips as MP4 with their soundtrack
# muxed in, trains the text tokenizer, tokenizes the clips and trains the
# tiny LM on them for a short run. Later stages (video tokenizer and codec
# training, sampling) append their jobs here. Outputs go under $RUN_DIR
# (default runs/demo, git-ignored). LM_STEPS, TOKENIZE_TRAIN set the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-runs/demo}
PY=${PY:-.venv/bin/python}
DATA_DIR="$RUN_DIR/data"
mkdir -p "$RUN_DIR"
start=$(date +%s)

step() { echo; echo "==> [$(( $(date +%s) - start ))s] $*"; }

step "1/5 Building synth_av (tiny, 64x64x17 @ 8 fps, 16 kHz audio) into $DATA_DIR"
$PY -m experiments.build_data --dataset=synth_av --data_dir="$DATA_DIR" \
  --config=configs/synth_av.py:tiny \
  --config.dataset.train_size=512 --config.dataset.validation_size=64 \
  --config.dataset.test_size=64 --config.dataset.test_heldout_size=64 \
  2> "$RUN_DIR/build_data.log" | tail -n 40

step "2/5 Writing 6 clips as MP4 (H.264 + AAC soundtrack) with captions"
# --overwrite: a rerun of the demo rewrites its own clips.
$PY -m experiments.export_clips --dataset=synth_av --data_dir="$DATA_DIR" \
  --split=train --num=6 --out_dir="$RUN_DIR/clips" --overwrite \
  2> "$RUN_DIR/export_clips.log"
cat "$RUN_DIR/clips/captions.jsonl"

step "3/5 Training the sentencepiece text tokenizer on the train captions"
$PY -m experiments.train_text_tokenizer --dataset=synth_av \
  --data_dir="$DATA_DIR" --workdir="$RUN_DIR/text" --vocab_size=512 \
  2> "$RUN_DIR/train_text_tokenizer.log"

# No trained video tokenizer / audio codec stage in this demo yet: the tokens
# come from tiny RANDOMLY INITIALIZED ones (random_init=True) in
# $RUN_DIR/tokens (LM: $RUN_DIR/lm), or from trained ones in
# $RUN_DIR/tokens_trained (LM: $RUN_DIR/lm_trained), so a demo with
# VIDEO_TOK/AUDIO_CODEC after a plain one neither mixes their tokens nor
# resumes the other's LM.
VIDEO_TOK=${VIDEO_TOK:-}
AUDIO_CODEC=${AUDIO_CODEC:-}
if [[ -n "$VIDEO_TOK" && -n "$AUDIO_CODEC" ]]; then
  TOK_ARGS=(--config.video_tokenizer="$VIDEO_TOK" --config.audio_codec="$AUDIO_CODEC")
  TOK_WHAT="the trained tokenizers $VIDEO_TOK and $AUDIO_CODEC"
  TOKENS="$RUN_DIR/tokens_trained"
  LM_DIR="$RUN_DIR/lm_trained"
else
  TOK_ARGS=(--config.random_init=True)
  TOK_WHAT="tiny RANDOMLY INITIALIZED video tokenizer and audio codec (no trained ones in this demo; the LM still learns the token statistics)"
  TOKENS="$RUN_DIR/tokens"
  LM_DIR="$RUN_DIR/lm"
fi
TOKENIZE_TRAIN=${TOKENIZE_TRAIN:-32}
step "4/5 Tokenizing $TOKENIZE_TRAIN train + 8 validation clips with $TOK_WHAT into $TOKENS"
# Finished shards made by these tokenizers and settings are reused; with
# --overwrite, shards (and tokens.json) made by others (e.g. an earlier
# checkpoint of VIDEO_TOK, another TOKENIZE_TRAIN) are replaced.
for split_limit in validation:8 "train:$TOKENIZE_TRAIN"; do
  if ! $PY -m experiments.tokenize_data --config=configs/tokenize_data.py:tiny \
    --workdir="$TOKENS" --config.data_dir="$DATA_DIR" \
    --config.text_tokenizer="$RUN_DIR/text/text.model" "${TOK_ARGS[@]}" \
    --config.splits="('${split_limit%%:*}',)" --config.limit="${split_limit##*:}" \
    --overwrite 2>> "$RUN_DIR/tokenize_data.log" | grep -v '^tokens='; then
    echo "tokenize_data failed; the end of $RUN_DIR/tokenize_data.log:" >&2
    tail -n 5 "$RUN_DIR/tokenize_data.log" >&2
    exit 1
  fi
done
cat "$TOKENS/tokens.json" | tr -d '\n' | sed 's/  */ /g'; echo

# The LM reads its id ranges from the tokens' tokens.json and keeps a copy
# in its workdir (refusing to resume on other tokens). An LM trained on
# other tokens is not resumed: it starts afresh.
if [[ -d "$LM_DIR" ]] && ! cmp -s "$TOKENS/tokens.json" "$LM_DIR/tokens.json"; then
  echo "The tokens in $TOKENS changed since $LM_DIR was trained: removing it to train afresh"
  rm -rf "$LM_DIR"
fi

LM_STEPS=${LM_STEPS:-40}
step "5/5 Training the tiny LM for $LM_STEPS steps on all 11 tasks into $LM_DIR"
$PY -m experiments.train --config=configs/videopoet.py:tiny \
  --workdir="$LM_DIR" --config.data.path="$TOKENS" \
  --config.trainer.total_steps="$LM_STEPS" --config.trainer.eval_every="$LM_STEPS" \
  --config.trainer.checkpoint.every_steps="$LM_STEPS" \
  --config.data.eval_batches=1 2> "$RUN_DIR/train_lm.log"
grep -E "Training steps|Compiled" "$RUN_DIR/train_lm.log" | sed 's/^.*\] //' || true
$PY - "$LM_DIR/metrics.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
last = {k: v for r in rows for k, v in r.items()}
print("LM at step", rows[-1].get("step"), "- validation loss per task:")
for k in sorted(last):
  if k.startswith("val/") and k.endswith("/loss"):
    print(f"  {k[4:-5]:26s} {last[k]:.3f}")
PYEOF

echo
echo "Demo finished in $(( $(date +%s) - start ))s. Outputs:"
echo "  dataset:  $DATA_DIR/synth_av"
echo "  clips:    $RUN_DIR/clips/*.mp4 (captions in $RUN_DIR/clips/captions.jsonl)"
echo "  text:     $RUN_DIR/text/text.model"
echo "  tokens:   $TOKENS/*.array_record (+ tokens.json, <shard>.json)"
echo "  LM:       $LM_DIR (checkpoints/, metrics.jsonl, tensorboard/)"
echo "  logs:     $RUN_DIR/*.log"
