#!/usr/bin/env python3
"""Copies a model trained by tools/train_builtin_models.sh into resources/models/NAME: the weights,
config and tokenizer as trained, and its model card with the name, the tokens it saw, how it was
trained and its held-out measurement (the JSON of `statescope-cli eval --json`) added.

  python3 tools/publish_builtin_model.py models/c6-n256 tiny-collapse --eval eval.json --how "..."

With --passkey (a `statescope-cli passkey` results file, read with h5py) the card also gets the sweep:
per length the mean accuracy and the worst depth bin's, and T_recall (the longest length with at least
95 % mean accuracy).
"""
import argparse
import json
import os
import shutil


def passkey_summary(path):
    import h5py  # only here: the GPU machine's Python and Debian's python3-h5py both have it

    with h5py.File(path, "r") as f:
        lengths = [int(x) for x in f["lengths"][:]]
        grid = f["accuracy"][:]  # [lengths, depth bins]
        samples = int(f.attrs["samples"])
        seed = int(f.attrs["seed"])
        new_tokens = int(f.attrs["max_new_tokens"])
    mean = [round(float(row.mean()), 3) for row in grid]
    recall = max([n for n, a in zip(lengths, mean) if a >= 0.95], default=0)
    return {
        "command": f"statescope-cli passkey --lengths {','.join(map(str, lengths))} --samples {samples} "
                   f"--seed {seed} (greedy, {new_tokens} new tokens)",
        "depth_bins": int(grid.shape[1]), "lengths": lengths, "accuracy": mean,
        "worst_depth_bin": [round(float(row.min()), 3) for row in grid], "t_recall": recall,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("name")
    ap.add_argument("--eval", required=True, help="statescope-cli eval --json output")
    ap.add_argument("--how", required=True, help="one line: the run and the machine")
    ap.add_argument("--out", default="resources/models")
    ap.add_argument("--passkey", help="passkey.h5 of `statescope-cli passkey` on this model")
    ap.add_argument("--data", help="replaces the card's description of the training data")
    args = ap.parse_args()
    dest = os.path.join(args.out, args.name)
    os.makedirs(dest, exist_ok=True)
    for f in ("config.json", "model.safetensors", "tokenizer.json"):
        shutil.copyfile(os.path.join(args.source, f), os.path.join(dest, f))
    card = json.load(open(os.path.join(args.source, "model_card.json")))
    ev = json.load(open(args.eval))
    card["name"] = args.name
    card["tokens_seen"] = card["steps"] * card["batch"] * card["training_length"]
    card["trained_with"] = args.how
    card["held_out_eval"] = {
        "command": f"statescope-cli eval --text corpus/heldout.txt --length {ev['length']} "
                   f"--samples {len(ev['windows'])} --bucket {ev['bucket']}",
        "bucket": ev["bucket"], "reference_nll": round(ev["reference_nll"], 4), "range": ev["range"],
        "range_nll": round(ev["range_nll"], 4), "ratio": round(ev["ratio"], 3),
    }
    if args.data:
        card["data"] = args.data
    if args.passkey:
        card["passkey_eval"] = passkey_summary(args.passkey)
    with open(os.path.join(dest, "model_card.json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print(f"{dest}: ratio {card['held_out_eval']['ratio']}")


if __name__ == "__main__":
    main()
