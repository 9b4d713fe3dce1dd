#!/usr/bin/env python3
"""Reads a StateScope trace (docs/trace-format.md) with h5py: prints its length, whether the run
completed, its probes, and the perplexity per bucket of tokens; optionally plots it.

    /usr/bin/python3 tools/read_trace_example.py run.h5 [--buckets 20] [--plot ppl.png]

Needs h5py and numpy (Debian: apt-get install python3-h5py); --plot also needs matplotlib.
Works on a trace that is still being written or whose writer was killed: the file is opened in SWMR
read mode, which is also the only mode that opens a killed writer's file.
"""
import argparse
import math
import sys

import h5py
import numpy as np

WINDOW = 1 << 16  # tokens per read: a 1M-token trace is never loaded whole


def text(value):
    """Attributes are str, except end_time: a fixed-length string, which h5py returns as bytes."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def open_trace(path):
    f = h5py.File(path, "r", swmr=True)
    version = f.attrs.get("schema_version")
    if version is None or int(version) != 1:
        raise SystemExit(f"{path}: not a StateScope trace of schema version 1 (schema_version = {version})")
    return f


def trace_length(f):
    # A killed writer may leave the datasets of unequal length; what is readable everywhere is the
    # shortest. /tokens/ids is written last in each append, so it is normally the shortest.
    lengths = [f["tokens/ids"].shape[0], f["nll"].shape[0]]
    lengths += [d.shape[0] for d in f["probes"].values()]
    if "offsets" in f["tokens"]:
        lengths.append(f["tokens/offsets"].shape[0])
    return min(lengths)


def bucketed_perplexity(nll_dataset, T, buckets):
    """exp(mean NLL) over `buckets` equal runs of tokens, skipping NaN (the first token has none)."""
    edges = np.linspace(0, T, buckets + 1).astype(np.int64)
    sums = np.zeros(buckets)
    counts = np.zeros(buckets, dtype=np.int64)
    for start in range(0, T, WINDOW):
        stop = min(T, start + WINDOW)
        nll = nll_dataset[start:stop].astype(np.float64)  # a hyperslab read: only this window
        which = np.searchsorted(edges, np.arange(start, stop), side="right") - 1
        ok = ~np.isnan(nll)
        np.add.at(sums, which[ok], nll[ok])
        np.add.at(counts, which[ok], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ppl = np.exp(sums / counts)
    return edges, ppl


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--buckets", type=int, default=20)
    ap.add_argument("--plot", metavar="PNG", help="save a plot of perplexity against token position")
    args = ap.parse_args()

    with open_trace(args.trace) as f:
        T = trace_length(f)
        completed = bool(f.attrs.get("completed", 0))
        print(f"trace      {args.trace}")
        print(f"model      {text(f.attrs.get('architecture', '?'))} ({text(f.attrs.get('model_path', '?'))}), "
              f"{text(f.attrs.get('dtype', '?'))} on {text(f.attrs.get('device', '?'))}")
        print(f"input      {text(f.attrs.get('input', '?'))}")
        print(f"run        {text(f.attrs.get('start_time', '?'))} .. {text(f.attrs.get('end_time', b'')) or '(not finished)'}")
        print(f"T          {T}")
        print(f"completed  {completed}")
        for name, d in f["probes"].items():
            print(f"probe      {name:12s} {d.dtype} {list(d.shape)}  axes {text(d.attrs.get('axes', '?'))}")
        if T == 0:
            return
        buckets = max(1, min(args.buckets, T))
        edges, ppl = bucketed_perplexity(f["nll"], T, buckets)
        print(f"{'tokens':>23s}  perplexity")
        for i in range(buckets):
            value = "n/a" if math.isnan(ppl[i]) else f"{ppl[i]:.3f}"
            print(f"{edges[i]:>10d} - {edges[i + 1]:<10d}  {value}")

    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            sys.exit("--plot needs matplotlib (apt-get install python3-matplotlib)")
        centers = (edges[:-1] + edges[1:]) / 2
        plt.figure(figsize=(8, 4))
        plt.plot(centers, ppl, marker="o")
        plt.xlabel("token position")
        plt.ylabel("perplexity (per bucket)")
        plt.yscale("log")
        plt.title(args.trace)
        plt.tight_layout()
        plt.savefig(args.plot, dpi=120)
        print(f"plot       {args.plot}")


if __name__ == "__main__":
    main()
