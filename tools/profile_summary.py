#!/usr/bin/env python3
"""Where the GPU time of a profiled run went: the Chrome trace of `statescope-cli bench --profile`
(PyTorch's Kineto profiler) summed by kernel name, and by the host operator that launched each kernel.

    python3 tools/profile_summary.py profile.json [--top 30]

Prints the run's wall span, the sum of kernel time (GPU busy, kernels do not overlap on one stream),
the number of kernel launches, the host-side synchronisations, and two tables (kernel name; launching
operator), each with its share of kernel time.
"""
import argparse
import bisect
import collections
import json
import re


def short(name, width=90):
    name = re.sub(r"\s+", " ", name)
    return name if len(name) <= width else name[: width - 3] + "..."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    with open(a.trace) as f:
        events = json.load(f)["traceEvents"]
    spans = [e for e in events if e.get("ph") == "X"]
    kernels = [e for e in spans if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    ops = [e for e in spans if e.get("cat") == "cpu_op"]
    runtime = [e for e in spans if e.get("cat") == "cuda_runtime"]
    if not spans:
        print("no events")
        return
    t0 = min(e["ts"] for e in spans)
    t1 = max(e["ts"] + e.get("dur", 0) for e in spans)
    busy = sum(e.get("dur", 0) for e in kernels)
    print(f"wall span {(t1 - t0) / 1e3:.1f} ms, GPU kernel time {busy / 1e3:.1f} ms "
          f"({100 * busy / max(1, t1 - t0):.0f} % of the span), {len(kernels)} kernels/copies, "
          f"{len(ops)} host operators")
    sync = collections.Counter()
    syncTime = collections.Counter()
    for e in runtime:
        if re.search(r"Synchronize|Memcpy", e["name"]):
            sync[e["name"]] += 1
            syncTime[e["name"]] += e.get("dur", 0)
    for k in sync:
        print(f"  host {k}: {sync[k]} calls, {syncTime[k] / 1e3:.1f} ms")

    byName = collections.Counter()
    count = collections.Counter()
    for e in kernels:
        byName[e["name"]] += e.get("dur", 0)
        count[e["name"]] += 1
    print(f"\n{'kernel time':>12} {'share':>6} {'calls':>6}  kernel")
    for name, d in byName.most_common(a.top):
        print(f"{d / 1e3:10.2f}ms {100 * d / max(1, busy):5.1f}% {count[name]:6d}  {short(name)}")

    # Kernel -> launching operator through the correlation id that links a runtime launch to its kernel;
    # the operator is the innermost cpu_op enclosing the launch on the same thread.
    launchOf = {e["args"].get("correlation"): e for e in runtime if "args" in e}
    byTid = collections.defaultdict(list)
    for e in ops:
        byTid[e.get("tid")].append(e)
    for lst in byTid.values():
        lst.sort(key=lambda e: e["ts"])

    starts = {tid: [op["ts"] for op in lst] for tid, lst in byTid.items()}

    def innermost(launch):
        # Spans nest: scanning back from the last operator that started before the launch, the first
        # one still open at the launch's end is the innermost (a training step has tens of thousands).
        lst = byTid.get(launch.get("tid"), [])
        i = bisect.bisect_right(starts.get(launch.get("tid"), []), launch["ts"]) - 1
        end = launch["ts"] + launch.get("dur", 0)
        for op in reversed(lst[max(0, i - 5000) : i + 1]):
            if op["ts"] + op.get("dur", 0) >= end:
                return op["name"]
        return "(no operator)"

    byOp = collections.Counter()
    opCount = collections.Counter()
    for e in kernels:
        launch = launchOf.get(e.get("args", {}).get("correlation"))
        op = innermost(launch) if launch else "(unmatched)"
        byOp[op] += e.get("dur", 0)
        opCount[op] += 1
    print(f"\n{'kernel time':>12} {'share':>6} {'kernels':>7}  launching operator")
    for name, d in byOp.most_common(a.top):
        print(f"{d / 1e3:10.2f}ms {100 * d / max(1, busy):5.1f}% {opCount[name]:7d}  {short(name)}")


if __name__ == "__main__":
    main()
