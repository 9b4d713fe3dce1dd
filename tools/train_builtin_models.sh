#!/usr/bin/env bash
# Trains the candidate built-in models on the GPU machine (after tools/make_corpus.sh here and
# `tools/gpu_session.sh build` there) and measures them on held-out text. Results go to $OUT.
#   tiny-collapse:  d_state 128, trained at T_train = 256
#   tiny-forget:    the same shape trained at T_train = 4096 (same tokens per step)
#   tiny-forget-s:  d_state 8 at T_train = 256 (a smaller state at the same length)
set -u
OUT=${OUT:-/tmp/statescope-out}
cli=build-cuda/app/statescope-cli
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
common=(--data corpus/train.txt --held-out corpus/heldout.txt --device cuda --bf16 --d-model 256 --layers 2
        --headdim 64 --warmup 100 --lr 2e-3 --schedule wsd --seed 1 --log-every 200 --save-every 200
        --data-description "King James Bible (Debian bible-kjv), first 92 %, bytes")
steps=${STEPS:-1200}
train() { # name, seconds, args...
  local name=$1 secs=$2; shift 2
  echo "== train $name"
  timeout "$secs" $cli train --out "models/$name" "${common[@]}" --steps "$steps" "$@"
}
mkdir -p models
train tiny-collapse 150 --d-state 128 --train-length 256 --batch 64
train tiny-forget 150 --d-state 128 --train-length 4096 --batch 4
train tiny-forget-s 150 --d-state 8 --train-length 256 --batch 64
head -c 40000 corpus/heldout.txt > /tmp/heldout-40k.txt
for m in models/*/; do
  n=$(basename "$m")
  $cli run --model "$m" --text /tmp/heldout-40k.txt --out "$OUT/$n.h5" --device cuda --chunk-size 8192 --quiet
  python3 - "$OUT/$n.h5" "$m/model_card.json" <<'PY'
import h5py, json, sys, numpy as np
f = h5py.File(sys.argv[1], "r", swmr=True); card = json.load(open(sys.argv[2]))
nll = f["nll"][:]; T = card["training_length"]
ref = np.nanmean(nll[max(0, T - 128):T]); late = np.nanmean(nll[16384:32768])
norm = f["probes/state_norm"][:]; grow = norm[30000:32768].mean(0) / norm[T - 64:T].mean(0)
print(f"{card['name']}: T_train {T}, steps {card['steps']}, loss {card['final_loss']:.3f}, held-out {card.get('held_out_loss', -1):.3f}; "
      f"mean nll [T-128,T) {ref:.3f}, [16K,32K) {late:.3f}, ratio {late / ref:.2f}; "
      f"buckets of 2K: {' '.join(f'{np.nanmean(nll[i:i+2048]):.2f}' for i in range(0, 40000, 4096))}; "
      f"max state-norm growth {grow.max():.1f}x")
PY
done
tar czf "$OUT/models.tgz" models
