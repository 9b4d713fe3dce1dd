#!/usr/bin/env python3
"""Test fixtures for RWKV-5.2 and RWKV-6 (tests/data/rwkv5/*, tests/data/rwkv6/*, issue 12).

Each fixture is a tiny random model in one of the layouts people have, and reference.h5 with what a
float64 implementation written here, from the published formulas (BlinkDL's RWKV-LM / `rwkv` package,
stuffed-mamba.md §3.5 and §6.4), computes for 300 random tokens: /ids, /nll (NaN first), /decay
(exp of the mean log decay over a head's key channels) and /state_norm (Frobenius norm of the head's
wkv matrix after the token), [T, layers, heads]. It shares no code with the C++ engine.

Layouts, per version:
  native-f32/          model.pth, float32, BlinkDL's keys, no config.json (shapes say everything)
  native-bf16-config/  RWKV-x0N0-test.pth, bfloat16, with a config.json of RWKV-LM's argument names;
                       its decays reach exp(-exp(3)) ~ 2e-9 (the chunked path's stability)
  hf-safetensors/      config.json (model_type rwkv5/rwkv6) and model.safetensors, "rwkv.blocks.N.attention.*"
  hf-bin/              the same names in pytorch_model.bin (an OrderedDict)
and tests/data/bad/rwkv-5.1.pth (one decay per head: a version StateScope refuses by name).

Run where torch is (the GPU machine); the CPU is enough:  python3 tools/make_rwkv_fixtures.py
"""
import argparse
import collections
import json
import math
import os

import h5py
import numpy as np
import torch
from safetensors.torch import save_file

C, LAYERS, HEAD, FFN, VOCAB, MAA_RANK, DECAY_RANK, TOKENS = 64, 2, 16, 224, 300, 8, 16, 300
HEADS = C // HEAD
EPS, DIVISOR = 1e-5, 8.0


def random_weights(version, seed, decay_range):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    def uni(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)

    w = collections.OrderedDict()
    w["emb.weight"] = rnd(VOCAB, C)
    w["blocks.0.ln0.weight"] = 1 + rnd(C, scale=0.1)
    w["blocks.0.ln0.bias"] = rnd(C, scale=0.1)
    for l in range(LAYERS):
        p = f"blocks.{l}."
        for n in ("ln1", "ln2"):
            w[p + n + ".weight"] = 1 + rnd(C, scale=0.1)
            w[p + n + ".bias"] = rnd(C, scale=0.1)
        a = p + "att."
        if version == 5:
            for m in "kvrg":
                w[a + "time_mix_" + m] = uni(1, 1, C)
            w[a + "time_decay"] = uni(HEADS, HEAD, lo=decay_range[0], hi=decay_range[1])
        else:
            for m in "xwkvrg":
                w[a + "time_maa_" + m] = uni(1, 1, C)
            w[a + "time_maa_w1"] = rnd(C, 5 * MAA_RANK, scale=0.5 / math.sqrt(C))
            w[a + "time_maa_w2"] = rnd(5, MAA_RANK, C, scale=0.5 / math.sqrt(MAA_RANK))
            w[a + "time_decay"] = uni(1, 1, C, lo=decay_range[0], hi=decay_range[1])
            w[a + "time_decay_w1"] = rnd(C, DECAY_RANK, scale=1 / math.sqrt(C))
            w[a + "time_decay_w2"] = rnd(DECAY_RANK, C, scale=0.5 / math.sqrt(DECAY_RANK))
        w[a + "time_faaaa"] = uni(HEADS, HEAD, lo=-1, hi=1)
        for m in ("receptance", "key", "value", "gate"):
            w[a + m + ".weight"] = rnd(C, C, scale=1 / math.sqrt(C))
        w[a + "output.weight"] = rnd(C, C, scale=1 / math.sqrt(C))
        w[a + "ln_x.weight"] = 1 + rnd(C, scale=0.1)
        w[a + "ln_x.bias"] = rnd(C, scale=0.1)
        f = p + "ffn."
        mix = "time_mix_" if version == 5 else "time_maa_"
        w[f + mix + "k"] = uni(1, 1, C)
        w[f + mix + "r"] = uni(1, 1, C)
        w[f + "key.weight"] = rnd(FFN, C, scale=1 / math.sqrt(C))
        w[f + "receptance.weight"] = rnd(C, C, scale=1 / math.sqrt(C))
        w[f + "value.weight"] = rnd(C, FFN, scale=1 / math.sqrt(FFN))
    w["ln_out.weight"] = 1 + rnd(C, scale=0.1)
    w["ln_out.bias"] = rnd(C, scale=0.1)
    w["head.weight"] = rnd(VOCAB, C, scale=1 / math.sqrt(C))
    return w


