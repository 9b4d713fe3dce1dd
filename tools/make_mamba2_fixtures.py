#!/usr/bin/env python3
"""Makes the Mamba-2 parity fixtures under tests/data/mamba2/.

Each fixture is a model folder exactly as people have them, plus reference.h5 with the numbers the
engine must reproduce:

  hf-g1-tied            transformers layout (config.json written by save_pretrained, model.safetensors), ngroups 1, tied head
  hf-g2-untied-sharded  transformers layout, ngroups 2, untied lm_head, weights in two safetensors shards + index
  ssm-g1-tied           mamba_ssm layout (state-spaces config.json, pytorch_model.bin = torch.save of an OrderedDict), same weights as hf-g1-tied
  ssm-g2-untied-bf16    mamba_ssm layout of hf-g2's weights stored as bfloat16

reference.h5: /ids int32 [T]; /nll, /dt, /decay, /state_norm float64 ([T] and [T, L, H]).

The reference is a float64 recurrent implementation of mamba_ssm's Mamba2.step written here, and it is
checked against Hugging Face transformers' Mamba2ForCausalLM (plain-PyTorch path, float64) before
anything is written: its logits must match transformers' logits, and its final SSM states must match
the states transformers returns in its cache. transformers normalises the gated RMSNorm over the whole
inner width, mamba_ssm per group; for ngroups > 1 transformers' norm is swapped for the per-group one
for this comparison (StateScope follows mamba_ssm).

Needs torch, transformers, safetensors and h5py (the GPU machine has them). Run:
  python3 tools/make_mamba2_fixtures.py --out tests/data/mamba2
"""
import argparse
import collections
import json
import math
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from transformers import Mamba2Config, Mamba2ForCausalLM

SPECS = [
    dict(name="hf-g1-tied", hidden=64, layers=2, state=16, head_dim=16, groups=1, tie=True, vocab=512,
         chunk=64, tokens=300, seed=1),
    dict(name="hf-g2-untied", hidden=64, layers=3, state=16, head_dim=16, groups=2, tie=False, vocab=384,
         chunk=32, tokens=300, seed=2),
]


def build(spec):
    torch.manual_seed(spec["seed"])
    heads = 2 * spec["hidden"] // spec["head_dim"]
    cfg = Mamba2Config(vocab_size=spec["vocab"], hidden_size=spec["hidden"], num_hidden_layers=spec["layers"],
                       state_size=spec["state"], head_dim=spec["head_dim"], num_heads=heads,
                       n_groups=spec["groups"], expand=2, conv_kernel=4, chunk_size=spec["chunk"],
                       tie_word_embeddings=spec["tie"], use_bias=False, use_conv_bias=True,
                       residual_in_fp32=True, rms_norm=True, time_step_limit=(0.0, float("inf")))
    model = Mamba2ForCausalLM(cfg)
    # Weights with visible dynamics: decays spread over (0, 1), varied step sizes, non-trivial norms.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.empty_like(p).uniform_(1, 16)))
            elif name.endswith("dt_bias"):
                dt = torch.exp(torch.empty_like(p).uniform_(math.log(1e-3), math.log(0.1)))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))
            elif name.endswith(".D"):
                p.copy_(1 + 0.5 * torch.randn_like(p))
            elif "norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif "in_proj" in name:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
            elif "embeddings" in name or "lm_head" in name:
                p.copy_(0.5 * torch.randn_like(p))
            elif "out_proj" in name:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
        # Every weight on the bfloat16 grid, so the bf16 copy holds exactly the same numbers.
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    model.eval()
    return cfg, model


def canonical_state_dict(model):
    sd = collections.OrderedDict()
    for k, v in model.state_dict().items():
        sd[k.replace("backbone.embeddings.", "backbone.embedding.")] = v.detach().clone()
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


