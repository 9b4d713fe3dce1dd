#!/usr/bin/env python3
"""How much of a sweep's T_forget is the state size's, and how much the seed's.

`sweep report` fits the mean threshold of each state size, and only over sizes whose seeds all have
one. With many seeds a size's mean hides how far its seeds lie apart, so this reads the report's
summary.json and prints, from the same per-seed thresholds (the report's log-scale interpolations):
  - the thresholds as a table of state size x seed, with geometric means per size and per seed;
  - a two-way split of the variance of ln T_forget over the sizes and seeds that all have one:
    the share of the sizes, of the seeds and the rest, each factor with its F against the rest and
    that F's p-value (two-way analysis of variance without replication: a size-seed interaction
    cannot be told from the runs' own scatter, so the rest holds both);
  - the least-squares line through every (N_S, seed) threshold, in the report's units, with its
    slope's 95 % interval, beside the paper's slope;
  - whether the sizes' geometric means rise with the size: Spearman's rank correlation between the
    two, with its exact one-sided p (the share of the sizes' orderings whose correlation is at least
    as large), a test of the order that does not need the seeds of a size to agree;
  - per size, the share of runs that forget, the mean paired loss ratio and largest-head growth, and
    each seed's bracket by the loss part alone: what a sweep in which nothing forgets still shows.
    python3 tools/seed_scatter.py [--seeds 4,5] sweeps/NAME/summary.json [...]
--seeds keeps only those seeds' thresholds and runs: seeds added to a spec to test what earlier
seeds showed are then judged on their own."""
import itertools
import json
import math
import sys

def incomplete_beta(a, b, x):
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz),
    on the side of x where that converges fast."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - incomplete_beta(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return front * f


def f_p_value(f, d1, d2):
    """P(F(d1, d2) > f)."""
    if f == math.inf:
        return 0.0
    return 1.0 - incomplete_beta(d1 / 2, d2 / 2, d1 * f / (d1 * f + d2))


def t975(df):
    """Student's t that two-sided 95 % lie within: where P(F(1, df) > t^2) = 0.05, by bisection."""
    lo, hi = 0.0, 100.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f_p_value(mid * mid, 1, df) > 0.05 else (lo, mid)
    return (lo + hi) / 2


