#!/usr/bin/env bash
# Issue 14's budget ladder: how forgetting changes with the training budget. Each run is one long training
# at a constant learning rate (a WSD schedule whose decay is never reached) that keeps a snapshot of the
# model every so many steps (`train --snapshot-every`). While the runs train, every finished snapshot is
# judged with `sweep judge` by a sweep spec's held-out texts, windows and criterion, so each snapshot is
# read exactly as a sweep job of that budget would be (without the schedule's final decay). The runs share
# the GPU. After LIMIT seconds they stop; a later call on the warm machine resumes them from their last
# checkpoint (every snapshot is also a checkpoint). Results to $OUT/results.tgz (judgements, cards, logs,
# no weights) and the table of tools/ladder_summary.py on stdout.
#
# After `tools/gpu_session.sh build`, with corpus/pack carried (as tools/gpu_forget_sweep.sh):
#   LIMIT=420 bash tools/gpu_budget_ladder.sh
# RUNS is "NAME|JUDGE_SPEC|TRAIN ARGS" entries separated by ";" (defaults below).
set -u
OUT=${OUT:-/tmp/statescope-out}
mkdir -p "$OUT"
limit=${LIMIT:-420}
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
cli=${CLI:-build-cuda/app/statescope-cli}
[ -x "$cli" ] || bash tools/gpu_session.sh build || exit 1
data=${DATA:-corpus/broad/train.txt}
[ -f "$data" ] || tar xzf corpus/pack/broad.tgz -C corpus || exit 1
root=${LADDER:-ladder}
device=${DEVICE:-cuda}
bf16=--bf16
[ "$device" = cpu ] && bf16=
shape="--d-model 128 --layers 6 --headdim 32"
slow="--dt-init 1e-5:1e-4 --a-init 1:1"
# The sweeps' shape, learning rate and steps of 32,768 tokens. The default-init runs continue
# tools/sweeps/budget-probe.json (d_state 1024, T_train 128, 48 M tokens: no collapse) far past its
# budget, once in its steps and once in steps of 4,096 tokens (8 times the steps per token); the slow run
# is forget-slow-long's d_state 256 at T_train 8192, which forgets by loss but fails the norm part.
RUNS=${RUNS:-"default-n1024-t128-b256|tools/sweeps/budget-probe.json|$shape --d-state 1024 --train-length 128 --batch 256 --steps 100000 --warmup 20 --snapshot-every 250 --save-every 250;\
default-n1024-t128-b32|tools/sweeps/budget-probe.json|$shape --d-state 1024 --train-length 128 --batch 32 --steps 800000 --warmup 160 --snapshot-every 2000 --save-every 2000;\
slow-n256-t8192-b4|tools/sweeps/forget-slow-long.json|$shape --d-state 256 --train-length 8192 --batch 4 --steps 100000 --warmup 20 --snapshot-every 250 --save-every 250 $slow"}

mkdir -p "$root"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 >>"$OUT/gpu-util.csv" 2>/dev/null &
smi=$!
trainers=()
IFS=';' read -ra entries <<<"$RUNS"
for entry in "${entries[@]}"; do
  IFS='|' read -r name spec args <<<"$entry"
  name=$(echo "$name" | tr -d ' ')
  mkdir -p "$root/$name"
  echo "$spec" >"$root/$name/judge-spec"
  echo "$args" >"$root/$name/train-args"
  # shellcheck disable=SC2086 # args are words
  timeout -s TERM "$limit" $cli train --data "$data" --out "$root/$name/model" --device "$device" $bf16 \
    --schedule wsd --lr 0.002 --log-every 50 --threads 1 $args >>"$root/$name/train.log" 2>&1 &
  trainers+=($!)
done

# Judges every snapshot that has its card (written last) and no judgement yet.
judge_new() {
  for d in "$root"/*/model/snapshots/step-*; do
    [ -f "$d/model_card.json" ] && [ ! -f "$d/judge.json" ] || continue
    run=${d%/model/snapshots/*}
    if $cli sweep judge "$(cat "$run/judge-spec")" --model "$d" --device "$device" --threads 1 \
      --json "$d/judge.json.part" >"$d/judge.log" 2>&1; then
      mv "$d/judge.json.part" "$d/judge.json"
      rm -f "$d/model.safetensors" # judged: the weights are no longer needed
    fi
  done
}
alive() {
  for p in "${trainers[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done
  return 1
}
start=$(date +%s)
while alive; do
  judge_new
  sleep 10
done
wait "${trainers[@]}" 2>/dev/null
echo "training: $(($(date +%s) - start)) s"
judge_new
kill $smi 2>/dev/null
for entry in "${entries[@]}"; do
  name=$(echo "${entry%%|*}" | tr -d ' ')
  tail -2 "$root/$name/train.log"
done
python3 tools/ladder_summary.py "$root" | tee "$OUT/ladder-summary.txt"
awk -F', ' '$2 ~ /^[0-9]/ {u+=$2; n++} END{if(n) printf "mean GPU utilisation %.0f %% over %d samples\n", u/n, n}' "$OUT/gpu-util.csv"
tar czf "$OUT/results.tgz" --exclude='*.safetensors' --exclude='optimizer.pt' "$root"
ls -la "$OUT"
