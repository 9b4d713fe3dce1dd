#!/usr/bin/env bash
# Second attempt at the built-in models (GPU machine, after `tools/gpu_session.sh build`): every head
# starts with a slow forget gate, so forgetting must be learned; T_train 256 vs 4096, same shape.
set -u
OUT=${OUT:-/tmp/statescope-out}
cli=build-cuda/app/statescope-cli
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
common=(--data corpus/train.txt --held-out corpus/heldout.txt --device cuda --bf16 --d-model 256 --layers 2
        --headdim 64 --d-state 128 --warmup 100 --lr 2e-3 --schedule wsd --seed 1 --log-every 400 --save-every 1200
        --steps 1200 --slow-init --data-description "King James Bible (Debian bible-kjv), first 92 %, bytes")
mkdir -p models
timeout 90 $cli train --out models/tiny-collapse "${common[@]}" --train-length 256 --batch 64 | tail -1
timeout 90 $cli train --out models/tiny-forget "${common[@]}" --train-length 4096 --batch 4 | tail -1
head -c 262144 corpus/heldout.txt > /tmp/h.txt
for n in tiny-collapse tiny-forget; do
  $cli run --model models/$n --text /tmp/h.txt --out "$OUT/$n.h5" --device cuda --chunk-size 16384 --quiet 2>/dev/null
  python3 - "$OUT/$n.h5" models/$n/model_card.json <<'PY'
import h5py, json, sys, numpy as np
f = h5py.File(sys.argv[1], "r"); card = json.load(open(sys.argv[2])); n = f["nll"][:]; T = card["training_length"]
s = f["probes/state_norm"][:]
print(card["name"], "T_train", T, "held-out", round(card.get("held_out_loss", -1), 3),
      "ref[T-128,T)", round(float(np.nanmean(n[T-128:T])), 3), "[16K,32K)", round(float(np.nanmean(n[16384:32768])), 3),
      "ratio", round(float(np.nanmean(n[16384:32768]) / np.nanmean(n[T-128:T])), 2))
print("  nll per 16K:", " ".join(f"{np.nanmean(n[i:i+16384]):.2f}" for i in range(0, len(n), 16384)))
print("  norm growth max at 32K vs T:", round(float((s[32000:32768].mean(0) / s[T-64:T].mean(0)).max()), 1))
PY
  rm -f models/$n/optimizer.pt models/$n/trainer_state.json
done
tar czf "$OUT/models.tgz" models
