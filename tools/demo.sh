#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, and opens StateScope on the built-in
# tiny-collapse model reading 100 KB of held-out text, running. Without a display it runs the same
# through the CLI instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
build=${STATESCOPE_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "${STATESCOPE_JOBS:-2}" --target statescope statescope-cli
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec "$build/app/statescope" --demo
fi
echo "no display: running the demo through statescope-cli (the window needs X11 or Wayland)"
data=${XDG_DATA_HOME:-$HOME/.local/share}/statescope/traces
mkdir -p "$data"
model=resources/models/tiny-collapse
text=resources/texts/kjv-heldout.txt
out="$data/$(basename "$model")-$(date +%Y%m%d-%H%M%S).h5"
"$build/app/statescope-cli" info --model "$model"
# The collapse as a table: loss by position, past the 256-byte training length.
"$build/app/statescope-cli" eval --model "$model" --text "$text" --length 16384 --samples 1 --range 8192:16384
"$build/app/statescope-cli" run --model "$model" --text "$text" --out "$out"
echo "trace written to $out (open it with: $build/app/statescope $out)"
