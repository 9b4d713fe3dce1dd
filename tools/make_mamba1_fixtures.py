#!/usr/bin/env python3
"""Makes the Mamba-1 parity fixtures under tests/data/mamba/.

Each fixture is a model folder exactly as people have them, plus reference.h5 with the numbers the
engine must reproduce:

  hf-tied              transformers layout (config.json with model_type "mamba" written by save_pretrained,
                       model.safetensors), tied head; d_state 16, d_conv 4, expand 2, dt_rank "auto"
                       (= ceil(hidden / 16)), i.e. mamba_ssm's Mamba-1 defaults
  hf-untied-sharded    transformers layout, untied lm_head, d_state 8, explicit dt_rank 5, weights in two
                       safetensors shards + model.safetensors.index.json
  ssm-tied             mamba_ssm layout of hf-tied's weights: a config.json like state-spaces/mamba-130m's
                       ("ssm_cfg": {}, so every Mamba-1 default applies) and pytorch_model.bin = torch.save of
                       an OrderedDict with mamba_ssm's names (backbone.embedding.weight, ...), lm_head.weight
                       included as the tied copy of the embedding, as mamba_ssm saves it
  ssm-untied-bf16      mamba_ssm layout of hf-untied's weights stored as bfloat16; config.json as newer
                       mamba_ssm writes it, with "ssm_cfg": {"layer": "Mamba1", d_state, d_conv, expand, dt_rank}

mamba_ssm's config.json states the unpadded vocabulary (the embedding's rows minus 12); with
pad_vocab_size_multiple 16 it pads back to the embedding's rows. The token ids stay below it. Every weight
lies on the bfloat16 grid, so the bf16 copy holds exactly the numbers the reference used.

reference.h5: /ids int32 [T]; /nll float64 [T] (NaN at t = 0); /dt, /decay, /state_norm float64
[T, L, d_inner], one value per channel (attribute detail = "full"):
  dt          Delta_d = softplus(dt_proj.weight @ dt_low + dt_proj.bias)_d
  decay       exp(mean over n of Delta_d * A_{d,n}): the geometric mean of the channel's N per-state decays
  state_norm  sqrt(sum over n of h[d, n]^2), after the token

The reference is a float64 recurrent implementation of mamba_ssm's Mamba.step written here, token by
token, and it is checked against Hugging Face transformers' MambaForCausalLM (its plain-PyTorch path,
float64 on the CPU) before anything is written: its logits must match transformers' logits, and its final
SSM states must match the states transformers returns in its cache. transformers' PyTorch path rounds a
few intermediates to float32 even in a float64 model (RMSNorm, the fp32 residual, A, B and x in the scan,
the logits), so expect the printed differences near 1e-7 relative, not 1e-15.

Needs torch, transformers, safetensors and h5py (the GPU machine has them). Run:
  python3 tools/make_mamba1_fixtures.py --out tests/data/mamba
"""
import argparse
import collections
import contextlib
import copy
import inspect
import json
import math
import os
import shutil

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from transformers import MambaConfig, MambaForCausalLM

SPECS = [
    # The tied pair uses mamba_ssm's Mamba-1 defaults, so ssm-tied's config.json can say "ssm_cfg": {}.
    dict(name="tied", hidden=32, layers=2, state=16, expand=2, conv=4, rank="auto", tie=True, vocab=512,
         tokens=200, seed=1),
    dict(name="untied", hidden=32, layers=3, state=8, expand=2, conv=4, rank=5, tie=False, vocab=384,
         tokens=200, seed=2),
]
EPS = 1e-5
PAD_VOCAB_MULTIPLE = 16
# mamba_ssm's Mamba state-dict order: the mixer's own parameters, then its submodules'.
MIXER_KEYS = ("A_log", "D", "in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
              "dt_proj.weight", "dt_proj.bias", "out_proj.weight")
SOURCE = "tools/make_mamba1_fixtures.py: float64 mamba_ssm Mamba.step recurrence, checked against transformers"


def dt_rank(spec):
    return math.ceil(spec["hidden"] / 16) if spec["rank"] == "auto" else int(spec["rank"])


def config_accepts(name):
    try:
        if name in inspect.signature(MambaConfig.__init__).parameters:
            return True
    except (TypeError, ValueError):
        pass
    return name in getattr(MambaConfig, "__dataclass_fields__", {})


