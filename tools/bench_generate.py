#!/usr/bin/env python3
"""Greedy decode tokens/s of the peers, for docs/benchmarks.md beside `statescope-cli generate`.

Random Mamba-2 weights of the 130m and 1.3b shapes, one prompt of --prompt-tokens random ids, then
--new-tokens greedy tokens; decode rate = (new - 1) / (time after the prefill), as StateScope counts it.
Peers: mamba_ssm's MambaLMHeadModel.generate (with and without its CUDA-graph decode), and transformers'
Mamba2ForCausalLM.generate. mamba_ssm is found in --peers (a copy of ../shared/peers carried along).
Runs on the GPU machine; prints one line per measurement and writes --json.
"""
import argparse
import json
import os
import sys
import time
import types

import torch

SHAPES = {"130m": (768, 24), "1.3b": (2048, 48)}
VOCAB = 50277


def import_mamba_ssm(peers):
    sys.path.insert(0, peers)
    try:
        from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel  # noqa: F401
    except Exception as e:  # the snapshot imports mamba3, which needs a compiled extension
        print("mamba_ssm plain import failed:", repr(e)[:160], "- without mamba3", flush=True)
        for k in [k for k in sys.modules if k.startswith("mamba_ssm")]:
            del sys.modules[k]
        pkg = types.ModuleType("mamba_ssm")
        pkg.__path__ = [os.path.join(peers, "mamba_ssm")]
        sys.modules["mamba_ssm"] = pkg
        m3 = types.ModuleType("mamba_ssm.modules.mamba3")
        m3.Mamba3 = None
        sys.modules["mamba_ssm.modules.mamba3"] = m3
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
    return MambaConfig, MambaLMHeadModel


def timed(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t


def bench_mamba_ssm(peers, shape, prompt, new, dtype, results):
    MambaConfig, MambaLMHeadModel = import_mamba_ssm(peers)
    d, n = SHAPES[shape]
    cfg = MambaConfig(d_model=d, n_layer=n, vocab_size=VOCAB, ssm_cfg={"layer": "Mamba2", "use_mem_eff_path": False}, rms_norm=True,
                      residual_in_fp32=True, fused_add_norm=True, pad_vocab_size_multiple=16)
    torch.manual_seed(0)
    m = MambaLMHeadModel(cfg, device="cuda", dtype=dtype).eval()
    ids = torch.randint(0, VOCAB, (1, prompt), device="cuda")
    for cg in (False, True):
        with torch.inference_mode():
            _, prefill = timed(lambda: m(ids, num_last_tokens=1))
            m.generate(ids, max_length=prompt + 8, cg=cg)  # warm-up (captures the graph when cg)
            best = 1e9
            for _ in range(2):
                _, total = timed(lambda: m.generate(ids, max_length=prompt + new, cg=cg))
                best = min(best, total)
            _, prefill = timed(lambda: m(ids, num_last_tokens=1))
        rate = (new - 1) / max(best - prefill, 1e-9)
        name = f"mamba_ssm generate cg={cg}"
        print(f"{name} {shape} {dtype}: prompt {prompt}, {new} new: total {best:.3f} s, prefill {prefill:.3f} s, "
              f"decode {rate:,.1f} tokens/s", flush=True)
        results.append({"peer": name, "shape": shape, "dtype": str(dtype), "prompt_tokens": prompt,
                        "new_tokens": new, "total_seconds": best, "prefill_seconds": prefill,
                        "decode_tokens_per_second": rate})
    del m
    torch.cuda.empty_cache()


def bench_transformers(shape, prompt, new, dtype, results):
    from transformers import Mamba2Config, Mamba2ForCausalLM
    d, n = SHAPES[shape]
    cfg = Mamba2Config(hidden_size=d, num_hidden_layers=n, vocab_size=50288, state_size=128, head_dim=64,
                       num_heads=2 * d // 64, n_groups=1, expand=2, conv_kernel=4, chunk_size=256,
                       tie_word_embeddings=True)
    torch.manual_seed(0)
    m = Mamba2ForCausalLM(cfg).to("cuda", dtype).eval()
    ids = torch.randint(0, VOCAB, (1, prompt), device="cuda")
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.inference_mode():
        m.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)
        _, one = timed(lambda: m.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw))
        _, total = timed(lambda: m.generate(ids, max_new_tokens=new, min_new_tokens=new, **kw))
    rate = (new - 1) / max(total - one, 1e-9)
    print(f"transformers generate {shape} {dtype}: prompt {prompt}, {new} new: total {total:.3f} s, "
          f"prefill+1 {one:.3f} s, decode {rate:,.1f} tokens/s", flush=True)
    results.append({"peer": "transformers generate", "shape": shape, "dtype": str(dtype), "prompt_tokens": prompt,
                    "new_tokens": new, "total_seconds": total, "prefill_seconds": one,
                    "decode_tokens_per_second": rate})
    del m
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", default=".peers")
    ap.add_argument("--shapes", default="130m,1.3b")
    ap.add_argument("--prompt-tokens", type=int, default=1024)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--json", default="")
    ap.add_argument("--only", default="mamba_ssm,transformers", help="which peers to run")
    a = ap.parse_args()
    dtype = getattr(torch, a.dtype)
    results = []
    for shape in a.shapes.split(","):
        runs = {"mamba_ssm": lambda: bench_mamba_ssm(os.path.abspath(a.peers), shape, a.prompt_tokens,
                                                     a.new_tokens, dtype, results),
                "transformers": lambda: bench_transformers(shape, a.prompt_tokens, a.new_tokens, dtype, results)}
        for fn in (runs[p] for p in a.only.split(",")):
            try:
                fn()
            except Exception as e:  # one peer failing must not hide the others
                print(f"peer failed on {shape}: {type(e).__name__}: {str(e)[:300]}", flush=True)
    print("gpu:", torch.cuda.get_device_name(0), "torch", torch.__version__)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
