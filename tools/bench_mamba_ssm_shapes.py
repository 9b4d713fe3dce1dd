#!/usr/bin/env python3
"""mamba_ssm's Mamba-2 prefill (its Triton SSD) on the shapes `statescope-cli bench --shape` names, on the
same GPU and in the same call: last logits only, and every logit plus the per-token NLL (what an
instrumented run needs). ../shared/peers/bench_mamba_ssm.py runs the 130m and 1.3b shapes only; this
adds 2.7b. Needs a copy of ../shared/peers (the mamba_ssm package) at --peers.

  python3 tools/bench_mamba_ssm_shapes.py --peers .peers --shapes 130m,1.3b,2.7b --tokens 16384,65536
"""
import argparse
import importlib
import os
import sys
import time
import types

import torch

# d_model and layers of the state-spaces Mamba-2 checkpoints (headdim 64, d_state 128, expand 2).
SHAPES = {"130m": (768, 24), "370m": (1024, 48), "780m": (1536, 48), "1.3b": (2048, 48), "2.7b": (2560, 64)}


def import_peer(peers):
    sys.path.insert(0, os.path.abspath(peers))
    try:
        return importlib.import_module("mamba_ssm.models.mixer_seq_simple")
    except Exception as e:  # the copy lacks Mamba-3's compiled parts; the Mamba-2 path does not need them
        print("plain import failed:", repr(e)[:200], "- without mamba3", flush=True)
        for k in [k for k in sys.modules if k.startswith("mamba_ssm")]:
            del sys.modules[k]
        pkg = types.ModuleType("mamba_ssm")
        pkg.__path__ = [os.path.join(os.path.abspath(peers), "mamba_ssm")]
        sys.modules["mamba_ssm"] = pkg
        m3 = types.ModuleType("mamba_ssm.modules.mamba3")
        m3.Mamba3 = None
        sys.modules["mamba_ssm.modules.mamba3"] = m3
        return importlib.import_module("mamba_ssm.models.mixer_seq_simple")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", default=".peers")
    ap.add_argument("--shapes", default="130m,1.3b,2.7b")
    ap.add_argument("--tokens", default="16384,65536")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    mixer = import_peer(args.peers)
    from mamba_ssm.models.config_mamba import MambaConfig

    for shape in args.shapes.split(","):
        d_model, layers = SHAPES[shape]
        cfg = MambaConfig(d_model=d_model, n_layer=layers, vocab_size=50277,
                          ssm_cfg={"layer": "Mamba2", "use_mem_eff_path": False}, rms_norm=True,
                          residual_in_fp32=True, fused_add_norm=True, pad_vocab_size_multiple=16)
        torch.manual_seed(0)
        model = mixer.MambaLMHeadModel(cfg, device="cuda", dtype=torch.bfloat16).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"mamba_ssm {shape}: {params:.1f} M parameters, bfloat16, {torch.cuda.get_device_name()}", flush=True)
        for T in [int(t) for t in args.tokens.split(",")]:
            ids = torch.randint(0, 50000, (1, T), device="cuda")
            last = full = float("inf")
            try:
                with torch.inference_mode():
                    model(ids, num_last_tokens=1)
                    torch.cuda.synchronize()
                    for _ in range(args.repeat):
                        t = time.perf_counter()
                        model(ids, num_last_tokens=1)
                        torch.cuda.synchronize()
                        last = min(last, time.perf_counter() - t)
                        t = time.perf_counter()
                        logits = model(ids).logits.float()
                        nll = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")
                        torch.cuda.synchronize()
                        full = min(full, time.perf_counter() - t)
                        del logits, nll
                print(f"  prefill T={T}: {T / last:,.0f} tok/s (last logits only), {T / full:,.0f} tok/s "
                      f"(all logits + NLL)", flush=True)
            except torch.OutOfMemoryError:
                print(f"  prefill T={T}: out of memory", flush=True)
            torch.cuda.empty_cache()
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
