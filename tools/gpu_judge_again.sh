#!/usr/bin/env bash
# Judges every finished job of a sweep again from its model weights, with another spec's held-out
# texts, windows and criterion (`sweep judge`), several models at a time; on the GPU machine after
# tools/gpu_forget_sweep.sh, in the same warm session (a machine that went back keeps no weights).
# The verdicts come back as one archive, $OUT/judged-NAME.tgz, one JSON a job named after its id,
# for tools/compare_judgements.py (docs/sweeps.md, Next after the twentieth round):
#   SPEC=tools/sweeps/micro-width-recheck.json JUDGE=tools/sweeps/micro-width-eval32.json \
#     P=8 DEADLINE=300 bash tools/gpu_judge_again.sh
set -u
spec=${SPEC:?SPEC: the sweep whose jobs to judge}
judge=${JUDGE:?JUDGE: the spec to judge them with}
par=${P:-8}
OUT=${OUT:-/tmp/statescope-out}
cli=${CLI:-build-cuda/app/statescope-cli}
[ -x "$cli" ] || cli=build/app/statescope-cli
[ -x "$cli" ] || { echo "gpu_judge_again: no statescope-cli in build-cuda/ or build/" >&2; exit 1; }
# The spec's "out" is relative to the spec itself, and without one the sweep is the spec's folder's
# NAME, as `sweep` reads it.
dir=$(python3 -c 'import json, os, sys; p = sys.argv[1]; j = json.load(open(p)); print(os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(p)), j.get("out") or j["name"])))' "$spec") || exit 1
name=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["name"])' "$judge") || exit 1
[ -d "$dir/jobs" ] || { echo "gpu_judge_again: $dir/jobs: no jobs (run the sweep first, on this machine)" >&2; exit 1; }
work=$(mktemp -d)
mkdir -p "$work/$name" "$OUT"
ls "$dir/jobs" | while read -r id; do
  [ -f "$dir/jobs/$id/job.json" ] && [ -f "$dir/jobs/$id/model/model.safetensors" ] && echo "$id"
done > "$work/ids"
echo "judging $(wc -l < "$work/ids") models of $dir with $judge, $par at a time"
start=$(date +%s)
# Each judge is a few seconds; the deadline keeps the packing inside the call.
timeout "${DEADLINE:-540}" xargs -P "$par" -I{} sh -c \
  "\"$cli\" sweep judge \"$judge\" --model \"$dir/jobs/{}/model\" --json \"$work/$name/{}.json\" > \"$work/$name/{}.log\" 2>&1" \
  < "$work/ids"
echo "judged $(ls "$work/$name" | grep -c '\.json$') of $(wc -l < "$work/ids") in $(( $(date +%s) - start )) s"
grep -L '^judged ' "$work/$name"/*.log 2>/dev/null | head -5 | while read -r f; do echo "failed: $f"; tail -2 "$f"; done
tar czf "$OUT/judged-$name.tgz" -C "$work" "$name" && ls -la "$OUT/judged-$name.tgz"
rm -rf "$work"
