#!/usr/bin/env bash
# Runs a sweep on the GPU machine (after `tools/gpu_session.sh build`, with corpus/broad carried):
# one process per shard, PER_GPU shards on each GPU, GPU utilisation sampled every 5 s, then the
# report. Stops the shards after LIMIT seconds (they resume from their checkpoints on the next call
# while the machine stays warm). Results to $OUT: sweep.tgz (job.json, train logs, summary; no weights).
#   SPEC=tools/sweeps/pilot-h200.json PER_GPU=12 LIMIT=420 bash tools/gpu_sweep.sh
set -u
OUT=${OUT:-/tmp/statescope-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
cli=${CLI:-build-cuda/app/statescope-cli}
spec=${SPEC:?SPEC=spec.json}
gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | paste -sd,)
nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv -l 5 > "$OUT/gpu-util.csv" 2>&1 &
smi=$!
start=$(date +%s)
timeout -s TERM "${LIMIT:-420}" $cli sweep run "$spec" --gpus "$gpus" --per-gpu "${PER_GPU:-8}" --threads 1
echo "sweep run: rc $?, $(( $(date +%s) - start )) s"
kill $smi
$cli sweep report "$spec" | tee "$OUT/report.txt"
folder=$(python3 -c "import json,os,sys;s=json.load(open('$spec'));print(os.path.normpath(os.path.join(os.path.dirname('$spec'),s.get('out') or s['name'])))")
tar czf "$OUT/sweep.tgz" --exclude='*.safetensors' --exclude='optimizer.pt' --exclude='*.bin' "$folder"
awk -F', ' 'NR>1{u+=$3; n++} END{if(n) printf "mean GPU utilisation %.0f %% over %d samples\n", u/n, n}' "$OUT/gpu-util.csv"
