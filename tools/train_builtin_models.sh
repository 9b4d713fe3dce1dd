#!/usr/bin/env bash
# Trains candidate built-in models side by side on the GPU machine and measures each with
# `statescope-cli eval` on held-out text. Run there after `tools/gpu_session.sh build`, with the corpus
# carried (tools/make_corpus.sh here first):
#   RUNS="name:args;name:args" BUDGET=380 bash tools/train_builtin_models.sh
# Every run gets the common options below plus its own (a run's own --seed replaces the common one);
# all start together, spread round-robin over the GPUs there are.
# DESCRIPTION replaces the corpus description written into the model cards; DATA the training text;
# HELDOUT the held-out texts, space-separated: the first one is the trainer's, every one is evaluated.
# A run's own --steps replaces the common (time-budgeted) step count; a run resumes from its
# checkpoint when the machine still has it. TRAIN_LIMIT stops training after that many seconds (the
# run keeps its last checkpoint, every SAVE_EVERY steps); BUDGET=0 keeps the runs' step counts.
# Results go to $OUT: summary.log (training tails and eval tables) and models.tgz.part-* (the model
# folders without optimizer state, which stays for a resume; join with `cat models.tgz.part-* | tar xz`).
set -u
OUT=${OUT:-/tmp/statescope-out}
mkdir -p "$OUT" models logs
cli=${CLI:-build-cuda/app/statescope-cli}
device=${DEVICE:-cuda}
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
budget=${BUDGET:-380}
read -ra heldout <<<"${HELDOUT:-corpus/heldout.txt}"
common=(--data "${DATA:-corpus/train.txt}" --held-out "${heldout[0]}" --device "$device" $([ "$device" = cpu ] || echo --bf16) --warmup 200 --schedule wsd
        --lr ${LR:-2e-3} --threads 2 --log-every 500 --save-every ${SAVE_EVERY:-100000} --time-budget "$budget"
        --data-description "${DESCRIPTION:-King James Bible (Debian bible-kjv), first 92 %, bytes}")
gpus=$( [ "$device" = cpu ] && echo 1 || nvidia-smi -L 2>/dev/null | grep -c '^GPU' || echo 1)
[ "$gpus" -ge 1 ] || gpus=1
IFS=';' read -ra runs <<<"${RUNS:?RUNS=name:args;...}"
i=0
for r in "${runs[@]}"; do
  name=${r%%:*}
  args=${r#*:}
  seed=(--seed 1)
  [[ " $args " == *" --seed "* ]] && seed=()
  steps=(--steps 1000000)
  [[ " $args " == *" --steps "* ]] && steps=()
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES=$(( i % gpus )) timeout -s TERM "${TRAIN_LIMIT:-0}" $cli train --out "models/$name" "${common[@]}" "${seed[@]}" "${steps[@]}" $args \
    >"logs/$name.log" 2>&1 &
  i=$(( i + 1 ))
done
wait
for r in "${runs[@]}"; do
  name=${r%%:*}
  { echo "== $name: ${r#*:}"; tail -3 "logs/$name.log"; } >>"$OUT/summary.log"
done
for r in "${runs[@]}"; do
  name=${r%%:*}
  T=$(python3 -c "import json;print(json.load(open('models/$name/model_card.json'))['training_length'])" 2>/dev/null || echo 0)
  len=32768
  [ "$T" -gt 512 ] && len=$(( T * 64 < 262144 ? T * 64 : 262144 ))
  samples=$(( len > 65536 ? 1 : 8 ))
  { for text in "${heldout[@]}"; do
    echo "== eval $name (T_train $T) on $text"
    $cli eval --model "models/$name" --text "$text" --device "$device" --length "$len" --samples "$samples" \
      --chunk-size 8192 --range 16384:32768 --json "models/$name/eval-$(basename "$text" .txt).json" --quiet 2>&1
    if [ "$len" -gt 32768 ]; then
      $cli eval --model "models/$name" --text "$text" --device "$device" --length "$len" --samples 1 \
        --chunk-size 8192 --range $(( len / 2 )):"$len" --quiet 2>&1 | tail -4
    fi
  done
  } >>"$OUT/summary.log"
  cp "logs/$name.log" "models/$name/train.log"
done
tar czf - --exclude=optimizer.pt --exclude=trainer_state.json models | split -b 15M - "$OUT/models.tgz.part-"
cat "$OUT/summary.log"
