#!/usr/bin/env python3
"""tools/compare_judgements.py on made-up verdicts whose answers are known by construction.
Two sizes (d_model 128, 256) x seeds 0-1 x T_train 16, 32, 64; C collapses (growth 8), F forgets (2).
stored:  128/0 C F F, 128/1 C C F, 256/0 C F F, 256/1 F C F (not monotone)
again:   the same, but 256/1 at T 16 collapses (growth 2 -> 8) and 128/0 at T 32 grows 4x, not 2x:
         11 of 12 verdicts the same, growth factors 1 (median) and 4 (largest)
wider:   128/1 at T 32 forgets (8 -> 2) and 256/1 at T 64 was not judged: 10 of 11 the same
brackets: 128 agrees in every reading; 256 disagrees when stored (a seed not monotone), agrees
again ([16,32] and [32,64]: one grid step), and has a seed not read when wider."""
import json
import os
import re
import subprocess
import sys
import tempfile

tool = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


pattern = {"stored": {(128, 0): "CFF", (128, 1): "CCF", (256, 0): "CFF", (256, 1): "FCF"}}
pattern["again"] = {**pattern["stored"], (256, 1): "CCF"}
pattern["wider"] = {**pattern["again"], (128, 1): "CFF"}
n_s = {128: 18304, 256: 36224}


def runs(name):
    out = []
    for (value, seed), verdicts in pattern[name].items():
        for t, v in zip((16, 32, 64), verdicts):
            growth = 8.0 if v == "C" else 2.0
            if name == "again" and (value, seed, t) == (128, 0, 32):
                growth = 4.0
            out.append({"id": f"d_model-{value}_T-{t}_seed-{seed}", "axis_value": value,
                        "state_size": n_s[value], "train_length": t, "seed": seed, "finished": True,
                        "forgets": v == "F", "norm_growth": growth, "score": 1.0})
    return out


with tempfile.TemporaryDirectory() as tmp:
    for name in ("stored", "again"):
        json.dump({"name": name, "runs": runs(name)}, open(os.path.join(tmp, name + ".json"), "w"))
    wider = os.path.join(tmp, "wider")
    os.mkdir(wider)
    for r in runs("wider"):
        if r["id"] != "d_model-256_T-64_seed-1":
            json.dump({"forgets": r["forgets"], "score": 1.0, "norm_growth": r["norm_growth"],
                       "reason": ""}, open(os.path.join(wider, r["id"] + ".json"), "w"))
    p = subprocess.run([sys.executable, tool, "--stored", os.path.join(tmp, "stored.json"),
                        "--again", os.path.join(tmp, "again.json"), "--wider", wider],
                       capture_output=True, text=True)
    out = p.stdout
    print(out, p.stderr)
    check(p.returncode == 0, f"exit {p.returncode}")
    check("stored against again: 11 of 12 verdicts the same; growth differs by a factor 1.00 (median), "
          "4.00 (largest)" in out, "stored against again")
    check("again against wider: 10 of 11 verdicts the same; growth differs by a factor 1.00 (median), "
          "4.00 (largest)" in out, "again against wider")
    check(re.search(r"d_model-256_T-16_seed-1 +forgets +2\.00x +collapses +8\.00x +collapses +8\.00x", out),
          "a run's three verdicts side by side")
    check(re.search(r"d_model-256_T-64_seed-1 +forgets +2\.00x +forgets +2\.00x +-\n", out),
          "a run not judged wider reads -")
    rows = {(m.group(1), m.group(2)): m.group(3).split()
            for m in re.finditer(r"^ +(\d+) +\d+ +(stored|again|wider) +(.*)$", out, re.M)}
    expect = {("128", "stored"): ["[16,32]", "[32,64]", "yes"], ("128", "again"): ["[16,32]", "[32,64]", "yes"],
              ("128", "wider"): ["[16,32]", "[16,32]", "yes"], ("256", "stored"): ["[16,32]", "nm", "no"],
              ("256", "again"): ["[16,32]", "[32,64]", "yes"], ("256", "wider"): ["[16,32]", "-", "-"]}
    for key, want in expect.items():
        check(rows.get(key) == want, f"brackets {key}: {rows.get(key)} instead of {want}")

if failures:
    print("FAIL: " + "; ".join(failures))
    sys.exit(1)
print("PASS")