def layer_norm(x, weight, bias, eps=EPS):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return (x - mu) / torch.sqrt(var + eps) * weight + bias


def reference(w, version, ids):
    """The recurrence token by token, float64, as BlinkDL's RWKV_x05x/x060 one-token code writes it."""
    w = {k: v.double().reshape(-1) if v.dim() == 3 and v.shape[0] == 1 and v.shape[1] == 1 else v.double()
         for k, v in w.items()}
    att_shift = torch.zeros(LAYERS, C, dtype=torch.float64)
    ffn_shift = torch.zeros(LAYERS, C, dtype=torch.float64)
    wkv = torch.zeros(LAYERS, HEADS, HEAD, HEAD, dtype=torch.float64)
    T = len(ids)
    nll = np.full(T, np.nan)
    decays = np.zeros((T, LAYERS, HEADS))
    norms = np.zeros((T, LAYERS, HEADS))
    prev_logits = None
    for t, tok in enumerate(ids):
        if prev_logits is not None:
            nll[t] = float(-torch.log_softmax(prev_logits, -1)[tok])
        x = layer_norm(w["emb.weight"][tok], w["blocks.0.ln0.weight"], w["blocks.0.ln0.bias"])
        for l in range(LAYERS):
            a = f"blocks.{l}.att."
            f = f"blocks.{l}.ffn."
            xx = layer_norm(x, w[f"blocks.{l}.ln1.weight"], w[f"blocks.{l}.ln1.bias"])
            sx = att_shift[l].clone()
            att_shift[l] = xx
            if version == 5:
                kx = xx * w[a + "time_mix_k"] + sx * (1 - w[a + "time_mix_k"])
                vx = xx * w[a + "time_mix_v"] + sx * (1 - w[a + "time_mix_v"])
                rx = xx * w[a + "time_mix_r"] + sx * (1 - w[a + "time_mix_r"])
                gx = xx * w[a + "time_mix_g"] + sx * (1 - w[a + "time_mix_g"])
                decay = torch.exp(-torch.exp(w[a + "time_decay"]))  # [H, S]
            else:
                dx = sx - xx
                lora = torch.tanh((xx + dx * w[a + "time_maa_x"]) @ w[a + "time_maa_w1"]).view(5, MAA_RANK)
                off = torch.einsum("ir,irc->ic", lora, w[a + "time_maa_w2"])
                wx = xx + dx * (w[a + "time_maa_w"] + off[0])
                kx = xx + dx * (w[a + "time_maa_k"] + off[1])
                vx = xx + dx * (w[a + "time_maa_v"] + off[2])
                rx = xx + dx * (w[a + "time_maa_r"] + off[3])
                gx = xx + dx * (w[a + "time_maa_g"] + off[4])
                ww = w[a + "time_decay"] + torch.tanh(wx @ w[a + "time_decay_w1"]) @ w[a + "time_decay_w2"]
                decay = torch.exp(-torch.exp(ww)).view(HEADS, HEAD)
            r = (w[a + "receptance.weight"] @ rx).view(HEADS, HEAD)
            k = (w[a + "key.weight"] @ kx).view(HEADS, HEAD)
            v = (w[a + "value.weight"] @ vx).view(HEADS, HEAD)
            g = torch.nn.functional.silu(w[a + "gate.weight"] @ gx)
            u = w[a + "time_faaaa"].view(HEADS, HEAD)
            kv = k[:, :, None] * v[:, None, :]
            out = torch.einsum("hk,hkv->hv", r, u[:, :, None] * kv + wkv[l])
            wkv[l] = kv + decay[:, :, None] * wkv[l]
            # ln_x: GroupNorm over heads of out / head_size_divisor, eps 1e-5.
            o = out / DIVISOR
            o = (o - o.mean(-1, keepdim=True)) / torch.sqrt(o.var(-1, unbiased=False, keepdim=True) + EPS)
            o = o.reshape(-1) * w[a + "ln_x.weight"] + w[a + "ln_x.bias"]
            x = x + w[a + "output.weight"] @ (o * g)
            decays[t, l] = torch.exp(torch.log(decay).mean(-1)).numpy()
            norms[t, l] = torch.sqrt((wkv[l] ** 2).sum((-2, -1))).numpy()

            xx = layer_norm(x, w[f"blocks.{l}.ln2.weight"], w[f"blocks.{l}.ln2.bias"])
            sx = ffn_shift[l].clone()
            ffn_shift[l] = xx
            if version == 5:
                kx = xx * w[f + "time_mix_k"] + sx * (1 - w[f + "time_mix_k"])
                rx = xx * w[f + "time_mix_r"] + sx * (1 - w[f + "time_mix_r"])
            else:
                kx = xx + (sx - xx) * w[f + "time_maa_k"]
                rx = xx + (sx - xx) * w[f + "time_maa_r"]
            kk = torch.relu(w[f + "key.weight"] @ kx) ** 2
            x = x + torch.sigmoid(w[f + "receptance.weight"] @ rx) * (w[f + "value.weight"] @ kk)
        prev_logits = w["head.weight"] @ layer_norm(x, w["ln_out.weight"], w["ln_out.bias"])
    return nll, decays, norms


