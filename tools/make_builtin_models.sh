#!/usr/bin/env bash
# Makes the built-in models under resources/models/ with statescope-cli.
# tiny-random: random weights of the tiny shape with a byte-level vocabulary; the placeholder demo
# model until the trained tiny-collapse / tiny-forget models exist (docs/built-in-models.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${CLI:-build/app/statescope-cli}
rm -rf resources/models/tiny-random
"$cli" init --out resources/models/tiny-random --shape tiny --seed 1
