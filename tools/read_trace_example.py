#!/usr/bin/env python3
"""Reads a StateScope trace (docs/trace-format.md) with h5py: prints its self-description (schema 2:
architecture, layers x units, state size, forget threshold, input, run settings, each probe's label,
unit and summary), its length, whether the run completed, and the perplexity per bucket of tokens;
optionally plots it. Schema-1 traces print what they recorded.

    /usr/bin/python3 tools/read_trace_example.py run.h5 [--buckets 20] [--plot ppl.png]

Needs h5py and numpy (Debian: apt-get install python3-h5py); --plot also needs matplotlib.
Works on a trace that is still being written or whose writer was killed: the file is opened in SWMR
read mode, which is also the only mode that opens a killed writer's file.
"""
import argparse
import json
import math
import sys

import h5py
import numpy as np

WINDOW = 1 << 16  # tokens per read: a 1M-token trace is never loaded whole


SCHEMA_VERSIONS = (1, 2, 3, 4)


def text(value):
    """Variable-length strings come back as str; fixed-length ones (end_time, and schema 2's
    self-description) as bytes."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def open_trace(path):
    f = h5py.File(path, "r", swmr=True)
    version = f.attrs.get("schema_version")
    if version is None or int(version) not in SCHEMA_VERSIONS:
        f.close()
        raise SystemExit(f"{path}: not a StateScope trace of schema version 1 to 4 (schema_version = {version})")
    return f


def count(f, name):
    """A schema-2 count; 0 (absent, or recorded as 0) means unknown."""
    value = int(f.attrs.get(name, 0))
    return value if value > 0 else None


def print_self_description(f):
    """Schema 2's self-description: what the window shows without the model folder."""
    attrs = f.attrs
    if int(attrs["schema_version"]) < 2:
        print("schema     1 (no self-description: probes' summary and labels follow from their names)")
        return
    layers, units = count(f, "layers"), count(f, "units")
    unit_name = text(attrs.get("unit_name", "")) or "unit"
    print(f"schema     {int(attrs['schema_version'])}")
    print(f"arch       {text(attrs.get('architecture_name', '')) or '?'}: "
          f"{layers or '?'} layers x {units or '?'} {unit_name}s")
    state_size = count(f, "state_size")
    if state_size:
        print(f"N_S        {state_size:,} elements ({text(attrs.get('state_size_definition', ''))})")
    threshold = float(attrs.get("forget_threshold", math.nan))
    print(f"T_forget   {'none' if math.isnan(threshold) else f'{threshold:,.0f} tokens'}")
    training = count(f, "training_length")
    print(f"trained on {f'{training:,} tokens' if training else 'unknown length'}")
    vocab = count(f, "vocab_size")
    print(f"vocab      {vocab if vocab else 'unknown'}")
    kind = text(attrs.get("input_kind", ""))
    source = text(attrs.get("input_path", "")) or text(attrs.get("input_prompt", "")) or "(typed)"
    print(f"input from {kind or '?'}: {source}")
    tokenizer = text(attrs.get("tokenizer", ""))
    if tokenizer:
        print(f"tokenizer  {tokenizer}  {text(attrs.get('tokenizer_path', ''))}")
    settings = text(attrs.get("run_settings", ""))
    if settings:
        print(f"settings   {', '.join(f'{k} {v}' for k, v in json.loads(settings).items())}")


def probe_values(dataset, begin, end):
    """Tokens [begin, end) of a probe as float32, decoded: schema 3 may store a probe in half precision
    after a transform, named by its `encoding` attribute (docs/trace-format.md, "Probe precision")."""
    encoding = text(dataset.attrs.get("encoding", "float32"))
    x = dataset[begin:end].astype(np.float32)
    if encoding == "neg_log_float16":
        return np.exp(-x)
    if encoding == "log_float16":
        return np.exp(x)
    if encoding in ("float32", "float16"):
        return x
    raise SystemExit(f"{dataset.name}: unknown encoding {encoding!r}")


def derived_values(f, dataset, begin, end):
    """Schema 4: a probe in /derived is computed from the one its `from` names, value = scale * (-ln
    source), with its dataset holding the scale per [layer, unit] (docs/trace-format.md, "Derived
    probes"). A neg_log_float16 source already stores -ln, so it is used as stored."""
    rule = text(dataset.attrs.get("rule", ""))
    if rule != "scale_times_neg_log":
        raise SystemExit(f"{dataset.name}: unknown rule {rule!r}")
    source = f["probes"][text(dataset.attrs["from"])]
    x = source[begin:end].astype(np.float64)
    if text(source.attrs.get("encoding", "float32")) != "neg_log_float16":
        x = -np.log(probe_values(source, begin, end).astype(np.float64))
    return (dataset[()].astype(np.float64) * x).astype(np.float32)


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
        print_self_description(f)
        probes = [(name, d, False) for name, d in f["probes"].items()]
        # Derived probes go where the model reported them, by their `position`.
        for name, d in f.get("derived", {}).items():
            probes.insert(min(int(d.attrs.get("position", len(probes))), len(probes)), (name, d, True))
        for name, d, derived in probes:
            # Schema 2: a label for plots, a unit, and how to reduce the unit axis to one value per layer.
            label = text(d.attrs.get("label", "")) or name
            extra = ""
            if "summary" in d.attrs:
                unit = text(d.attrs.get("unit", ""))
                extra = f"  {label}, summary {text(d.attrs['summary'])}" + (f", in {unit}" if unit else "")
            if "encoding" in d.attrs:
                extra += f", stored as {text(d.attrs['encoding'])}"
            if derived:
                extra += f", derived: scale x -ln {text(d.attrs['from'])}"
            shape = [T] + list(d.shape) if derived else list(d.shape)
            print(f"probe      {name:12s} {d.dtype} {shape}  axes {text(d.attrs.get('axes', '?'))}{extra}")
            if T > 0:
                last = derived_values(f, d, T - 1, T) if derived else probe_values(d, T - 1, T)
                print(f"{'':11s}last token: mean {float(np.nanmean(last)):.6g}, max {float(np.nanmax(last)):.6g}")
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
