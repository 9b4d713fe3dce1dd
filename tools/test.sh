#!/usr/bin/env bash
# Builds everything and runs every test: the README's test command, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
build=${STATESCOPE_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${STATESCOPE_CMAKE_ARGS:-}
# Torch translation units take ~1.2 GB each; two at a time fit the 2-core, 24 GB machines.
cmake --build "$build" -j "${STATESCOPE_JOBS:-2}"
cd "$build"
QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j 2
