#!/usr/bin/env bash
# Runs sweeps on the GPU machine (after `tools/gpu_session.sh build`, with corpus/broad carried):
# every spec at once, each with its own number of shards per GPU, one process per shard, GPU
# utilisation sampled every 5 s, then the reports. Stops the shards after LIMIT seconds (they resume
# from their checkpoints on the next call while the machine stays warm; finished jobs are kept).
# The shards of a spec take its jobs from one queue; JOBS="id,id,..." runs only those, in that order.
# With several specs, JOBS_<name>="id,..." (the spec's name with - as _: JOBS_neox_layers) is one
# spec's list, since a list that names another spec's ids is refused.
# Results to $OUT: sweep-<name>-K.tgz (the jobs this call finished: job.json, train logs; the summary;
# no weights; parts of at most 15 MiB, tools/pack_sweep_results.py), report-<name>.txt.
#   SPECS="tools/sweeps/forget-default.json:5 tools/sweeps/forget-slow.json:5" LIMIT=420 bash tools/gpu_sweep.sh
#   SPEC=tools/sweeps/pilot-h200.json PER_GPU=12 LIMIT=420 bash tools/gpu_sweep.sh
# TAKE_FOR=S: no shard takes a job after S seconds, so that the last minutes finish the jobs running
# (alone, so faster) instead of starting jobs that LIMIT kills; a cold machine keeps no checkpoint.
set -u
OUT=${OUT:-/tmp/statescope-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
# Shards that share a GPU hand back what they no longer use (the engine empties its cache after each
# job); expandable segments keep the freed memory from fragmenting.
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
cli=${CLI:-build-cuda/app/statescope-cli}
specs=${SPECS:-${SPEC:?SPEC=spec.json or SPECS="a.json:K b.json:K"}:${PER_GPU:-8}}
gpus=${GPUS:-$(nvidia-smi --query-gpu=index --format=csv,noheader | paste -sd,)}
nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv -l 5 >>"$OUT/gpu-util.csv" 2>&1 &
smi=$!
# Each process's device memory too: how many shards of a shape fit one GPU.
nvidia-smi --query-compute-apps=timestamp,gpu_uuid,pid,used_memory --format=csv -l 5 >>"$OUT/gpu-apps.csv" 2>&1 &
apps=$!
start=$(date +%s)
marker=$(mktemp)
for entry in $specs; do
  spec=${entry%:*}
  name=$(basename "$spec" .json)
  own="JOBS_${name//-/_}"
  only=${!own:-${JOBS:-}}
  timeout -s TERM "${LIMIT:-420}" $cli sweep run "$spec" --gpus "$gpus" --per-gpu "${entry##*:}" --threads 1 \
    ${only:+--jobs "$only"} ${TAKE_FOR:+--take-for "$TAKE_FOR"} >"$OUT/run-$name.log" 2>&1 &
done
wait $(jobs -p | grep -v -e "^$smi$" -e "^$apps$")
echo "sweep runs: $(( $(date +%s) - start )) s"
kill $smi $apps
for entry in $specs; do
  spec=${entry%:*}
  name=$(basename "$spec" .json)
  $cli sweep report "$spec" >"$OUT/report-$name.txt" 2>&1
  head -3 "$OUT/report-$name.txt"
  folder=$(python3 -c "import json,os;s=json.load(open('$spec'));print(os.path.normpath(os.path.join(os.path.dirname('$spec'),s.get('out') or s['name'])))")
  # Results only: without weights a checkpoint cannot resume, so its trainer state stays behind too.
  python3 tools/pack_sweep_results.py "$folder" --since "$marker" --out "$OUT/sweep-$name"
done
awk -F', ' '$3 ~ /^[0-9]/ {u+=$3; n++} END{if(n) printf "mean GPU utilisation %.0f %% over %d samples\n", u/n, n}' "$OUT/gpu-util.csv"
awk -F', ' '$4 ~ /^[0-9]+ MiB/ {m=$4+0; if (m>max[$3]) max[$3]=m} END{n=0; for (p in max) {n++; if (max[p]>top) top=max[p]}
  if (n) printf "device memory of one process: at most %d MiB (%d processes)\n", top, n}' "$OUT/gpu-apps.csv"
