#!/usr/bin/env python3
"""tools/ladder_summary.py on a made-up ladder: one run, one snapshot judged on one domain, 2 layers of
2 heads, T_train 64. Head (1, 1) grows 8x from its reference range to 16 T with a tenth of the median
head's norm; head (0, 1) grows 4x, under the limit; the others stay level. The summary must name only
the first, with its growth and its relative norm, as the engine would measure them."""
import json
import os
import subprocess
import sys
import tempfile

tool = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    spec = os.path.join(tmp, "spec.json")
    json.dump({"criterion": {"kind": "paired", "from": 8, "to": 16, "max_norm_growth": 5}}, open(spec, "w"))
    snap = os.path.join(tmp, "ladder", "run-t64", "model", "snapshots", "step-0000500")
    os.makedirs(snap)
    open(os.path.join(tmp, "ladder", "run-t64", "judge-spec"), "w").write(spec + "\n")
    json.dump({"steps": 500, "batch": 512, "training_length": 64, "final_loss": 2.5},
              open(os.path.join(snap, "model_card.json"), "w"))
    open(os.path.join(snap, "judge.log"), "w").write(
        "domain ratio paired growth keep1% windows\n"
        "licences 0.950 0.990 8.00x 2.0% 8\n"
        "judged: collapses (score 0.990, growth 8.00x): state-norm growth 8.00x > 5.00x\n")
    grain, T, length = 16, 64, 1024
    buckets = length // grain

    def unit(level, growth):
        # level up to the bucket ending at T, then a ramp to level * growth at 16 T
        return [level if (b + 1) * grain <= T else level * (1 + (growth - 1) * ((b + 1) * grain - T) / (15 * T))
                for b in range(buckets)]

    norms = [unit(1.0, 1.0), unit(1.2, 4.0), unit(0.8, 1.0), unit(0.1, 8.0)]
    json.dump({"evals": [{"domain": "licences", "training_length": T, "grain": grain, "layers": 2, "heads": 2,
                          "state_norm": norms}]}, open(os.path.join(snap, "judge.json"), "w"))
    out = subprocess.run([sys.executable, tool, os.path.join(tmp, "ladder"), "--json", os.path.join(tmp, "s.json")],
                         capture_output=True, text=True, check=True).stdout
    print(out)
    row = json.load(open(os.path.join(tmp, "s.json")))["run-t64"]["snapshots"][0]
    heads = row["heads_over_limit"]["licences"]
    assert [(h["layer"], h["head"]) for h in heads] == [(1, 1)], heads
    assert abs(heads[0]["growth"] - 8.0) < 1e-6, heads
    assert abs(heads[0]["norm_at_T_over_median"] - 0.1 / 0.9) < 1e-3, heads  # median of 1, 1.2, 0.8, 0.1
    assert "L1H1 8.0x (norm at T 0.11 of the median)" in out, out
    assert row["domains"]["licences"]["growth"] == 8.0
    print("PASS")