def build(spec):
    torch.manual_seed(spec["seed"])
    kwargs = dict(vocab_size=spec["vocab"], hidden_size=spec["hidden"], state_size=spec["state"],
                  num_hidden_layers=spec["layers"], expand=spec["expand"], conv_kernel=spec["conv"],
                  use_bias=False, use_conv_bias=True, time_step_rank=spec["rank"], residual_in_fp32=True,
                  tie_word_embeddings=spec["tie"], layer_norm_epsilon=EPS)
    if config_accepts("use_mambapy"):
        kwargs["use_mambapy"] = False
    cfg = MambaConfig(**kwargs)
    # A version that dropped or renamed an argument would build another model without a word: check.
    d_inner = spec["expand"] * spec["hidden"]
    assert cfg.intermediate_size == d_inner, cfg.intermediate_size
    assert int(cfg.time_step_rank) == dt_rank(spec), cfg.time_step_rank
    assert cfg.state_size == spec["state"] and cfg.conv_kernel == spec["conv"]
    assert cfg.layer_norm_epsilon == EPS and cfg.residual_in_fp32 and not cfg.use_bias and cfg.use_conv_bias
    assert bool(cfg.tie_word_embeddings) == spec["tie"]
    model = MambaForCausalLM(cfg)
    tied = model.lm_head.weight.data_ptr() == model.backbone.embeddings.weight.data_ptr()
    assert tied == spec["tie"], f"lm_head tied = {tied}, wanted {spec['tie']}"
    # Weights with visible dynamics: decays spread over (0, 1), varied step sizes, non-trivial norms.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".A_log"):
                p.copy_(torch.log(torch.empty_like(p).uniform_(1, 16)))
            elif name.endswith(".dt_proj.bias"):
                dt = torch.exp(torch.empty_like(p).uniform_(math.log(1e-3), math.log(0.1)))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            elif name.endswith(".D"):
                p.copy_(1 + 0.5 * torch.randn_like(p))
            elif name.endswith(".conv1d.weight"):  # [d_inner, 1, d_conv]: fan-in d_conv
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
            elif name.endswith(".conv1d.bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(("in_proj.weight", "x_proj.weight", "dt_proj.weight", "out_proj.weight")):
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
            elif name.endswith(("embeddings.weight", "lm_head.weight")):
                p.copy_(0.5 * torch.randn_like(p))
            else:
                raise ValueError(f"no initialisation rule for {name} {tuple(p.shape)}")
        # Every weight on the bfloat16 grid, so the bf16 copy holds exactly the same numbers.
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    model.eval()
    return cfg, model


def canonical_state_dict(model, spec):
    """The weights under mamba_ssm's names and in its order; lm_head.weight only when untied."""
    src = model.state_dict()
    sd = collections.OrderedDict()
    sd["backbone.embedding.weight"] = src["backbone.embeddings.weight"].detach().clone()
    for l in range(spec["layers"]):
        p = f"backbone.layers.{l}."
        for k in MIXER_KEYS:
            sd[p + "mixer." + k] = src[p + "mixer." + k].detach().clone()
        sd[p + "norm.weight"] = src[p + "norm.weight"].detach().clone()
    sd["backbone.norm_f.weight"] = src["backbone.norm_f.weight"].detach().clone()
    if not spec["tie"]:
        sd["lm_head.weight"] = src["lm_head.weight"].detach().clone()
    # Every transformers tensor is accounted for (the tied lm_head is the embedding).
    mapped = {k.replace("backbone.embedding.", "backbone.embeddings.") for k in sd}
    expected = set(src) - ({"lm_head.weight"} if spec["tie"] else set())
    assert mapped == expected, f"names differ: {sorted(mapped ^ expected)}"
    return sd


def reference(sd, spec, ids, eps):
    """float64 recurrent Mamba-1 exactly as mamba_ssm's Mamba.step computes it."""
    w = {k: v.double().cpu() for k, v in sd.items()}
    L, N, K = spec["layers"], spec["state"], spec["conv"]
    d_inner = spec["expand"] * spec["hidden"]
    R = dt_rank(spec)
    emb = w["backbone.embedding.weight"]
    lm = w.get("lm_head.weight", emb)
    A = [-torch.exp(w[f"backbone.layers.{l}.mixer.A_log"]) for l in range(L)]  # [d_inner, N]
    conv = [torch.zeros(d_inner, K - 1, dtype=torch.float64) for _ in range(L)]  # raw x, oldest first
    ssm = [torch.zeros(d_inner, N, dtype=torch.float64) for _ in range(L)]
    T = len(ids)
    nll = np.full(T, np.nan)
    dts = np.zeros((T, L, d_inner))
    decays = np.zeros((T, L, d_inner))
    norms = np.zeros((T, L, d_inner))
    all_logits = []
    prev = None

    def rms(x, weight):
        return x * torch.rsqrt(x.pow(2).mean() + eps) * weight

    for t, tok in enumerate(ids):
        r = emb[tok].clone()
        for l in range(L):
            m = f"backbone.layers.{l}.mixer."
            u = rms(r, w[f"backbone.layers.{l}.norm.weight"])
            x, z = torch.split(w[m + "in_proj.weight"] @ u, [d_inner, d_inner])
            window = torch.cat([conv[l], x[:, None]], 1)  # [d_inner, K]: tap K-1 is this token
            conv[l] = window[:, 1:]
            x = F.silu((window * w[m + "conv1d.weight"][:, 0, :]).sum(-1) + w[m + "conv1d.bias"])
            dt_low, B, C = torch.split(w[m + "x_proj.weight"] @ x, [R, N, N])
            dt = F.softplus(w[m + "dt_proj.weight"] @ dt_low + w[m + "dt_proj.bias"])  # [d_inner]
            dtA = dt[:, None] * A[l]  # [d_inner, N]
            ssm[l] = torch.exp(dtA) * ssm[l] + (dt * x)[:, None] * B[None, :]
            y = ssm[l] @ C + w[m + "D"] * x
            y = y * F.silu(z)
            r = r + w[m + "out_proj.weight"] @ y
            dts[t, l] = dt.numpy()
            decays[t, l] = torch.exp(dtA.mean(-1)).numpy()
            norms[t, l] = torch.linalg.norm(ssm[l], dim=-1).numpy()
        h = rms(r, w["backbone.norm_f.weight"])
        logits = lm @ h
        all_logits.append(logits)
        if prev is not None:
            nll[t] = (torch.logsumexp(prev, 0) - prev[tok]).item()
        prev = logits
    return nll, dts, decays, norms, torch.stack(all_logits), ssm


@contextlib.contextmanager
def pure_torch_path(model):
    """Runs transformers' plain-PyTorch Mamba path, whatever the version:
    - older versions' mixer chooses between cuda_kernels_forward and slow_forward (the latter on the CPU):
      forward is bound to slow_forward outright;
    - newer ones (5.17 does) call module-level functions that are mamba_ssm's / causal_conv1d's kernels
      when those packages are installed and readable PyTorch references otherwise: each is swapped for
      the reference it wraps (inspect.unwrap), for the duration of the check.
    The mamba.py and associative-scan alternatives are switched off on the model's mixers."""
    import importlib
    mod = importlib.import_module(type(model).__module__)
    swapped = {}
    for name, fn in list(vars(mod).items()):
        if callable(fn) and hasattr(fn, "__wrapped__"):
            base = inspect.unwrap(fn)
            if base is not fn and inspect.isfunction(base) and base.__module__ == mod.__name__:
                swapped[name] = fn
                setattr(mod, name, base)
    bound = 0
    for layer in model.backbone.layers:
        mixer = layer.mixer
        for flag in ("use_mambapy", "use_associative_scan"):
            if hasattr(mixer, flag):
                setattr(mixer, flag, False)
        slow = getattr(mixer, "slow_forward", None)
        if slow is None:
            continue
        try:
            ours = list(inspect.signature(slow).parameters)[1:]
            same = ours == list(inspect.signature(mixer.forward).parameters)[1:]
        except (TypeError, ValueError):
            same = False
        if same:
            mixer.forward = slow
            bound += 1
    if bound:
        path = f"slow_forward bound on {bound} of {len(model.backbone.layers)} mixers"
    elif swapped:
        path = "PyTorch references for " + ", ".join(sorted(swapped))
    else:
        path = "transformers' own choice on the CPU (found neither slow_forward nor wrapped kernel functions)"
    try:
        yield path
    finally:
        for name, fn in swapped.items():
            setattr(mod, name, fn)


def cache_states(out, layers, d_inner, N):
    """The final SSM states in transformers' cache as [d_inner, N] per layer, or (None, why)."""
    cache = getattr(out, "cache_params", None)
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    if cache is None:
        return None, "the output holds no cache"
    raw = None
    for attr in ("ssm_states", "recurrent_states"):
        if getattr(cache, attr, None) is not None:
            raw = getattr(cache, attr)
            break
    if raw is None and getattr(cache, "layers", None) is not None:
        raw = []
        for layer in cache.layers:
            v = None
            for attr in ("recurrent_states", "ssm_states"):
                v = getattr(layer, attr, None)
                if v is not None:
                    break
            raw.append(v)
    if raw is None:
        return None, f"{type(cache).__name__} exposes no ssm_states"
    per_layer = [raw[l] for l in range(raw.shape[0])] if torch.is_tensor(raw) else list(raw)  # [L, B, d, N]
    if len(per_layer) != layers:
        return None, f"{len(per_layer)} cached states for {layers} layers"
    states = []
    for l, v in enumerate(per_layer):
        if isinstance(v, dict):  # per-state slots of a cache layer
            v = v.get(0, next(iter(v.values()), None)) if v else None
        elif isinstance(v, (list, tuple)):
            v = v[0] if len(v) else None
        if not torch.is_tensor(v):
            return None, f"layer {l}'s cached state is {type(v).__name__}"
        if v.numel() != d_inner * N:  # batch 1
            return None, f"layer {l}'s cached state has shape {tuple(v.shape)}, not [1, {d_inner}, {N}]"
        states.append(v.detach().double().cpu().reshape(d_inner, N))
    return states, ""


def check_against_transformers(model, spec, ids, ref_logits, ref_states):
    m = copy.deepcopy(model).double().cpu().eval()
    with pure_torch_path(m) as path, torch.no_grad():
        out = m(torch.tensor([ids]), use_cache=True)
    label = "hf-" + spec["name"]
    print(f"  {label}: transformers path: {path}")
    diff = (out.logits[0].double() - ref_logits).abs().max().item()
    scale = ref_logits.abs().max().item()
    print(f"  {label}: max |logits - transformers| = {diff:.3e} (logit scale {scale:.2f})")
    assert diff < 1e-6 * max(1.0, scale), "reference disagrees with transformers' logits"
    d_inner = spec["expand"] * spec["hidden"]
    states, why = cache_states(out, spec["layers"], d_inner, spec["state"])
    if states is None:
        print(f"  {label}: (transformers returned no SSM states to compare: {why})")
        return
    worst = max((s - ref_states[l]).abs().max().item() for l, s in enumerate(states))
    scale = max(s.abs().max().item() for s in ref_states)
    print(f"  {label}: max |final SSM state - transformers| = {worst:.3e} (state scale {scale:.2f})")
    assert worst < 1e-6 * max(1.0, scale), "reference disagrees with transformers' final SSM state"


def summarise(spec, nll, dts, decays, norms):
    assert np.isnan(nll[0]) and np.all(np.isfinite(nll[1:])), "nll must be NaN at t = 0 and finite after"
    for name, a in (("dt", dts), ("decay", decays), ("state_norm", norms)):
        assert np.all(np.isfinite(a)), f"{name} is not finite"
    assert np.all(dts > 0) and np.all((decays > 0) & (decays <= 1)), "dt or decay out of range"
    print(f"  {spec['name']}: mean nll {np.nanmean(nll):.3f} (log vocab {math.log(spec['vocab']):.3f}); "
          f"dt {dts.min():.2e}..{dts.max():.2e}; decay {decays.min():.3f}..{decays.max():.4f} "
          f"(median {np.median(decays):.3f}); state_norm {norms.min():.2e}..{norms.max():.3f} "
          f"(1st percentile {np.percentile(norms, 1):.2e})")


def write_reference(path, ids, nll, dts, decays, norms):
    with h5py.File(path, "w") as f:
        # Per-channel float64 probes are most of a fixture's bytes: shuffled and deflated they stay small.
        packed = dict(compression="gzip", compression_opts=9, shuffle=True)
        f["ids"] = np.asarray(ids, dtype=np.int32)
        f["nll"] = nll
        f.create_dataset("dt", data=dts, **packed)
        f.create_dataset("decay", data=decays, **packed)
        f.create_dataset("state_norm", data=norms, **packed)
        f.attrs["source"] = SOURCE
        f.attrs["detail"] = "full"


def mamba_ssm_config(spec, vocab_size):
    if spec["tie"]:
        # As state-spaces/mamba-130m's config.json: an empty ssm_cfg means Mamba-1 with its defaults.
        assert (spec["state"], spec["conv"], spec["expand"], spec["rank"]) == (16, 4, 2, "auto"), \
            "ssm_cfg {} stands for d_state 16, d_conv 4, expand 2, dt_rank auto"
        return {
            "d_model": spec["hidden"], "n_layer": spec["layers"], "vocab_size": vocab_size, "ssm_cfg": {},
            "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True,
            "pad_vocab_size_multiple": PAD_VOCAB_MULTIPLE, "tie_embeddings": True,
        }
    # As newer mamba_ssm (2.x) writes its MambaConfig, naming the layer kind explicitly.
    return {
        "d_model": spec["hidden"], "d_intermediate": 0, "n_layer": spec["layers"], "vocab_size": vocab_size,
        "ssm_cfg": {"layer": "Mamba1", "d_state": spec["state"], "d_conv": spec["conv"],
                    "expand": spec["expand"], "dt_rank": dt_rank(spec)},
        "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": True, "residual_in_fp32": True,
        "fused_add_norm": True, "pad_vocab_size_multiple": PAD_VOCAB_MULTIPLE, "tie_embeddings": False,
    }


def fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)  # no stale shards from an earlier run
    os.makedirs(path)


