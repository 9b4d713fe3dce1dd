#!/usr/bin/env bash
# Packs the libFuzzer harnesses built by tools/fuzz.sh, with every shared library they load (the C
# library and its loader too), their dictionaries, seeds and grown corpora, into one folder that runs
# on another x86-64 Linux machine with more cores and no clang: the GPU machine, for example, where
# the folder travels as a carried path. tools/fuzz_bundle_run.sh, copied in, runs it there.
#   tools/fuzz_bundle.sh OUTDIR [HARNESS...]     (default: every harness but config, which needs
#                                                 LibTorch, too large to carry)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: tools/fuzz_bundle.sh OUTDIR [HARNESS...]" >&2; exit 2; }
out=$(realpath -m "$1")
shift
build=$(realpath -m "${STATESCOPE_FUZZ_BUILD_DIR:-build-fuzz}")
manifest=$build/fuzz-harnesses.txt
[ -f "$manifest" ] || { echo "fuzz_bundle.sh: $manifest missing: run tools/fuzz.sh first" >&2; exit 1; }
names=("$@")
[ ${#names[@]} -gt 0 ] || mapfile -t names < <(cut -d' ' -f1 "$manifest" | grep -vx config)

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/dict" "$out/seeds" "$out/corpus"
for n in "${names[@]}"; do
    read -r _ exe dict seeds < <(grep "^$n " "$manifest") ||
        { echo "fuzz_bundle.sh: no harness $n in $manifest" >&2; exit 2; }
    [ -x "$exe" ] || { echo "fuzz_bundle.sh: $exe not built" >&2; exit 1; }
    cp "$exe" "$out/bin/"
    cp "$dict" "$out/dict/$n.dict"
    cp -r "$seeds" "$out/seeds/$n"
    mkdir -p "$out/corpus/$n"
    if [ -d "$build/corpus/$n" ]; then cp -r "$build/corpus/$n/." "$out/corpus/$n/"; fi
    # Every library the loader resolves, so that the bundle does not depend on the other machine's
    # distribution; the loader itself runs the harness there (fuzz_bundle_run.sh).
    ldd "$exe" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /ld-linux/ {print $1}' | while read -r lib; do
        cp -nL "$lib" "$out/lib/"
    done
done
# The trace harness reads a trace as the window does: first through statescope-trace-check, in a
# process of its own, which must start through the bundle's loader too.
if [ -x "$out/bin/fuzz_trace" ]; then
    cp "$build/app/statescope-trace-check" "$out/bin/"
    ldd "$build/app/statescope-trace-check" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
        while read -r lib; do cp -nL "$lib" "$out/lib/"; done
    cat >"$out/trace-check.sh" <<'WRAPPER'
#!/bin/sh
here=$(dirname "$0")
exec "$here"/lib/ld-linux-x86-64.so.* --library-path "$here/lib" "$here/bin/statescope-trace-check" "$@"
WRAPPER
    chmod +x "$out/trace-check.sh"
fi
cp tools/fuzz_bundle_run.sh "$out/run.sh"
du -sh "$out"
