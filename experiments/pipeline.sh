# Shell functions shared by experiments/demo.sh and experiments/quality.sh
# (sourced, not run). Expects RUN_DIR and PY; sets `start`.
start=$(date +%s)

# A progress line with the seconds since the pipeline started.
step() { echo; echo "==> [$(( $(date +%s) - start ))s] $*"; }

# Runs a job with its log in $RUN_DIR/<name>.log; on failure shows its end.
job() {
  local name=$1; shift
  if ! "$@" 2>> "$RUN_DIR/$name.log"; then
    echo "$name failed; the end of $RUN_DIR/$name.log:" >&2
    tail -n 15 "$RUN_DIR/$name.log" >&2
    exit 1
  fi
}

# An LM trained on other tokens is not resumed (the trainer would refuse):
# `fresh_lm TOKENS LM_DIR` removes it so that it trains afresh.
fresh_lm() {
  if [[ -f "$2/tokens.json" ]] && ! cmp -s "$1/tokens.json" "$2/tokens.json"; then
    echo "The tokens in $1 changed since $2 was trained: removing it to train afresh"
    rm -rf "$2"
  fi
}

# `tokenize TOKENS DATA_DIR TEXT VIDEO_TOK AUDIO_CODEC split:limit...`:
# tokenize_data per split. Finished shards made by these tokenizers and
# settings are reused; with --overwrite, shards (and tokens.json) made by
# others (e.g. an earlier checkpoint of the tokenizer) are replaced.
tokenize() {
  local tokens=$1 data=$2 text=$3 video=$4 audio=$5; shift 5
  local split_limit
  for split_limit in "$@"; do
    job tokenize_data $PY -m experiments.tokenize_data \
      --config=configs/tokenize_data.py:tiny --workdir="$tokens" \
      --config.data.data_dir="$data" --config.text_tokenizer="$text" \
      --config.video_tokenizer="$video" --config.audio_codec="$audio" \
      --config.splits="('${split_limit%%:*}',)" \
      --config.limit="${split_limit##*:}" --overwrite
  done
}
