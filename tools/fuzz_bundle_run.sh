#!/usr/bin/env bash
# Runs a bundle made by tools/fuzz_bundle.sh (copied into it as run.sh):
#   BUNDLE/run.sh SECONDS RESULTS_DIR NAME=PROCS...     e.g. run.sh 560 $OUT trace=4 zip=2
# starts PROCS independent libFuzzer processes per harness that share its corpus folder (libFuzzer
# reloads it, so each process takes up what the others found), for SECONDS of wall time. A process
# that finds a crash, leak, timeout or OOM stops after writing the input to artifacts/HARNESS/ and is
# started again, so a finding costs seconds, not the run. Fork mode (-fork) is not used: its children
# would start without the bundle's loader. At the end it prints, per harness, the inputs run, the
# coverage and the findings, and writes RESULTS_DIR/summary.txt and RESULTS_DIR/fuzz-results.tgz
# (the grown corpora, the artifacts and the logs).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 3 ] || { echo "usage: run.sh SECONDS RESULTS_DIR NAME=PROCS..." >&2; exit 2; }
seconds=$1 results=$2
shift 2
mkdir -p "$results" "$here/artifacts" "$here/logs"
loader=$(ls "$here"/lib/ld-linux-x86-64.so.* | head -n 1)
export ASAN_OPTIONS=allocator_may_return_null=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# As in the window, a trace is first read by the checker in a process of its own (fuzz_bundle.sh).
[ -x "$here/trace-check.sh" ] && export STATESCOPE_TRACE_CHECKER=$here/trace-check.sh
deadline=$(($(date +%s) + seconds))

worker() { # NAME INDEX: fuzzes until the deadline, restarting after each finding
    local n=$1 k=$2 left
    local tmp
    tmp=$(mktemp -d "/dev/shm/fuzz-$n-$k.XXXXXX" 2>/dev/null || mktemp -d)
    while left=$((deadline - $(date +%s))); [ "$left" -gt 20 ]; do
        # libFuzzer checks -max_total_time only between inputs, and loading a large corpus (each trace
        # through a checker process) can outlast it: SIGINT at the deadline ends it with its stats.
        TMPDIR=$tmp timeout -s INT -k 20 "$left" "$loader" --library-path "$here/lib" "$here/bin/fuzz_$n" \
            -max_total_time="$left" -rss_limit_mb=2048 -timeout=10 -dict="$here/dict/$n.dict" \
            -artifact_prefix="$here/artifacts/$n/" -print_final_stats=1 -print_funcs=0 -reload=1 \
            "$here/corpus/$n" "$here/seeds/$n" >>"$here/logs/$n.$k.log" 2>&1
        echo "== exit $? at $(date +%s)" >>"$here/logs/$n.$k.log"
    done
    rm -rf "$tmp"
}

names=()
for spec in "$@"; do
    n=${spec%%=*} procs=${spec#*=}
    [ -x "$here/bin/fuzz_$n" ] || { echo "run.sh: no harness fuzz_$n in the bundle" >&2; exit 2; }
    names+=("$n")
    mkdir -p "$here/artifacts/$n"
    for ((k = 0; k < procs; ++k)); do worker "$n" "$k" & done
done
wait

{
    printf '%-17s %5s %12s %7s %8s %8s  %s\n' harness procs execs cov ft corpus findings
    for n in "${names[@]}"; do
        execs=0 cov=0 ft=0 procs=0
        for log in "$here"/logs/"$n".*.log; do
            procs=$((procs + 1))
            # Per process: the inputs of every (re)start; coverage is the largest any process reached.
            while read -r e; do execs=$((execs + e)); done < <(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
            c=$(grep -E '^#[0-9]+:?[[:space:]]+(NEW|REDUCE|pulse|DONE|INITED)' "$log" | sed -nE 's/.* cov: ([0-9]+).*/\1/p' | sort -n | tail -n 1)
            f=$(grep -E '^#[0-9]+:?[[:space:]]+(NEW|REDUCE|pulse|DONE|INITED)' "$log" | sed -nE 's/.* ft: ([0-9]+).*/\1/p' | sort -n | tail -n 1)
            [ "${c:-0}" -gt "$cov" ] && cov=$c
            [ "${f:-0}" -gt "$ft" ] && ft=$f
        done
        found=$(ls "$here/artifacts/$n" | tr '\n' ' ')
        printf '%-17s %5s %12s %7s %8s %8s  %s\n' "$n" "$procs" "$execs" "$cov" "$ft" \
            "$(ls "$here/corpus/$n" | wc -l)" "${found:-none}"
    done
} | tee "$results/summary.txt"
tar czf "$results/fuzz-results.tgz" -C "$here" corpus artifacts logs
