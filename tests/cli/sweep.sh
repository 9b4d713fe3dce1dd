#!/usr/bin/env bash
# statescope-cli sweep as a user runs it: plan, two local shards in their own processes, --jobs, a run killed
# with SIGKILL after its first finished job and started again (finished jobs are skipped, the rest
# resume), a SIGTERM to the parent alone that stops its shards, and the report.   sweep.sh CLI SPEC WORKDIR
set -u
cli=$1 spec=$2 work=$3/sweep
rm -rf "$work"
mkdir -p "$work"
# The spec's paths are relative to its folder; "out" puts the sweep in the work folder.
python3 - "$spec" "$work" <<'PY' || { echo "cannot write the spec"; exit 1; }
import json, os, sys
spec = json.load(open(sys.argv[1]))
base = os.path.dirname(os.path.abspath(sys.argv[1]))
spec["data"] = os.path.join(base, spec["data"])
spec["held_out"] = {k: os.path.join(base, v) for k, v in spec["held_out"].items()}
for name in ("a", "b"):
    spec["name"] = name
    json.dump(spec, open(os.path.join(sys.argv[2], name + ".json"), "w"))
# c: jobs long enough to be stopped half-way.
spec["name"] = "c"
spec["tokens_per_run"] *= 64
json.dump(spec, open(os.path.join(sys.argv[2], "c.json"), "w"))
PY
fail() { echo "FAIL: $*"; exit 1; }

"$cli" sweep plan "$work/a.json" > "$work/plan.log" || fail "plan"
grep -q "^4 jobs, 16384 training tokens in all" "$work/plan.log" || { cat "$work/plan.log"; fail "plan: 4 jobs"; }
[ -s "$work/a/plan.json" ] || fail "plan.json"

# Two shards at once, each a process of its own, taking jobs from one queue: every job runs once.
"$cli" sweep run "$work/a.json" --gpus cpu,cpu --threads 1 > "$work/local.log" 2>&1 || { cat "$work/local.log"; cat "$work"/a/logs/*; fail "local shards"; }
grep -q "all 2 shards finished" "$work/local.log" || fail "local shards: summary"
n=$(cat "$work"/a/logs/shard-*-of-2.log | grep -c "^\[sweep\] done")
[ "$n" -eq 4 ] || { cat "$work"/a/logs/*; fail "the shards ran $n jobs, expected 4"; }
twice=$(cat "$work"/a/logs/shard-*-of-2.log | sed -n 's/^\[sweep\] done \([^:]*\):.*/\1/p' | sort | uniq -d)
[ -z "$twice" ] || fail "jobs run twice: $twice"
for k in 0 1; do grep -q "^\[sweep\] done" "$work/a/logs/shard-$k-of-2.log" || fail "shard $k ran no job"; done
[ "$(ls "$work"/a/jobs/*/job.json | wc -l)" -eq 4 ] || fail "4 finished jobs"

# `sweep judge` evaluates a model folder the way the sweep evaluated its job: the same verdict, score and
# growth as the shard's "done" line, from a fresh process reading only the folder and the spec.
job=d_state-16_T-64_seed-0
done_line=$(grep -h "^\[sweep\] done $job:" "$work"/a/logs/shard-*-of-2.log)
want=${done_line#*: }; want=${want% in *}
"$cli" sweep judge "$work/a.json" --model "$work/a/jobs/$job/model" --device cpu --threads 1 \
  --json "$work/judge.json" > "$work/judge.log" 2>&1 || { cat "$work/judge.log"; fail "judge"; }
got=$(grep "^judged" "$work/judge.log")
case "$got" in *"at T_train 64: $want"*) ;; *) cat "$work/judge.log"; fail "judge: '$got', the sweep said '$want'";; esac
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert len(j['evals'])==1 and j['evals'][0]['domain']=='kjv', j" \
  "$work/judge.json" || fail "judge --json"
"$cli" sweep judge "$work/a.json" --model "$work/a" > "$work/judge-bad.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ "$(wc -l < "$work/judge-bad.log")" -eq 1 ] && grep -q "a/: training length\|a: training length" "$work/judge-bad.log" \
  || { cat "$work/judge-bad.log"; fail "judge without a card: rc $rc"; }
echo "judge: $got"

# tools/gpu_judge_again.sh judges every finished job's model again, from its folder and another spec;
# with the sweep's own spec each verdict must be the one the shard printed, job by job.
OUT="$work/again-out" SPEC="$work/a.json" JUDGE="$work/a.json" CLI="$cli" P=2 \
  bash "$(dirname "$0")/../../tools/gpu_judge_again.sh" > "$work/again.log" 2>&1 || { cat "$work/again.log"; fail "gpu_judge_again.sh"; }
