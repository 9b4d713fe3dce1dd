#!/usr/bin/env bash
# Issue 10.3 (and 10.6 below): a FIFO or a device where a file is expected is refused at once, with one line naming it
# and exit code 1 (it used to wait forever, or read /dev/zero until memory ran out).
#   special_files.sh CLI MODEL WORKDIR
set -u
cli=$1 model=$2 work=$3/special
rm -rf "$work" && mkdir -p "$work"
mkfifo "$work/fifo"
cp -r "$model" "$work/model-fifo-config"
rm "$work/model-fifo-config/config.json"
mkfifo "$work/model-fifo-config/config.json"
fail=0
expect() { # expect NAME PATTERN CLI-ARGS...
    local name=$1 pattern=$2
    shift 2
    local err rc
    err=$(timeout 20 "$cli" "$@" 2>&1 >/dev/null)
    rc=$?
    local lines
    lines=$(printf '%s\n' "$err" | wc -l)
    if [ "$rc" -ne 1 ] || [ "$lines" -ne 1 ] || ! printf '%s' "$err" | grep -Eq "$pattern"; then
        echo "FAIL $name: exit $rc, $lines line(s): $err"
        fail=1
    else
        echo "ok   $name: $err"
    fi
}
expect text_fifo "fifo: file type: expected a regular file.*got a FIFO" \
    run --model "$model" --text "$work/fifo" --out "$work/a.h5"
expect text_dev_zero "/dev/zero: file type: expected a regular file.*got a character device" \
    run --model "$model" --text /dev/zero --out "$work/b.h5"
expect ids_fifo "fifo: file type: .*a FIFO" run --model "$model" --ids "$work/fifo" --out "$work/c.h5"
expect tokenizer_fifo "fifo: file type: .*a FIFO" tokenize --text "$work/fifo" --tokenizer "$work/fifo"
expect tokenizer_fifo_run "fifo: file type: .*a FIFO" \
    run --model "$model" --prompt newlines:10 --tokenizer "$work/fifo" --out "$work/d.h5"
expect config_fifo "config.json: file type: .*a FIFO" info --model "$work/model-fifo-config"
# Issue 10.6: names from the command line or from files reach the terminal escaped: one line, no
# colour change.
evil="$work/evil"$'\n'$'\e'"[31mred"
expect control_characters 'evil\\x0a\\x1b\[31mred' run --model "$model" --text "$evil" --out "$work/e.h5"
# Issue 10.7: a second run given the --out of a run still writing it is refused; the first keeps it.
"$cli" run --model "$model" --prompt newlines:400000 --chunk-size 200000 --threads 1 --out "$work/busy.h5" --quiet &
pid=$!
for _ in $(seq 300); do [ -s "$work/busy.h5" ] && break; sleep 0.1; done
expect same_out "busy.h5: another run is writing this trace now" \
    run --model "$model" --prompt newlines:10 --out "$work/busy.h5"
kill -TERM $pid
wait $pid
exit $fail
