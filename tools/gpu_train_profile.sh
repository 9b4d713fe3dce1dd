#!/usr/bin/env bash
# Where the trainer's GPU time goes (issue 14's "faster trainer"): short trainings of the paper's
# d512-L8 shape, byte-level and GPT-NeoX-tokenised, each profiled over three steps by `train --profile`
# and summed by tools/profile_summary.py; the tokens/s of the untraced steps come from the logs. Also
# times the one-off tokenisation of the broad corpus into its cache.
#
# After `tools/gpu_session.sh build`, with corpus/pack and .carry carried:
#   bash tools/gpu_train_profile.sh
# CASES is "NAME|TRAIN ARGS" entries separated by ";" (defaults below).
set -u
OUT=${OUT:-/tmp/statescope-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
cli=${CLI:-build-cuda/app/statescope-cli}
[ -x "$cli" ] || bash tools/gpu_session.sh build || exit 1
data=${DATA:-corpus/broad/train.txt}
[ -f "$data" ] || tar xzf corpus/pack/broad.tgz -C corpus || exit 1
shape="--d-model 512 --layers 8 --d-state 128 --headdim 64"
neox=resources/tokenizers/gpt-neox-20b.json
CASES=${CASES:-"byte-t64|--train-length 64 --batch 512;\
byte-t256|--train-length 256 --batch 128;\
neox-t64|--tokenizer $neox --train-length 64 --batch 512;\
neox-t256|--tokenizer $neox --train-length 256 --batch 128"}
STEPS=${STEPS:-30}

IFS=';' read -ra entries <<<"$CASES"
for entry in "${entries[@]}"; do
  IFS='|' read -r name args <<<"$entry"
  name=$(echo "$name" | tr -d ' ')
  rm -rf "/tmp/profile-$name"
  echo "== $name: $args"
  start=$(date +%s%N)
  # shellcheck disable=SC2086 # args are words
  $cli train --data "$data" --out "/tmp/profile-$name" --device cuda --bf16 $shape $args --steps "$STEPS" \
    --warmup 2 --schedule wsd --lr 0.002 --log-every 10 --save-every 100000 --threads 8 \
    --profile "$OUT/$name.trace.json" --check-forward 2>&1 | tail -5
  echo "wall $(( ($(date +%s%N) - start) / 1000000 )) ms (tokenising, if any, included)"
  python3 tools/profile_summary.py "$OUT/$name.trace.json" --top 22 | tee "$OUT/$name.summary.txt"
  gzip -f "$OUT/$name.trace.json"
done
ls -la corpus/broad/ | grep tokens
