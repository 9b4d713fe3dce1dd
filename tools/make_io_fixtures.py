#!/usr/bin/env python3
"""Writes the checkpoint-reader fixtures in tests/data/io/.

Run with Debian's Python, which has torch (apt-get install -y --no-install-recommends python3-torch):
    /usr/bin/python3 tools/make_io_fixtures.py [OUTPUT_DIR]

Files:
  state_dict.bin      torch.save of a small module's state_dict() (an OrderedDict with _metadata) plus
                      extra tensors: bfloat16, float16, float64, int64, a transposed (non-contiguous)
                      view, a slice with a storage offset, a tied (shared) weight. Default pickle protocol.
  state_dict_p5.bin   the same dict saved with pickle_protocol=5 (FRAME, MEMOIZE, STACK_GLOBAL, ...).
  model.safetensors   the same tensors as contiguous copies; written with the safetensors package when
                      it is installed, else by write_safetensors() below (the format spec, reference
                      ordering and padding).
  expected.json       per tensor: dtype, shape, torch strides and storage offset, and the values as a
                      flat list of floats in C order, computed here by torch, independently of the C++.
  evil.bin            a torch-style zip whose data.pkl calls os.system("touch /tmp/statescope_pwned")
                      through GLOBAL + REDUCE; loading it must fail without running anything.
  legacy.bin          torch.save(..., _use_new_zipfile_serialization=False): the old non-zip format.
"""
import collections
import json
import os
import pickle
import struct
import sys
import zipfile

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data", "io")

DTYPE_NAMES = {
    torch.float32: ("float32", "F32"),
    torch.float64: ("float64", "F64"),
    torch.bfloat16: ("bfloat16", "BF16"),
    torch.float16: ("float16", "F16"),
    torch.int64: ("int64", "I64"),
    torch.int32: ("int32", "I32"),
    torch.int16: ("int16", "I16"),
    torch.int8: ("int8", "I8"),
    torch.uint8: ("uint8", "U8"),
    torch.bool: ("bool", "BOOL"),
}


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.register_buffer("counter", torch.arange(5, dtype=torch.int64) * 7 - 10)


def build_state_dict():
    torch.manual_seed(1234)
    module = Tiny()
    with torch.no_grad():
        module.norm.weight.copy_(torch.tensor([0.5, -1.25, 2.0]))
        module.norm.bias.copy_(torch.tensor([0.0, 1e-3, -3.5]))
    sd = module.state_dict()  # an OrderedDict carrying _metadata, exactly as people save it
    assert isinstance(sd, collections.OrderedDict) and hasattr(sd, "_metadata")

    big = torch.arange(30, dtype=torch.float32).reshape(5, 6) * 0.25 - 3.0
    sd["extra.bf16"] = torch.tensor([[1.0, -2.5, 3.140625], [1e-3, 65280.0, -0.0078125]]).to(torch.bfloat16)
    sd["extra.f16"] = torch.tensor([[0.5, -1.0], [65504.0, 6.1035e-05], [-2.0, 1e-7]]).to(torch.float16)
    sd["extra.f64"] = torch.tensor([1.0 / 3.0, -2.0**-30, 1e300], dtype=torch.float64)
    sd["extra.i64"] = torch.tensor([[-3, 0], [7, 2**40]], dtype=torch.int64)
    sd["extra.transposed"] = torch.randn(3, 4).t()  # shape (4, 3), strides (1, 4)
    sd["shared.base"] = big
    sd["shared.slice"] = big[2:4, 1:5]  # a view of the same storage, storage offset 13
    sd["tied.weight"] = sd["linear.weight"]  # the same tensor twice, like tied embeddings
    return sd


def expected_entry(t):
    return {
        "dtype": DTYPE_NAMES[t.dtype][0],
        "shape": list(t.shape),
        "strides": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "values": [float(v) for v in t.detach().to(torch.float64).reshape(-1).tolist()],
    }


def write_safetensors(path, tensors, metadata):
    """The safetensors layout: u64 LE header size, JSON header padded with spaces to a multiple of 8,
    then the tensors' bytes back to back, ordered as the reference writer orders them (dtype size
    descending, then name)."""
    order = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, t in order:
        raw = t.contiguous().view(torch.uint8).reshape(-1).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPE_NAMES[t.dtype][1], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/statescope_pwned",))


def write_evil(path):
    payload = pickle.dumps(collections.OrderedDict(weight=Evil()), protocol=2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", payload)
        z.writestr("evil/byteorder", "little")
        z.writestr("evil/version", "3\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = build_state_dict()

    torch.save(sd, os.path.join(OUT, "state_dict.bin"))
    torch.save(sd, os.path.join(OUT, "state_dict_p5.bin"), pickle_protocol=5)

    expected = collections.OrderedDict((k, expected_entry(v)) for k, v in sd.items())
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        # One line per tensor: small, and diffs stay readable.
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in expected.items()]
        f.write('{\n "torch_version": %s,\n "tensors": {\n' % json.dumps(torch.__version__))
        f.write(",\n".join(lines))
        f.write("\n }\n}\n")

    copies = {k: v.contiguous().clone() for k, v in sd.items()}
    metadata = {"format": "pt", "source": "make_io_fixtures.py"}
    st_path = os.path.join(OUT, "model.safetensors")
    try:
        from safetensors.torch import save_file
        save_file(copies, st_path, metadata=metadata)
        writer = "safetensors " + __import__("safetensors").__version__
    except ImportError:
        write_safetensors(st_path, copies, metadata)
        writer = "write_safetensors() in this script"

    write_evil(os.path.join(OUT, "evil.bin"))
    torch.save({"w": torch.ones(2)}, os.path.join(OUT, "legacy.bin"), _use_new_zipfile_serialization=False)

    print("torch", torch.__version__, "; model.safetensors written by", writer)
    for name in sorted(os.listdir(OUT)):
        print(f"  {name}: {os.path.getsize(os.path.join(OUT, name))} bytes")


if __name__ == "__main__":
    main()
