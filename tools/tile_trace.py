#!/usr/bin/env python3
"""Repeats a real trace end to end into a long one, for measuring the window on long traces.

A 1M-token run of a 24-layer x 24-head model takes over an hour on a 2-core CPU, and its 1.9 GB trace
cannot come back from the GPU machine; this makes one from a shorter real run (every value is one the
model produced), keeping the file's layout, chunking, compression and attributes. Offsets are shifted
so that they keep growing; the trace's `input` says what was done.

    /usr/bin/python3 tools/tile_trace.py SOURCE.h5 TIMES OUT.h5
"""
import shutil
import sys

import h5py
import numpy as np


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    source, times, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if times < 1:
        sys.exit("TIMES must be at least 1")
    shutil.copyfile(source, out)
    with h5py.File(out, "r+", libver="latest") as f:
        n = int(f.attrs["tokens"])
        datasets = []
        f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        for d in datasets:
            if d.shape[0] != n or d.maxshape[0] is not None:
                sys.exit(f"{source}: {d.name}: expected {n} rows and an unlimited first dimension")
        for d in datasets:
            block = d[...]
            d.resize((n * times,) + d.shape[1:])
            for k in range(1, times):
                if d.name.endswith("/offsets"):
                    shift = int(block[-1, 1]) * k
                    d[k * n:(k + 1) * n] = block + shift
                else:
                    d[k * n:(k + 1) * n] = block
        f.attrs.modify("tokens", np.int64(n * times))
        note = f" (repeated {times} times by tools/tile_trace.py)"
        f.attrs.modify("input", str(f.attrs["input"]) + note)


if __name__ == "__main__":
    main()