def hf_name(native, version):
    if native == "head.weight":
        return native
    if native == "emb.weight":
        return "rwkv.embeddings.weight"
    n = native.replace("blocks.0.ln0.", "blocks.0.pre_ln.").replace(".att.", ".attention.")
    n = n.replace(".ffn.", ".feed_forward.")
    if version == 5:
        for short, long in (("k", "key"), ("v", "value"), ("r", "receptance"), ("g", "gate")):
            if n.endswith(".time_mix_" + short):
                n = n[: -len(short)] + long
    return "rwkv." + n


def hf_config(version):
    return {"architectures": [f"Rwkv{version}ForCausalLM"], "model_type": f"rwkv{version}", "hidden_size": C,
            "num_hidden_layers": LAYERS, "attention_hidden_size": C, "head_size": HEAD,
            "head_size_divisor": DIVISOR, "intermediate_size": FFN, "vocab_size": VOCAB,
            "layer_norm_epsilon": EPS, "rescale_every": 6, "tie_word_embeddings": False}


def write_reference(path, ids, nll, decays, norms, note):
    with h5py.File(path, "w") as f:
        f["ids"] = np.asarray(ids, dtype=np.int32)
        f["nll"] = nll
        f["decay"] = decays
        f["state_norm"] = norms
        f.attrs["source"] = "tools/make_rwkv_fixtures.py: float64 recurrence from the published formulas; " + note


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data")
    args = ap.parse_args()
    ids = torch.randint(0, VOCAB, (TOKENS,), generator=torch.Generator().manual_seed(7)).tolist()
    for version in (5, 6):
        root = os.path.join(args.out, f"rwkv{version}")
        layouts = [("native-f32", 11, (-6.0, 1.0), torch.float32), ("native-bf16-config", 12, (-8.0, 3.0), torch.bfloat16),
                   ("hf-safetensors", 13, (-6.0, 1.0), torch.float32), ("hf-bin", 14, (-5.0, 2.0), torch.float32)]
        for layout, seed, decay_range, dtype in layouts:
            d = os.path.join(root, layout)
            os.makedirs(d, exist_ok=True)
            w = random_weights(version, seed + 100 * version, decay_range)
            stored = collections.OrderedDict((k, v.to(dtype).contiguous()) for k, v in w.items())
            if layout.startswith("native"):
                name = "model.pth" if layout == "native-f32" else f"RWKV-x0{version}0-test.pth"
                torch.save(dict(stored), os.path.join(d, name))
                if layout == "native-bf16-config":
                    with open(os.path.join(d, "config.json"), "w") as f:
                        json.dump({"n_layer": LAYERS, "n_embd": C, "head_size_a": HEAD, "head_size_divisor": 8,
                                   "version": "5.2" if version == 5 else "6.0", "vocab_size": VOCAB}, f, indent=2)
            else:
                hf = collections.OrderedDict((hf_name(k, version), v) for k, v in stored.items())
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(hf_config(version), f, indent=2)
                if layout == "hf-safetensors":
                    save_file(dict(hf), os.path.join(d, "model.safetensors"))
                else:
                    torch.save(hf, os.path.join(d, "pytorch_model.bin"))
            # The reference sees the weights as stored (bf16-rounded where stored in bf16).
            nll, decays, norms = reference({k: v.double() for k, v in stored.items()}, version, ids)
            write_reference(os.path.join(d, "reference.h5"), ids, nll, decays, norms,
                            f"RWKV-{'5.2' if version == 5 else '6.0'}, {layout}, decays exp(-exp(U{decay_range}))")
            print(f"rwkv{version}/{layout}: mean nll {np.nanmean(nll):.4f}, decay min {decays.min():.3g} "
                  f"max {decays.max():.4f}, state norm max {norms.max():.3g}")
    # RWKV-5.1: a gate but one decay per head, which the loader must refuse by name.
    bad = random_weights(5, 99, (-6.0, 1.0))
    small = collections.OrderedDict()
    for k, v in bad.items():
        if k.endswith("att.time_decay") or k.endswith("att.time_faaaa"):
            v = v[:, 0].contiguous()
        small[k] = v.float()
    os.makedirs(os.path.join(args.out, "bad"), exist_ok=True)
    torch.save(dict(small), os.path.join(args.out, "bad", "rwkv-5.1.pth"))
    print("bad/rwkv-5.1.pth")


if __name__ == "__main__":
    main()
