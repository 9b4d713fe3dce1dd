#!/usr/bin/env python3
"""Measures the HDF5 compression filters Debian ships on a trace's own probe data (issue 15):
for each probe, the stored values are rewritten with each filter in the writer's chunk shape, and
the compressed size, the single-core write and read speeds, and whether h5py reads them back
bit-exact are printed. The trace writer runs its codec on every core itself, so MB/s per core and
the ratio are what decide.

    apt-get install python3-h5py hdf5-filter-plugin hdf5-filter-plugin-blosc-serial hdf5-plugin-lzf
    HDF5_PLUGIN_PATH=/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins \\
        /usr/bin/python3 tools/bench_trace_codecs.py run.h5 [--tokens 100000] [--repeat 3]

Debian 12's plugins: LZ4 (32004) and BZip2 (307) from hdf5-filter-plugin, Blosc (32001, with its
LZ4, Zstandard and zlib codecs and byte or bit shuffle) from hdf5-filter-plugin-blosc-serial, LZF
(32000) from hdf5-plugin-lzf. Bitshuffle's own filter (32008) is not packaged there.
"""
import argparse
import os
import tempfile
import time

import h5py
import numpy as np

BLOSC_CODECS = {"blosclz": 0, "lz4": 1, "lz4hc": 2, "zlib": 4, "zstd": 5}


def filters():
    """name -> h5py create_dataset keyword arguments."""
    out = {
        "none": {},
        "shuffle+deflate 1 (now)": {"shuffle": True, "compression": "gzip", "compression_opts": 1},
        "shuffle+deflate 6": {"shuffle": True, "compression": "gzip", "compression_opts": 6},
        "shuffle+lzf": {"shuffle": True, "compression": 32000},
        "shuffle+lz4": {"shuffle": True, "compression": 32004, "compression_opts": (0,)},
        "shuffle+bzip2": {"shuffle": True, "compression": 307, "compression_opts": (9,)},
    }
    for codec, level in (("lz4", 5), ("zstd", 1), ("zstd", 3), ("zlib", 1), ("blosclz", 5)):
        for shuffle_name, shuffle in (("byte", 1), ("bit", 2)):
            out[f"blosc {codec} {level}, {shuffle_name} shuffle"] = {
                "compression": 32001,
                "compression_opts": (0, 0, 0, 0, level, shuffle, BLOSC_CODECS[codec]),
            }
    return out


def chunk_tokens(token_bytes):
    """The writer's chunk: a power of two of at most 64 tokens, at most about 1 MiB."""
    c = 64
    while c > 1 and c * token_bytes > (1 << 20):
        c //= 2
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--tokens", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    data = {}
    with h5py.File(args.trace, "r", swmr=True) as f:
        for name, d in f["probes"].items():
            data[name] = d[: args.tokens]
        print(f"trace {args.trace}: {', '.join(f'{n} {v.dtype} {list(v.shape)}' for n, v in data.items())}")
    raw = sum(v.nbytes for v in data.values())
    print(f"raw probe bytes: {raw / 1e6:.1f} MB; one core; best of {args.repeat}")
    print(f"{'filter':36s} {'file/raw':>9s} {'write MB/s':>11s} {'read MB/s':>10s}  exact")
    with tempfile.TemporaryDirectory() as tmp:
        for label, kwargs in filters().items():
            path = os.path.join(tmp, "c.h5")
            best_write = best_read = float("inf")
            stored = 0
            exact = True
            try:
                for _ in range(args.repeat):
                    if os.path.exists(path):
                        os.remove(path)
                    t0 = time.perf_counter()
                    with h5py.File(path, "w", libver="latest") as f:
                        for name, v in data.items():
                            token_bytes = v[0].nbytes
                            chunks = (min(len(v), chunk_tokens(token_bytes)),) + v.shape[1:]
                            f.create_dataset(name, data=v, chunks=chunks, **kwargs)
                    best_write = min(best_write, time.perf_counter() - t0)
                    stored = 0
                    with h5py.File(path, "r") as f:
                        stored = sum(f[n].id.get_storage_size() for n in data)
                    t0 = time.perf_counter()
                    with h5py.File(path, "r") as f:
                        for name, v in data.items():
                            back = f[name][...]
                            exact = exact and np.array_equal(back.view(np.uint8), v.view(np.uint8))
                    best_read = min(best_read, time.perf_counter() - t0)
            except (OSError, ValueError) as e:
                print(f"{label:36s} unavailable: {str(e).splitlines()[0][:60]}")
                continue
            print(f"{label:36s} {stored / raw:9.3f} {raw / best_write / 1e6:11.0f} {raw / best_read / 1e6:10.0f}  {exact}")


if __name__ == "__main__":
    main()
