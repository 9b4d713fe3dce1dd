#!/usr/bin/env bash
# SIGTERM stops a training at any moment, in the middle of a checkpoint too: exit code 143, one line
# saying what the folder keeps, and the same command resumes from the last whole checkpoint (a
# truncated optimizer.pt used to make every later resume fail).   sigterm_train.sh CLI TEXT WORKDIR
set -u
cli=$1 text=$2 work=$3/sigterm-train
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
# A checkpoint every step, so that most of the run is spent saving and the signals land inside saves.
args=(train --data "$text" --out "$work/m" --train-length 64 --batch 2 --warmup 1 --save-every 1
      --log-every 1 --threads 1)
step() { sed -nE 's/.*"step": *([0-9]+).*/\1/p' "$work/m/trainer_state.json"; }
for i in 1 2 3 4; do
  before=$(step 2>/dev/null)
  "$cli" "${args[@]}" --steps 1000000 > "$work/out$i.log" 2> "$work/err$i.log" &
  pid=$!
  # Each attempt after the first resumes the folder the one before left behind.
  for _ in $(seq 600); do
    now=$(step 2>/dev/null)
    [ -n "$now" ] && [ "$now" != "$before" ] && break
    sleep 0.05
  done
  sleep "0.0$(( (i * 37) % 10 ))"
  kill -TERM $pid
  wait $pid
  rc=$?
  [ "$rc" -eq 143 ] || fail "attempt $i: exit code $rc, expected 143: $(cat "$work/err$i.log")"
  grep -q "terminated; the model folder keeps its last checkpoint" "$work/err$i.log" ||
    fail "attempt $i printed: $(cat "$work/err$i.log")"
  echo "attempt $i: stopped at checkpoint step $(step)"
done
last=$(step)
"$cli" "${args[@]}" --steps $((last + 2)) > "$work/resume.log" 2>&1 || fail "resume: $(cat "$work/resume.log")"
grep -q "step *$((last + 2))/" "$work/resume.log" || fail "resume did not reach step $((last + 2))"
# A damaged optimizer state is named in one line, not PyTorch's "failed reading zip archive".
echo "not a zip archive" > "$work/m/optimizer.pt"
"$cli" "${args[@]}" --steps $((last + 4)) > /dev/null 2> "$work/bad.log"
rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l < "$work/bad.log")" -eq 1 ] &&
  grep -q "optimizer.pt: cannot read the optimizer state" "$work/bad.log" ||
  fail "damaged optimizer.pt: exit $rc: $(cat "$work/bad.log")"
echo "PASS: resumed from step $last to $((last + 2)); $(cat "$work/bad.log")"
