#!/usr/bin/python3
"""Writes the hostile inputs of issue 10 that tests/cli/hostile_inputs.sh feeds to statescope-cli.

    make_hostile_inputs.py [DIR]        the small ones (a few KB each) into DIR, by default
                                        tests/data/hostile/ (committed)
    make_hostile_inputs.py --big DIR    the big ones (up to 60 MB) into DIR; hostile_inputs.sh writes
                                        them into the build folder at test time

tests/data/hostile/MANIFEST lists the cases: which file, which command, what must happen. Standard
library only; the output is the same on every run (no randomness, no timestamps).
"""

import json
import os
import struct
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# A small valid Mamba-2 config (2 layers, d_model 64): folders whose weights are hostile use it so that
# the config is not what fails.
GOOD_CONFIG = os.path.join(ROOT, "tests", "data", "mamba2", "hf-g1-tied", "config.json")
BYTE_TOKENIZER = os.path.join(ROOT, "resources", "models", "tiny-collapse", "tokenizer.json")
TWO_POW_62 = 1 << 62


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(data, (bytes, bytearray)) else "w"
    with open(path, mode) as f:
        f.write(data)


def good_config():
    with open(GOOD_CONFIG) as f:
        return f.read()


def safetensors(header, data=b""):
    """A .safetensors file: 8-byte little-endian header size, the JSON header, the data."""
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


