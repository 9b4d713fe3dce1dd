#!/usr/bin/env bash
# A broad English corpus from Debian packages, for the sweeps and the built-in models (issue 14), into
# corpus/broad/ (not committed). What goes in is listed in corpus/broad/MANIFEST with byte counts.
#
# Training text (corpus/broad/train.txt), in this order, shuffled by document with a fixed seed:
#   - the Python 3.11 documentation's reStructuredText sources (python3.11-doc), its licence page left out;
#   - the manual pages of sections 1, 5, 7 and 8 of a fixed list of packages ($manpackages below),
#     rendered as plain text;
#   - the fortune cookies of `fortunes` (one document each file);
#   - the King James Bible (bible-kjv), its first 92 % (the built-in models' split).
# Held-out domains, never in the training text:
#   - corpus/broad/heldout-licences.txt: /usr/share/common-licenses (GPL, LGPL, Apache, MPL, ...);
#   - corpus/broad/heldout-policy.txt: the Debian Policy Manual (debian-policy);
#   - corpus/broad/heldout-kjv.txt: the last 8 % of the KJV;
#   - corpus/broad/heldout-reference.txt: the Debian Reference (debian-reference-en, its text edition);
#   - corpus/broad/heldout-licences-policy.txt: licences and Policy in one file.
#   The last two are the long ones (878 K and 782 K bytes): a sweep at T_train 32768 reads windows of
#   16 T = 512 K bytes, longer than any of the first three.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
need=()
manpackages="manpages coreutils util-linux findutils grep sed tar gzip bash dpkg apt man-db procps
  openssh-client git make binutils cmake gdb rsync curl wget less diffutils"
for p in fortunes bible-kjv python3-doc debian-policy debian-reference-en groff-base bsdextrautils $manpackages; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
[ ${#need[@]} -eq 0 ] || $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
out=corpus/broad
rm -rf "$out"
mkdir -p "$out/docs"
# One file per document; the counter lives in a file because the loops below run in subshells.
echo 0 > "$out/count"
doc() {
  local n=$(( $(cat "$out/count") + 1 ))
  echo $n > "$out/count"
  cat > "$out/docs/$(printf %06d $n).txt"
}

# Python documentation sources.
src=$(dirname "$(readlink -f /usr/share/doc/python3-doc/html/index.html 2>/dev/null || echo /usr/share/doc/python3.11/html/index.html)")/_sources
[ -d "$src" ] || src=$(find /usr/share/doc -type d -path '*python3.11*/html/_sources' | head -1)
find "$src" -name '*.txt' ! -name 'license.rst.txt' | LC_ALL=C sort | while read -r f; do doc < "$f"; done
py=$(cat "$out"/docs/*.txt | wc -c)

# Manual pages as text.
# shellcheck disable=SC2086
dpkg -L $manpackages | grep -E '^/usr/share/man/man[1578]/[^/]+[.]gz$' | LC_ALL=C sort -u |
  while read -r f; do [ -f "$f" ] && [ ! -L "$f" ] && echo "$f"; done > "$out/man.list"
while read -r f; do
  MANWIDTH=80 man -l "$f" 2>/dev/null | col -bx | doc || true
done < "$out/man.list"
man=$(( $(cat "$out"/docs/*.txt | wc -c) - py ))

# Fortunes: the cookie files, the '%' separators removed.
for f in /usr/share/games/fortunes/*; do
  case "$f" in *.dat|*.u8) continue ;; esac
  [ -f "$f" ] && sed '/^%$/d' "$f" | doc
done
fortune=$(( $(cat "$out"/docs/*.txt | wc -c) - py - man ))

# The KJV: its first 92 % trains, the last 8 % is held out (as tools/make_corpus.sh splits it).
bible -f "Gen1:1-Rev22:21" | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$out/kjv.txt"
total=$(wc -c < "$out/kjv.txt")
split=$(( total * 92 / 100 ))
head -c "$split" "$out/kjv.txt" | doc
tail -c +"$(( split + 1 ))" "$out/kjv.txt" | tail -n +2 > "$out/heldout-kjv.txt"

# Documents in a fixed shuffled order, blank line between them.
python3 - "$out" <<'PY'
import os, random, sys
out = sys.argv[1]
names = sorted(os.listdir(os.path.join(out, "docs")))
random.Random(14).shuffle(names)
with open(os.path.join(out, "train.txt"), "wb") as f:
    for n in names:
        data = open(os.path.join(out, "docs", n), "rb").read().strip()
        if data:
            f.write(data + b"\n\n")
PY

for f in /usr/share/common-licenses/*; do [ -f "$f" ] && { cat "$f"; echo; }; done > "$out/heldout-licences.txt"
zcat /usr/share/doc/debian-policy/policy.txt.gz > "$out/heldout-policy.txt"
zcat /usr/share/debian-reference/debian-reference.en.txt.gz > "$out/heldout-reference.txt"
cat "$out/heldout-licences.txt" "$out/heldout-policy.txt" > "$out/heldout-licences-policy.txt"

{
  echo "corpus/broad, made by tools/make_broad_corpus.sh on $(date -u +%F) from Debian $(cat /etc/debian_version)"
  echo "train.txt: $(wc -c < "$out/train.txt") bytes, $(ls "$out/docs" | wc -l) documents, shuffled (seed 14):"
  echo "  python3-doc $(dpkg-query -W -f '${Version}' python3-doc) reStructuredText sources: $py bytes"
  echo "  manual pages, sections 1 5 7 8 ($(wc -l < "$out/man.list") pages of: $(echo $manpackages)): $man bytes"
  echo "  fortunes $(dpkg-query -W -f '${Version}' fortunes): $fortune bytes"
  echo "  bible-kjv $(dpkg-query -W -f '${Version}' bible-kjv), first 92 %: $split bytes"
  echo "heldout-licences.txt: $(wc -c < "$out/heldout-licences.txt") bytes (/usr/share/common-licenses)"
  echo "heldout-policy.txt: $(wc -c < "$out/heldout-policy.txt") bytes (debian-policy $(dpkg-query -W -f '${Version}' debian-policy))"
  echo "heldout-kjv.txt: $(wc -c < "$out/heldout-kjv.txt") bytes (the KJV's last 8 %)"
  echo "heldout-reference.txt: $(wc -c < "$out/heldout-reference.txt") bytes (debian-reference-en $(dpkg-query -W -f '${Version}' debian-reference-en))"
  echo "heldout-licences-policy.txt: $(wc -c < "$out/heldout-licences-policy.txt") bytes (the two above, in one file)"
} > "$out/MANIFEST"
rm -rf "$out/docs" "$out/man.list" "$out/kjv.txt" "$out/count"
cat "$out/MANIFEST"
