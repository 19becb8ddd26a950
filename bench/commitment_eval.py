"""Rolling backtests of CloudTally's commitment recommendation (optimizers/commitments.py) on generated hourly usage.

The strategy evaluated is the one the product recommends: a laddered commitment. For each scenario and each
starting date (origins every 14 days, no commitment held before), the recommender runs every review period
(`REVIEW_DAYS`, 7) on the bill as it would look then: the usage still on demand over its lookback (the product's
default `DEFAULT_LOOKBACK`, 30 days, and the 3-day guard), i.e. usage less what the commitments it already bought
absorb from their purchase on. Each time it buys the recommended tranche, (1 - DOWNSIDE) = 70% of the guarded
optimum, for a 1-year term. Its realized savings over the year from the origin,
sum_h min(u_h, X_h) - (1 - d) X_h with X_h the level its tranches absorb in hour h, are compared with the hindsight
optimum: the best constant commitment for that year, known only afterwards (the d-quantile of the year's usage,
exact: tests/test_commitments.py). A rolling strategy can beat that fixed optimum (growing usage).

Scenarios (usage in $/h at on-demand prices: a diurnal and weekly cycle, noise and 1% spikes):
- stationary;
- growing +30% a year;
- drop-seen: usage falls 30% two days before the origin (the last 3 days show it, the long lookback does not);
- drop-unseen: usage falls 30% right after the origin (no data before the first purchase can show it);
- drop-unseen-10 ... -50: the same with a 10-50% fall (smaller than the stated 30% downside, and beyond it);
- drop-late: usage falls 30% twelve weeks after the origin, once the ladder is complete (99.2% of the optimum
  after four reviews): tranches do not protect against that, only shorter terms or staggered renewals would.

Methods, all in the same run: `laddered` = the product (tranches of 1 - DOWNSIDE, reviewed weekly); `rolling-full`
= reviewed weekly but each time buying the whole guarded optimum (DOWNSIDE 0: the product before tranches, re-run
weekly); `once` = one purchase of the guarded optimum at the origin, never reviewed (the previous backtest);
`once-plain` = one purchase of the plain lookback quantile (no guard). Also: the quantile vs a brute-force grid on
each lookback (target: within 0.1%).

Run:
    flock /tmp/cloudtally-bench.lock .venv/bin/python bench/commitment_eval.py --append   (5 s of CPU)
"""
from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from optimizers.commitments import (DEFAULT_LOOKBACK, DOWNSIDE, REVIEW_DAYS, optimal_usage_level, savings,
                                    tranche_level)

HOURS_YEAR = 8760
SECTION = "## Optimizers: commitment recommendations (`bench/commitment_eval.py`, issue 12)"


