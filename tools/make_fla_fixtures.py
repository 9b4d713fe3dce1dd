#!/usr/bin/env python3
"""Test fixtures for HGRN-2 and GLA in flash-linear-attention's layout (tests/data/hgrn2/*, tests/data/gla/*,
issue 13).

Each fixture is a tiny random model as fla (and fla-hub's checkpoints) store it: config.json with
model_type hgrn2 / gla and fla's field names, weights under "model.layers.N.attn.*", "model.lower_bounds",
"lm_head.weight". reference.h5 holds what a float64 implementation written here, one token at a time
from the formulas (stuffed-mamba.md §3.5, §6.5; fla's layers/hgrn2.py, layers/gla.py, modules/), computes
for 300 random tokens: /ids, /nll (NaN first), /decay (exp of the mean log forget gate over a head's key
channels) and /state_norm (Frobenius norm of the head's key x value state after the token), each
[T, layers, heads]. fla is not installed where this runs, and the script shares no code with the C++ engine.

Fixtures (four per architecture):
  hgrn2/lb-safetensors       lower bounds, model.safetensors, fla's current names
  hgrn2/conv-shards          short convolutions with bias, no lower bounds, two safetensors shards + index
  hgrn2/old-bin              fla 2024: one fused [2I, C] mlp.gate_proj, rms_norm_eps, num_heads null,
                             attn_mode fused_chunk; pytorch_model.bin (an OrderedDict)
  hgrn2/lb-bf16              lower bounds pushed towards 1 (long memory), bfloat16 weights
  gla/default-safetensors    fla's defaults (expand_k 0.5, expand_v 1, swish output gate, g_norm_swish_gate)
  gla/kv-conv-shards         4 heads sharing 2 key/value heads, short convolutions (silu), clamp_min,
                             tied embeddings; two shards + index
  gla/old-bin                fused mlp.gate_proj, g_norm instead of g_norm_swish_gate, feature_map swish;
                             pytorch_model.bin
  gla/nogate-bf16            use_output_gate false, elementwise_affine false, feature_map relu, bfloat16

Run where torch is (the GPU machine; the CPU is enough):  python3 tools/make_fla_fixtures.py
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

C, LAYERS, VOCAB, TOKENS, CONV = 64, 3, 300, 300, 4


def ffn_width(hidden, ratio=4):
    i = int(hidden * ratio * 2 / 3)
    return 256 * ((i + 255) // 256)


FFN = ffn_width(C)


def rms(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def silu(x):
    return x * torch.sigmoid(x)


def logsigmoid(x):
    return torch.nn.functional.logsigmoid(x)


class Rng:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def n(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.g, dtype=torch.float64) * scale

    def u(self, *shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=self.g, dtype=torch.float64)


def random_weights(arch, cfg, seed, gate_shift):
    """fla's current names; gate_shift moves the forget gates' logits (larger: longer memory)."""
    r = Rng(seed)
    w = collections.OrderedDict()
    # Tied embeddings are also the output layer: at unit scale their logits reach ~|e|^2 = 64 and float32
    # loses the nll's last digits to the cancellation in logsumexp (real models start at 0.02).
    w["model.embeddings.weight"] = r.n(VOCAB, C, scale=0.25 if cfg.get("tie") else 1.0)
    for l in range(LAYERS):
        p, a = f"model.layers.{l}.", f"model.layers.{l}.attn."
        w[p + "attn_norm.weight"] = 1 + r.n(C, scale=0.1)
        if arch == "hgrn2":
            F = cfg["heads"] * cfg["expand_ratio"]
            w[a + "q_proj.weight"] = r.n(F, C, scale=1 / math.sqrt(C))
            w[a + "f_proj.weight"] = r.n(F, C, scale=2 / math.sqrt(C))
            w[a + "i_proj.weight"] = r.n(C, C, scale=1 / math.sqrt(C))
            w[a + "g_norm.weight"] = 1 + r.n(C, scale=0.1)
            w[a + "o_proj.weight"] = r.n(C, C, scale=1 / math.sqrt(C))
            if cfg.get("conv"):
                for n, d in (("q", F), ("f", F), ("i", C)):
                    w[a + n + "_conv1d.weight"] = r.n(d, 1, CONV, scale=0.5)
                    if cfg.get("conv_bias"):
                        w[a + n + "_conv1d.bias"] = r.n(d, scale=0.1)
        else:
            Kd, Vd, g = int(C * 0.5), C, cfg["heads"] // cfg["kv_heads"]
            w[a + "q_proj.weight"] = r.n(Kd, C, scale=1 / math.sqrt(C))
            w[a + "k_proj.weight"] = r.n(Kd // g, C, scale=1 / math.sqrt(C))
            w[a + "v_proj.weight"] = r.n(Vd // g, C, scale=1 / math.sqrt(C))
            if cfg.get("gate", True):
                w[a + "g_proj.weight"] = r.n(Vd, C, scale=1 / math.sqrt(C))
            w[a + "gk_proj.0.weight"] = r.n(16, C, scale=1 / math.sqrt(C))
            w[a + "gk_proj.1.weight"] = r.n(Kd // g, 16, scale=1 / 4)
            w[a + "gk_proj.1.bias"] = r.n(Kd // g, scale=1.0) + gate_shift
            if cfg.get("affine", True):
                w[a + "g_norm_swish_gate.weight"] = 1 + r.n(Vd // cfg["heads"], scale=0.1)
            w[a + "o_proj.weight"] = r.n(C, Vd, scale=1 / math.sqrt(Vd))
            if cfg.get("conv"):
                for n, d in (("q", Kd), ("k", Kd // g), ("v", Vd // g)):
                    w[a + n + "_conv1d.weight"] = r.n(d, 1, CONV, scale=0.5)
        w[p + "mlp_norm.weight"] = 1 + r.n(C, scale=0.1)
        w[p + "mlp.gate_proj.weight"] = r.n(FFN, C, scale=1 / math.sqrt(C))
        w[p + "mlp.up_proj.weight"] = r.n(FFN, C, scale=1 / math.sqrt(C))
        w[p + "mlp.down_proj.weight"] = r.n(C, FFN, scale=1 / math.sqrt(FFN))
    w["model.norm.weight"] = 1 + r.n(C, scale=0.1)
    if arch == "hgrn2" and cfg.get("lower_bound"):
        w["model.lower_bounds"] = r.n(LAYERS, C, scale=1.0) + torch.arange(LAYERS, dtype=torch.float64)[:, None] * gate_shift
    if not cfg.get("tie"):
        w["lm_head.weight"] = r.n(VOCAB, C, scale=1 / math.sqrt(C))
    return w


def conv_step(hist, x, weight, bias):
    """Causal depthwise conv: hist [W-1, D] of the previous inputs, x [D]."""
    window = torch.cat([hist, x[None]], 0)  # [W, D], oldest first
    y = (window.T * weight[:, 0, :]).sum(-1)
    if bias is not None:
        y = y + bias
    return y, window[1:]


def reference(arch, cfg, w, ids):
    """Token by token in float64, as fla's naive recurrent GLA and its layers define it."""
    heads = cfg["heads"]
    eps = cfg["eps"]
    T = len(ids)
    if arch == "hgrn2":
        K, V = cfg["expand_ratio"], C // heads
        lb = None
        if cfg.get("lower_bound"):
            p = torch.softmax(w["model.lower_bounds"], 0)
            lb = p.cumsum(0) - p[0]
    else:
        K, V = int(C * 0.5) // heads, C // heads
        group = heads // cfg["kv_heads"]
    scale = K ** -0.5
    S = [torch.zeros(heads, K, V, dtype=torch.float64) for _ in range(LAYERS)]
    hist = [{} for _ in range(LAYERS)]
    head = w.get("lm_head.weight", w["model.embeddings.weight"])
    nll = np.full(T, np.nan)
    decays = np.zeros((T, LAYERS, heads))
    norms = np.zeros((T, LAYERS, heads))
    for t, tok in enumerate(ids):
        x = w["model.embeddings.weight"][tok]
        for l in range(LAYERS):
            p, a = f"model.layers.{l}.", f"model.layers.{l}.attn."
            h = rms(x, w[p + "attn_norm.weight"], eps)

            def conv(name, v, act):
                if not cfg.get("conv"):
                    return v
                key = a + name + "_conv1d"
                past = hist[l].get(name, torch.zeros(CONV - 1, v.shape[0], dtype=torch.float64))
                y, hist[l][name] = conv_step(past, v, w[key + ".weight"], w.get(key + ".bias"))
                return silu(y) if act else y

            if arch == "hgrn2":
                q = conv("q", h @ w[a + "q_proj.weight"].T, False)
                f = conv("f", h @ w[a + "f_proj.weight"].T, False)
                v = conv("i", h @ w[a + "i_proj.weight"].T, False)
                q = silu(q)
                if lb is not None and l > 0:
                    gate = lb[l] + (1 - lb[l]) * torch.sigmoid(f)
                else:
                    gate = torch.sigmoid(f)
                logg = torch.log(gate)
                k = 1 - gate
                qh, kh, gh, vh = (q.view(heads, K), k.view(heads, K), logg.view(heads, K), v.view(heads, V))
            else:
                q = conv("q", h @ w[a + "q_proj.weight"].T, True)
                k = conv("k", h @ w[a + "k_proj.weight"].T, True)
                v = conv("v", h @ w[a + "v_proj.weight"].T, True)
                gk = (h @ w[a + "gk_proj.0.weight"].T) @ w[a + "gk_proj.1.weight"].T + w[a + "gk_proj.1.bias"]
                logg = logsigmoid(gk) / 16.0
                if cfg.get("clamp_min") is not None:
                    logg = torch.clamp(logg, min=cfg["clamp_min"])
                if cfg.get("feature_map") == "swish":
                    q, k = silu(q), silu(k)
                elif cfg.get("feature_map") == "relu":
                    q, k = torch.relu(q), torch.relu(k)
                qh = q.view(heads, K)
                kh = k.view(heads // group, K).repeat_interleave(group, 0)
                gh = logg.view(heads // group, K).repeat_interleave(group, 0)
                vh = v.view(heads // group, V).repeat_interleave(group, 0)
            S[l] = torch.exp(gh)[:, :, None] * S[l] + kh[:, :, None] * vh[:, None, :]
            o = torch.einsum("hk,hkv->hv", qh * scale, S[l])
            decays[t, l] = torch.exp(gh.mean(-1)).numpy()
            norms[t, l] = torch.sqrt((S[l] ** 2).sum((-2, -1))).numpy()
            if arch == "hgrn2":
                gw = w.get(a + "g_norm.weight", torch.ones(C, dtype=torch.float64))
                y = rms(o.reshape(C), gw, 1e-5)  # fla's rms_norm_linear: its default eps
            else:
                gw = w.get(a + "g_norm_swish_gate.weight", w.get(a + "g_norm.weight", torch.ones(V, dtype=torch.float64)))
                y = rms(o, gw, eps)
                if a + "g_proj.weight" in w:
                    y = y * silu((h @ w[a + "g_proj.weight"].T).view(heads, V))
                y = y.reshape(heads * V)
            x = x + y @ w[a + "o_proj.weight"].T
            h2 = rms(x, w[p + "mlp_norm.weight"], eps)
            m = silu(h2 @ w[p + "mlp.gate_proj.weight"].T) * (h2 @ w[p + "mlp.up_proj.weight"].T)
            x = x + m @ w[p + "mlp.down_proj.weight"].T
        logits = rms(x, w["model.norm.weight"], eps) @ head.T
        if t + 1 < T:
            nll[t + 1] = float(torch.logsumexp(logits, 0) - logits[ids[t + 1]])
    return nll, decays, norms


FIXTURES = [
    # name, arch, cfg, seed, gate shift, dtype, format
    ("lb-safetensors", "hgrn2", dict(heads=4, expand_ratio=16, lower_bound=True, eps=1e-6), 21, 1.0, torch.float32, "st"),
    ("conv-shards", "hgrn2", dict(heads=4, expand_ratio=16, lower_bound=False, conv=True, conv_bias=True, eps=1e-6),
     22, 0.0, torch.float32, "shards"),
    ("old-bin", "hgrn2", dict(heads=4, expand_ratio=16, lower_bound=True, eps=1e-6, old=True), 23, 1.5, torch.float32, "bin"),
    ("lb-bf16", "hgrn2", dict(heads=4, expand_ratio=16, lower_bound=True, eps=1e-6), 24, 3.0, torch.bfloat16, "st"),
    ("default-safetensors", "gla", dict(heads=2, kv_heads=2, eps=1e-6), 31, 2.0, torch.float32, "st"),
    ("kv-conv-shards", "gla", dict(heads=4, kv_heads=2, conv=True, clamp_min=-0.05, tie=True, eps=1e-6), 32, 0.0,
     torch.float32, "shards"),
    ("old-bin", "gla", dict(heads=2, kv_heads=2, eps=1e-6, old=True, feature_map="swish"), 33, 3.0, torch.float32,
     "bin"),
    ("nogate-bf16", "gla", dict(heads=2, kv_heads=2, gate=False, affine=False, feature_map="relu", eps=1e-5), 34, -2.0,
     torch.bfloat16, "st"),
]


def config_json(arch, cfg):
    j = {"architectures": ["HGRN2ForCausalLM" if arch == "hgrn2" else "GLAForCausalLM"], "model_type": arch,
         "hidden_size": C, "num_hidden_layers": LAYERS, "vocab_size": VOCAB, "hidden_ratio": 4,
         "intermediate_size": None, "hidden_act": "swish", "attn_mode": "chunk", "use_short_conv": bool(cfg.get("conv")),
         "conv_size": CONV, "tie_word_embeddings": bool(cfg.get("tie")), "fuse_norm": True, "fuse_cross_entropy": True,
         "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None, "initializer_range": 0.02, "use_cache": True,
         "max_position_embeddings": 2048, "attn": None}
    if cfg.get("old"):
        j["rms_norm_eps"] = cfg["eps"]
        j["attn_mode"] = "fused_chunk"
        j["share_conv_kernel"] = True
    else:
        j["norm_eps"] = cfg["eps"]
    if arch == "hgrn2":
        j["expand_ratio"] = cfg["expand_ratio"]
        j["num_heads"] = None if cfg.get("old") else cfg["heads"]
        j["use_lower_bound"] = bool(cfg.get("lower_bound"))
        if cfg.get("conv_bias"):
            j["conv_bias"] = True
    else:
        j.update({"num_heads": cfg["heads"], "num_kv_heads": None if cfg["kv_heads"] == cfg["heads"] else cfg["kv_heads"],
                  "expand_k": 0.5, "expand_v": 1, "feature_map": cfg.get("feature_map"), "clamp_min": cfg.get("clamp_min"),
                  "use_output_gate": cfg.get("gate", True), "elementwise_affine": cfg.get("affine", True),
                  "use_gk": True, "use_gv": False})
    return j


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data")
    args = ap.parse_args()
    ids = torch.randint(0, VOCAB, (TOKENS,), generator=torch.Generator().manual_seed(5)).tolist()
    for name, arch, cfg, seed, shift, dtype, fmt in FIXTURES:
        d = os.path.join(args.out, arch, name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))
        w = random_weights(arch, cfg, seed, shift)
        stored = collections.OrderedDict((k, v.to(dtype).contiguous()) for k, v in w.items())
        # The reference sees the weights as stored (bf16-rounded where stored in bf16).
        nll, decays, norms = reference(arch, cfg, {k: v.double() for k, v in stored.items()}, ids)
        if cfg.get("old"):
            # fla 2024: gate and up in one matrix, gate rows first; g_norm for GLA's gated norm.
            old = collections.OrderedDict()
            for k, v in stored.items():
                if k.endswith("mlp.up_proj.weight"):
                    continue
                if k.endswith("mlp.gate_proj.weight"):
                    v = torch.cat([v, stored[k.replace("gate_proj", "up_proj")]], 0).contiguous()
                k = k.replace("g_norm_swish_gate", "g_norm")
                old[k] = v
            stored = old
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config_json(arch, cfg), f, indent=2)
        if fmt == "st":
            save_file(dict(stored), os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        elif fmt == "bin":
            torch.save(stored, os.path.join(d, "pytorch_model.bin"))
        else:
            keys = list(stored)
            half = len(keys) // 2
            index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in stored.values())},
                     "weight_map": {}}
            for i, part in enumerate((keys[:half], keys[half:])):
                fn = f"model-{i + 1:05d}-of-00002.safetensors"
                save_file({k: stored[k] for k in part}, os.path.join(d, fn), metadata={"format": "pt"})
                index["weight_map"].update({k: fn for k in part})
            with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
                json.dump(index, f, indent=2)
        with h5py.File(os.path.join(d, "reference.h5"), "w") as f:
            f["ids"] = np.asarray(ids, dtype=np.int32)
            f["nll"] = nll
            f["decay"] = decays
            f["state_norm"] = norms
            f.attrs["source"] = ("tools/make_fla_fixtures.py: float64 recurrence from fla's formulas; "
                                 f"{arch} {name}, {str(dtype).replace('torch.', '')}")
        print(f"{arch}/{name}: mean nll {np.nanmean(nll):.4f}, decay min {decays.min():.3g} max {decays.max():.6f}, "
              f"state norm max {norms.max():.3g}")


if __name__ == "__main__":
    main()
