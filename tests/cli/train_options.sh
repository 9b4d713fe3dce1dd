#!/usr/bin/env bash
# train's --profile, --check-forward and --tokenizer from the command line (issue 14):
#   --profile writes a Chrome trace, or, where this LibTorch cannot (Debian's has no Kineto), refuses
#   before the first step with one line naming the file;
#   --check-forward prints the training and inference forwards' agreement after the run;
#   --tokenizer refuses a file that is not a tokenizer.json, naming it.
set -u
cli=$1 text=$2 work=$3/train_options
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
common="--data $text --shape tiny --train-length 32 --batch 2 --log-every 5 --threads 2"

"$cli" train $common --out "$work/p" --steps 10 --profile "$work/trace.json" >"$work/p.out" 2>"$work/p.err"
rc=$?
if [ $rc -eq 0 ]; then
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["traceEvents"]; assert any(x.get("cat")=="cpu_op" for x in e)' \
    "$work/trace.json" || fail "--profile exited 0 without a trace of operators"
  echo "profile written"
else
  grep -q "step" "$work/p.out" && fail "--profile failed after training had started: $(cat "$work/p.err")"
  grep -q "$work/trace.json" "$work/p.err" || fail "--profile's refusal does not name the file: $(cat "$work/p.err")"
  [ "$(wc -l <"$work/p.err")" -eq 1 ] || fail "--profile's refusal is not one line: $(cat "$work/p.err")"
  echo "profile refused before training: $(cat "$work/p.err")"
fi

out=$("$cli" train $common --out "$work/c" --steps 10 --warmup 2 --lr 3e-3 --check-forward 2>&1) || fail "--check-forward: $out"
line=$(echo "$out" | grep "^forward check") || fail "no forward check line: $out"
max=$(echo "$line" | sed -n 's/.*max \([0-9.e+-]*\)$/\1/p')
python3 -c "import sys; sys.exit(0 if float('$max') < 1e-4 else 1)" || fail "forward check off: $line"
echo "$line"

for bad in "$work/none.json" "$(dirname "$text")/../tokenizers/rwkv-world-vocab-v20230424.txt"; do
  err=$("$cli" train $common --out "$work/t" --steps 1 --tokenizer "$bad" 2>&1 >/dev/null) && fail "--tokenizer $bad accepted"
  echo "$err" | grep -qF "$(basename "$bad")" || fail "--tokenizer $bad: the message does not name it: $err"
  [ "$(echo "$err" | wc -l)" -eq 1 ] || fail "--tokenizer $bad: not one line: $err"
  [ -e "$work/t/model.safetensors" ] && fail "--tokenizer $bad: a model was written"
  echo "refused: $err"
done
echo PASS