def usage(hours: int, rng: np.random.Generator, growth: float = 0.0) -> np.ndarray:
    t = np.arange(hours)
    day = 1 + 0.25 * np.sin(2 * np.pi * (t % 24 - 8) / 24)
    week = np.where((t // 24) % 7 >= 5, 0.75, 1.0)
    trend = (1 + growth) ** (t / HOURS_YEAR)
    u = 100 * day * week * trend * rng.normal(1, 0.08, hours)
    u[rng.random(hours) < 0.01] *= 2.5
    return u.clip(0)


SCENARIOS = {"stationary": (0.0, None, 0.0), "growing": (0.3, None, 0.0), "drop-seen": (0.0, -48, 0.3),
             "drop-unseen": (0.0, 0, 0.3), "drop-unseen-10": (0.0, 0, 0.1), "drop-unseen-20": (0.0, 0, 0.2),
             "drop-unseen-40": (0.0, 0, 0.4), "drop-unseen-50": (0.0, 0, 0.5),
             "drop-late": (0.0, 12 * 7 * 24, 0.3)}  # growth, drop at origin + hours (None: no drop), the drop
METHODS = ("laddered", "rolling-full", "once", "once-plain")


def rolling(u: np.ndarray, o: int, d: float, lookback_days: int, downside: float, review_days: int | None
            ) -> np.ndarray:
    """The level X_h the strategy's commitments absorb in each hour of [o, o + 1 year). Every review (or only at
    the origin when review_days is None) the recommender reads the on-demand part of the bill over its lookback,
    max(u - X, 0), and buys (1 - downside) x its guarded optimum for a year."""
    end = o + HOURS_YEAR
    held = np.zeros(end + HOURS_YEAR)
    reviews = [o] if review_days is None else range(o, end, review_days * 24)
    for t in reviews:
        seen = np.maximum(u[t - lookback_days * 24:t] - held[t - lookback_days * 24:t], 0.0)
        x = tranche_level(seen, d, downside)[0]
        if x > 0:
            held[t:t + HOURS_YEAR] += x
    return held[o:end]


def realized(future: np.ndarray, held: np.ndarray, d: float) -> float:
    return float((np.minimum(future, held) - (1 - d) * held).sum())


def backtest(scenario: str, d: float, lookback_days: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    growth, drop_at, drop = SCENARIOS[scenario]
    total = HOURS_YEAR * 3
    base = usage(total, rng, growth)
    start = max(lookback_days, 90) * 24
    origins = range(start, total - HOURS_YEAR, 14 * 24)
    sums = {m: 0.0 for m in METHODS} | {"hindsight": 0.0}
    utilization = {m: [] for m in METHODS}
    for o in origins:
        u = base.copy()
        if drop_at is not None:
            u[o + drop_at:] *= 1 - drop
        future = u[o:o + HOURS_YEAR]
        sums["hindsight"] += savings(future, optimal_usage_level(future, d), d)
        plain = optimal_usage_level(u[o - lookback_days * 24:o], d)
        for m in METHODS:
            if m == "once-plain":
                held = np.full(HOURS_YEAR, plain)
            else:
                held = rolling(u, o, d, lookback_days, float(DOWNSIDE) if m == "laddered" else 0.0,
                               None if m == "once" else REVIEW_DAYS)
            sums[m] += realized(future, held, d)
            if held.sum() > 0:
                utilization[m].append(float(np.minimum(future, held).sum() / held.sum()))
    return {"origins": len(origins), **{m: sums[m] / sums["hindsight"] for m in METHODS},
            **{f"utilization_{m}": float(np.mean(utilization[m])) for m in METHODS}}


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


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}x" if b > 0.05 else "n/a (once saves < 5%)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--discount", type=float, default=0.28)
    ap.add_argument("--lookback", type=int, default=DEFAULT_LOOKBACK,
                    help=f"long lookback in days (default the product's, {DEFAULT_LOOKBACK})")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--append", action="store_true",
                    help="add the result table at the end of its section of bench/RESULTS.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = []
    for scenario in SCENARIOS:
        runs = [backtest(scenario, args.discount, args.lookback, s) for s in range(args.seeds)]
        rows.append((scenario, sum(r["origins"] for r in runs),
                     {m: float(np.mean([r[m] for r in runs])) for m in METHODS},
                     min(r["laddered"] for r in runs),
                     {m: float(np.mean([r[f"utilization_{m}"] for r in runs])) for m in METHODS}))
    gap = brute_force_gap(args.discount, args.lookback, args.seeds)
    elapsed = time.perf_counter() - t0
    lines = [
        f"### Commitment recommendation backtests (issue 12) — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"`flock /tmp/cloudtally-bench.lock .venv/bin/python bench/commitment_eval.py --append` (d = {args.discount}, "
        f"{args.lookback}-day lookback and 3-day guard, tranches of {1 - float(DOWNSIDE):.0%} of the guarded optimum "
        f"reviewed every {REVIEW_DAYS} days, 1-year terms, a year evaluated from each origin, origins every 14 days "
        f"over 3 generated years, {args.seeds} seeds; {platform.machine()}, {elapsed:.1f} s). Share of "
        "hindsight-optimal savings: Σ realized / Σ savings of the best constant commitment for the same year, known "
        "afterwards. `laddered` is what CloudTally recommends; the other columns are baselines measured in the same "
        "run.",
        "",
        "| scenario | origins | laddered (CloudTally) | worst seed | rolling-full (weekly, whole optimum) | "
        "once (guarded) | once-plain | laddered / once | realized utilization laddered / once |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, n, m, worst, ut in rows:
        lines.append(f"| {scenario} | {n} | {m['laddered']:.2%} | {worst:.2%} | {m['rolling-full']:.2%} | "
                     f"{m['once']:.2%} | {m['once-plain']:.2%} | "
                     f"{ratio(m['laddered'], m['once'])} | "
                     f"{ut['laddered']:.1%} / {ut['once']:.1%} |")
    lines += ["", f"Quantile vs brute force (20,001-point grid and every breakpoint, {args.seeds} lookbacks): "
              f"largest shortfall {gap:.2e} (target ≤ 1e-3).", ""]
    text = "\n".join(lines)
    print(text)
    if args.append:  # at the end of this benchmark's section, before the next one
        path = Path(__file__).with_name("RESULTS.md")
        doc = path.read_text()
        head = doc.index(SECTION)
        nxt = doc.find("\n## ", head + len(SECTION))
        nxt = len(doc) if nxt < 0 else nxt + 1
        path.write_text(doc[:nxt].rstrip("\n") + "\n\n" + text + "\n" + doc[nxt:])


if __name__ == "__main__":
    main()
