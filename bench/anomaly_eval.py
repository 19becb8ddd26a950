"""Anomaly detection quality (issue 11): generated daily cost series with injected spikes, level shifts and slow
drifts (known labels), scored by app.alerts.anomaly (the same SQL the alerts use) and by a baseline detector
(the common z-score rule: actual > mean + 3 standard deviations of the previous 28 days, and +20 %), in the same
run on the same series.

    flock /tmp/cloudtally-bench.lock .venv/bin/python bench/anomaly_eval.py [--monitors 400] [--days 365]
        [--seeds 11,12,13]

Series: a base level (log-uniform 200..20,000 per day), a weekly profile (weekend factor 0.5..1.0, weekdays
0.95..1.05), multiplicative log-normal noise (sigma 3..10 %), and 0-3 labelled events per monitor at least 45 days
apart, none in the first 60 days:
  spike: 1-3 days at +40 % .. +400 %;  level shift: +30 % .. +100 % from a day on, for good;
  drift: a linear ramp over 14-28 days to +40 % .. +120 %, then staying there.
An event counts as found when a detected episode overlaps its window (spike: its days; shift: its first 14 days;
drift: the ramp and 7 days after). A detected episode overlapping no window is a false alert. Targets: event
recall >= 90 % at precision >= 80 %, <= 1 false alert per monitor-month, every spike above +60 % found.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.alerts.anomaly import SERIES_DDL, Params, detect  # noqa: E402

START = date(2025, 1, 1)


def generate(monitors: int, days: int, seed: int):
    rng = random.Random(seed)
    rows, labels = [], []
    for m in range(monitors):
        name = f"m{m:04d}"
        base = math.exp(rng.uniform(math.log(200), math.log(20000)))
        weekend = rng.uniform(0.5, 1.0)
        profile = [rng.uniform(0.95, 1.05) for _ in range(5)] + [weekend, weekend * rng.uniform(0.9, 1.1)]
        sigma = rng.uniform(0.03, 0.10)
        mult = [1.0] * days
        t = 60 + rng.randint(0, 30)
        for _ in range(rng.randint(0, 3)):
            if t >= days - 30:
                break
            kind = rng.choice(("spike", "shift", "drift"))
            if kind == "spike":
                n, size = rng.randint(1, 3), rng.uniform(0.4, 4.0)
                for d in range(t, t + n):
                    mult[d] *= 1 + size
                labels.append((name, kind, size, t, t + n - 1))
                t += n
            elif kind == "shift":
                size = rng.uniform(0.3, 1.0)
                for d in range(t, days):
                    mult[d] *= 1 + size
                labels.append((name, kind, size, t, t + 13))
            else:
                ramp, size = rng.randint(14, 28), rng.uniform(0.4, 1.2)
                for d in range(t, days):
                    mult[d] *= 1 + size * min(1.0, (d - t + 1) / ramp)
                labels.append((name, kind, size, t, t + ramp + 7))
                t += ramp
            t += 45 + rng.randint(0, 40)
        for d in range(days):
            day = START + timedelta(days=d)
            y = base * profile[day.weekday()] * mult[d] * math.exp(rng.gauss(0, sigma))
            rows.append((name, "USD", day, Decimal(f"{y:.2f}")))
    return rows, labels


BASELINE_SQL = """
CREATE OR REPLACE TEMP TABLE anomaly_episodes AS
WITH s AS (
    SELECT monitor, day, cost::DOUBLE AS y,
           avg(cost::DOUBLE) OVER w AS mu, stddev_samp(cost::DOUBLE) OVER w AS sd,
           row_number() OVER (PARTITION BY monitor ORDER BY day) AS age
    FROM anomaly_series WINDOW w AS (PARTITION BY monitor ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING)
), f AS (
    SELECT monitor, day FROM s WHERE age > 28 AND y > mu + 3 * sd AND y >= 1.2 * mu AND y - mu >= 1
), f2 AS (
    SELECT *, CASE WHEN datediff('day', lag(day) OVER w, day) <= 3 THEN 0 ELSE 1 END AS start
    FROM f WINDOW w AS (PARTITION BY monitor ORDER BY day)
), g AS (
    SELECT *, sum(start) OVER (PARTITION BY monitor ORDER BY day) AS episode FROM f2
)
SELECT monitor, episode, min(day) AS first_day, max(day) AS last_day FROM g GROUP BY ALL
"""


def evaluate(con, labels, monitors: int, days: int) -> dict:
    episodes = con.execute("SELECT monitor, first_day, last_day FROM anomaly_episodes").fetchall()
    by_monitor: dict[str, list] = {}
    for m, a, b in episodes:
        by_monitor.setdefault(m, []).append((a, b))
    found = {"spike": [0, 0], "shift": [0, 0], "drift": [0, 0]}
    big_spikes = [0, 0]
    matched_episodes = set()
    windows: dict[str, list] = {}
    for name, kind, size, s, e in labels:
        ws, we = START + timedelta(days=s), START + timedelta(days=e)
        windows.setdefault(name, []).append((ws, we))
        hits = [(a, b) for a, b in by_monitor.get(name, []) if a <= we and b >= ws]
        found[kind][1] += 1
        if hits:
            found[kind][0] += 1
            matched_episodes.update((name, a) for a, _ in hits)
        if kind == "spike" and size > 0.6:
            big_spikes[1] += 1
            big_spikes[0] += bool(hits)
    false = [(m, a) for m, a, b in episodes
             if not any(a <= we and b >= ws for ws, we in windows.get(m, []))]
    recall = sum(v[0] for v in found.values()) / max(1, sum(v[1] for v in found.values()))
    precision = (len(episodes) - len(false)) / max(1, len(episodes))
    monitor_months = monitors * (days - 28) / 30.4375
    return {"recall": recall, "precision": precision, "episodes": len(episodes), "false": len(false),
            "false_per_monitor_month": len(false) / monitor_months, "by_kind": found, "big_spikes": big_spikes,
            "labels": len(labels)}


def fmt(name: str, r: dict, secs: float) -> str:
    kinds = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in r["by_kind"].items())
    return (f"| {name} | {r['recall']:.1%} | {r['precision']:.1%} | {r['false']} "
            f"({r['false_per_monitor_month']:.3f}) | {r['big_spikes'][0]}/{r['big_spikes'][1]} | {kinds} | "
            f"{secs:.2f} s |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--monitors", type=int, default=400)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seeds", default="11,12,13", help="comma-separated seeds: one generated data set each")
    ap.add_argument("--min-impact", default="1", help="absolute impact threshold per day (the series are in "
                    "hundreds to tens of thousands a day; the percent and z thresholds do the work here)")
    ap.add_argument("--z", type=float, default=Params.z)
    ap.add_argument("--min-percent", type=float, default=Params.min_percent)
    args = ap.parse_args()
    params = Params(min_impact=Decimal(args.min_impact), z=args.z, min_percent=args.min_percent)
    print(f"params: {params}")
    print("| seed | detector | event recall | precision | false alerts (per monitor-month) | spikes > +60 % found | "
          "found by kind | time |")
    print("|---|---|---|---|---|---|---|---|")
    all_ok = True
    for seed in (int(s) for s in args.seeds.split(",")):
        rows, labels = generate(args.monitors, args.days, seed)
        con = duckdb.connect()
        con.execute(SERIES_DDL)
        import pyarrow as pa

        table = pa.table({"monitor": [r[0] for r in rows], "currency": [r[1] for r in rows],
                          "day": [r[2] for r in rows],
                          "cost": pa.array([r[3] for r in rows], pa.decimal128(38, 10))})
        con.register("generated", table)
        con.execute("INSERT INTO anomaly_series SELECT * FROM generated")
        t0 = time.perf_counter()
        detect(con, params)
        ours_s = time.perf_counter() - t0
        ours = evaluate(con, labels, args.monitors, args.days)
        t0 = time.perf_counter()
        con.execute(BASELINE_SQL)
        base_s = time.perf_counter() - t0
        base = evaluate(con, labels, args.monitors, args.days)
        tag = f"{seed} ({args.monitors} x {args.days} d, {len(labels)} events)"
        print(fmt(f"{tag} | seasonal median forecast + MAD (app.alerts.anomaly)", ours, ours_s))
        print(fmt(f"{tag} | baseline: mean + 3 sd of 28 days, +20 %", base, base_s))
        all_ok &= (ours["recall"] >= 0.9 and ours["precision"] >= 0.8 and ours["false_per_monitor_month"] <= 1
                   and ours["big_spikes"][0] == ours["big_spikes"][1])
        con.close()
    print("targets met on every seed" if all_ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