def reference(sd, spec, ids, a_dtype=torch.float64):
    """float64 recurrent Mamba-2 exactly as mamba_ssm's step computes it. a_dtype=torch.float32 rounds
    A = -exp(A_log) as transformers' torch path does (A_log.float()), for a tight check against it."""
    w = {k: v.double().cpu() for k, v in sd.items()}
    d, L, N, P, G = spec["hidden"], spec["layers"], spec["state"], spec["head_dim"], spec["groups"]
    d_inner = 2 * d
    H = d_inner // P
    conv_dim = d_inner + 2 * G * N
    eps = 1e-5
    lm = w.get("lm_head.weight", w["backbone.embedding.weight"])
    conv = [torch.zeros(conv_dim, 3, dtype=torch.float64) for _ in range(L)]
    ssm = [torch.zeros(H, P, N, dtype=torch.float64) for _ in range(L)]
    T = len(ids)
    nll = np.full(T, np.nan)
    dts = np.zeros((T, L, H))
    decays = np.zeros((T, L, H))
    norms = np.zeros((T, L, H))
    all_logits = []
    prev = None

    def rms(x, weight):
        return x * torch.rsqrt(x.pow(2).mean() + eps) * weight

    for t, tok in enumerate(ids):
        r = w["backbone.embedding.weight"][tok].clone()
        for l in range(L):
            m = f"backbone.layers.{l}.mixer."
            u = rms(r, w[f"backbone.layers.{l}.norm.weight"])
            zxbcdt = w[m + "in_proj.weight"] @ u
            z, xBC, dt = torch.split(zxbcdt, [d_inner, conv_dim, H])
            window = torch.cat([conv[l], xBC[:, None]], 1)
            conv[l] = window[:, 1:]
            xBC = F.silu((window * w[m + "conv1d.weight"][:, 0, :]).sum(-1) + w[m + "conv1d.bias"])
            x, B, C = torch.split(xBC, [d_inner, G * N, G * N])
            x = x.view(H, P)
            Bh = B.view(G, N).repeat_interleave(H // G, 0)
            Ch = C.view(G, N).repeat_interleave(H // G, 0)
            dt = F.softplus(dt + w[m + "dt_bias"])
            A = -torch.exp(w[m + "A_log"].to(a_dtype)).double()
            alpha = torch.exp(dt * A)
            ssm[l] = ssm[l] * alpha[:, None, None] + (dt[:, None] * x)[:, :, None] * Bh[:, None, :]
            y = torch.einsum("hpn,hn->hp", ssm[l], Ch) + w[m + "D"][:, None] * x
            v = (y.reshape(-1) * F.silu(z)).view(G, -1)
            v = v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps)
            v = v.reshape(-1) * w[m + "norm.weight"]
            r = r + w[m + "out_proj.weight"] @ v
            dts[t, l] = dt.numpy()
            decays[t, l] = alpha.numpy()
            norms[t, l] = torch.linalg.norm(ssm[l].reshape(H, -1), dim=-1).numpy()
        h = rms(r, w["backbone.norm_f.weight"])
        logits = lm @ h
        all_logits.append(logits)
        if prev is not None:
            nll[t] = (torch.logsumexp(prev, 0) - prev[tok]).item()
        prev = logits
    return nll, dts, decays, norms, torch.stack(all_logits), ssm


def grouped_gated_norm(norm, groups):
    eps = getattr(norm, "variance_epsilon", 1e-5)

    def forward(hidden_states, gate=None):
        dtype = hidden_states.dtype
        hs = hidden_states
        if gate is not None:
            hs = hs * F.silu(gate.to(hs.dtype))
        shape = hs.shape
        hs = hs.view(*shape[:-1], groups, shape[-1] // groups)
        hs = hs * torch.rsqrt(hs.pow(2).mean(-1, keepdim=True) + eps)
        return norm.weight * hs.view(shape).to(dtype)

    return forward


def check_against_transformers(model, spec, ids, ref_logits, ref_states, state_tol=1e-6):
    m = model.double().cpu()
    if spec["groups"] > 1:
        for layer in m.backbone.layers:
            layer.mixer.norm.forward = grouped_gated_norm(layer.mixer.norm, spec["groups"])
    with torch.no_grad():
        out = m(torch.tensor([ids]), use_cache=True)
    diff = (out.logits[0].double() - ref_logits).abs().max().item()
    scale = ref_logits.abs().max().item()
    print(f"  {spec['name']}: max |logits - transformers| = {diff:.3e} (logit scale {scale:.2f})")
    assert diff < 1e-6 * max(1.0, scale), "reference disagrees with transformers' logits"
    cache = getattr(out, "cache_params", None)
    states = None
    for attr in ("ssm_states", "recurrent_states"):
        if cache is not None and hasattr(cache, attr):
            states = getattr(cache, attr)
            break
    if states is None and cache is not None and hasattr(cache, "layers"):
        states = [getattr(layer, "recurrent_states", None) for layer in cache.layers]
    if states is None or any(s is None for s in states):
        print("  (transformers returned no SSM states to compare)")
        return
    worst = 0.0
    scale = max(s.abs().max().item() for s in ref_states)
    for l, s in enumerate(states):
        worst = max(worst, (s[0].double() - ref_states[l]).abs().max().item())
    print(f"  {spec['name']}: max |final SSM state - transformers| = {worst:.3e} (state scale {scale:.2f})")
    # transformers' chunked scan sums in another order: relative to the state's size, as for the logits.
    assert worst < state_tol * max(1.0, scale), "reference disagrees with transformers' final SSM state"


def write_reference(path, ids, nll, dts, decays, norms):
    with h5py.File(path, "w") as f:
        f["ids"] = np.asarray(ids, dtype=np.int32)
        f["nll"] = nll
        f["dt"] = dts
        f["decay"] = decays
        f["state_norm"] = norms
        f.attrs["source"] = "tools/make_mamba2_fixtures.py: float64 mamba_ssm recurrence, checked against transformers"


def mamba_ssm_config(spec, vocab_size):
    return {
        "d_model": spec["hidden"], "d_intermediate": 0, "n_layer": spec["layers"], "vocab_size": vocab_size,
        "ssm_cfg": {"layer": "Mamba2", "d_state": spec["state"], "headdim": spec["head_dim"],
                    "ngroups": spec["groups"], "chunk_size": spec["chunk"]},
        "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": True, "residual_in_fp32": True,
        "fused_add_norm": True, "pad_vocab_size_multiple": 16, "tie_embeddings": spec["tie"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/mamba2")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    for spec in SPECS:
        cfg, model = build(spec)
        sd = canonical_state_dict(model)
        # mamba_ssm's config states an unpadded vocabulary; ids stay below it.
        ssm_vocab = spec["vocab"] - 12
        rng = np.random.default_rng(spec["seed"])
        ids = [int(i) for i in rng.integers(0, ssm_vocab, spec["tokens"])]
        nll, dts, decays, norms, logits, states = reference(sd, spec, ids)
        check_against_transformers(model, spec, ids, logits, states)
        model = model.float()

        # transformers layout, written by transformers itself.
        hf_name = spec["name"] + ("-sharded" if not spec["tie"] else "")
        hf_dir = os.path.join(args.out, hf_name)
        if not spec["tie"]:
            model.save_pretrained(hf_dir, max_shard_size="200KB")
        else:
            model.save_pretrained(hf_dir)
        for extra in ("generation_config.json",):
            p = os.path.join(hf_dir, extra)
            if os.path.exists(p):
                os.remove(p)
        write_reference(os.path.join(hf_dir, "reference.h5"), ids, nll, dts, decays, norms)

        # mamba_ssm layout: state-spaces config.json and torch.save of the state dict (an OrderedDict).
        ssm_name = spec["name"].replace("hf-", "ssm-") + ("-bf16" if not spec["tie"] else "")
        ssm_dir = os.path.join(args.out, ssm_name)
        os.makedirs(ssm_dir, exist_ok=True)
        with open(os.path.join(ssm_dir, "config.json"), "w") as f:
            json.dump(mamba_ssm_config(spec, ssm_vocab), f, indent=2)
        saved = collections.OrderedDict()
        dtype = torch.float32 if spec["tie"] else torch.bfloat16
        for k, v in sd.items():
            saved[k] = v.to(dtype)
        if spec["tie"]:
            saved["lm_head.weight"] = saved["backbone.embedding.weight"]  # mamba_ssm saves the tied copy too
        saved._metadata = getattr(model.state_dict(), "_metadata", None)
        torch.save(saved, os.path.join(ssm_dir, "pytorch_model.bin"))
        write_reference(os.path.join(ssm_dir, "reference.h5"), ids, nll, dts, decays, norms)
        print(f"  wrote {hf_dir} and {ssm_dir}")


if __name__ == "__main__":
    main()
