#!/usr/bin/env bash
# Everything a sweep call on the GPU machine carries, made here where it is missing (a new checkout has
# none of it: .carry, corpus and sweeps are ignored): the engine's debs (.carry/debs, what
# tools/gpu_session.sh unpacks), corpus/large (tools/make_large_corpus.sh) and its head packed as
# corpus/pack/large-head.txz. Then the carry's size against the GPU machine's 64 MiB, and, for a spec
# given with its job list, the ids that still have no job.json here (sweep plan --unfinished), since a
# cold machine has none of the earlier calls' results.
#   bash tools/prepare_sweep_carry.sh
#   JOBS="id,id,..." bash tools/prepare_sweep_carry.sh tools/sweeps/neox-dstate.json
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls .carry/debs/libpcre2-dev_*.deb >/dev/null 2>&1; then
  mkdir -p .carry/debs
  (cd .carry/debs && apt-get download -qq -o APT::Sandbox::User="$(id -un)" \
    libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 libdeflate-dev libdeflate0)
fi
[ -s corpus/large/train-head.txt ] || bash tools/make_large_corpus.sh
if [ ! -s corpus/pack/large-head.txz ]; then
  mkdir -p corpus/pack
  # -9e: 0.85 MB less than xz's default (14.96 against 15.80 MB), room the carry lacks; about 2.5 minutes.
  XZ_OPT=-9e tar cJf corpus/pack/large-head.txz -C corpus large/train-head.txt large/heldout-licences.txt \
    large/heldout-policy.txt
fi
# Counted as a tar, headers and padding included: on 2026-12-06 the device refused a tree whose files
# came to 66.71 MB, under 64 MiB by their bytes but 67.24 MB as a tar, and took it at 66.64 MB as a tar.
# The tree is what travels: tracked files and untracked ones git does not ignore.
tracked=$(git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - 2>/dev/null | wc -c)
carried=$(tar -cf - .carry/debs corpus/pack | wc -c)
limit=$((64 << 20))
echo "carry [\".carry/debs\", \"corpus/pack\"]: $tracked bytes of tree + $carried carried, as tar = $((tracked + carried)) of $limit"
[ $((tracked + carried)) -le $limit ] || { echo "over the GPU machine's 64 MiB: carry less" >&2; exit 1; }
# The training text the jobs will read, as job.json records it.
grep -h "^train" corpus/large/MANIFEST | head -2
if [ $# -ge 1 ]; then
  cli=${CLI:-build/app/statescope-cli}
  echo "unfinished jobs of $1 (for JOBS_<name>):"
  "$cli" sweep plan "$1" --unfinished ${JOBS:+--jobs "$JOBS"}
fi
