#!/usr/bin/env bash
# Fuzzes StateScope's parsers with libFuzzer (tests/fuzz/README.md).
#   tools/fuzz.sh HARNESS|all MINUTES [JOBS]
# Configures and builds a clang build with -fsanitize=fuzzer,address,undefined in build-fuzz (or
# $STATESCOPE_FUZZ_BUILD_DIR), then fuzzes each harness for MINUTES with JOBS processes (default 1):
# its dictionary, its seed corpus (files from tests/data, gathered at configure time) and a corpus
# that grows in build-fuzz/corpus/HARNESS and is kept between runs. Inputs that crash, leak, time out
# (10 s) or need more than 2 GB go to build-fuzz/artifacts/HARNESS/; the run goes on after each
# (-fork mode), and the end prints, per harness, the inputs run, the coverage and what it found.
# Save a crash under tests/fuzz/regressions/HARNESS/ so that CTest replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: tools/fuzz.sh HARNESS|all MINUTES [JOBS]" >&2
    echo "harnesses: config json safetensors pickle zip tokenizer_load tokenizer_encode trace" >&2
    exit 2
}
[ $# -ge 2 ] || usage
which=$1 minutes=$2 jobs=${3:-1}
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || usage
[[ $jobs =~ ^[1-9][0-9]*$ ]] || usage
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60 + 0.5); print s < 1 ? 1 : s }')

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 2; }
build=$(realpath -m "${STATESCOPE_FUZZ_BUILD_DIR:-build-fuzz}")
mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
    -DSTATESCOPE_FUZZ=ON -DSTATESCOPE_GUI=OFF >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; exit 1; }
manifest=$build/fuzz-harnesses.txt
if [ "$which" = all ]; then
    names=$(cut -d' ' -f1 "$manifest")
else
    grep -q "^$which " "$manifest" || usage
    names=$which
fi
targets=()
for n in $names; do targets+=("fuzz_$n"); done
# Torch translation units take ~1.2 GB each: one at a time unless asked.
cmake --build "$build" -j "${STATESCOPE_JOBS:-1}" --target "${targets[@]}"

# Leaks are findings (per input, as libFuzzer checks them); undefined behaviour already aborts
# (-fno-sanitize-recover). Callers may add to these.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1

summary=()
for n in $names; do
    read -r _ exe dict seeds < <(grep "^$n " "$manifest")
    corpus=$build/corpus/$n artifacts=$build/artifacts/$n log=$build/logs/$n.log
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    before=$(ls "$artifacts" | sort)
    echo "== $n: ${seconds} s, $jobs job(s); log $log"
    # -fork keeps fuzzing after a crash (each in a child process); the children's new inputs are
    # merged into $corpus. The seeds folder is only read.
    # Input files (tests/fuzz/FuzzInput.h) and libFuzzer's job folders go to a folder of this run, in
    # memory when /dev/shm is there: a child that crashes leaves its input file behind.
    tmp=$(mktemp -d /dev/shm/statescope-fuzz.XXXXXX 2>/dev/null || mktemp -d)
    TMPDIR=$tmp "$exe" -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -dict="$dict" \
        -artifact_prefix="$artifacts/" -print_funcs=0 "$corpus" "$seeds" >"$log" 2>&1 || true
    rm -rf "$tmp"
    # The last stat line: "#EXECS: cov: C ft: F corp: N exec/s E oom/timeout/crash: O/T/X time: Ss ..."
    last=$(grep -E '^#[0-9]+: cov: ' "$log" | tail -n 1 || true)
    execs=$(sed -nE 's/^#([0-9]+): .*/\1/p' <<<"$last")
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    counts=$(sed -nE 's#.* oom/timeout/crash: ([0-9]+/[0-9]+/[0-9]+).*#\1#p' <<<"$last")
    new=$(comm -13 <(echo "$before") <(ls "$artifacts" | sort) | sed '/^$/d' || true)
    found="none"
    if [ -n "$new" ]; then
        found="$(wc -l <<<"$new") new input(s) in $artifacts/: $(tr '\n' ' ' <<<"$new")"
    elif [ -z "$last" ]; then
        found="no stats: see $log"
    fi
    summary+=("$(printf '%-17s %12s %7s %8s  oom/timeout/crash %-9s %s' "$n" "${execs:-?}" "${cov:-?}" \
        "${ft:-?}" "${counts:-?}" "$found")")
done

echo
printf '%-17s %12s %7s %8s  %s\n' harness execs cov ft findings
printf '%s\n' "${summary[@]}"
echo "To see what an input does: $build/tests/fuzz/fuzz_HARNESS INPUT (add ASAN_OPTIONS=fast_unwind_on_malloc=0"
echo "for whole stacks through uninstrumented libraries); keep it as tests/fuzz/regressions/HARNESS/WHAT-IT-DOES."
