"""Forecast quality and speed (issue 10): rolling-origin backtests on the demo data and on generated 2-year series,
and the time to forecast 500 scopes.

    flock /tmp/cloudtally-bench.lock .venv/bin/python bench/forecast_bench.py [--scopes 500] [--series 20]
        [--models mstl,ets,snaive] [--json out.json]

Quality: each scope is backtested as CloudTally serves it (app.itfm.backtest: h = 30, 6 windows, the fee-aware
forecast, intervals calibrated leave-one-window-out on the scope's own backtest). Month-total APE median and p90
are over series x origins; coverage is the mean over scopes; `MASE vs snaive` = 1 − Σ MAE / Σ MAE of the seasonal
naive (lag 7) of the raw total, and `vs fee-aware snaive` the same against CloudTally's own fee-aware seasonal
naive (the stricter baseline). `raw` rows model the whole cost as usage (no calendar part): what the fee-aware
split buys.
Speed: forecast (fit + 365 days with intervals) of `--scopes` generated 2-year series with the default model, as a
ratio to the fee-aware seasonal naive of the same scopes measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

from app.itfm import backtest as bt  # noqa: E402
from app.itfm.forecast import DEFAULT_MODEL, forecast_arrays  # noqa: E402


def generated(seed: int, n: int = 730) -> tuple[np.ndarray, np.ndarray, date]:
    """A 2-year daily cost series: weekly seasonality (weekends 40-100%), growth -10..+50%/year, 3-12%
    multiplicative noise, a month-start fee (0-30% of a month's usage) and, for odd seeds, a month-end fee."""
    rng = np.random.default_rng(seed)
    start = date(2024, 11, 1)
    t = np.arange(n)
    noise, growth, weekend, fee = rng.uniform(0.03, 0.12), rng.uniform(-0.1, 0.5), rng.uniform(0.4, 1.0), rng.uniform(0, 0.3)
    level = rng.uniform(50, 5000)
    days = [start + timedelta(days=int(i)) for i in t]
    week = np.array([weekend if d.weekday() >= 5 else 1.0 for d in days])
    usage = level * (1 + growth * t / 365) * week * (1 + rng.normal(0, noise, n))
    cal = np.array([fee * level * 30 if d.day == 1 else
                    (0.3 * fee * level * 30 if (d + timedelta(days=1)).day == 1 and seed % 2 else 0.0) for d in days])
    return usage, cal, start


def demo_series() -> list[tuple[str, np.ndarray, np.ndarray, date]]:
    """The demo dataset loaded through the real connectors; scopes: everything, each team, provider and
    team x provider with at least 1000 of cost."""
    import yaml

    from app import demo, sources
    from app.allocation import engine
    from app.ingest import ingest
    from app.itfm.actuals import ScopeDims, daily_series
    from app.runtime import Runtime
    from app.settings import Settings

    root = Path(tempfile.mkdtemp(prefix="forecast-bench-"))
    rt = Runtime(Settings(data_dir=root / "data"))
    rt.init()
    for name, path in demo.write_exports(root / "exports").items():
        provider, fmt = demo.source_formats()[name]
        sources.add(rt, name, provider, fmt, str(path))
        ingest(rt, name)
    engine.apply(rt, yaml.safe_load(demo.RULES_FILE.read_text()))
    with rt.warehouse.connect(read_only=True) as con:
        teams = [t for (t,) in con.execute("SELECT DISTINCT team FROM cost_allocation WHERE team <> 'unallocated'")
                 .fetchall() if t]
        provs = [p for (p,) in con.execute("SELECT DISTINCT ProviderName FROM cost_and_usage").fetchall()]
        scopes = [ScopeDims()] + [ScopeDims(team=t) for t in teams] + [ScopeDims(provider=p) for p in provs] + [
            ScopeDims(team=t, provider=p) for t in teams for p in provs]
        found = daily_series(con, scopes)
    rt.close()
    return [(f"{s.scope.key()} {cur}", np.array([float(v) for v in s.usage]), np.array([float(v) for v in s.calendar]),
             s.start) for (_, cur), s in sorted(found.items(), key=lambda kv: (kv[1].scope.key(), kv[0][1]))
            if sum(s.total) >= 1000]


def quality(series, model: str, raw: bool = False) -> dict:
    windows, cov80, cov95, t0 = [], [], [], time.monotonic()
    fee_aware_sn = []
    for _, usage, cal, start in series:
        u, c = (usage + cal, np.zeros_like(cal)) if raw else (usage, cal)
        r = bt.backtest_arrays(u, c, start, model)
        windows += r["windows"]
        cov80.append(r["metrics"]["coverage80"])
        cov95.append(r["metrics"]["coverage95"])
        if not raw:
            fee_aware_sn += bt.backtest_arrays(u, c, start, "snaive")["windows"] if model != "snaive" else r["windows"]
    s = bt.summarize(windows)
    mae = sum(w["mae"] for w in windows)
    out = {"model": ("raw " if raw else "fee-aware ") + model, "series": len(series), "windows": len(windows),
           "daily_mape": s["daily_mape"], "wape": s["wape"], "month_ape_median": s["month_ape_median"],
           "month_ape_p90": s["month_ape_p90"], "coverage80": round(float(np.mean(cov80)), 2),
           "coverage95": round(float(np.mean(cov95)), 2), "mase": s["mase"], "mase_snaive": s["mase_snaive"],
           "mase_vs_snaive_pct": s["mase_improvement"],
           "mase_vs_fee_aware_snaive_pct": (round((1 - mae / sum(w["mae"] for w in fee_aware_sn)) * 100, 2)
                                            if fee_aware_sn else None),
           "seconds": round(time.monotonic() - t0, 1)}
    return out


def timing(n_scopes: int, model: str) -> dict:
    series = [generated(1000 + i) for i in range(n_scopes)]
    out = {}
    for name in ("snaive", model):
        t0 = time.monotonic()
        for usage, cal, start in series:
            forecast_arrays(usage, cal, start, 365, name)
        out[name] = time.monotonic() - t0
    return {"scopes": n_scopes, "days": 730, "horizon": 365, "model": model,
            "seconds": round(out[model], 1), "baseline_snaive_seconds": round(out["snaive"], 2),
            "ratio_to_snaive": round(out[model] / out["snaive"], 1)}


def table(rows: list[dict], title: str) -> str:
    keys = ["model", "series", "windows", "month_ape_median", "month_ape_p90", "daily_mape", "wape", "coverage80",
            "coverage95", "mase", "mase_snaive", "mase_vs_snaive_pct", "mase_vs_fee_aware_snaive_pct", "seconds"]
    lines = [f"**{title}**", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("" if r.get(k) is None else str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scopes", type=int, default=500, help="scopes to time (default 500)")
    ap.add_argument("--series", type=int, default=20, help="generated series for quality (default 20)")
    ap.add_argument("--models", default="mstl,ets,snaive", help="models to compare (default mstl,ets,snaive)")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    models = args.models.split(",")
    result = {}
    if not args.skip_demo:
        print("loading the demo ...", file=sys.stderr)
        demo = demo_series()
        result["demo"] = [quality(demo, m) for m in models] + [quality(demo, DEFAULT_MODEL, raw=True)]
        print(table(result["demo"], f"Demo data: {len(demo)} scopes, 92 days"), "\n")
    gen = [(f"gen{i}", *generated(i)) for i in range(args.series)]
    result["generated"] = [quality(gen, m) for m in models] + [quality(gen, DEFAULT_MODEL, raw=True)]
    print(table(result["generated"], f"Generated 2-year series: {len(gen)}"), "\n")
    print(f"timing {args.scopes} scopes ...", file=sys.stderr)
    result["timing"] = [timing(args.scopes, DEFAULT_MODEL)]
    if "ets" in models and DEFAULT_MODEL != "ets":
        t = timing(max(1, args.scopes // 10), "ets")
        t["extrapolated_to"] = args.scopes
        t["extrapolated_seconds"] = round(t["seconds"] * args.scopes / t["scopes"], 1)
        result["timing"].append(t)
    for t in result["timing"]:
        print(json.dumps(t))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