grep -q "^judged 4 of 4 in" "$work/again.log" || { cat "$work/again.log"; fail "gpu_judge_again.sh: 4 of 4"; }
mkdir -p "$work/again" && tar xzf "$work/again-out/judged-a.tgz" -C "$work/again" || fail "judged-a.tgz"
for log in "$work"/a/logs/shard-*-of-2.log; do
  sed -n 's/^\[sweep\] done \([^:]*\): \(.*\) in .*/\1 \2/p' "$log"
done > "$work/again-want"
[ "$(wc -l < "$work/again-want")" -eq 4 ] || fail "the shards' done lines"
while read -r id want; do
  [ -s "$work/again/a/$id.json" ] || fail "gpu_judge_again.sh: no $id.json"
  grep -qF ": $want" "$work/again/a/$id.log" || { cat "$work/again/a/$id.log"; fail "judged again, $id: not '$want'"; }
done < "$work/again-want"
echo "gpu_judge_again.sh: the 4 jobs judged again from their weights, each as its shard did"

# --jobs: only the named ids, in their order; an unknown id is one error line before anything runs.
"$cli" sweep run "$work/a.json" --jobs d_state-8_T-32_seed-0,d_state-16_T-64_seed-0 --device cpu --threads 1 \
  > "$work/only.log" 2>&1 || { cat "$work/only.log"; fail "--jobs"; }
[ "$(grep -c "^\[sweep\] skip" "$work/only.log")" -eq 2 ] && head -1 "$work/only.log" | grep -q "skip d_state-8_T-32_seed-0" \
  || { cat "$work/only.log"; fail "--jobs: two skips, in the given order"; }
"$cli" sweep run "$work/a.json" --jobs d_state-3_T-32_seed-0 --gpus cpu > "$work/only-bad.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ "$(wc -l < "$work/only-bad.log")" -eq 1 ] && grep -q "d_state-3_T-32_seed-0" "$work/only-bad.log" \
  || { cat "$work/only-bad.log"; fail "--jobs with an unknown id: rc $rc"; }
[ ! -e "$work/a/logs/shard-0-of-1.log" ] || fail "--jobs with an unknown id started a shard"

# --take-for reaches every shard: past it none takes a job, and the run still ends well.
"$cli" sweep run "$work/b.json" --gpus cpu,cpu --threads 1 --take-for 0 > "$work/take.log" 2>&1 \
  || { cat "$work/take.log"; fail "--take-for 0"; }
for k in 0 1; do
  grep -q "^\[sweep\] stop: no new job after 0 s (take-for)" "$work/b/logs/shard-$k-of-2.log" \
    || { cat "$work/b/logs/shard-$k-of-2.log"; fail "--take-for: shard $k"; }
done
[ ! -e "$work/b/jobs" ] || [ -z "$(ls "$work/b/jobs")" ] || fail "--take-for 0 took a job"

