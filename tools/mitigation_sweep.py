#!/usr/bin/env python3
"""Runs `statescope-cli eval` over mitigation settings and prints the table of docs/mitigations.md.

For each setting: mean NLL over [0, T_train), over [T_train/2, 4 T_train) (the "healthy" range),
over [16K, 32K), the excess of the last over the healthy range, the share of the original excess
removed, and the rise of the first range. Buckets of 128 tokens; NLL means are token-weighted.

    tools/mitigation_sweep.py --cli build/app/statescope-cli --model resources/models/tiny-collapse \
        --text resources/texts/kjv-heldout.txt --settings none alpha=0.99 B=0.75,alpha=0.99 ...
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def mean(buckets, lo, hi):
    total = weight = 0.0
    for b in buckets:
        a, e = max(b["from"], lo), min(b["to"], hi)
        if e > a and b["mean_nll"] == b["mean_nll"]:
            total += b["mean_nll"] * (e - a)
            weight += e - a
    return total / weight if weight else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--length", type=int, default=32768)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--train-length", type=int, default=256)
    ap.add_argument("--settings", nargs="+", default=["none"])
    args = ap.parse_args()
    t = args.train_length
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            out = os.path.join(tmp, "eval.json")
            subprocess.run([args.cli, "eval", "--model", args.model, "--text", args.text, "--length",
                            str(args.length), "--samples", str(args.samples), "--bucket", "128", "--quiet",
                            "--mitigate", setting, "--json", out], check=True, stdout=subprocess.DEVNULL)
            j = json.load(open(out))
            b = j["buckets"]
            first, healthy = mean(b, 0, t), mean(b, t // 2, 4 * t)
            late = mean(b, args.length // 2, args.length)
            rows.append((setting, first, healthy, late, late - healthy, j["ratio"]))
            print(f"  ran {setting}", file=sys.stderr, flush=True)
    base_first, base_excess = rows[0][1], rows[0][4]
    print(f"| setting | NLL [0, {t}) | NLL [{t // 2}, {4 * t}) | NLL [{args.length // 2}, {args.length}) "
          f"| excess | excess removed | [0, {t}) rise | eval ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for setting, first, healthy, late, excess, ratio in rows:
        removed = 1 - excess / base_excess if base_excess else float("nan")
        rise = first / base_first - 1
        print(f"| `{setting}` | {first:.3f} | {healthy:.3f} | {late:.3f} | {excess:.3f} | {removed:.0%} "
              f"| {rise:+.1%} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
