#!/usr/bin/env python3
"""Writes the probe chunks of a trace as the trace writer compresses them: each HDF5 chunk of every
float probe, byte-shuffled (HDF5's shuffle filter), one after the other, into one file, for
tools/bench_literal_deflate.cpp. Prints the file's size and the bytes of one chunk.

    python3 tools/dump_shuffled_chunks.py TRACE.h5 OUT.bin
"""
import sys

import h5py
import numpy as np


def main():
    trace, out = sys.argv[1], sys.argv[2]
    chunks = []
    with h5py.File(trace, "r") as f:
        for name, d in f["probes"].items():
            if d.dtype not in (np.float16, np.float32):
                continue
            c = d.chunks[0]
            for s in range(0, d.shape[0] - c + 1, c):
                a = d[s:s + c]
                b = a.view(np.uint8).reshape(-1, a.itemsize)
                chunks.append(np.ascontiguousarray(b.T).tobytes())
    with open(out, "wb") as f:
        f.write(b"".join(chunks))
    print(out, sum(map(len, chunks)), "bytes, chunks of", len(chunks[0]) if chunks else 0)


if __name__ == "__main__":
    main()
