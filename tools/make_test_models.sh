#!/usr/bin/env bash
# Makes the random-weight test model tests/data/models/tiny-random with statescope-cli: the tiny shape
# (2 layers x 8 heads) with a byte-level vocabulary, small and fast enough for the app and CLI tests.
# The trained built-in models are made by tools/train_builtin_models.sh (docs/built-in-models.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${CLI:-build/app/statescope-cli}
rm -rf tests/data/models/tiny-random
"$cli" init --out tests/data/models/tiny-random --shape tiny --seed 1
