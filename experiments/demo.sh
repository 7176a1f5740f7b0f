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
$PY -m experiments.export_clips --dataset=synth_av --data_dir="$DATA_DIR" \
  --split=train --num=6 --out_dir="$RUN_DIR/clips" \
  2> "$RUN_DIR/export_clips.log"
cat "$RUN_DIR/clips/captions.jsonl"

step "3/5 Training the sentencepiece text tokenizer on the train captions"
$PY -m experiments.train_text_tokenizer --dataset=synth_av \
  --data_dir="$DATA_DIR" --workdir="$RUN_DIR/text" --vocab_size=512 \
  2> "$RUN_DIR/train_text_tokenizer.log"

# No trained video tokenizer / audio codec stage in this demo yet: the tokens
# come from tiny RANDOMLY INITIALIZED ones (random_init=True).
VIDEO_TOK=${VIDEO_TOK:-}
AUDIO_CODEC=${AUDIO_CODEC:-}
if [[ -n "$VIDEO_TOK" && -n "$AUDIO_CODEC" ]]; then
  TOK_ARGS=(--config.video_tokenizer="$VIDEO_TOK" --config.audio_codec="$AUDIO_CODEC")
  TOK_WHAT="the trained tokenizers $VIDEO_TOK and $AUDIO_CODEC"
else
  TOK_ARGS=(--config.random_init=True)
  TOK_WHAT="tiny RANDOMLY INITIALIZED video tokenizer and audio codec (no trained ones in this demo; the LM still learns the token statistics)"
fi
TOKENIZE_TRAIN=${TOKENIZE_TRAIN:-32}
step "4/5 Tokenizing $TOKENIZE_TRAIN train + 8 validation clips with $TOK_WHAT"
for split_limit in validation:8 "train:$TOKENIZE_TRAIN"; do
  $PY -m experiments.tokenize_data --config=configs/tokenize_data.py:tiny \
    --workdir="$RUN_DIR/tokens" --config.data_dir="$DATA_DIR" \
    --config.text_tokenizer="$RUN_DIR/text/text.model" "${TOK_ARGS[@]}" \
    --config.splits="('${split_limit%%:*}',)" --config.limit="${split_limit##*:}" \
    2>> "$RUN_DIR/tokenize_data.log" | grep -v '^tokens='
done
cat "$RUN_DIR/tokens/tokens.json" | tr -d '\n' | sed 's/  */ /g'; echo

LM_STEPS=${LM_STEPS:-40}
step "5/5 Training the tiny LM for $LM_STEPS steps on all 11 tasks"
$PY -m experiments.train --config=configs/videopoet.py:tiny \
  --workdir="$RUN_DIR/lm" --config.data.path="$RUN_DIR/tokens" \
  --config.trainer.total_steps="$LM_STEPS" --config.trainer.eval_every="$LM_STEPS" \
  --config.trainer.checkpoint.every_steps="$LM_STEPS" \
  --config.data.eval_batches=1 2> "$RUN_DIR/train_lm.log"
grep -E "Training steps|Compiled" "$RUN_DIR/train_lm.log" | sed 's/^.*\] //' || true
$PY - "$RUN_DIR/lm/metrics.jsonl" <<'PYEOF'
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
echo "  tokens:   $RUN_DIR/tokens/*.array_record (+ tokens.json)"
echo "  LM:       $RUN_DIR/lm (checkpoints/, metrics.jsonl, tensorboard/)"
echo "  logs:     $RUN_DIR/*.log"
