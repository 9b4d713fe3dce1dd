#!/usr/bin/env python3
"""tools/seed_scatter.py on two made-up sweep summaries whose answers are known by construction.
"split": 3 sizes x 3 seeds, each threshold a size factor (32, 64, 128 tokens) times a seed factor
(1, 1, 8) times a rest of 2 or 1/2 in four cells whose rows and columns cancel: the sizes carry
6 (ln 2)^2 of the sum of squares, the seeds 18 (ln 2)^2, the rest 4 (ln 2)^2 on 4 degrees of freedom,
so F is 3 for the sizes and 9 for the seeds on 2 and 4 df, whose p-values are (1 + F/2)^-2 (the F
distribution with 2 numerator degrees of freedom): 0.16 and 0.033. One size and seed has the
paired loss ratios 1.20, 1.05, 1.15, 1.02 at T 16-128: the loss part's bracket is [64, 128].
"line": 4 sizes, one seed, thresholds exactly on T[K] = 2 N_S[M] + 0.01: slope 2, R^2 1, and the
paper's 5.172 outside the (zero-width) interval; its 4 sizes rise, so Spearman's rho is 1 and only
1 of the 4! orderings does as well: p 1/24. "split"'s means rise too (64, 128, 256): p 1/6.
"order": 4 sizes, one seed, thresholds 10, 30, 20, 40: ranks 1 3 2 4, so rho = 1 - 6*2/(4*15) = 0.8,
and the orderings at least as good are the identity and the 3 swaps of neighbours: p 4/24.
"split" with --seeds 0,1: seed 2's column is gone, d_state 16's row is 32 and 128 (gmean 64), and
6 of its 8 runs forget."""
import json
import os
import subprocess
import sys
import tempfile

tool = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def summary(name, sizes, runs):
    return {"name": name, "init": "default", "axis": "d_state",
            "criterion": {"kind": "paired", "tolerance": 0.1, "threshold": 1.1, "max_norm_growth": 5.0},
            "paper_fit": {"slope": 5.172, "intercept": -4.469}, "sizes": sizes, "runs": runs}


def run(value, n_s, seed, T, score=1.0, forgets=True, growth=2.0):
    return {"axis_value": value, "state_size": n_s, "seed": seed, "train_length": T, "finished": True,
            "forgets": forgets, "score": score, "norm_growth": growth}


with tempfile.TemporaryDirectory() as tmp:
    n_s = {8: 10000, 16: 20000, 32: 40000}
    size_factor = {8: 32.0, 16: 64.0, 32: 128.0}
    seed_factor = {0: 1.0, 1: 1.0, 2: 8.0}
    rest = {(8, 0): 2.0, (8, 1): 0.5, (16, 0): 0.5, (16, 1): 2.0}
    sizes = [{"axis_value": v, "seeds": [{"seed": x, "interpolated": size_factor[v] * seed_factor[x] * rest.get((v, x), 1.0)}
                                         for x in seed_factor]} for v in n_s]
    runs = [run(v, n_s[v], x, T) for v in n_s for x in seed_factor for T in (16, 32, 64, 128)]
    for r in runs:
        if r["axis_value"] == 16 and r["seed"] == 1:
            r["score"] = {16: 1.20, 32: 1.05, 64: 1.15, 128: 1.02}[r["train_length"]]
            r["forgets"] = r["score"] <= 1.1
    split = os.path.join(tmp, "split.json")
    json.dump(summary("split", sizes, runs), open(split, "w"))

    line_ns = [0.01, 0.02, 0.04, 0.08]  # M elements
    line_sizes = [{"axis_value": 8 << i, "seeds": [{"seed": 0, "interpolated": (2 * m + 0.01) * 1024}]}
                  for i, m in enumerate(line_ns)]
    line_runs = [run(8 << i, int(m * 1e6), 0, 64) for i, m in enumerate(line_ns)]
    line = os.path.join(tmp, "line.json")
    json.dump(summary("line", line_sizes, line_runs), open(line, "w"))

    order_sizes = [{"axis_value": 8 << i, "seeds": [{"seed": 0, "interpolated": t}]}
                   for i, t in enumerate((10.0, 30.0, 20.0, 40.0))]
    order = os.path.join(tmp, "order.json")
    json.dump(summary("order", order_sizes, line_runs), open(order, "w"))

    out = subprocess.run([sys.executable, tool, split, line, order], capture_output=True, text=True,
                         check=True).stdout
    print(out)
    check("sizes 21% (F 3.00 on 2 and 4 df, p 0.16), seeds 64% (F 9.00 on 2 and 4 df, p 0.03), the rest 14%"
          in out, "the split of the variance and its F tests")
    check("      16    20000       32      128      512     128" in out, "the row of d_state 16 and its gmean")
    check("   [-, 16]    [64, 128]      [-, 16]" in out, "the loss part's brackets of d_state 16")
    check("      16    20000   10 of 12" in out, "the count of runs that forget at d_state 16")
    check("T_forget[K] = 2.000 * N_S[M] +0.0100, R^2 1.000, slope 95% CI [2.000, 2.000]; "
          "the paper's slope 5.172 lies outside it" in out, "the line through exact points")
    check("order of the 3 sizes' geometric means: Spearman rho 1.00, one-sided exact p 0.167 (monotone rising)"
          in out, "split's rising means")
    check("order of the 4 sizes' geometric means: Spearman rho 1.00, one-sided exact p 0.042 (monotone rising)"
          in out, "line's rising means")
    check("order of the 4 sizes' geometric means: Spearman rho 0.80, one-sided exact p 0.167 (not monotone rising)"
          in out, "order's one swap")

    some = subprocess.run([sys.executable, tool, "--seeds", "0,1", split], capture_output=True, text=True,
                          check=True).stdout
    print(some)
    check("(default init, seeds 0, 1 only)" in some, "the header names the seeds kept")
    check("d_state      N_S   seed 0   seed 1   gmean" in some and "seed 2" not in some,
          "only seeds 0 and 1 in the table")
    check("      16    20000       32      128      64" in some, "d_state 16's row over seeds 0-1")
    check("      16    20000    6 of  8" in some, "the count of runs that forget at d_state 16, seeds 0-1")

print("FAIL: " + "; ".join(failures) if failures else "PASS")
sys.exit(1 if failures else 0)
