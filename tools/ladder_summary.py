#!/usr/bin/env python3
"""The table of a budget ladder (tools/gpu_budget_ladder.sh): for every run, each judged snapshot's
training tokens, steps, training loss, and per held-out domain the plain ratio, the paired ratio, the
largest head's state-norm growth and the share of heads keeping 1 % of token 0, then the verdict; under
a snapshot whose heads grow past the criterion's limit, those heads, each with its growth and its state
norm at T_train as a share of the median head's (small shares: heads that carry little).
    python3 tools/ladder_summary.py LADDER_FOLDER [--json FILE]"""
import glob
import json
import os
import statistics
import sys


def reference_window(T):
    """The engine's reference range (runtime/LengthEval.cpp, referenceWindow): [T/2, T) from token 64 on."""
    begin = max(T // 2, 64)
    return (begin if begin < T else T // 2), T


def heads_over(judge, to, limit):
    """Per domain, the heads whose norm grows more than `limit` times from the reference range to the
    bucket ending at to * T, as the engine measures it, from a judge.json's per-bucket norms."""
    out = {}
    for e in judge.get("evals", []):
        norms, T, grain, H = e["state_norm"], e["training_length"], e["grain"], e["heads"]
        lo, hi = reference_window(T)
        ref = [b for b in range(len(norms[0])) if b * grain >= lo and (b + 1) * grain <= hi]
        end = min(len(norms[0]), to * T // grain) - 1
        if not ref or end < 0:
            continue
        at_t = [sum(u[b] for b in ref) / len(ref) for u in norms]
        median = statistics.median(at_t)
        out[e["domain"]] = sorted(
            ({"layer": i // H, "head": i % H, "growth": round(u[end] / at_t[i], 2),
              "norm_at_T_over_median": round(at_t[i] / median, 3)}
             for i, u in enumerate(norms) if at_t[i] > 0 and u[end] / at_t[i] > limit),
            key=lambda h: -h["growth"])
    return out


def judged(run, to, limit):
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
        row["heads_over_limit"] = heads_over(json.load(open(os.path.join(d, "judge.json"))), to, limit)
        rows.append(row)
    return rows


def main():
    folder = sys.argv[1]
    out = {}
    for run in sorted(glob.glob(os.path.join(folder, "*"))):
        if not os.path.isdir(os.path.join(run, "model")):
            continue
        name = os.path.basename(run)
        spec = open(os.path.join(run, "judge-spec")).read().strip()
        criterion = json.load(open(spec)).get("criterion", {}) if os.path.exists(spec) else {}
        rows = judged(run, int(criterion.get("to", 16)), float(criterion.get("max_norm_growth", 5)))
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
            for dom, heads in r["heads_over_limit"].items():
                if heads:
                    print(f"{'':>24}{dom}: " + ", ".join(
                        f"L{h['layer']}H{h['head']} {h['growth']:.1f}x (norm at T {h['norm_at_T_over_median']:.2f} of the median)"
                        for h in heads))
    if "--json" in sys.argv:
        json.dump(out, open(sys.argv[sys.argv.index("--json") + 1], "w"), indent=1)


if __name__ == "__main__":
    main()