# Killed after the first job finished; the next run skips it.
"$cli" sweep run "$work/b.json" --device cpu --threads 2 > "$work/killed.log" 2>&1 &
pid=$!
for _ in $(seq 600); do ls "$work"/b/jobs/*/job.json >/dev/null 2>&1 && break; sleep 0.05; done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
done_before=$(ls "$work"/b/jobs/*/job.json 2>/dev/null | wc -l)
[ "$done_before" -ge 1 ] || fail "no job finished before the kill"
first=$(ls "$work"/b/jobs/*/job.json | head -1)
sum_before=$(md5sum "$first")
# plan --unfinished: the ids left, in the order given, for a machine that has none of the results.
order=d_state-8_T-64_seed-0,d_state-8_T-32_seed-0,d_state-16_T-64_seed-0,d_state-16_T-32_seed-0
want=$(for id in ${order//,/ }; do [ -e "$work/b/jobs/$id/job.json" ] || echo "$id"; done | paste -sd,)
got=$("$cli" sweep plan "$work/b.json" --unfinished --jobs "$order" 2> "$work/unfinished.err") || fail "plan --unfinished"
[ "$got" = "$want" ] || fail "plan --unfinished: '$got', expected '$want'"
grep -q "^$((4 - done_before)) of 4 jobs unfinished$" "$work/unfinished.err" || { cat "$work/unfinished.err"; fail "plan --unfinished: count"; }
[ -z "$got" ] || [ "$(echo "$got" | tr , '\n' | wc -l)" -eq $((4 - done_before)) ] || fail "plan --unfinished: $got"
"$cli" sweep plan "$work/b.json" --unfinished --jobs d_state-3_T-32_seed-0 > "$work/unfinished-bad.log" 2>&1 \
  && fail "plan --unfinished with an unknown id"
grep -q "d_state-3_T-32_seed-0" "$work/unfinished-bad.log" || { cat "$work/unfinished-bad.log"; fail "unknown id not named"; }
"$cli" sweep run "$work/b.json" --device cpu --threads 2 > "$work/resumed.log" 2>&1 || { cat "$work/resumed.log"; fail "resume"; }
skipped=$(grep -c "^\[sweep\] skip" "$work/resumed.log")
[ "$skipped" -eq "$done_before" ] || { cat "$work/resumed.log"; fail "skipped $skipped, expected $done_before"; }
[ "$(md5sum "$first")" = "$sum_before" ] || fail "a finished job was redone"
echo "killed after $done_before finished jobs; the rerun skipped $skipped"

# SIGTERM to the parent alone (kill PID, not the process group): its shards stop too.
"$cli" sweep run "$work/c.json" --gpus cpu,cpu --threads 1 > "$work/term.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ "$(grep -l "^\[sweep\] train" "$work"/c/logs/shard-*-of-2.log 2>/dev/null | wc -l)" -eq 2 ] && break
  sleep 0.05
done
shards() { pgrep -f -- "sweep run $work/c.json --queue" | wc -l; }
[ "$(shards)" -eq 2 ] || fail "2 shards running before the SIGTERM, found $(shards)"
kill -TERM $pid
wait $pid 2>/dev/null
for _ in $(seq 60); do [ "$(shards)" -eq 0 ] && break; sleep 0.05; done
[ "$(shards)" -eq 0 ] || { pkill -f -- "sweep run $work/c.json"; fail "shards still running 3 s after the parent's SIGTERM"; }
echo "SIGTERM to the parent stopped both shards"

"$cli" sweep report "$work/b.json" > "$work/report.log" || { cat "$work/report.log"; fail "report"; }
cat "$work/report.log"
grep -q "^4 of 4 jobs finished" "$work/report.log" || fail "report: 4 of 4"
[ -s "$work/b/summary.json" ] && [ -s "$work/b/summary.h5" ] || fail "summary files"

# A later session without the job folders: the earlier summary stands in for them.
cp "$work/b/summary.json" "$work/earlier.json"
mv "$work/b/jobs" "$work/b-jobs"
"$cli" sweep report "$work/b.json" --earlier "$work/earlier.json" > "$work/earlier.log" || { cat "$work/earlier.log"; fail "report --earlier"; }
grep -q "^4 of 4 jobs finished" "$work/earlier.log" || { cat "$work/earlier.log"; fail "report --earlier: 4 of 4"; }
grep -qF "  4 of them from $work/earlier.json (an earlier report" "$work/earlier.log" || { cat "$work/earlier.log"; fail "report --earlier names the summary"; }
diff <(grep -v "^  4 of them from\|^written:" "$work/earlier.log") <(grep -v "^written:" "$work/report.log") > /dev/null \
  || { diff <(grep -v "^  4 of them from\|^written:" "$work/earlier.log") <(grep -v "^written:" "$work/report.log"); fail "report --earlier differs from the report of the job folders"; }
# plan --unfinished counts them as finished too, so a cold machine is not sent to train them again.
got=$("$cli" sweep plan "$work/b.json" --unfinished 2>/dev/null) || fail "plan --unfinished without the folders"
[ "$(echo "$got" | tr , '\n' | grep -c .)" -eq 4 ] || fail "plan --unfinished without the folders: '$got'"
got=$("$cli" sweep plan "$work/b.json" --unfinished --earlier "$work/earlier.json" 2> "$work/unfinished-earlier.err") \
  || { cat "$work/unfinished-earlier.err"; fail "plan --unfinished --earlier"; }
[ -z "$got" ] || fail "plan --unfinished --earlier: '$got', expected none"
grep -q "^0 of 4 jobs unfinished$" "$work/unfinished-earlier.err" || { cat "$work/unfinished-earlier.err"; fail "plan --unfinished --earlier: count"; }
if "$cli" sweep report "$work/b.json" --earlier "$work/none.json" > "$work/none.log" 2>&1; then fail "a missing summary accepted"; fi
grep -q "none.json" "$work/none.log" || { cat "$work/none.log"; fail "the error names the missing summary"; }
mv "$work/b-jobs" "$work/b/jobs"
echo "report --earlier: the same report from the summary alone"
echo "PASS"
