#!/usr/bin/env bash
# SIGTERM stops a run within a second even in the middle of a long chunk, with exit code 143 and a
# trace that keeps what was written.   sigterm.sh CLI MODEL WORKDIR
set -u
cli=$1 model=$2 work=$3
trace=$work/sigterm.h5
rm -f "$trace"
# 400K tokens in chunks of 200K: one chunk takes far longer than a second on the CPU.
"$cli" run --model "$model" --prompt newlines:400000 --chunk-size 200000 --threads 2 --out "$trace" --quiet &
pid=$!
for _ in $(seq 300); do [ -s "$trace" ] && break; sleep 0.1; done
[ -s "$trace" ] || { echo "no trace after 30 s"; kill -9 $pid; exit 1; }
sleep 0.5
start=$(date +%s%N)
kill -TERM $pid
wait $pid
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "exit code $rc, $ms ms after SIGTERM"
[ "$rc" -eq 143 ] || { echo "expected exit code 143"; exit 1; }
[ "$ms" -lt 1500 ] || { echo "expected to stop within about a second"; exit 1; }
[ -s "$trace" ] || { echo "the trace is gone"; exit 1; }
