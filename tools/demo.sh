#!/usr/bin/env bash
# Installs what is missing, builds, and runs the built-in model on a demo text.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
build=${STATESCOPE_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "${STATESCOPE_JOBS:-2}" --target statescope-cli
data=${XDG_DATA_HOME:-$HOME/.local/share}/statescope/traces
mkdir -p "$data"
model=resources/models/tiny-random
out="$data/$(basename "$model")-$(date +%Y%m%d-%H%M%S).h5"
"$build/app/statescope-cli" info --model "$model"
"$build/app/statescope-cli" run --model "$model" --text resources/texts/demo.txt --out "$out"
echo "trace written to $out"
