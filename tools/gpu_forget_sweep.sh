#!/usr/bin/env bash
# Issue 14's GPU calls, one script so that every call is the same and a warm machine resumes where the
# last call stopped: build if needed, unpack the broad corpus, retrain the built-in models on it
# (tools/train_builtin_models.sh, in the background) and run the sweeps (tools/gpu_sweep.sh), all for
# LIMIT seconds. Carry [".carry/debs", "corpus/pack"] (corpus/pack/broad.tgz: `tar czf corpus/pack/broad.tgz
# -C corpus broad` after tools/make_broad_corpus.sh), and "sweeps/pack" to go on from earlier calls'
# sweep-*.tgz where the carry stays under 64 MiB (the tracked tree alone is 46 MB); otherwise name only
# unfinished jobs in JOBS.
#   LIMIT=500 bash tools/gpu_forget_sweep.sh
# DEADLINE=S: the whole script ends within S seconds of its start, results packed. A machine that
# went back between calls starts cold and builds first (about a minute): the sweep then gets LIMIT
# less that minute (TAKE_FOR too), where a fixed LIMIT would run into the call's limit and lose every
# result of the call. Set it to the call's timeout less the packing (about 30 s).
#   DEADLINE=570 LIMIT=500 TAKE_FOR=330 bash tools/gpu_forget_sweep.sh
#   SPECS="tools/sweeps/micro-8x.json:14" THEN_SPECS="tools/sweeps/micro-16x.json:14" LIMIT=500 bash tools/gpu_forget_sweep.sh
set -u
started=$(date +%s)
OUT=${OUT:-/tmp/statescope-out}
mkdir -p "$OUT"
limit=${LIMIT:-500}
[ -x build-cuda/app/statescope-cli ] || bash tools/gpu_session.sh build || exit 1
# Each pack is unpacked once, where it was carried: a warm machine keeps what an earlier call unpacked.
[ -f corpus/broad/train.txt ] || [ ! -f corpus/pack/broad.tgz ] || tar xzf corpus/pack/broad.tgz -C corpus || exit 1
# corpus/pack/large.tgz (tools/make_large_corpus.sh, then `tar czf corpus/pack/large.tgz -C corpus large`)
# where a spec reads corpus/large, or its 15 MB head, large-head.txz (tools/prepare_sweep_carry.sh), when the
# carry must stay small.
[ -f corpus/large/train.txt ] || [ ! -f corpus/pack/large.tgz ] || tar xzf corpus/pack/large.tgz -C corpus || exit 1
[ -f corpus/large/train-head.txt ] || [ ! -f corpus/pack/large-head.txz ] || tar xJf corpus/pack/large-head.txz -C corpus || exit 1
# Finished jobs of earlier sessions (the sweep-*.tgz of results.tgz, carried in sweeps/pack/): a job
# with its job.json is never redone.
carried=0
for t in sweeps/pack/sweep-*.tgz; do [ -f "$t" ] && tar xzf "$t" && echo "carried in: $t" && carried=$((carried + 1)); done
# Without them a JOBS list that names a job finished by an earlier call trains it again.
[ "$carried" -gt 0 ] || echo "no sweeps/pack/sweep-*.tgz carried: jobs finished by earlier calls run again"
if [ -n "${DEADLINE:-}" ]; then
  # What the build and unpacking took comes off the sweep, and the reports and packing need ~30 s.
  left=$((DEADLINE - ($(date +%s) - started) - 30))
  if [ "$left" -lt "$limit" ]; then
    cut=$((limit - left))
    [ "$left" -gt 0 ] || left=1
    echo "deadline: the sweep gets $left s, not $limit s ($cut s went to the build and unpacking)"
    limit=$left
    [ -z "${TAKE_FOR:-}" ] || export TAKE_FOR=$((TAKE_FOR > cut ? TAKE_FOR - cut : 1))
  fi
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
shape="--d-model 128 --layers 6 --d-state 256 --headdim 32 --dt-init 1e-5:1e-4 --a-init 1:1"
if [ "${BUILTINS:-1}" != 0 ]; then
  OUT="$OUT/builtin" BUDGET=0 TRAIN_LIMIT=$limit SAVE_EVERY=200 DATA=corpus/broad/train.txt \
    HELDOUT="corpus/broad/heldout-licences.txt corpus/broad/heldout-policy.txt resources/texts/kjv-heldout.txt" \
    DESCRIPTION="broad English corpus (tools/make_broad_corpus.sh: Python documentation, manual pages, fortunes, the KJV's first 92 %), bytes" \
    RUNS=${BUILTIN_RUNS:-"c256-s1:$shape --train-length 256 --batch 128 --steps 587;f4096-s1:$shape --train-length 4096 --batch 8 --steps 5009"} \
    bash tools/train_builtin_models.sh >"$OUT/builtin.log" 2>&1 &
fi
sweep_start=$(date +%s)
SPECS=${SPECS:-"tools/sweeps/forget-default.json:6 tools/sweeps/forget-slow.json:6 tools/sweeps/budget-probe.json:1"} \
  LIMIT=$limit bash tools/gpu_sweep.sh
# THEN_SPECS: sweeps that take the GPU once SPECS have no job left, for the rest of LIMIT (a grid that
# must finish first, then one that resumes over the next warm calls). Each gets its own reports and parts.
left=$((limit - ($(date +%s) - sweep_start)))
if [ -n "${THEN_SPECS:-}" ] && [ "$left" -gt 30 ]; then
  echo "then: $THEN_SPECS for $left s"
  SPECS=$THEN_SPECS LIMIT=$left bash tools/gpu_sweep.sh
fi
wait
grep -h "ratio\|== eval\|^== " "$OUT/builtin/summary.log" 2>/dev/null | head -60
# The float64 references of tests/data/builtin for the new models, under their shipped names.
if [ -n "${BUILTIN_NAMES:-}" ]; then
  rm -rf /tmp/bm && mkdir -p /tmp/bm
  for pair in $BUILTIN_NAMES; do cp -r "models/${pair%%=*}" "/tmp/bm/${pair#*=}"; done
  python3 tools/make_builtin_references.py /tmp/bm/* --out "$OUT/builtin/references" 2>&1 | tail -12
fi
# The device returns at most 8 files of 16 MiB: the sweeps' parts as they are, the rest as one archive.
(cd "$OUT" && tar czf /tmp/results.tgz --exclude='./sweep-*.tgz' . && find . -mindepth 1 ! -name 'sweep-*.tgz' -delete \
  && mv /tmp/results.tgz results.tgz)
ls -la "$OUT"
