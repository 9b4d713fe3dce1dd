#!/usr/bin/env python3
"""Copies a model trained by tools/train_builtin_models.sh into resources/models/NAME: the weights,
config and tokenizer as trained, and its model card with the name, the tokens it saw, how it was
trained and its held-out measurement (the JSON of `statescope-cli eval --json`) added.

  python3 tools/publish_builtin_model.py models/c6-n256 tiny-collapse --eval eval.json --how "..."
"""
import argparse
import json
import os
import shutil


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("source")
    ap.add_argument("name")
    ap.add_argument("--eval", required=True, help="statescope-cli eval --json output")
    ap.add_argument("--how", required=True, help="one line: the run and the machine")
    ap.add_argument("--out", default="resources/models")
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
    with open(os.path.join(dest, "model_card.json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print(f"{dest}: ratio {card['held_out_eval']['ratio']}")


if __name__ == "__main__":
    main()
