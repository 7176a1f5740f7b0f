#!/usr/bin/env bash
# `make quality`: trains the tokenizers and an LM on `synth_av` with configs
# sized for about 1.5 hours on a 2-core CPU, then scores every task with the
# oracle over the `test` and `test_heldout` splits (`experiments.evaluate`,
# configs/evaluate.py:quality) beside the ground-truth and chance rows.
#
# Every stage resumes: the training jobs continue from their workdirs,
# tokenize_data keeps its finished shards, the sweep reruns only its missing
# cells; so a rerun after a kill picks up where it stopped, and a rerun of a
# finished run only rewrites the report. Outputs under $RUN_DIR (default
# runs/quality, git-ignored); the headline is $RUN_DIR/eval/results.md and
# $RUN_DIR/eval/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-runs/quality}
PY=${PY:-.venv/bin/python}
DATA_DIR="$RUN_DIR/data"
mkdir -p "$RUN_DIR"
source experiments/pipeline.sh

step "1/7 Building synth_av (tiny: 2,000 train clips, 100 per eval split) into $DATA_DIR"
job build_data $PY -m experiments.build_data \
  --config=configs/synth_av.py:tiny --config.data.data_dir="$DATA_DIR" \
  | tail -n 5

step "2/7 Training the sentencepiece text tokenizer on the train captions"
job train_text_tokenizer $PY -m experiments.train_text_tokenizer \
  --config=configs/train_text_tokenizer.py \
  --config.data.data_dir="$DATA_DIR" --workdir="$RUN_DIR/text" \
  --config.vocab_size=512

VIDEO_TOK="$RUN_DIR/video_tokenizer"
step "3/7 Training MAGVIT-v2 (configs/magvit2.py:quality: 5x8x8 codes of 2^10, 2,000 steps) into $VIDEO_TOK"
job train_video_tokenizer $PY -m experiments.train_video_tokenizer \
  --config=configs/magvit2.py:quality --workdir="$VIDEO_TOK" \
  --config.data.data_dir="$DATA_DIR"
grep -h -o "eval/psnr[^,]*" "$VIDEO_TOK/metrics.jsonl" | tail -n 1 || true

AUDIO_CODEC="$RUN_DIR/audio_codec"
step "4/7 Training SoundStream (configs/soundstream.py:quality: 1,500 steps) into $AUDIO_CODEC"
job train_audio_codec $PY -m experiments.train_audio_codec \
  --config=configs/soundstream.py:quality --workdir="$AUDIO_CODEC" \
  --config.data.data_dir="$DATA_DIR"
grep -h -o "eval/si_sdr[^,]*" "$AUDIO_CODEC/metrics.jsonl" | tail -n 1 || true

TOKENS="$RUN_DIR/tokens"
step "5/7 Tokenizing the 2,000 train + 100 validation clips into $TOKENS"
tokenize "$TOKENS" "$DATA_DIR" "$RUN_DIR/text/text.model" "$VIDEO_TOK" \
  "$AUDIO_CODEC" validation:0 train:0

LM_DIR="$RUN_DIR/lm"
fresh_lm "$TOKENS" "$LM_DIR"
step "6/7 Training the LM (configs/videopoet.py:quality: 4 x 128, 8,000 steps) on all 11 tasks into $LM_DIR"
job train_lm $PY -m experiments.train --config=configs/videopoet.py:quality \
  --workdir="$LM_DIR" --config.data.data_dir="$TOKENS"

EVAL_DIR="$RUN_DIR/eval"
step "7/7 Scoring every task on test and test_heldout (configs/evaluate.py:quality) into $EVAL_DIR"
job evaluate $PY -m experiments.evaluate --config=configs/evaluate.py:quality \
  --workdir="$EVAL_DIR" --config.data.data_dir="$DATA_DIR" \
  --config.lms="(('$LM_DIR', 0),)"

echo
echo "make quality finished in $(( $(date +%s) - start ))s (this run; stages"
echo "done before were skipped). Results: $EVAL_DIR/results.md,"
echo "$EVAL_DIR/report.html (samples with sound), $EVAL_DIR/results.csv."