def save_hf(model, spec, hf_dir):
    if spec["tie"]:
        fresh_dir(hf_dir)
        model.save_pretrained(hf_dir)
    else:
        # Two shards and the index: a limit a bit over half the weights' bytes gives exactly two.
        total = sum(p.numel() * p.element_size() for p in model.parameters())
        for frac in (0.6, 0.7, 0.8):
            fresh_dir(hf_dir)
            model.save_pretrained(hf_dir, max_shard_size=f"{math.ceil(total * frac / 1000)}KB")
            shards = [f for f in os.listdir(hf_dir) if f.endswith(".safetensors")]
            if len(shards) == 2 and os.path.exists(os.path.join(hf_dir, "model.safetensors.index.json")):
                break
        else:
            raise RuntimeError(f"save_pretrained did not write two shards and an index: {os.listdir(hf_dir)}")
    for extra in ("generation_config.json",):
        p = os.path.join(hf_dir, extra)
        if os.path.exists(p):
            os.remove(p)
    with open(os.path.join(hf_dir, "config.json")) as f:
        written = json.load(f)
    assert written.get("model_type") == "mamba", written.get("model_type")
    assert written.get("tie_word_embeddings", True) == spec["tie"], "config.json misstates the tie"


def verify_hf(model, spec, hf_dir):
    """The safetensors files hold transformers' names, and the folder loads back to the same weights."""
    from safetensors import safe_open
    names = set()
    for fname in sorted(os.listdir(hf_dir)):
        if fname.endswith(".safetensors"):
            with safe_open(os.path.join(hf_dir, fname), framework="pt") as f:
                names |= set(f.keys())
    expected = set(model.state_dict())
    if spec["tie"]:
        expected.discard("lm_head.weight")
        names.discard("lm_head.weight")  # some versions may keep the tied copy; either is a valid file
    assert names == expected, f"saved names differ: {sorted(names ^ expected)}"
    loaded = MambaForCausalLM.from_pretrained(hf_dir).eval()
    want, got = model.state_dict(), loaded.state_dict()
    assert set(got) == set(want), f"reloaded names differ: {sorted(set(got) ^ set(want))}"
    for k, v in want.items():
        assert torch.equal(got[k].double(), v.double()), f"{k} did not survive save_pretrained"
    if spec["tie"]:
        assert torch.equal(loaded.lm_head.weight, loaded.backbone.embeddings.weight)