def line(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx
    icpt = my - slope * mx
    ss_res = sum((y - icpt - slope * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    half = t975(n - 2) * math.sqrt(ss_res / (n - 2) / sxx) if n > 2 else math.inf
    return slope, icpt, 1 - ss_res / ss_tot if ss_tot > 0 else 1.0, (slope - half, slope + half)


def gmean(vs):
    return math.exp(sum(math.log(v) for v in vs) / len(vs)) if vs else float("nan")


def ranks(vs):
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(vs)), key=lambda i: vs[i])
    r = [0.0] * len(vs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and vs[order[j + 1]] == vs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(xs, ys):
    """Spearman's rho (Pearson's over the ranks, so ties are handled) and the exact one-sided p that
    a random ordering of ys correlates at least as well with xs."""

    def pearson(a, b):
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        sab = sum((u - ma) * (v - mb) for u, v in zip(a, b))
        saa = sum((u - ma) ** 2 for u in a)
        sbb = sum((v - mb) ** 2 for v in b)
        return sab / math.sqrt(saa * sbb) if saa > 0 and sbb > 0 else 0.0

    rx, ry = ranks(xs), ranks(ys)
    rho = pearson(rx, ry)
    perms = list(itertools.permutations(ry))
    at_least = sum(1 for p in perms if pearson(rx, list(p)) >= rho - 1e-12)
    return rho, at_least / len(perms)


def fmt(v, width):
    return f"{v:{width}.0f}" if v == v else f"{'-':>{width}}"


def loss_part(runs, tolerance):
    """The bracket by the loss part alone: the largest T_train whose paired ratio exceeds the
    tolerance, and the next length ("-" where there is none on that side)."""
    rs = sorted(runs, key=lambda r: r["train_length"])
    failing = [r["train_length"] for r in rs if r["score"] > tolerance]
    if not failing:
        return f"[-, {rs[0]['train_length']}]"
    last = max(failing)
    later = [r["train_length"] for r in rs if r["train_length"] > last]
    return f"[{last}, {later[0] if later else '-'}]"


def report(path, only=None):
    s = json.load(open(path))
    if only is not None:
        s["runs"] = [r for r in s["runs"] if r["seed"] in only]
    picked = "" if only is None else f", seeds {', '.join(map(str, sorted(only)))} only"
    print(f"== {s['name']} ({s.get('init', '?')} init{picked}): {path}")
    n_s = {r["axis_value"]: r["state_size"] for r in s["runs"]}
    seeds = sorted({r["seed"] for r in s["runs"]})
    cell = {}
    for size in s["sizes"]:
        for sd in size["seeds"]:
            if sd.get("interpolated", 0) > 0 and sd["seed"] in seeds:
                cell[(size["axis_value"], sd["seed"])] = sd["interpolated"]
    values = sorted(n_s)
    print(f"{s['axis']:>8} {'N_S':>8} " + " ".join(f"{'seed ' + str(x):>8}" for x in seeds) + "   gmean")
    for v in values:
        row = [cell.get((v, x)) for x in seeds]
        cells = " ".join(f"{c:8.0f}" if c else f"{'-':>8}" for c in row)
        print(f"{v:>8} {n_s[v]:>8} {cells}   {fmt(gmean([c for c in row if c]), 5)}")
    print(f"{'gmean':>17} " + " ".join(
        fmt(gmean([cell[(v, x)] for v in values if (v, x) in cell]), 8) for x in seeds))

    means = [(v, gmean([cell[(v, x)] for x in seeds if (v, x) in cell])) for v in values]
    means = [(v, m) for v, m in means if m == m]
    if 3 <= len(means) <= 8:
        rho, p = spearman([v for v, _ in means], [m for _, m in means])
        rising = all(a[1] < b[1] for a, b in zip(means, means[1:]))
        print(f"order of the {len(means)} sizes' geometric means: Spearman rho {rho:.2f}, one-sided exact p {p:.3f}"
              f" ({'monotone rising' if rising else 'not monotone rising'})")

    full_sizes = [v for v in values if all((v, x) in cell for x in seeds)]
    full_seeds = [x for x in seeds if all((v, x) in cell for v in full_sizes)]
    if len(full_sizes) >= 2 and len(full_seeds) >= 2:
        logs = {(v, x): math.log(cell[(v, x)]) for v in full_sizes for x in full_seeds}
        grand = sum(logs.values()) / len(logs)
        by_size = {v: sum(logs[(v, x)] for x in full_seeds) / len(full_seeds) for v in full_sizes}
        by_seed = {x: sum(logs[(v, x)] for v in full_sizes) / len(full_sizes) for x in full_seeds}
        ss_size = len(full_seeds) * sum((m - grand) ** 2 for m in by_size.values())
        ss_seed = len(full_sizes) * sum((m - grand) ** 2 for m in by_seed.values())
        ss_all = sum((l - grand) ** 2 for l in logs.values())
        ss_rest = max(ss_all - ss_size - ss_seed, 0.0)
        df_size, df_seed = len(full_sizes) - 1, len(full_seeds) - 1
        df_rest = df_size * df_seed
        ms_rest = ss_rest / df_rest

        def test(ss, df):
            f = ss / df / ms_rest if ms_rest > 0 else math.inf
            return f"F {f:.2f} on {df} and {df_rest} df, p {f_p_value(f, df, df_rest):.2f}"

        print(f"variance of ln T_forget over {len(full_sizes)} sizes x {len(full_seeds)} seeds that all have one:"
              f" sizes {ss_size / ss_all:.0%} ({test(ss_size, df_size)}),"
              f" seeds {ss_seed / ss_all:.0%} ({test(ss_seed, df_seed)}), the rest {ss_rest / ss_all:.0%}")

    pts = [(n_s[v] / 1e6, t / 1024) for (v, _), t in cell.items()]
    if len({p[0] for p in pts}) >= 2 and len(pts) >= 3:
        slope, icpt, r2, ci = line([p[0] for p in pts], [p[1] for p in pts])
        paper = s.get("paper_fit", {}).get("slope", 5.172)
        inside = "inside" if ci[0] <= paper <= ci[1] else "outside"
        print(f"line through {len(pts)} single-seed thresholds: T_forget[K] = {slope:.3f} * N_S[M] {icpt:+.4f},"
              f" R^2 {r2:.3f}, slope 95% CI [{ci[0]:.3f}, {ci[1]:.3f}];"
              f" the paper's slope {paper} lies {inside} it")
    print("per size: runs that forget, mean paired loss ratio (worse text), mean largest-head growth")
    for v in values:
        rs = [r for r in s["runs"] if r["axis_value"] == v and r.get("finished")]
        if not rs:
            continue
        forget = sum(1 for r in rs if r["forgets"])
        score = sum(r["score"] for r in rs) / len(rs)
        growth = gmean([r["norm_growth"] for r in rs])
        print(f"{v:>8} {n_s[v]:>8}   {forget:2d} of {len(rs):2d}   {score:.3f}   {growth:6.2f}x")
    tolerance = s["criterion"].get("threshold", 1 + s["criterion"].get("tolerance", 0.1))
    print(f"the loss part alone (paired ratio <= {tolerance:.2f}), not the criterion: per seed, the bracket"
          " [largest T_train above it, the next length]")
    for v in values:
        brackets = []
        for x in seeds:
            rs = [r for r in s["runs"] if r["axis_value"] == v and r["seed"] == x and r.get("finished")]
            brackets.append(loss_part(rs, tolerance) if rs else "-")
        print(f"{v:>8} {n_s[v]:>8}   " + "  ".join(f"{b:>11}" for b in brackets))


if __name__ == "__main__":
    args = sys.argv[1:]
    only = None
    if len(args) >= 2 and args[0] == "--seeds":
        only = {int(x) for x in args[1].split(",")}
        args = args[2:]
    if not args:
        sys.exit(__doc__)
    for p in args:
        report(p, only)
