"""Rolling backtests of CloudTally's commitment recommendation (optimizers/commitments.py) on generated hourly usage.

For each scenario and each purchase date (origins every 14 days), the recommender sees only the past (a `--lookback`
day window and, for the guard, the last 3 days), recommends an hourly commitment, and holds it for a 1-year term.
Its realized savings over that year are compared with the hindsight optimum: the best constant commitment for
that year, known only afterwards (the d-quantile of the year's usage, which is exact: tests/test_commitments.py).

Scenarios (usage in $/h at on-demand prices: a diurnal and weekly cycle, noise and 1% spikes):
- stationary;
- growing +30% a year;
- drop-seen: usage falls 30% two days before the purchase date (the last 3 days show it, the long lookback does not);
- drop-unseen: usage falls 30% right after the purchase (no data before the purchase can show it).

Methods: `guarded` = CloudTally's min(3-day, long-lookback) quantile; `plain` = the long-lookback quantile alone (the
baseline, measured in the same run). Also: the quantile vs a brute-force grid on each lookback (target: within
0.1%).

Run (the machine is shared: always under the lock):
    .venv/bin/python bench/commitment_eval.py --append   (about a second of CPU, nothing timed: no bench lock needed)
"""
from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from optimizers.commitments import optimal_usage_level, recommend_level, savings

HOURS_YEAR = 8760


def usage(hours: int, rng: np.random.Generator, growth: float = 0.0) -> np.ndarray:
    t = np.arange(hours)
    day = 1 + 0.25 * np.sin(2 * np.pi * (t % 24 - 8) / 24)
    week = np.where((t // 24) % 7 >= 5, 0.75, 1.0)
    trend = (1 + growth) ** (t / HOURS_YEAR)
    u = 100 * day * week * trend * rng.normal(1, 0.08, hours)
    u[rng.random(hours) < 0.01] *= 2.5
    return u.clip(0)


def backtest(scenario: str, d: float, lookback_days: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    growth = 0.3 if scenario == "growing" else 0.0
    total = HOURS_YEAR * 3
    base = usage(total, rng, growth)
    start = max(lookback_days, 90) * 24
    origins = range(start, total - HOURS_YEAR, 14 * 24)
    sums = {"guarded": 0.0, "plain": 0.0, "hindsight": 0.0}
    utilization = {"guarded": [], "plain": []}
    for o in origins:
        u = base.copy()
        if scenario == "drop-seen":
            u[o - 48:] *= 0.7
        elif scenario == "drop-unseen":
            u[o:] *= 0.7
        past = u[o - lookback_days * 24:o]
        future = u[o:o + HOURS_YEAR]
        guarded, plain, _ = recommend_level(past, d)
        best = savings(future, optimal_usage_level(future, d), d)
        sums["hindsight"] += best
        for name, x in (("guarded", guarded), ("plain", plain)):
            sums[name] += savings(future, x, d)
            if x > 0:
                utilization[name].append(float(np.minimum(future, x).sum() / (len(future) * x)))
    return {"origins": len(origins), "guarded": sums["guarded"] / sums["hindsight"],
            "plain": sums["plain"] / sums["hindsight"],
            "utilization_guarded": float(np.mean(utilization["guarded"])),
            "utilization_plain": float(np.mean(utilization["plain"]))}


def brute_force_gap(d: float, lookback_days: int, seeds: int) -> float:
    """The largest relative shortfall of the quantile vs a 20,001-point grid plus every breakpoint."""
    worst = 0.0
    for seed in range(seeds):
        u = usage(lookback_days * 24, np.random.default_rng(1000 + seed))
        x = optimal_usage_level(u, d)
        grid = np.concatenate([np.unique(u), np.linspace(0, u.max(), 20001)])
        best = max(savings(u, float(g), d) for g in grid)
        worst = max(worst, (best - savings(u, x, d)) / best)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--discount", type=float, default=0.28)
    ap.add_argument("--lookback", type=int, default=60, help="long lookback in days (default 60)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--append", action="store_true", help="append the result table to bench/RESULTS.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = []
    for scenario in ("stationary", "growing", "drop-seen", "drop-unseen"):
        runs = [backtest(scenario, args.discount, args.lookback, s) for s in range(args.seeds)]
        rows.append((scenario, sum(r["origins"] for r in runs), np.mean([r["guarded"] for r in runs]),
                     min(r["guarded"] for r in runs), np.mean([r["plain"] for r in runs]),
                     np.mean([r["utilization_guarded"] for r in runs]), np.mean([r["utilization_plain"] for r in runs])))
    gap = brute_force_gap(args.discount, args.lookback, args.seeds)
    elapsed = time.perf_counter() - t0
    lines = [
        f"### Commitment recommendation backtests (issue 12) — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"`.venv/bin/python bench/commitment_eval.py --append` (about a second of CPU and nothing timed, so it needs "
        f"no bench lock; d = {args.discount}, "
        f"{args.lookback}-day lookback, 3-day guard, 1-year hold, origins every 14 days over 3 generated years, "
        f"{args.seeds} seeds; {platform.machine()}, {elapsed:.1f} s). Share of hindsight-optimal savings "
        "(Σ realized / Σ hindsight optimum over all origins); `plain` is the baseline without the guard, measured "
        "in the same run.",
        "",
        "| scenario | purchases | guarded (CloudTally) | worst seed | plain quantile (baseline) | guarded / plain | "
        "realized utilization guarded / plain |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, n, g, worst, p, ug, up in rows:
        lines.append(f"| {scenario} | {n} | {g:.2%} | {worst:.2%} | {p:.2%} | {g / p:.3f}x | {ug:.1%} / {up:.1%} |")
    lines += ["", f"Quantile vs brute force (20,001-point grid and every breakpoint, {args.seeds} lookbacks): "
              f"largest shortfall {gap:.2e} (target ≤ 1e-3).", ""]
    text = "\n".join(lines)
    print(text)
    if args.append:
        path = Path(__file__).with_name("RESULTS.md")
        with path.open("a") as fh:
            fh.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
