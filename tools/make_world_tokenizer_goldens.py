#!/usr/bin/env python3
"""Expected ids for the RWKV World tokenizer (tests/data/tokenizer/world-goldens.json), from an
implementation that is not StateScope's: Python's own ast.literal_eval reads the vocabulary, and a
plain greedy longest match (the longest vocabulary entry that the bytes at the position start with)
encodes. Runs anywhere with Python 3:
  python3 tools/make_world_tokenizer_goldens.py
"""
import ast
import base64
import json
import os
import random

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
VOCAB = os.path.join(ROOT, "resources/tokenizers/rwkv-world-vocab-v20230424.txt")
OUT = os.path.join(ROOT, "tests/data/tokenizer/world-goldens.json")


def load():
    table = {}
    with open(VOCAB, encoding="utf-8") as f:
        for line in f:
            idx = int(line[: line.index(" ")])
            literal = ast.literal_eval(line[line.index(" ") : line.rindex(" ")])
            token = literal.encode("utf-8") if isinstance(literal, str) else literal
            assert len(token) == int(line[line.rindex(" ") :]), line
            table[token] = idx
    return table


def encode(table, longest, data):
    out, i = [], 0
    while i < len(data):
        for n in range(min(longest, len(data) - i), 0, -1):
            if data[i : i + n] in table:
                out.append(table[data[i : i + n]])
                i += n
                break
    return out


def main():
    table = load()
    longest = max(len(t) for t in table)
    rng = random.Random(7)
    with open(os.path.join(ROOT, "resources/texts/kjv-heldout.txt"), "rb") as f:
        kjv = f.read()
    texts = [
        "Hello world".encode(), "The passkey is 12345. Remember it.\n".encode(),
        "你好，世界！ Привет, мир! مرحبا بالعالم 😀😂 naïve café".encode(),
        bytes(range(256)), b"\xff\xfe\xfd invalid \xc3\x28 utf-8 \xe2\x82",
        ("\t\t  def f(x):\n        return x ** 2  # comment\n" * 3).encode(),
        kjv[:20000], bytes(rng.randrange(256) for _ in range(5000)),
    ]
    cases = [{"text_b64": base64.b64encode(t).decode(), "ids": encode(table, longest, t)} for t in texts]
    with open(OUT, "w") as f:
        json.dump({"vocab": "rwkv-world-vocab-v20230424.txt", "cases": cases}, f)
        f.write("\n")
    print(OUT, sum(len(c["ids"]) for c in cases), "ids")


if __name__ == "__main__":
    main()
