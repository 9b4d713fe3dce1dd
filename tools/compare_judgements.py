#!/usr/bin/env python3
"""Is the seeds' spread in T_forget the training's or the measurement's?

Sets three verdicts of each run side by side (docs/sweeps.md, Next after the twentieth round):
  - stored: the run as an earlier sweep judged it (a `sweep report` summary.json, e.g. docs/bench/...);
  - again: the same cell (same id: size, T_train, seed, spec) trained again and judged by its sweep;
  - wider: that retrained model judged once more by `sweep judge` with another spec, e.g. four times
    the windows (tools/gpu_judge_again.sh writes one JSON a job, named after its id).
stored against again measures how far a verdict is the training's (a GPU run is not bit-exact, and a
verdict near the 5x bound can flip); again against wider measures how far it is the windows'. Then,
for each reading, each seed's bracket over the T_train grid the runs share, and whether each size's
seeds agree within one grid step, as the issue asks.
    python3 tools/compare_judgements.py --stored docs/bench/OLD.json \
        --again sweeps/micro-width-recheck/summary.json --wider sweeps/micro-width-recheck/judged
"""
import argparse
import json
import math
import os
import statistics
import sys


def runs_of(path):
    with open(path) as f:
        summary = json.load(f)
    return {r["id"]: r for r in summary["runs"] if r.get("finished")}


def wider_of(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                v = json.load(f)
            out[name[: -len(".json")]] = {"forgets": v["forgets"], "norm_growth": v["norm_growth"]}
    return out


def verdict(r):
    if r is None:
        return "-"
    return f"{'forgets' if r['forgets'] else 'collapses'} {r['norm_growth']:6.2f}x"


def bracket(cells, grid):
    """The index in grid of the shortest T_train from which every longer one forgets: 0 where all
    forget (at or below the grid's floor), len(grid) where none does; "nm" where the verdicts are
    not monotone in T_train, "-" where a cell was not read."""
    verdicts = [cells.get(t) for t in grid]
    if any(v is None for v in verdicts):
        return "-"
    first = next((i for i, v in enumerate(verdicts) if v), len(grid))
    if not all(verdicts[first:]):
        return "nm"
    return first


def describe(index, grid):
    if isinstance(index, str):
        return index
    if index == 0:
        return f"<={grid[0]}"
    if index == len(grid):
        return f">{grid[-1]}"
    return f"[{grid[index - 1]},{grid[index]}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--stored", required=True, help="the earlier sweep's summary.json")
    ap.add_argument("--again", required=True, help="the retrained cells' summary.json")
    ap.add_argument("--wider", help="folder of `sweep judge --json` files, one per job id")
    a = ap.parse_args()
    stored, again = runs_of(a.stored), runs_of(a.again)
    wider = wider_of(a.wider) if a.wider else {}
    ids = sorted(again, key=lambda i: (again[i]["state_size"], again[i]["seed"], again[i]["train_length"]))
    if not ids:
        sys.exit(f"{a.again}: no finished run")
    readings = [("stored", stored), ("again", again)] + ([("wider", wider)] if wider else [])

    print(f"{'run':32} {'stored':>18} {'again':>18} {'wider':>18}")
    for i in ids:
        print(f"{i:32} {verdict(stored.get(i)):>18} {verdict(again[i]):>18} {verdict(wider.get(i)):>18}")

    def compare(name_a, ra, name_b, rb):
        both = [i for i in ids if i in ra and i in rb]
        if not both:
            return
        same = sum(ra[i]["forgets"] == rb[i]["forgets"] for i in both)
        logs = [abs(math.log(rb[i]["norm_growth"] / ra[i]["norm_growth"])) for i in both
                if ra[i]["norm_growth"] > 0 and rb[i]["norm_growth"] > 0]
        print(f"{name_a} against {name_b}: {same} of {len(both)} verdicts the same; growth differs by a "
              f"factor {math.exp(statistics.median(logs)):.2f} (median), {math.exp(max(logs)):.2f} (largest)")

    print()
    compare("stored", stored, "again", again)
    if wider:
        compare("again", again, "wider", wider)

    # Brackets over each size's grid of retrained cells, for every reading alike.
    sizes = sorted({(again[i]["state_size"], again[i]["axis_value"]) for i in ids})
    seeds = sorted({again[i]["seed"] for i in ids})
    print("\neach seed's bracket over the retrained cells' T_train (nm: not monotone, -: not read); "
          "the seeds agree where their brackets lie within one grid step")
    print(f"{'size':>8} {'N_S':>8} {'reading':>8} " + " ".join(f"{'seed ' + str(s):>11}" for s in seeds)
          + "  agree")
    for state_size, value in sizes:
        grid = sorted({again[i]["train_length"] for i in ids if again[i]["state_size"] == state_size})
        for name, runs in readings:
            found = []
            for s in seeds:
                cells = {}
                for i in ids:
                    r = again[i]
                    if r["state_size"] == state_size and r["seed"] == s and i in runs:
                        cells[r["train_length"]] = runs[i]["forgets"]
                found.append(bracket(cells, grid))
            known = [b for b in found if not isinstance(b, str)]
            agree = ("-" if "-" in found else "no" if len(known) < len(found)
                     else "yes" if max(known) - min(known) <= 1 else "no")
            print(f"{value:>8} {state_size:>8} {name:>8} " + " ".join(f"{describe(b, grid):>11}" for b in found)
                  + f"  {agree}")


if __name__ == "__main__":
    main()