def save_ssm(model, spec, sd, ssm_dir, ssm_vocab):
    fresh_dir(ssm_dir)
    with open(os.path.join(ssm_dir, "config.json"), "w") as f:
        json.dump(mamba_ssm_config(spec, ssm_vocab), f, indent=2)
    saved = collections.OrderedDict()
    dtype = torch.float32 if spec["tie"] else torch.bfloat16
    for k, v in sd.items():
        saved[k] = v.to(dtype)
        assert torch.equal(saved[k].double(), v.double()), f"{k} is not on the {dtype} grid"
    if spec["tie"]:
        saved["lm_head.weight"] = saved["backbone.embedding.weight"]  # mamba_ssm saves the tied copy too
    meta = getattr(model.state_dict(), "_metadata", None)
    if meta is not None:  # as a module's state_dict() carries it, under mamba_ssm's module names
        saved._metadata = collections.OrderedDict(
            ("backbone.embedding" + k[len("backbone.embeddings"):]
             if k == "backbone.embeddings" or k.startswith("backbone.embeddings.") else k, v)
            for k, v in meta.items())
    path = os.path.join(ssm_dir, "pytorch_model.bin")
    torch.save(saved, path)
    back = torch.load(path, map_location="cpu", weights_only=True)
    assert list(back) == list(saved), "pytorch_model.bin does not load back with the same names"
    for k, v in saved.items():
        assert back[k].dtype == dtype and torch.equal(back[k], v), f"{k} did not survive torch.save"


