#!/usr/bin/env bash
# Draws the figures of docs/built-in-models.md with StateScope itself: each built-in model reads the
# shipped held-out text (resources/texts/kjv-heldout.txt, 100 KB, bytes = tokens) on the CPU, the runs
# are saved as traces, and the app exports its plots (paper style) with tiny-forget overlaid.
# Needs a GUI build (build/app/statescope) and a display or xvfb-run.
set -euo pipefail
cd "$(dirname "$0")/.."
app=${APP:-build/app/statescope}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
x=(xvfb-run -a -s "-screen 0 1600x1000x24")
[ -n "${DISPLAY:-}" ] && x=()
for m in tiny-forget tiny-collapse; do
  mkdir -p "$work/$m"
  "${x[@]}" "$app" --model "resources/models/$m" --text resources/texts/kjv-heldout.txt --run \
    --traces-dir "$work/$m" --export-figures "$work/$m/fig" --figure-width 183 --bucket 1024
  mv "$work/$m"/"$m"-*.h5 "$work/$m.h5" # the legend names a trace by its file name
done
"${x[@]}" "$app" --trace "$work/tiny-collapse.h5" --overlay "$work/tiny-forget.h5" \
  --export-figures "$work/both" --figure-width 183 --bucket 1024
"${x[@]}" "$app" --trace "$work/tiny-forget.h5" --export-figures "$work/forget" --figure-width 183 --bucket 1024
# The paper presets at their defaults (bucket, legend row): one column and two columns.
for w in 89 183; do
  "${x[@]}" "$app" --trace "$work/tiny-collapse.h5" --overlay "$work/tiny-forget.h5" \
    --export-figures "$work/p$w" --figure-width "$w"
done
mkdir -p docs/figures
for w in 89 183; do
  cp "$work/p$w-loss.png" "docs/figures/paper-${w}mm-loss.png"
  cp "$work/p$w-decay.png" "docs/figures/paper-${w}mm-gates.png"
  cp "$work/p$w-state_norm.png" "docs/figures/paper-${w}mm-norms.png"
done
cp "$work/both-loss.png" docs/figures/builtin-loss.png
cp "$work/both-decay.png" docs/figures/builtin-gates.png
cp "$work/both-state_norm.png" docs/figures/tiny-collapse-norms.png
cp "$work/forget-state_norm.png" docs/figures/tiny-forget-norms.png
ls -l docs/figures
