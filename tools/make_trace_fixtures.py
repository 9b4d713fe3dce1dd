#!/usr/bin/env python3
"""Writes the trace reader's fixtures, tests/data/trace/*.h5, with h5py (not with StateScope's writer,
so that TestTraceFile checks the reader against an independent producer).

Every value follows a formula that tests/trace/TestTraceFile.cpp repeats:
  ids[t]          = (t * 7919) % 50277
  offsets[t]      = (3 t, 3 t + 2)
  nll[t]          = NaN for t = 0, else 0.25 * (t % 9)
  /probes/alpha   [T, 2, 3] float64: t + 0.125 * (3 i + j)
  /probes/beta    [T, 4]    float32: -t - 0.5 k
/probes keeps creation order and beta is created first, so a reader that honours it lists beta, alpha.

Run: /usr/bin/python3 tools/make_trace_fixtures.py  (needs python3-h5py, python3-numpy)
"""
import os
import sys

import h5py
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "trace")
T = 50


def ids(n):
    return (np.arange(n, dtype=np.int64) * 7919) % 50277


def offsets(n):
    t = np.arange(n, dtype=np.int64)
    return np.stack([3 * t, 3 * t + 2], axis=1)


def nll(n):
    v = 0.25 * (np.arange(n) % 9)
    v = v.astype(np.float32)
    if n:
        v[0] = np.nan
    return v


def alpha(n):
    t = np.arange(n, dtype=np.float64)[:, None, None]
    i = np.arange(2, dtype=np.float64)[None, :, None]
    j = np.arange(3, dtype=np.float64)[None, None, :]
    return t + 0.125 * (3 * i + j)


def beta(n):
    t = np.arange(n, dtype=np.float32)[:, None]
    k = np.arange(4, dtype=np.float32)[None, :]
    return -t - 0.5 * k


def write(name, schema=1, lengths=None, completed=1, skip=(), ids_rank2=False):
    lengths = lengths or {}
    path = os.path.join(OUT, name)
    with h5py.File(path, "w") as f:  # default (oldest) file format: the reader's non-SWMR path
        if schema is not None:
            f.attrs["schema_version"] = np.int32(schema)
        f.attrs["architecture"] = "mamba2"
        f.attrs["model_config"] = '{"d_model": 64, "n_layer": 2}'
        f.attrs["model_path"] = "/models/tiny"
        f.attrs["dtype"] = "float32"
        f.attrs["device"] = "cpu"
        f.attrs["input"] = "caf\u00e9 \u6587\u672c.txt"
        f.attrs["start_time"] = "2025-01-02T03:04:05Z"
        f.attrs["software_version"] = "h5py fixture"
        f.attrs["completed"] = np.int32(completed)
        if completed:
            f.attrs["tokens"] = np.int64(T)
            f.attrs["end_time"] = "2025-01-02T03:05:00Z"
        f.attrs["temperature"] = 0.5
        tokens = f.create_group("tokens")
        n = lengths.get("ids", T)
        data = ids(n)
        tokens.create_dataset("ids", data=data.reshape(n, 1) if ids_rank2 else data, maxshape=(None,) + ((1,) if ids_rank2 else ()),
                              chunks=True)
        tokens.create_dataset("offsets", data=offsets(lengths.get("offsets", T)), maxshape=(None, 2), chunks=True)
        if "nll" not in skip:
            f.create_dataset("nll", data=nll(lengths.get("nll", T)), maxshape=(None,), chunks=True)
        probes = f.create_group("probes", track_order=True)
        b = probes.create_dataset("beta", data=beta(lengths.get("beta", T)), maxshape=(None, 4), chunks=(16, 4),
                                  compression="gzip", shuffle=True)
        b.attrs["description"] = "beta probe"
        b.attrs["axes"] = "token,slot"
        b.attrs["head_meaning"] = "none"
        a = probes.create_dataset("alpha", data=alpha(lengths.get("alpha", T)), maxshape=(None, 2, 3),
                                  chunks=(16, 2, 3))
        a.attrs["description"] = "alpha probe"
        a.attrs["axes"] = "token,layer,head"
        a.attrs["head_meaning"] = "a test head"


def main():
    os.makedirs(OUT, exist_ok=True)
    write("h5py_complete.h5")
    write("no_schema.h5", schema=None)
    write("schema_v2.h5", schema=2)
    write("uneven_incomplete.h5", completed=0, lengths={"ids": 40, "nll": 45})
    write("uneven_complete.h5", lengths={"ids": 40, "nll": 45})
    write("missing_nll.h5", skip=("nll",))
    write("ids_rank2.h5", ids_rank2=True)
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