def torch_zip(path, pickle, storages=None):
    """A torch.save-style archive: archive/data.pkl, archive/version, archive/data/<key> stored."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in [("archive/data.pkl", pickle), ("archive/version", b"3\n")] + list(
                (storages or {}).items()):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            z.writestr(info, data)


# --- pickle opcodes (protocol 2 subset), spelled out so that nothing here imports torch -------------

def op_unicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def op_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_binput(i):
    return b"r" + struct.pack("<I", i)


def op_binget(i):
    return b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)


PROTO2 = b"\x80\x02"
ORDERED_DICT = op_global("collections", "OrderedDict") + b")R"  # OrderedDict()


def tensor_pickle(name, key):
    """{name: tensor of one float in storage `key`}, as torch.save writes a state dict."""
    storage = b"(" + op_unicode("storage") + op_global("torch", "FloatStorage") + op_unicode(key) + \
        op_unicode("cpu") + b"K\x01tQ"
    args = b"(" + storage + b"K\x00" + b"K\x01\x85" + b"K\x01\x85" + b"\x89" + ORDERED_DICT + b"t"
    rebuild = op_global("torch._utils", "_rebuild_tensor_v2") + args + b"R"
    return PROTO2 + ORDERED_DICT + b"(" + op_unicode(name) + rebuild + b"u."


# --- the small inputs ---------------------------------------------------------------------------------

EVIL_NAME = "backbone.embeddings.weight\n\x1b[31mred"


def small(out):
    configs = {
        # 10: a float far outside int64 where an integer size is expected
        "config-hidden-size-1e300": '{"model_type": "mamba2", "hidden_size": 1e300}\n',
        # 10: sizes whose products (d_inner = expand * hidden_size, N_S) overflow int64
        "config-hidden-size-2p62-expand4": json.dumps(
            {"model_type": "mamba2", "hidden_size": TWO_POW_62, "expand": 4}) + "\n",
        "config-mamba1-hidden-size-2p62-expand4": json.dumps(
            {"model_type": "mamba", "hidden_size": TWO_POW_62, "expand": 4}) + "\n",
        "config-state-size-2p62": json.dumps({"model_type": "mamba2", "state_size": TWO_POW_62}) + "\n",
        "config-mamba-ssm-d-state-2p62": json.dumps(
            {"d_model": 64, "n_layer": 2, "vocab_size": 512,
             "ssm_cfg": {"layer": "Mamba2", "d_state": TWO_POW_62}}) + "\n",
        # 10: model_type of the wrong JSON type
        "config-model-type-number": '{"model_type": 4}\n',
        "config-ssm-layer-number": '{"d_model": 64, "ssm_cfg": {"layer": 2}}\n',
    }
    for folder, text in configs.items():
        write(os.path.join(out, folder, "config.json"), text)

    # 10.6: a tensor name with a newline and an ANSI colour escape, in each weights format. The
    # safetensors tensor has an unknown dtype and the pickle one a missing storage, so that the
    # error message has to quote the name.
    folder = os.path.join(out, "tensor-name-escape-safetensors")
    write(os.path.join(folder, "config.json"), good_config())
    write(os.path.join(folder, "model.safetensors"),
          safetensors({EVIL_NAME: {"dtype": "Q8", "shape": [1], "data_offsets": [0, 1]}}, b"\0"))
    folder = os.path.join(out, "tensor-name-escape-pytorch")
    write(os.path.join(folder, "config.json"), good_config())
    torch_zip(os.path.join(folder, "pytorch_model.bin"), tensor_pickle(EVIL_NAME, "0"))

    write(os.path.join(out, "short.txt"), "Hello world\n")


# --- the big inputs -------------------------------------------------------------------------------

def big(out):
    # Super-linear: a safetensors header listing a million (empty, valid) tensors, 60 MB.
    folder = os.path.join(out, "safetensors-1m-tensors")
    write(os.path.join(folder, "config.json"), good_config())
    entries = ",".join('"t%07d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}' % i
                       for i in range(1_000_000))
    header = ("{" + entries + "}").encode()
    write(os.path.join(folder, "model.safetensors"), struct.pack("<Q", len(header)) + header)

    # Super-linear: normalizers nested 100000 deep (Sequence of Sequence of ... of NFC).
    with open(BYTE_TOKENIZER) as f:
        tokenizer = json.load(f)
    depth = 100_000
    nested = '{"type":"Sequence","normalizers":[' * depth + '{"type":"NFC"}' + "]}" * depth
    text = json.dumps(dict(tokenizer, normalizer="@NORMALIZER@"))
    write(os.path.join(out, "tokenizer-nested-normalizers.json"), text.replace('"@NORMALIZER@"', nested))

    # Super-linear: an added token that all but matches everywhere in the text (100 KB of "a" and a
    # "b"), over 1 MB of "a": each position matches 100 KB before it fails.
    added = list(tokenizer.get("added_tokens") or [])
    added.append({"id": 256, "content": "a" * 100_000 + "b", "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": False, "special": True})
    write(os.path.join(out, "tokenizer-long-added-token.json"), json.dumps(dict(tokenizer, added_tokens=added)))
    write(os.path.join(out, "text-1mb-a.txt"), "a" * 1_000_000)

    # Super-linear: NFC of 80 KB of combining marks after one base letter, in the order canonical
    # ordering has to reverse (class 230 acutes, then class 220 grave-belows).
    marks = "\u0301" * 20_000 + "\u0316" * 20_000
    write(os.path.join(out, "text-combining-80kb.txt"), "a" + marks)

    # Super-linear: 50 MB of text on one line: prose, and one 50 MB word.
    words = ("the quick brown fox jumps over the lazy dog while StateScope counts 12345 tokens, "
             "and it's fine ")
    line = (words * (50_000_000 // len(words) + 1))[:50_000_000]
    write(os.path.join(out, "text-50mb-one-line.txt"), line)
    write(os.path.join(out, "text-50mb-one-word.txt"), "x" * 50_000_000)
    # A fifth of the word, for the 1 GiB bound: 50 MB of one word holds ~1.7 GB while it is merged
    # (linear, docs/benchmarks.md); the harness checks the bound on inputs where it can hold.
    write(os.path.join(out, "text-10mb-one-word.txt"), "x" * 10_000_000)

    # Pickle memory amplification: a 1 MB pytorch_model.bin whose pickle puts one 16 KB string from
    # the memo into 200000 dicts as their key: 3.2 GB of key copies.
    folder = os.path.join(out, "pickle-memo-keys")
    write(os.path.join(folder, "config.json"), good_config())
    key = "k" * 16_384
    body = op_unicode(key) + op_binput(0) + b"0"  # memo[0] = key; pop it
    body += (b"}" + op_binget(0) + b"Ns0") * 200_000  # {key: None}, then popped (the reader keeps it)
    torch_zip(os.path.join(folder, "pytorch_model.bin"), PROTO2 + body + b"}.")

    # The same through persistent ids: 80000 storages, each copying a 40 KB location string.
    folder = os.path.join(out, "pickle-persid-location")
    write(os.path.join(folder, "config.json"), good_config())
    location = "cpu" + "0" * 40_000
    body = op_unicode("storage") + op_binput(0) + b"0"
    body += op_global("torch", "FloatStorage") + op_binput(1) + b"0"
    body += op_unicode("k0") + op_binput(2) + b"0"
    body += op_unicode(location) + op_binput(3) + b"0"
    body += b"]"  # a list keeps every storage alive
    one = b"(" + op_binget(0) + op_binget(1) + op_binget(2) + op_binget(3) + b"K\x01tQa"
    body += one * 80_000
    torch_zip(os.path.join(folder, "pytorch_model.bin"), PROTO2 + body + b"0}.")


def main(argv):
    if len(argv) >= 2 and argv[0] == "--big":
        big(argv[1])
    elif len(argv) <= 1 and not (argv and argv[0].startswith("-")):
        small(argv[0] if argv else os.path.join(ROOT, "tests", "data", "hostile"))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
