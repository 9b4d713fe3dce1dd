#!/usr/bin/env python3
"""The table of a budget ladder (tools/gpu_budget_ladder.sh): for every run, each judged snapshot's
training tokens, steps, training loss, and per held-out domain the plain ratio, the paired ratio, the
largest head's state-norm growth and the share of heads keeping 1 % of token 0, then the verdict.
    python3 tools/ladder_summary.py LADDER_FOLDER [--json FILE]"""
import glob
import json
import os
import sys


def judged(run):
    rows = []
    for d in sorted(glob.glob(os.path.join(run, "model", "snapshots", "step-*"))):
        card_path, log_path = os.path.join(d, "model_card.json"), os.path.join(d, "judge.log")
        if not (os.path.exists(card_path) and os.path.exists(os.path.join(d, "judge.json"))):
            continue
        card = json.load(open(card_path))
        row = {"step": card["steps"], "tokens": card["steps"] * card["batch"] * card["training_length"],
               "loss": card.get("final_loss"), "domains": {}}
        for line in open(log_path):
            f = line.split()
            if line.startswith("judged"):
                row["verdict"] = line.split(": ", 1)[1].strip()
            elif len(f) == 6 and f[0] != "domain" and f[3].endswith("x"):
                row["domains"][f[0]] = {"ratio": float(f[1]), "paired": float(f[2]),
                                        "growth": float(f[3][:-1]), "retained": float(f[4].rstrip("%"))}
        rows.append(row)
    return rows


def main():
    folder = sys.argv[1]
    out = {}
    for run in sorted(glob.glob(os.path.join(folder, "*"))):
        if not os.path.isdir(os.path.join(run, "model")):
            continue
        name = os.path.basename(run)
        rows = judged(run)
        spec = open(os.path.join(run, "judge-spec")).read().strip()
        out[name] = {"judge_spec": spec, "snapshots": rows}
        print(f"== {name} (judged by {spec})")
        if not rows:
            print("   no judged snapshot")
            continue
        domains = list(rows[0]["domains"])
        head = f"{'step':>7} {'tokens':>8} {'loss':>6}"
        for dom in domains:
            head += f" | {dom[:16]:>16}: {'ratio':>6} {'paired':>6} {'growth':>7} {'keep1%':>6}"
        print(head + " | verdict")
        for r in rows:
            line = f"{r['step']:>7} {r['tokens'] / 1e6:>7.1f}M {r['loss'] or 0:>6.3f}"
            for dom in domains:
                x = r["domains"].get(dom)
                line += (f" | {'':>16}  {x['ratio']:>6.3f} {x['paired']:>6.3f} {x['growth']:>6.2f}x"
                         f" {x['retained']:>5.1f}%") if x else " | (none)"
            print(line + " | " + r.get("verdict", "?"))
    if "--json" in sys.argv:
        json.dump(out, open(sys.argv[sys.argv.index("--json") + 1], "w"), indent=1)


if __name__ == "__main__":
    main()
