#!/usr/bin/env bash
# `make demo`: the pipeline on tiny configs, end to end, on this machine.
#
# Today: build `synth_av` (tiny) and write a few clips as MP4 with their
# soundtrack muxed in, plus their captions. Later stages (tokenizers, LM,
# sampling) append their jobs here. Outputs go under $RUN_DIR (default
# runs/demo, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-runs/demo}
PY=${PY:-.venv/bin/python}
DATA_DIR="$RUN_DIR/data"
mkdir -p "$RUN_DIR"
start=$(date +%s)

step() { echo; echo "==> [$(( $(date +%s) - start ))s] $*"; }

step "1/2 Building synth_av (tiny, 64x64x17 @ 8 fps, 16 kHz audio) into $DATA_DIR"
$PY -m experiments.build_data --dataset=synth_av --data_dir="$DATA_DIR" \
  --config=configs/synth_av.py:tiny \
  --config.dataset.train_size=512 --config.dataset.validation_size=64 \
  --config.dataset.test_size=64 --config.dataset.test_heldout_size=64 \
  2> "$RUN_DIR/build_data.log" | tail -n 40

step "2/2 Writing 6 clips as MP4 (H.264 + AAC soundtrack) with captions"
$PY -m experiments.export_clips --dataset=synth_av --data_dir="$DATA_DIR" \
  --split=train --num=6 --out_dir="$RUN_DIR/clips" \
  2> "$RUN_DIR/export_clips.log"
cat "$RUN_DIR/clips/captions.jsonl"

echo
echo "Demo finished in $(( $(date +%s) - start ))s. Outputs:"
echo "  dataset:  $DATA_DIR/synth_av"
echo "  clips:    $RUN_DIR/clips/*.mp4 (captions in $RUN_DIR/clips/captions.jsonl)"
echo "  logs:     $RUN_DIR/*.log"
