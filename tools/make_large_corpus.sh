#!/usr/bin/env bash
# A larger English corpus from Debian packages into corpus/large/ (not committed): language-model training
# on corpus/broad (6 M GPT-NeoX tokens) repeats its text many times. What goes in is listed in
# corpus/large/MANIFEST with package versions and byte counts.
#
# Training text (corpus/large/train.txt), every document of corpus/broad/train.txt plus, from Debian 12:
#   - linux-doc-6.1: the kernel's Documentation/**/*.rst, without translations/ and licence pages;
#   - dict-gcide: the GCIDE dictionary (Webster 1913 + WordNet), its markup cleaned, ~64 KB documents;
#   - perl-doc: the perl*.pod manuals rendered by pod2text, but licences (perlgpl, perlartistic) and perltoc;
#   - vim-runtime: the help files (vim90/doc/*.txt);
#   - postgresql-doc-15 and sqlite3-doc: their HTML pages as plain text;
#   - sword-comm-tdavid: Spurgeon's Treasury of David (one document a Psalm), from its SWORD module.
# All shuffled by document with a fixed seed (14, as corpus/broad), a blank line between documents,
# valid UTF-8 with \n line ends.
# Held-out domains: corpus/broad/heldout-*.txt, copied unchanged. None of their sources is read here,
# and a check in MANIFEST counts their long lines that occur in train.txt (for corpus/broad as well).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
[ -s corpus/broad/train.txt ] || bash tools/make_broad_corpus.sh
command -v pod2text >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends perl >/dev/null
out=corpus/large
tmp=$(mktemp -d "${TMPDIR:-/tmp}/make_large_corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debs" "$tmp/root" "$tmp/docs"

# The packages are fetched with apt-get download and unpacked with dpkg -x into $tmp rather than installed:
# about 80 MB of documentation that nothing else needs, and the machine (what is installed, what
# tools/make_broad_corpus.sh sees) stays as it was. The Sandbox option only quiets apt's warning that its
# _apt user cannot write into a private temporary folder.
packages="linux-doc-6.1 dict-gcide perl-doc vim-runtime postgresql-doc-15 sqlite3-doc sword-comm-tdavid"
apt-cache show --no-all-versions linux-doc-6.1 >/dev/null 2>&1 || $SUDO apt-get update -qq
# shellcheck disable=SC2086
(cd "$tmp/debs" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" $packages)
for d in "$tmp"/debs/*.deb; do dpkg -x "$d" "$tmp/root"; done
root=$tmp/root
version() { dpkg-deb -f "$(ls "$tmp/debs/$1"_*.deb)" Version; }

# The converters, in one Python file; each writes one file per document under $tmp/docs/SOURCE/.
cat > "$tmp/extract.py" <<'PY'
import codecs, glob, html, gzip, os, random, re, struct, sys, unicodedata, zlib
from html.parser import HTMLParser

# Bytes that are not UTF-8 are read as Windows-1252: the few in GCIDE are (\x92, \xe7), and it keeps
# letters where dropping them would cut words.
codecs.register_error("cp1252", lambda e: (e.object[e.start:e.end].decode("cp1252", "replace"), e.end))
def text(b):
    return b.decode("utf-8", "cp1252")

class Docs:
    def __init__(self, d):
        self.d, self.n = d, 0
        os.makedirs(d, exist_ok=True)
    def add(self, s):
        self.n += 1
        with open(os.path.join(self.d, "%06d.txt" % self.n), "w", encoding="utf-8") as f:
            f.write(s)

def linux_doc(base, dst):
    docs = Docs(dst)
    for p in sorted(glob.glob(base + "/**/*.rst.gz", recursive=True)):
        rel = os.path.relpath(p, base)
        # Translations are not English. Licence pages quote the licences that are held out:
        # process/license-rules and bpf/bpf_licensing, the GFDL in full (userspace-api/media/fdl-appendix),
        # GPLv3's termination clauses (process/kernel-enforcement-statement).
        if rel.startswith("translations/") or re.search(r"licen[cs]|copying|fdl-appendix|enforcement", rel, re.I):
            continue
        s = text(gzip.open(p).read())
        docs.add(re.sub(r"(?m)^\.\. SPDX-License-Identifier:.*\n", "", s))

# GCIDE's ASCII codes for letters with marks: a mark before the letter, or ^ after it for a breve.
MARKS = {"^": "\u0302", "=": "\u0304", "-": "\u0304", "'": "\u0301", "`": "\u0300", '"': "\u0308",
         "~": "\u0303", ".": "\u0323", ",": "\u0327", "*": "\u030a"}
NAMED = {"ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "eth": "ð", "th": "þ", "imac": "ī", "aum": "ä",
         "=ae": "ǣ", "=oo": "o͞o", "oo^": "o͝o", "root": "√", "deg": "°", "sect": "§", "ng": "ŋ",
         "yogh": "ȝ", "beta": "β"}
SOURCE = r"\[(?:[^\]\n]*(?:Webster|WordNet|PJC|Century|RDH)[^\]\n]*|AS)\]"
def gcide(dictfile, index, dst):
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    def num(s):
        n = 0
        for c in s:
            n = n * 64 + b64.index(c)
        return n
    # The index gives each entry's offset and length; several headwords share one entry. The 00-*
    # entries are the database's header (its GPL notice among them).
    entries, header = set(), set()
    for line in open(index, encoding="utf-8", errors="replace"):
        word, off, size = line.rstrip("\n").split("\t")[:3]
        (header if word.startswith("00-") else entries).add((num(off), num(size)))
    data = gzip.open(dictfile).read()
    docs, cur, size = Docs(dst), [], 0
    n = 0
    for off, length in sorted(entries - header):
        s = text(data[off:off + length])
        s = re.sub(r"[ \t]*\\[^\\]{1,200}\\", "", s)            # pronunciations, \Co*ag"u*late\
        s = re.sub(r"(?m)^[ \t]*" + SOURCE + r"[ \t]*\n", "", s)  # [1913 Webster] lines
        s = re.sub(r"[ \t]*" + SOURCE, "", s)                     # and the same at a line's end
        s = re.sub(r"\[([a-zA-Z=]{2,4}\^?)\]", lambda m: NAMED.get(m.group(1), m.group(0)), s)
        s = re.sub(r"\[([\^=\-'`\"~.,*])([A-Za-z])\]",
                   lambda m: unicodedata.normalize("NFC", m.group(2) + MARKS[m.group(1)]), s)
        s = re.sub(r"\[([A-Za-z])\^\]", lambda m: unicodedata.normalize("NFC", m.group(1) + "\u0306"), s)
        s = s.replace("{", "").replace("}", "").strip()
        if not s:
            continue
        cur.append(s); size += len(s) + 2; n += 1
        if size >= 64 * 1024:
            docs.add("\n\n".join(cur)); cur, size = [], 0
    if cur:
        docs.add("\n\n".join(cur))
    print(n, file=open(dst + ".entries", "w"))

class Html2Text(HTMLParser):
    BLOCK = set("p div br li ul ol dl dt dd h1 h2 h3 h4 h5 h6 tr table blockquote hr caption figure "
                "figcaption tbody thead tfoot section article center form title".split())
    PARAGRAPH = set("p h1 h2 h3 h4 h5 h6 table blockquote ul ol dl".split())
    SKIP = {"script", "style", "svg", "head", "noscript", "select", "button", "map"}
    # Navigation: PostgreSQL's header and footer bars and tables of contents, SQLite's menus and tables
    # of contents; and SQLite's diagrams (SVG).
    SKIP_CLASS = {"navheader", "navfooter", "toc", "menu", "searchmenu", "tagline", "fancy_toc", "imgcontainer"}
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.skip, self.depth, self.pre = [], None, 0, 0
    def nl(self, k):
        self.out.append("\n" * k + ("\x01" if self.pre else ""))
    def handle_starttag(self, tag, attrs):
        if self.skip:
            self.depth += tag == self.skip
            return
        if tag in self.SKIP or (tag == "div" and set((dict(attrs).get("class") or "").split()) & self.SKIP_CLASS):
            self.skip, self.depth = tag, 1
        elif tag == "pre":
            self.pre += 1; self.nl(2)
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag in self.BLOCK:
            self.nl(2 if tag in self.PARAGRAPH else 1)
    def handle_startendtag(self, tag, attrs):
        if not self.skip and tag in self.BLOCK:
            self.nl(1)
    def handle_endtag(self, tag):
        if self.skip:
            if tag == self.skip:
                self.depth -= 1
                if not self.depth:
                    self.skip = None
        elif tag == "pre":
            self.pre = max(0, self.pre - 1); self.nl(2)
        elif tag in self.BLOCK:
            self.nl(2 if tag in self.PARAGRAPH else 1)
    def handle_data(self, d):
        if not self.skip:
            self.out.append(d.replace("\n", "\n\x01") if self.pre else re.sub(r"\s+", " ", d))
    def text(self):
        # Lines of preformatted text (marked \x01) are kept as they are; the others have their spaces
        # collapsed, and a line of 20+ characters seen before in the page (a navigation bar again) goes.
        lines, seen = [], set()
        for line in "".join(self.out).split("\n"):
            if line.startswith("\x01"):
                lines.append(line.replace("\x01", "").rstrip())
                continue
            line = " ".join(line.replace("\x01", "").split())
            if len(line) >= 20:
                if line in seen:
                    continue
                seen.add(line)
            lines.append(line)
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()

def html_pages(base, dst, *exclude):
    docs = Docs(dst)
    for p in sorted(glob.glob(base + "/**/*.html", recursive=True)):
        rel = os.path.relpath(p, base)
        if any(re.search(x, rel) for x in exclude):
            continue
        h = Html2Text()
        h.feed(text(open(p, "rb").read())); h.close()
        docs.add(h.text())

def tdavid(moddir, dst):
    # zCom4 module: NN.czs holds 12-byte records <offset, size, uncompressed size> of the zlib blocks in
    # NN.czz, one block a chapter (a Psalm); the text is OSIS XML.
    docs = Docs(dst)
    for t in ("ot", "nt"):
        idx = open(os.path.join(moddir, t + ".czs"), "rb").read()
        dat = open(os.path.join(moddir, t + ".czz"), "rb").read()
        for off, size, usize in struct.iter_unpack("<III", idx):
            if not size:
                continue
            s = text(zlib.decompress(dat[off:off + size]))
            s = re.sub(r"<div\b[^>]*/>|</?(?:title|lg|list)\b[^>]*>", "\n\n", s)
            s = re.sub(r"<(?:item|l)\b[^>]*>", "\n", s)
            s = html.unescape(re.sub(r"<[^>]*>", "", s))
            s = "\n".join(" ".join(line.split()) for line in s.split("\n"))
            docs.add(re.sub(r"\n{3,}", "\n\n", s).strip())

def clean(s):
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    s = re.sub("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]", "", s)
    return "\n".join(line.rstrip() for line in s.split("\n")).strip()

def assemble(docdir, train, stats, broad_train, broad_docs):
    names = sorted(os.path.join(s, n) for s in os.listdir(docdir) if os.path.isdir(os.path.join(docdir, s))
                   for n in os.listdir(os.path.join(docdir, s)))
    docs = {}
    if not any(n.startswith("broad/") for n in names):
        # corpus/broad's documents could not be rebuilt as they are in its train.txt: cut that text at
        # blank lines into pieces of its mean document size instead (it is shuffled already).
        data, target = open(broad_train, "rb").read(), os.path.getsize(broad_train) // int(broad_docs)
        cur, i = [], 0
        for para in data.split(b"\n\n"):
            cur.append(para)
            if sum(map(len, cur)) >= target:
                docs["broad/piece%06d" % i] = b"\n\n".join(cur).strip(); cur, i = [], i + 1
        if cur:
            docs["broad/piece%06d" % i] = b"\n\n".join(cur).strip()
        names += sorted(docs)
    count, size = {}, {}
    for n in names:
        src = n.split("/")[0]
        if n not in docs:
            raw = open(os.path.join(docdir, n), "rb").read()
            # corpus/broad's documents are taken as its script wrote them (stripped, as there).
            docs[n] = raw.strip().replace(b"\r\n", b"\n") if src == "broad" else clean(text(raw)).encode()
        if docs[n]:
            count[src] = count.get(src, 0) + 1; size[src] = size.get(src, 0) + len(docs[n])
    random.Random(14).shuffle(names)
    with open(train, "wb") as f:
        for n in names:
            if docs[n]:
                f.write(docs[n] + b"\n\n")
    with open(stats, "w") as f:
        for s in sorted(count):
            print(s, count[s], size[s], file=f)

def leaks(train, broad_train, *heldout):
    # Lines of 60+ characters of each held-out file that also occur in train.txt (and in broad's).
    def longlines(p):
        return {l.strip() for l in open(p, encoding="utf-8", errors="replace") if len(l.strip()) >= 60}
    big, small = longlines(train), longlines(broad_train)
    for h in heldout:
        lines = longlines(h)
        print("  %s: %d of %d lines in train.txt (%d in corpus/broad/train.txt)"
              % (os.path.basename(h), len(lines & big), len(lines), len(lines & small)))

globals()[sys.argv[1]](*sys.argv[2:])
PY
x() { python3 "$tmp/extract.py" "$@"; }

# corpus/broad's documents. Its script deletes them once its train.txt is written, so a copy of it that
# keeps them runs in $tmp (40 s); they are used when that copy's train.txt is corpus/broad/train.txt byte
# for byte (same packages, same script), else assemble() cuts corpus/broad/train.txt into pieces.
mkdir -p "$tmp/broad/tools"
# shellcheck disable=SC2016 # $out is a literal of the other script
sed 's|^rm -rf "\$out/docs" |rm -rf |' tools/make_broad_corpus.sh > "$tmp/broad/tools/make_broad_corpus.sh"
if bash "$tmp/broad/tools/make_broad_corpus.sh" >/dev/null 2>&1 && [ -d "$tmp/broad/corpus/broad/docs" ] &&
   cmp -s "$tmp/broad/corpus/broad/train.txt" corpus/broad/train.txt; then
  mv "$tmp/broad/corpus/broad/docs" "$tmp/docs/broad"
  broad_how="its documents as that script wrote them"
else
  echo "note: corpus/broad/train.txt is not what tools/make_broad_corpus.sh makes now; cut into pieces" >&2
  broad_how="cut at blank lines into pieces (it is older than its packages)"
fi
rm -rf "$tmp/broad"
broad_docs=$(sed -n 's/^train.txt: [0-9]* bytes, \([0-9]*\) documents.*/\1/p' corpus/broad/MANIFEST 2>/dev/null)

x linux_doc "$root/usr/share/doc/linux-doc-6.1/Documentation" "$tmp/docs/linux-doc"
x gcide "$root/usr/share/dictd/gcide.dict.dz" "$root/usr/share/dictd/gcide.index" "$tmp/docs/gcide"
gcide_entries=$(cat "$tmp/docs/gcide.entries"); rm "$tmp/docs/gcide.entries"
# perlgpl and perlartistic are the licences of Perl (the GPL in full is held out); perltoc is a table of
# contents of the others (740 KB of headings).
mkdir -p "$tmp/docs/perl-doc"
for f in "$root"/usr/share/perl/*/pod/*.pod; do
  case "$(basename "$f")" in perlgpl.pod|perlartistic.pod|perltoc.pod) continue ;; esac
  pod2text "$f" > "$tmp/docs/perl-doc/$(basename "$f" .pod).txt" 2>/dev/null || true
done
mkdir -p "$tmp/docs/vim"
cp "$root"/usr/share/vim/vim90/doc/*.txt "$tmp/docs/vim/"
# PostgreSQL's legal notice is its licence. SQLite: syntax/ and syntaxdiagrams are diagrams, capi3ref
# repeats c3ref/ in one page, the crossref, sitemap and keyword pages are lists of links, copyright* the
# licence.
x html_pages "$root/usr/share/doc/postgresql-doc-15/html" "$tmp/docs/postgresql" '^legalnotice'
x html_pages "$root/usr/share/doc/sqlite3" "$tmp/docs/sqlite" '^syntax' '_crossref' '^capi3ref' \
  '^sitemap' '^keyword_index' '^copyright'
x tdavid "$root/usr/share/sword/modules/comments/zcom/tdavid" "$tmp/docs/tdavid"

rm -rf "$out"
mkdir -p "$out"
x assemble "$tmp/docs" "$out/train.txt" "$tmp/stats" corpus/broad/train.txt "${broad_docs:-1000}"
iconv -f UTF-8 -t UTF-8 "$out/train.txt" >/dev/null
if LC_ALL=C grep -q $'\r' "$out/train.txt"; then echo "carriage returns left in $out/train.txt" >&2; exit 1; fi
cp corpus/broad/heldout-*.txt "$out/"
# train-head.txt: train.txt's first 60 MiB, cut at a blank line (about 17 M GPT-NeoX tokens, more than one
# run of tools/sweeps/neox-layers.json reads). It is what travels to the GPU machine, where the tracked
# tree and the corpus must fit 64 MiB together: tools/prepare_sweep_carry.sh packs it as
# corpus/pack/large-head.txz with its two held-out texts (about 15 MB).
python3 - "$out/train.txt" "$out/train-head.txt" $((60 << 20)) <<'PY'
import sys
data = open(sys.argv[1], "rb").read(int(sys.argv[3]))
open(sys.argv[2], "wb").write(data[: data.rfind(b"\n\n") + 2])
PY

stat_of() { awk -v s="$1" -v f="$2" '$1 == s { print $f }' "$tmp/stats"; }
line() { echo "  $2 ($(stat_of "$1" 2) documents): $(stat_of "$1" 3) bytes"; }
{
  echo "corpus/large, made by tools/make_large_corpus.sh on $(date -u +%F) from Debian $(cat /etc/debian_version)"
  echo "train.txt: $(wc -c < "$out/train.txt") bytes, $(awk '{ n += $2 } END { print n }' "$tmp/stats") documents, shuffled (seed 14):"
  line broad "corpus/broad/train.txt, $broad_how"
  line linux-doc "linux-doc-6.1 $(version linux-doc-6.1), Documentation/**/*.rst but translations/ and licence pages"
  line gcide "dict-gcide $(version dict-gcide), GCIDE (Webster 1913, WordNet): $gcide_entries entries, markup removed"
  line perl-doc "perl-doc $(version perl-doc), pod/*.pod through pod2text, perlgpl, perlartistic and perltoc left out"
  line vim "vim-runtime $(version vim-runtime), help files vim90/doc/*.txt"
  line postgresql "postgresql-doc-15 $(version postgresql-doc-15), HTML pages as text"
  line sqlite "sqlite3-doc $(version sqlite3-doc), HTML pages as text"
  line tdavid "sword-comm-tdavid $(version sword-comm-tdavid), Spurgeon's Treasury of David, one document a Psalm"
  echo "train-head.txt: $(wc -c < "$out/train-head.txt") bytes, the first of train.txt up to a blank line within 60 MiB"
  for f in "$out"/heldout-*.txt; do
    echo "$(basename "$f"): $(wc -c < "$f") bytes, copied from corpus/broad"
  done
  echo "held-out check, lines of 60+ characters of each held-out file also found in train.txt:"
  x leaks "$out/train.txt" corpus/broad/train.txt "$out"/heldout-*.txt
} > "$out/MANIFEST"
cat "$out/MANIFEST"
echo "made in $(( SECONDS - start )) s"
