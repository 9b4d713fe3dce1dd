#!/usr/bin/env bash
# Issue 10 as a regression test: runs statescope-cli on every case of tests/data/hostile/MANIFEST and
# checks that it answers as a user needs (exit code 1 and one line on stderr, or for a valid but
# heavy input success) within 10 s and a peak RSS of 1 GiB, without a crash and without printing raw
# control characters. Prints PASS or FAIL with the reason for each case; exits 1 if any failed.
#   hostile_inputs.sh CLI WORKDIR [CASE...]      (only the named cases, if given)
# Environment: STATESCOPE_HOSTILE_TIMEOUT (seconds, default 10), STATESCOPE_HOSTILE_RSS_MB (default 1024);
# a sanitizer build defaults to 30 s and 2048 MB.
set -u
cli=$1 work=$2/hostile
shift 2
only=" $* "
root=$(cd "$(dirname "$0")/../.." && pwd)
hostile=$root/tests/data/hostile
model=$root/resources/models/tiny-collapse
# ASan makes the CLI about 3x slower and twice as big: a sanitizer build gets limits scaled to match,
# so that its verdicts mean what they mean in Release.
sanitized=0
ldd "$cli" 2>/dev/null | grep -q 'libasan\|libtsan\|libubsan' && sanitized=1
timeout_s=${STATESCOPE_HOSTILE_TIMEOUT:-$((sanitized ? 30 : 10))}
rss_mb=${STATESCOPE_HOSTILE_RSS_MB:-$((sanitized ? 2048 : 1024))}
[ -x /usr/bin/time ] || { echo "hostile_inputs.sh: /usr/bin/time is missing (apt-get install time)"; exit 1; }

mkdir -p "$work"
big=$work/big
# The big inputs (up to 60 MB each) are written once per version of the script that makes them.
stamp=$(cksum <"$root/tools/make_hostile_inputs.py")
if [ "$(cat "$big/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$big"
    /usr/bin/python3 "$root/tools/make_hostile_inputs.py" --big "$big" || { echo "cannot write $big"; exit 1; }
    echo "$stamp" >"$big/.stamp"
fi
rm -rf "$work/special" && mkdir -p "$work/special"
fifo=$work/special/fifo
mkfifo "$fifo"
fifo_model=$work/special/model-fifo-config
cp -r "$model" "$fifo_model" && rm "$fifo_model/config.json" && mkfifo "$fifo_model/config.json"

# The same thread count everywhere: LibTorch reserves address space per thread (stacks, malloc
# arenas), so the limit below would otherwise depend on the machine's core count.
export OMP_NUM_THREADS=2 MALLOC_ARENA_MAX=2 OMP_WAIT_POLICY=PASSIVE

# The verdict is on peak RSS (/usr/bin/time). The hard limit only keeps a runaway case from taking the
# machine: twice that much address space. 1 GiB of address space alone would leave a case almost
# nothing: the CLI's VmPeak on a plain `info` is already about 0.9 GiB (LibTorch's libraries and
# thread reservations), which is virtual, not resident. A sanitizer build reserves terabytes of
# shadow memory: there ASan's own hard_rss_limit_mb stops the process instead.
as_limit=$((2 * rss_mb * 1024 * 1024))
if [ $sanitized = 1 ]; then
    as_limit=
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}hard_rss_limit_mb=$((rss_mb * 2))
    echo "sanitizer build: $timeout_s s and $rss_mb MB a case; ASan stops a process above $((rss_mb * 2)) MB"
elif ! prlimit --as=$as_limit "$cli" info --model "$model" >/dev/null 2>&1; then
    as_limit=
    echo "a good 'info' does not fit in $((2 * rss_mb)) MB of address space: no hard limit, RSS checked after"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 failed=()
while IFS= read -r line; do
    case $line in '' | '#'*) continue ;; esac
    name=${line%% | *} rest=${line#* | }
    expect=${rest%% | *} rest=${rest#* | }
    regex=${rest%% | *} rest=${rest#* | }
    args=${rest%% | *} finding=${rest#* | }
    [ "$only" = "  " ] || [[ $only == *" $name "* ]] || continue
    read -ra words <<<"$args"
    argv=()
    for w in "${words[@]}"; do
        w=${w//\{HOSTILE\}/$hostile}
        w=${w//\{BIG\}/$big}
        w=${w//\{WORK\}/$work/special}
        w=${w//\{FIFO_MODEL\}/$fifo_model}
        w=${w//\{FIFO\}/$fifo}
        w=${w//\{MODEL\}/$model}
        w=${w//\{BYTE_TOKENIZER\}/$model/tokenizer.json}
        argv+=("$w")
    done
    limit=()
    [ -n "$as_limit" ] && limit=(prlimit --as="$as_limit" --)
    /usr/bin/time -f '%M %e' -o "$tmp/time" timeout -k 2 "$timeout_s" "${limit[@]}" "$cli" "${argv[@]}" \
        >/dev/null 2>"$tmp/err" </dev/null
    rc=$?
    read -r rss_kb seconds < <(tail -n 1 "$tmp/time")
    rss=$(( ${rss_kb:-0} / 1024 ))
    err=$(cat "$tmp/err")
    lines=$(wc -l <"$tmp/err")
    # Keep the report to one line a case: the first line of stderr, cut.
    first=$(head -n 1 "$tmp/err" | cut -c1-160 | tr -d '\000-\010\013-\037\177')

    reason=
    if [ $rc -eq 124 ]; then
        reason="timed out after $timeout_s s"
    elif [ $rc -ge 128 ]; then
        reason="killed by signal $((rc - 128))"
    elif grep -Eq 'out of memory|bad_alloc|AddressSanitizer|runtime error:' "$tmp/err"; then
        reason="ran out of memory or tripped a sanitizer"
    elif [ "$rss" -gt "$rss_mb" ]; then
        reason="peak RSS $rss MB, above $rss_mb MB"
    elif [ "$expect" = bounded ] && [ $rc -eq 0 ]; then
        reason=
    elif [ $rc -ne 1 ]; then
        reason="exit code $rc, expected 1"
    elif [ "$lines" -ne 1 ]; then
        reason="$lines lines on stderr, expected 1"
    elif LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$tmp/err"; then
        reason="raw control characters on stderr"
    elif [ -n "$regex" ] && ! grep -Eq -- "$regex" <<<"$err"; then
        reason="stderr does not match /$regex/"
    fi
    if [ -z "$reason" ]; then
        pass=$((pass + 1))
        printf 'PASS %-40s exit %d, %5s s, %5d MB  %s\n' "$name" "$rc" "$seconds" "$rss" "$first"
    else
        failed+=("$name")
        printf 'FAIL %-40s %s (exit %d, %s s, %d MB)\n' "$name" "$reason" "$rc" "$seconds" "$rss"
        printf '     %-40s finding: %s\n' "" "$finding"
        [ -n "$first" ] && printf '     %-40s stderr:  %s\n' "" "$first"
    fi
done <"$hostile/MANIFEST"

echo "hostile inputs: $pass passed, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
