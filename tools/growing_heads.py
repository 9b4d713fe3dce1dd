#!/usr/bin/python3
"""Which Mamba-2 heads fail a sweep's norm part, and does the model need them to remember?

Reads a float32 trace of a Mamba-2 model (`statescope-cli run --probe-precision float32`) over at least
16 T_train tokens of held-out text and prints, per head, the state-norm growth from [T/2 + 64, T) to the
256 tokens before 16 T (the sweep's norm part), the norms themselves, the mean Delta, A and the mean
timescale 1 / mean(-ln alpha). With --ablate OUT it also writes a copy of the model folder in which
every head that grew more than --over (5x, the criterion's limit) is made to forget: its A is set so
that mean(Delta) * A = 1 / --timescale. Delta, and so what the head inserts, is unchanged; only how
long it remembers changes. Judge both with `statescope-cli sweep judge` (docs/sweeps.md, fifth round).

    /usr/bin/python3 tools/growing_heads.py TRACE.h5 MODEL_DIR T_TRAIN [--ablate OUT] [--over 5] [--timescale 1024]

Needs numpy and h5py (Debian: python3-numpy python3-h5py)."""
import argparse
import json
import shutil
import struct

import h5py
import numpy as np


def safetensors(path):
    raw = bytearray(open(path, "rb").read())
    n = struct.unpack("<Q", raw[:8])[0]
    return raw, json.loads(raw[8:8 + n]), 8 + n


def tensor(raw, header, base, name):
    h = header[name]
    if h["dtype"] != "F32":
        raise SystemExit(f"{name}: expected F32 weights, got {h['dtype']}")
    a, b = h["data_offsets"]
    return np.frombuffer(bytes(raw[base + a:base + b]), dtype=np.float32).reshape(h["shape"]).copy()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trace")
    p.add_argument("model")
    p.add_argument("train_length", type=int)
    p.add_argument("--ablate")
    p.add_argument("--over", type=float, default=5.0)
    p.add_argument("--timescale", type=float, default=1024.0)
    a = p.parse_args()
    T = a.train_length
    f = h5py.File(a.trace, "r")
    norm, dt, decay = (f["probes/" + k][:] for k in ("state_norm", "dt", "decay"))
    if norm.dtype != np.float32 or norm.shape[0] < 16 * T:
        raise SystemExit(f"{a.trace}: need a float32 trace of at least 16 T = {16 * T} tokens, "
                         f"got {norm.shape[0]} tokens of {norm.dtype}")
    ref = norm[T // 2 + 64:T].mean(0)
    end = norm[16 * T - 256:16 * T].mean(0)
    growth = end / ref
    raw, header, base = safetensors(a.model + "/model.safetensors")
    print(f"{'layer':>5} {'head':>4} {'growth':>7} {'|S| ref':>8} {'|S| 16T':>8} {'mean dt':>9} {'A':>6} "
          f"{'timescale':>10}")
    grown = []
    for l in range(norm.shape[1]):
        A = np.exp(tensor(raw, header, base, f"backbone.layers.{l}.mixer.A_log"))
        for h in range(norm.shape[2]):
            timescale = 1.0 / (-np.log(decay[:, l, h].astype(np.float64))).mean()
            mark = " <- over %gx" % a.over if growth[l, h] > a.over else ""
            print(f"{l:5d} {h:4d} {growth[l, h]:6.2f}x {ref[l, h]:8.3g} {end[l, h]:8.3g} {dt[:, l, h].mean():9.3g} "
                  f"{A[h]:6.3g} {timescale:10.3g}{mark}")
            if growth[l, h] > a.over:
                grown.append((l, h))
    print(f"{len(grown)} of {growth.size} heads grew more than {a.over:g}x: {grown}")
    if not a.ablate:
        return
    shutil.rmtree(a.ablate, ignore_errors=True)
    shutil.copytree(a.model, a.ablate, ignore=shutil.ignore_patterns("snapshots", "trainer_state.json", "*.pt"))
    for l in sorted({l for l, _ in grown}):
        name = f"backbone.layers.{l}.mixer.A_log"
        A_log = tensor(raw, header, base, name)
        for gl, h in grown:
            if gl == l:
                A_log[h] = np.log(1.0 / (a.timescale * dt[:, l, h].mean()))
        s, e = header[name]["data_offsets"]
        raw[base + s:base + e] = A_log.astype(np.float32).tobytes()
    open(a.ablate + "/model.safetensors", "wb").write(raw)
    print(f"written: {a.ablate} (those heads forget within about {a.timescale:g} tokens)")


if __name__ == "__main__":
    main()
