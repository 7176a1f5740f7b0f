#!/usr/bin/env bash
# `make demo`: the whole pipeline on tiny configs, on this machine, ending in
# generated videos with sound.
#
# Builds `synth_av` (tiny), trains the video tokenizer, the audio codec and
# the text tokenizer, tokenizes the clips with them, trains the tiny LM on
# all 11 tasks, then samples a prompts file of its own (text-to-video with
# sound, text-to-image, image-to-video, frame continuation, a 4-second long
# video, inpainting, outpainting, video-to-audio, ...) into
# $RUN_DIR/samples; trains the super-resolution transformer on 32x32 ->
# 64x64 token pairs and samples one text-to-video through it (64x64 ->
# 128x128) into $RUN_DIR/samples_sr. Outputs go under $RUN_DIR (default runs/demo,
# git-ignored). Sizes: LM_STEPS, TOKENIZE_TRAIN; VIDEO_TOK / AUDIO_CODEC
# name already trained workdirs to use instead of training them here.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-runs/demo}
PY=${PY:-.venv/bin/python}
DATA_DIR="$RUN_DIR/data"
mkdir -p "$RUN_DIR"
source experiments/pipeline.sh
rm -f "$RUN_DIR"/*.log

step "1/9 Building synth_av (tiny, 64x64x17 @ 8 fps, 16 kHz audio) into $DATA_DIR"
job build_data $PY -m experiments.build_data \
  --config=configs/synth_av.py:tiny --config.data.data_dir="$DATA_DIR" \
  --config.dataset.train_size=512 --config.dataset.validation_size=64 \
  --config.dataset.test_size=64 --config.dataset.test_heldout_size=64 \
  | tail -n 40

step "2/9 Writing 6 test clips as MP4 (H.264 + AAC soundtrack) with captions"
# The sampler's inputs below; --overwrite: a rerun rewrites its own clips.
job export_clips $PY -m experiments.export_clips \
  --config=configs/export_clips.py --config.data.data_dir="$DATA_DIR" \
  --config.split=test --config.num=6 --out_dir="$RUN_DIR/clips" --overwrite
cat "$RUN_DIR/clips/captions.jsonl"

step "3/9 Training the sentencepiece text tokenizer on the train captions"
job train_text_tokenizer $PY -m experiments.train_text_tokenizer \
  --config=configs/train_text_tokenizer.py \
  --config.data.data_dir="$DATA_DIR" --workdir="$RUN_DIR/text" \
  --config.vocab_size=512

# Each training job resumes its workdir, so a rerun of the demo finishes at
# once; the configs' `demo` presets are ~4 CPU minutes each.
VIDEO_TOK=${VIDEO_TOK:-$RUN_DIR/video_tokenizer}
AUDIO_CODEC=${AUDIO_CODEC:-$RUN_DIR/audio_codec}
if [[ "$VIDEO_TOK" == "$RUN_DIR/video_tokenizer" ]]; then
  step "4/9 Training the MAGVIT-v2 video tokenizer (configs/magvit2.py:demo: 5x8x8 codes of 2^10) into $VIDEO_TOK"
  job train_video_tokenizer $PY -m experiments.train_video_tokenizer \
    --config=configs/magvit2.py:demo --workdir="$VIDEO_TOK" \
    --config.data.data_dir="$DATA_DIR"
  grep -h -o "eval/psnr[^,]*" "$VIDEO_TOK/metrics.jsonl" | tail -n 1 || true
else
  step "4/9 Using the video tokenizer in $VIDEO_TOK"
fi
if [[ "$AUDIO_CODEC" == "$RUN_DIR/audio_codec" ]]; then
  step "5/9 Training the SoundStream audio codec (configs/soundstream.py:demo) into $AUDIO_CODEC"
  job train_audio_codec $PY -m experiments.train_audio_codec \
    --config=configs/soundstream.py:demo --workdir="$AUDIO_CODEC" \
    --config.data.data_dir="$DATA_DIR"
  grep -h -o "eval/si_sdr[^,]*" "$AUDIO_CODEC/metrics.jsonl" | tail -n 1 || true
else
  step "5/9 Using the audio codec in $AUDIO_CODEC"
fi

TOKENS="$RUN_DIR/tokens"
TOKENIZE_TRAIN=${TOKENIZE_TRAIN:-512}
step "6/9 Tokenizing $TOKENIZE_TRAIN train + 64 validation clips into $TOKENS"
tokenize "$TOKENS" "$DATA_DIR" "$RUN_DIR/text/text.model" "$VIDEO_TOK" \
  "$AUDIO_CODEC" validation:64 "train:$TOKENIZE_TRAIN"
$PY - "$TOKENS/tokens.json" <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"tokens.json: video tokenizer {m['video_tokenizer']} (step"
      f" {m['video_tokenizer_step']}), audio codec {m['audio_codec']} (step"
      f" {m['audio_codec_step']}), 2^{m['visual_bits']} visual codes,"
      f" {m['audio_levels']} x {m['audio_codebook']} audio codes")
PYEOF

LM_DIR="$RUN_DIR/lm"
fresh_lm "$TOKENS" "$LM_DIR"
LM_STEPS=${LM_STEPS:-1500}
step "7/9 Training the tiny LM for $LM_STEPS steps on all 11 tasks into $LM_DIR"
job train_lm $PY -m experiments.train --config=configs/videopoet.py:tiny \
  --workdir="$LM_DIR" --config.data.data_dir="$TOKENS" \
  --config.trainer.total_steps="$LM_STEPS" \
  --config.trainer.eval_every="$LM_STEPS" \
  --config.trainer.checkpoint.every_steps=500 \
  --config.data.eval_batches=2
$PY - "$LM_DIR/metrics.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
last = {k: v for r in rows for k, v in r.items()}
print("LM at step", rows[-1].get("step"), "- validation loss per task:")
for k in sorted(last):
  if k.startswith("val/") and k.endswith("/loss"):
    print(f"  {k[4:-5]:26s} {last[k]:.3f}")
PYEOF

SR_TOKENS="$RUN_DIR/tokens_sr"
SR_DIR="$RUN_DIR/superres"
step "8/9 Training the super-resolution transformer (configs/superres.py:demo: 5x4x4 -> 5x8x8 codes) into $SR_DIR"
# The clips' codes with those of the clips bicubic-downsampled to 32x32.
job tokenize_sr $PY -m experiments.tokenize_data \
  --config=configs/tokenize_data.py:tiny --workdir="$SR_TOKENS" \
  --config.data.data_dir="$DATA_DIR" \
  --config.text_tokenizer="$RUN_DIR/text/text.model" \
  --config.video_tokenizer="$VIDEO_TOK" --config.audio_levels=0 \
  --config.structure=False --config.superres_factor=2 \
  --config.splits="('train',)" --config.limit="$TOKENIZE_TRAIN" --overwrite
fresh_lm "$SR_TOKENS" "$SR_DIR"  # Other tokens: train it afresh.
job train_superres $PY -m experiments.train_superres \
  --config=configs/superres.py:demo --workdir="$SR_DIR" \
  --config.data.data_dir="$SR_TOKENS"
tail -n 1 "$SR_DIR/metrics.jsonl"

step "9/9 Sampling the demo's prompts with the LM into $RUN_DIR/samples"
PROMPTS="$RUN_DIR/prompts.jsonl"
$PY - "$RUN_DIR/clips" "$PROMPTS" <<'PYEOF'
import json, os, sys
import numpy as np
from PIL import Image
from videopoet.data import media
clips, out = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(os.path.join(clips, "captions.jsonl"))]
video = lambda i: os.path.abspath(os.path.join(clips, rows[i]["file"]))
caption = lambda i: rows[i]["caption"]
first = os.path.join(clips, "first_frame.png")  # image-to-video's input.
Image.fromarray(media.read_video(video(2))[0][0]).save(first)
requests = [
    {"task": "text_to_video_with_audio", "text": caption(0), "seed": 0},
    {"task": "text_to_image", "text": caption(1), "seed": 1},
    {"task": "image_to_video", "image": os.path.abspath(first),
     "text": caption(2), "seed": 2},
    {"task": "frame_continuation", "video": video(3), "seed": 3},
    {"task": "long_video", "text": caption(4), "seconds": 4, "seed": 4},
    {"task": "inpainting", "video": video(5), "mask": "box", "seed": 5},
    {"task": "outpainting", "video": video(0), "mask": "right", "seed": 6},
    {"task": "video_to_audio", "video": video(1), "seed": 7},
    {"task": "audio_to_video", "audio": video(2), "seed": 8},
    {"task": "stylization", "structure": video(3), "text": caption(4),
     "seed": 9},
]
with open(out, "w") as f:
  f.writelines(json.dumps(r) + "\n" for r in requests)
print(f"{len(requests)} requests in {out}")
PYEOF
# The samples of an earlier demo came from an earlier LM: start afresh.
rm -rf "$RUN_DIR/samples"
job sample $PY -m experiments.sample --config=configs/sample.py:demo \
  --workdir="$RUN_DIR/samples" --config.lm="$LM_DIR" \
  --config.prompts="$PROMPTS"
$PY - "$RUN_DIR/samples" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
for line in open(os.path.join(out, "manifest.jsonl")):
  r = json.loads(line)
  files = [v for o in r.get("outputs", []) for k, v in o.items() if k != "sample"]
  what = ", ".join(os.path.join(out, f) for f in files if f.endswith((".mp4", ".png"))) if r["status"] == "done" else r["reason"]
  print(f"  {r.get('task', '?'):26s} {r['status']:5s} {r['seconds']:6.1f}s  {what}")
PYEOF

# One super-resolved video: the first request through the SR stage.
SR_PROMPTS="$RUN_DIR/prompts_sr.jsonl"
head -n 1 "$PROMPTS" > "$SR_PROMPTS"
rm -rf "$RUN_DIR/samples_sr"
job sample_sr $PY -m experiments.sample --config=configs/sample.py:demo \
  --workdir="$RUN_DIR/samples_sr" --config.lm="$LM_DIR" \
  --config.prompts="$SR_PROMPTS" --config.superres="$SR_DIR"
$PY - "$RUN_DIR/samples_sr" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
for line in open(os.path.join(out, "manifest.jsonl")):
  r = json.loads(line)
  if r["status"] != "done":
    print(f"  super-resolved {r.get('task', '?')}: {r['status']} {r.get('reason', '')}")
    continue
  grids = " -> ".join("x".join(map(str, s["grid"])) for s in r["superres"])
  print(f"  super-resolved {r['task']} (codes {grids}):"
        f" {os.path.join(out, r['outputs'][0]['mp4'])}")
PYEOF

echo
echo "Demo finished in $(( $(date +%s) - start ))s. Outputs:"
echo "  dataset:     $DATA_DIR/synth_av"
echo "  clips:       $RUN_DIR/clips/*.mp4 (captions in $RUN_DIR/clips/captions.jsonl)"
echo "  tokenizers:  $VIDEO_TOK, $AUDIO_CODEC, $RUN_DIR/text/text.model"
echo "  tokens:      $TOKENS (tokens.json names what made them)"
echo "  LM:          $LM_DIR (checkpoints/, metrics.jsonl, tensorboard/)"
echo "  samples:     $RUN_DIR/samples/*/sample_*.mp4 (manifest.jsonl, overview.png)"
echo "  SR:          $SR_DIR; super-resolved: $RUN_DIR/samples_sr/*/sample_*.mp4"
echo "  logs:        $RUN_DIR/*.log"
