#!/usr/bin/env bash
# The passkey-capable built-in model and its siblings (issue 11, docs/built-in-models.md): byte-level
# Mamba-2 models trained at T_train = 1024 on the King James Bible with 30 % of the sequences starting
# with a passkey document (the sweep's own template, `statescope-cli train --passkey-fraction`), one
# per state size, then each swept on the paper's grid: 10 depths x {1/4 ... 16} T_train, 200 samples
# per length (20 per depth bin), seed 0. Run on the GPU machine after `tools/gpu_session.sh build`,
# with the corpus carried (tools/make_corpus.sh here first):
#   BUDGET=300 bash tools/train_passkey_models.sh
# $OUT gets summary.log (training, NLL and the passkey tables), models.tgz.part-* and passkey.tgz.
set -u
OUT=${OUT:-/tmp/statescope-out}
cli=${CLI:-build-cuda/app/statescope-cli}
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
shape="--d-model 128 --layers 6 --headdim 32 --train-length 1024 --batch 32 --passkey-fraction 0.3"
RUNS=${RUNS:-"pk-n16:$shape --d-state 16;pk-n64:$shape --d-state 64;pk-n256:$shape --d-state 256"}
export RUNS
export DESCRIPTION="King James Bible (Debian bible-kjv), first 92 %, bytes; 30 % of the sequences begin with a passkey prompt (target length 220 to 1017 tokens) and its answer"
bash tools/train_builtin_models.sh >/dev/null
IFS=';' read -ra runs <<<"$RUNS"
mkdir -p passkey
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || echo 1)
[ "$gpus" -ge 1 ] || gpus=1
i=0
for r in "${runs[@]}"; do
  name=${r%%:*}
  i=$(( i + 1 ))
  CUDA_VISIBLE_DEVICES=$(( (i - 1) % gpus )) $cli passkey --model "models/$name" --lengths "${LENGTHS:-256,512,1024,2048,4096,8192,16384}" \
    --samples "${SAMPLES:-200}" --batch 100 --seed 0 --device "${DEVICE:-cuda}" --out "passkey/$name.h5" \
    --quiet >"passkey/$name.log" 2>&1 &
done
wait
for r in "${runs[@]}"; do
  name=${r%%:*}
  { echo "== passkey $name"; cat "passkey/$name.log"; } >>"$OUT/summary.log"
done
tar czf "$OUT/passkey.tgz" passkey
cat "$OUT/summary.log"
