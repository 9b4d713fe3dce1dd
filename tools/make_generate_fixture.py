#!/usr/bin/env python3
"""Greedy tokens from transformers for a Mamba-2 fixture, so that StateScope's generate is checked
against an implementation it shares no code with (tests/models/TestGenerate.cpp).

Writes tests/data/mamba2/hf-g1-tied/generate.json: the prompt (the first --prompt ids of the fixture's
reference input), the --new greedy tokens of Mamba2ForCausalLM.generate in float32, and the smallest
gap between the best and second-best logit over those steps (a near-tie could flip under rounding).
n_groups = 1 only: transformers ignores the groups of the gated norm, mamba_ssm does not.
Runs where transformers and h5py are (the GPU machine): python3 tools/make_generate_fixture.py
"""
import argparse
import json
import os

import h5py
import torch
import transformers
from transformers import Mamba2ForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default="tests/data/mamba2/hf-g1-tied")
    ap.add_argument("--prompt", type=int, default=48)
    ap.add_argument("--new", type=int, default=24)
    a = ap.parse_args()
    model = Mamba2ForCausalLM.from_pretrained(a.fixture, torch_dtype=torch.float32).eval()
    with h5py.File(os.path.join(a.fixture, "reference.h5"), "r") as f:
        ids = [int(i) for i in f["ids"][: a.prompt]]
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False,
                             eos_token_id=None, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
    new = out.sequences[0, len(ids):].tolist()
    gaps = []
    for s in out.scores:
        top = torch.topk(s[0].float(), 2).values
        gaps.append(float(top[0] - top[1]))
    result = {"prompt_ids": ids, "new_ids": new, "min_top2_gap": min(gaps),
              "made_by": f"transformers {transformers.__version__} Mamba2ForCausalLM.generate, float32, greedy"}
    with open(os.path.join(a.fixture, "generate.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
