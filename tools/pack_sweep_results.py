#!/usr/bin/env python3
"""Packs a sweep's results into gzip tars of at most --max-mb each, for the GPU machine's return limits
(8 files of 16 MiB): the sweep's plan, summary and logs, and each job folder whose job.json is newer
than --since (the jobs this call finished), without weights, optimizer state or the tokenizer copy.
A job's folder is never split across parts, so each part unpacks on its own (tar xzf PART at the
checkout's root). Prints one line per part.

  python3 tools/pack_sweep_results.py sweeps/neox-layers --since /tmp/marker --out $OUT/sweep-neox-layers
"""
import argparse
import io
import os
import sys
import tarfile

SKIP = ("optimizer.pt", "trainer_state.json", "tokenizer.json", "claim.lock")


def wanted(name):
    base = os.path.basename(name)
    return not (base in SKIP or base.endswith(".safetensors") or base.endswith(".bin"))


def pack(paths, root):
    """One gzip tar of the given files and folders (relative to root), as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        for path in paths:
            tar.add(os.path.join(root, path), arcname=path,
                    filter=lambda info: info if wanted(info.name) else None)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="the sweep's folder (its 'out'), relative to the checkout's root")
    ap.add_argument("--since", help="a file: only jobs whose job.json is newer (default: every job)")
    ap.add_argument("--out", required=True, help="prefix of the parts: PREFIX-1.tgz, PREFIX-2.tgz, ...")
    ap.add_argument("--max-mb", type=float, default=15.0)
    ap.add_argument("--max-parts", type=int, default=6)
    a = ap.parse_args()
    root = os.getcwd()
    folder = os.path.normpath(a.folder)
    since = os.path.getmtime(a.since) if a.since else None
    jobs_dir = os.path.join(folder, "jobs")
    jobs = []
    for job in sorted(os.listdir(jobs_dir)) if os.path.isdir(jobs_dir) else []:
        result = os.path.join(jobs_dir, job, "job.json")
        if os.path.exists(result) and (since is None or os.path.getmtime(result) > since):
            jobs.append(os.path.join(jobs_dir, job))
    common = [os.path.join(folder, f) for f in ("plan.json", "summary.json", "summary.h5", "logs")
              if os.path.exists(os.path.join(folder, f))]
    limit = a.max_mb * 1024 * 1024
    blobs = [(p, pack([p], root)) for p in common + jobs]
    parts, current, size = [], [], 0
    for path, blob in blobs:
        if len(blob) > limit:
            sys.exit(f"{path}: {len(blob) / 2**20:.1f} MiB packed, over the part limit of {a.max_mb} MiB")
        if current and size + len(blob) > limit:
            parts.append(current)
            current, size = [], 0
        current.append(path)
        size += len(blob)
    if current:
        parts.append(current)
    if len(parts) > a.max_parts:
        sys.exit(f"{folder}: {len(parts)} parts needed, at most {a.max_parts} allowed")
    for k, paths in enumerate(parts, 1):
        name = f"{a.out}-{k}.tgz"
        data = pack(paths, root)
        with open(name, "wb") as f:
            f.write(data)
        n = sum(1 for p in paths if p.startswith(jobs_dir))
        print(f"{name}: {len(data) / 2**20:.1f} MiB, {n} jobs")
    if not parts:
        print(f"{folder}: nothing to pack")


if __name__ == "__main__":
    main()
