#!/usr/bin/env bash
# Gathers the training corpus for the built-in models from Debian packages (King James Bible,
# bible-kjv: public domain) into corpus/ (not committed): verse references stripped, books in order.
# The last 8 % (from the middle of Hebrews on) is held out: training never sees it. A 100 KB piece of
# the held-out text becomes the app's demo text, resources/texts/kjv-heldout.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bible >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get install -y -qq --no-install-recommends bible-kjv >/dev/null
fi
mkdir -p corpus
bible -f "Gen1:1-Rev22:21" | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > corpus/kjv.txt
total=$(wc -c < corpus/kjv.txt)
split=$(( total * 92 / 100 ))
head -c "$split" corpus/kjv.txt > corpus/train.txt
tail -c +"$(( split + 1 ))" corpus/kjv.txt > corpus/heldout.txt
# Start the demo text at a line boundary.
tail -n +2 corpus/heldout.txt | head -c 100000 > resources/texts/kjv-heldout.txt || true
wc -c corpus/train.txt corpus/heldout.txt resources/texts/kjv-heldout.txt
