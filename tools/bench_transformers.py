#!/usr/bin/env python3
"""Tokens/s of Hugging Face transformers' Mamba2ForCausalLM or MambaForCausalLM forward (the path
transformers takes on this machine) on a random model of a state-spaces shape (Mamba-2: 130m, 1.3b or
2.7b; Mamba: 130m), to set next to `statescope-cli bench --shape` on the same GPU.

  python3 tools/bench_transformers.py [--arch mamba2|mamba] [--shape 130m|1.3b|2.7b] --tokens 2048,16384,65536 \
      --dtype bfloat16 [--json out.json]
"""
import argparse
import json
import time

import torch
from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="2048,16384,65536")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--arch", default="mamba2", choices=["mamba2", "mamba"])
    ap.add_argument("--shape", default="130m", choices=["130m", "1.3b", "2.7b"])
    ap.add_argument("--json")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    if args.arch == "mamba2":
        d_model, layers = {"130m": (768, 24), "1.3b": (2048, 48), "2.7b": (2560, 64)}[args.shape]
        cfg = Mamba2Config(vocab_size=50288, hidden_size=d_model, num_hidden_layers=layers, state_size=128,
                           head_dim=64, num_heads=2 * d_model // 64, n_groups=1, expand=2, conv_kernel=4,
                           chunk_size=256, tie_word_embeddings=True)
        model = Mamba2ForCausalLM(cfg)
    else:  # state-spaces/mamba-130m's shape
        if args.shape != "130m":
            ap.error("--arch mamba has the 130m shape only")
        cfg = MambaConfig(vocab_size=50280, hidden_size=768, num_hidden_layers=24, state_size=16, expand=2,
                          conv_kernel=4, time_step_rank="auto", tie_word_embeddings=True)
        model = MambaForCausalLM(cfg)
    model = model.to("cuda", dtype).eval()
    print(f"transformers {type(model).__name__}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M "
          f"parameters, {args.dtype}, {torch.cuda.get_device_name()}")
    results = []
    print(f"{'tokens':>10} {'seconds':>10} {'tokens/s':>12}")
    for T in [int(t) for t in args.tokens.split(",")]:
        ids = torch.randint(0, 50277, (1, T), device="cuda")
        best = None
        try:
            with torch.no_grad():
                model(ids[:, : min(T, 2048)], use_cache=False)
                torch.cuda.synchronize()
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    model(ids, use_cache=False)
                    torch.cuda.synchronize()
                    s = time.perf_counter() - start
                    best = s if best is None else min(best, s)
            print(f"{T:>10} {best:>10.3f} {T / best:>12.0f}", flush=True)
            results.append({"tokens": T, "seconds": best, "tokens_per_s": T / best})
        except torch.OutOfMemoryError:
            print(f"{T:>10} out of memory")
            results.append({"tokens": T, "error": "out of memory"})
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"impl": "transformers", "arch": args.arch, "shape": args.shape, "dtype": args.dtype, "results": results}, f)


if __name__ == "__main__":
    main()
