#!/usr/bin/env bash
# Data-parallel training on the CPU through c10d's Gloo (issue 14), two processes started the way
# torchrun starts them: the same global batch gives the single process's loss curve, rank 0 alone
# writes the folder, and a checkpoint of 2 ranks resumes in 1 process (and the other way round) to
# the same loss as a run that never changed world size.   ddp_gloo.sh CLI TEXT WORKDIR
set -u
cli=$1 text=$2 work=$3/ddp
rm -rf "$work"
mkdir -p "$work"
cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
common=(--data "$text" --train-length 64 --batch 8 --warmup 2 --lr 3e-3 --log-every 5 --save-every 10)
port=$(( 20000 + $$ % 20000 ))
ranks() { # ranks OUT STEPS: two ranks on this host
  port=$(( port + 1 ))
  local out=$1 steps=$2
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=2 RANK=1 LOCAL_RANK=1 \
    "$cli" train "${common[@]}" --out "$out" --steps "$steps" --threads 1 > "$out.rank1.log" 2>&1 &
  local pid=$!
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=2 RANK=0 LOCAL_RANK=0 \
    "$cli" train "${common[@]}" --out "$out" --steps "$steps" --threads 1 >> "$out.log" 2>&1 || {
      # A build without Gloo (PyTorch's LibTorch on the GPU machine: NCCL only) has nothing to test here.
      grep -q "this build has" "$out.log" && { kill $pid 2>/dev/null; echo "SKIP: $(cat "$out.log")"; exit 0; }
      fail "rank 0: $(cat "$out.log")"
    }
  wait $pid || fail "rank 1: $(cat "$out.rank1.log")"
}
single() { "$cli" train "${common[@]}" --out "$1" --steps "$2" --threads 2 >> "$1.log" 2>&1 || fail "single: $(cat "$1.log")"; }
loss() { awk -v s="$2/20" '$1 == "step" && $2 == s {print $4}' "$1.log" | tail -1; }
close() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-3 * abs(a))" "$1" "$2"; }

single one 20
ranks two 20
grep -q '"process_group": "gloo"' two/model_card.json || fail "the card does not record the process group"
[ -s two.rank1.log ] && fail "rank 1 printed: $(cat two.rank1.log)"
for s in 5 10 15 20; do
  a=$(loss one $s) b=$(loss two $s)
  echo "step $s: 1 process $a, 2 ranks $b"
  [ -n "$a" ] && [ -n "$b" ] && close "$a" "$b" || fail "step $s: losses differ by more than 0.1 %"
done
# 2 ranks for 10 steps, then resumed in 1 process to 20; 1 process to 10, then 2 ranks to 20.
ranks two-one 10 && single two-one 20
single one-two 10 && ranks one-two 20
single one-one 10 && single one-one 20
for run in two-one one-two; do
  a=$(loss one-one 20) b=$(loss $run 20)
  echo "resumed $run: step 20 loss $b (world size unchanged: $a)"
  close "$a" "$b" || fail "$run: resuming at another world size changed the loss"
done
echo PASS