def report_folder(path):
    files = sorted(os.listdir(path))
    sizes = {f: os.path.getsize(os.path.join(path, f)) for f in files}
    print(f"  {path}: {len(files)} files, {sum(sizes.values()) / 1e3:.0f} KB: "
          + ", ".join(f"{f} {s / 1e3:.0f} KB" for f, s in sizes.items()))
    return files, sizes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/mamba")
    args = ap.parse_args()
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    # Every reference is built and checked against transformers before anything is written.
    made = []
    for spec in SPECS:
        cfg, model = build(spec)
        sd = canonical_state_dict(model, spec)
        # mamba_ssm's config states an unpadded vocabulary that pads back to the embedding's rows.
        ssm_vocab = spec["vocab"] - 12
        padded = -(-ssm_vocab // PAD_VOCAB_MULTIPLE) * PAD_VOCAB_MULTIPLE
        assert padded == spec["vocab"] == sd["backbone.embedding.weight"].shape[0], (ssm_vocab, padded)
        rng = np.random.default_rng(spec["seed"])
        ids = [int(i) for i in rng.integers(0, ssm_vocab, spec["tokens"])]
        nll, dts, decays, norms, logits, states = reference(sd, spec, ids, cfg.layer_norm_epsilon)
        summarise(spec, nll, dts, decays, norms)
        check_against_transformers(model, spec, ids, logits, states)
        made.append((spec, model, sd, ssm_vocab, (ids, nll, dts, decays, norms)))

    os.makedirs(args.out, exist_ok=True)
    for spec, model, sd, ssm_vocab, ref in made:
        # transformers layout, written by transformers itself.
        hf_dir = os.path.join(args.out, "hf-" + spec["name"] + ("-sharded" if not spec["tie"] else ""))
        save_hf(model, spec, hf_dir)
        verify_hf(model, spec, hf_dir)
        write_reference(os.path.join(hf_dir, "reference.h5"), *ref)
        files, sizes = report_folder(hf_dir)
        if not spec["tie"]:
            weights = sum(s for f, s in sizes.items() if f.endswith(".safetensors"))
            assert len(files) <= 5 and weights < 1_000_000, "sharded fixture larger than planned"

        # mamba_ssm layout: state-spaces config.json and torch.save of the state dict (an OrderedDict).
        ssm_dir = os.path.join(args.out, "ssm-" + spec["name"] + ("-bf16" if not spec["tie"] else ""))
        save_ssm(model, spec, sd, ssm_dir, ssm_vocab)
        write_reference(os.path.join(ssm_dir, "reference.h5"), *ref)
        report_folder(ssm_dir)

if __name__ == "__main__":
    main()
