"""Measured forecast accuracy: a rolling-origin backtest per scope, stored in the control database.

Fit on the days before origin t, forecast t … t+h−1 (h = 30), move the origin; never shuffle. Six windows; the step
between origins is 30 days when the history allows it, otherwise as long as fits (down to 1 day: the demo's 92
days give a step of 6, windows overlapping). Every window trains on at least MIN_TRAIN = 28 days, so fewer than
28 + h + 5 = 63 days of history cannot be backtested.

Figures (over all windows; each model sees only its training days):
- `daily_mape` (days with cost ≠ 0) and `wape` = Σ|e| / Σ|y|, in %;
- `month_ape_median`, `month_ape_p90`: absolute % error of each window's 30-day total (what finance sees);
- `coverage80`, `coverage95`: % of days inside the 80% / 95% interval as served: calibrated (split conformal) on
  the other windows' errors, leave one window out; `coverage80_model`, `coverage95_model`: the model's own
  intervals; `interval_scale80/95`: the factor a served forecast's half-widths get (from every window);
- `mase`: MAE / in-sample MAE of the seasonal naive (lag 7) on the training days, mean over windows, and
  `mase_snaive` the same for the seasonal-naive forecast itself; `mase_improvement` = 1 − Σ MAE / Σ MAE(snaive),
  in % (the target: ≥ 20).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.itfm.actuals import DailySeries, ScopeDims
from app.itfm.forecast import DEFAULT_MODEL, SEASON, NotEnoughHistory, forecast_arrays
from app.itfm.models import ForecastBacktest

HORIZON = 30
WINDOWS = 6
# Every window trains on at least four weeks and a month (so each day-of-month charge was seen once): what a served
# forecast has. Shorter windows measure a situation nobody is served in (forecasts from 14-27 days are allowed,
# but too young to backtest); on the demo they alone made the month-total p90 20% instead of 9%.
MIN_TRAIN = 28


def plan(n: int, horizon: int = HORIZON, windows: int = WINDOWS, min_train: int = MIN_TRAIN) -> tuple[int, list[int]]:
    """(step, origins): `windows` origins, the last window ending on the last day."""
    step = min(horizon, (n - horizon - min_train) // (windows - 1)) if windows > 1 else horizon
    if step < 1 or n - horizon < min_train:
        raise NotEnoughHistory(f"{n} days of history; a backtest of {windows} windows of {horizon} days needs at "
                               f"least {min_train + horizon + windows - 1}")
    return step, [n - horizon - step * (windows - 1 - k) for k in range(windows)]


def snaive(train: np.ndarray, h: int) -> np.ndarray:
    return np.resize(train[-SEASON:], h)


def window_metrics(y: np.ndarray, f: dict, train: np.ndarray) -> dict:
    """Errors of one window: y the actual days, f the forecast arrays (point, lo80, hi80, lo95, hi95), train the
    total series before the origin."""
    e = f["point"] - y
    sn = snaive(train, len(y))
    scale = float(np.mean(np.abs(train[SEASON:] - train[:-SEASON]))) if len(train) > SEASON else float("nan")
    ysum = float(np.sum(y))
    return {
        "abs_err": float(np.sum(np.abs(e))), "abs_y": float(np.sum(np.abs(y))),
        "ape_days": [float(abs(a) / abs(b)) for a, b in zip(e, y) if b != 0],
        "month_ape": abs(float(np.sum(f["point"])) - ysum) / abs(ysum) * 100 if ysum else float("nan"),
        "month_ape_snaive": abs(float(np.sum(sn)) - ysum) / abs(ysum) * 100 if ysum else float("nan"),
        "in80": int(np.sum((y >= f["lo80"]) & (y <= f["hi80"]))), "in95": int(np.sum((y >= f["lo95"]) & (y <= f["hi95"]))),
        "days": len(y), "mae": float(np.mean(np.abs(e))), "mae_snaive": float(np.mean(np.abs(sn - y))), "scale": scale,
        "forecast_total": float(np.sum(f["point"])), "actual_total": ysum,
        # |error| / the model's half-width per day: the conformity scores of the interval calibration
        "r80": [float(x) for x in np.abs(e) / np.maximum(f["half80"], 1e-9)],
        "r95": [float(x) for x in np.abs(e) / np.maximum(f["half95"], 1e-9)],
    }


def conformal_scale(scores: list[float], level: int) -> float:
    """The split-conformal quantile of |error| / half-width: the ceil((n + 1) * level%)-th smallest score, kept
    within [0.5, 5] (so one wild window cannot make intervals useless)."""
    if not scores:
        return 1.0
    s = np.sort(np.asarray(scores))
    k = min(len(s), int(np.ceil((len(s) + 1) * level / 100))) - 1
    return float(min(5.0, max(0.5, s[k])))


def summarize(windows: list[dict]) -> dict:
    days = sum(w["days"] for w in windows)
    apes = [a for w in windows for a in w["ape_days"]]
    month = [w["month_ape"] for w in windows if w["month_ape"] == w["month_ape"]]
    month_sn = [w["month_ape_snaive"] for w in windows if w["month_ape_snaive"] == w["month_ape_snaive"]]
    scaled = [(w["mae"] / w["scale"], w["mae_snaive"] / w["scale"]) for w in windows if w["scale"] and w["scale"] == w["scale"]]
    mae, mae_sn = sum(w["mae"] for w in windows), sum(w["mae_snaive"] for w in windows)
    # Calibrated coverage, measured honestly: each window's intervals are scaled by the conformal quantile of the
    # OTHER windows' scores (leave one window out), as a served forecast is scaled by all of them.
    cal_in = {80: 0, 95: 0}
    for i, w in enumerate(windows):
        for level in (80, 95):
            others = [x for j, v in enumerate(windows) if j != i for x in v[f"r{level}"]]
            k = conformal_scale(others, level)
            cal_in[level] += sum(1 for x in w[f"r{level}"] if x <= k)
    r = lambda x, nd=2: None if x is None or x != x else round(float(x), nd)  # noqa: E731
    return {
        "daily_mape": r(np.mean(apes) * 100 if apes else None),
        "wape": r(sum(w["abs_err"] for w in windows) / sum(w["abs_y"] for w in windows) * 100
                  if sum(w["abs_y"] for w in windows) else None),
        "month_ape_median": r(np.median(month) if month else None),
        "month_ape_p90": r(np.percentile(month, 90) if month else None),
        "month_ape_median_snaive": r(np.median(month_sn) if month_sn else None),
        "coverage80": r(cal_in[80] / days * 100),
        "coverage95": r(cal_in[95] / days * 100),
        "coverage80_model": r(sum(w["in80"] for w in windows) / days * 100),
        "coverage95_model": r(sum(w["in95"] for w in windows) / days * 100),
        "interval_scale80": r(conformal_scale([x for w in windows for x in w["r80"]], 80), 3),
        "interval_scale95": r(conformal_scale([x for w in windows for x in w["r95"]], 95), 3),
        "mase": r(np.mean([a for a, _ in scaled]) if scaled else None, 3),
        "mase_snaive": r(np.mean([b for _, b in scaled]) if scaled else None, 3),
        "mase_improvement": r((1 - mae / mae_sn) * 100 if mae_sn else None),
    }


def backtest_arrays(usage: np.ndarray, cal: np.ndarray, start: date, model: str = DEFAULT_MODEL,
                    horizon: int = HORIZON, windows: int = WINDOWS) -> dict:
    total = usage + cal
    step, origins = plan(len(total), horizon, windows)
    out = []
    for o in origins:
        f = forecast_arrays(usage[:o], cal[:o], start, horizon, model)
        m = window_metrics(total[o:o + horizon], f, total[:o])
        m["origin"] = (start + timedelta(days=o)).isoformat()
        m["model"] = f["model"]
        out.append(m)
    return {"step": step, "windows": out, "metrics": summarize(out)}


@dataclass
class Result:
    scope: ScopeDims
    currency: str
    metric: str
    model: str
    data_start: date
    data_end: date
    step: int
    metrics: dict
    details: list


def backtest(s: DailySeries, metric: str = "EffectiveCost", model: str = DEFAULT_MODEL) -> Result:
    usage = np.array([float(v) for v in s.usage])
    cal = np.array([float(v) for v in s.calendar])
    bt = backtest_arrays(usage, cal, s.start, model)
    details = [{"origin": w["origin"], "model": w["model"], "forecast_total": round(w["forecast_total"], 2),
                "actual_total": round(w["actual_total"], 2),
                "month_ape": None if w["month_ape"] != w["month_ape"] else round(w["month_ape"], 2),
                "coverage80": round(w["in80"] / w["days"] * 100, 2)} for w in bt["windows"]]
    return Result(s.scope, s.currency, metric, f"calendar+{model}", s.start, s.end, bt["step"], bt["metrics"], details)


def store(session: Session, r: Result) -> ForecastBacktest:
    key = r.scope.key()
    row = session.scalar(select(ForecastBacktest).where(
        ForecastBacktest.scope_key == key, ForecastBacktest.currency == r.currency,
        ForecastBacktest.metric == r.metric, ForecastBacktest.data_end == r.data_end))
    if row is None:
        row = ForecastBacktest(scope_key=key, currency=r.currency, metric=r.metric, data_end=r.data_end)
        session.add(row)
    row.team, row.scope, row.model, row.data_start = r.scope.team, r.scope.dims(), r.model, r.data_start
    row.horizon, row.windows, row.step, row.metrics, row.details = HORIZON, WINDOWS, r.step, r.metrics, r.details
    session.commit()
    return row


def latest(session: Session, scope: ScopeDims, currency: str, metric: str) -> ForecastBacktest | None:
    return session.scalar(select(ForecastBacktest).where(
        ForecastBacktest.scope_key == scope.key(), ForecastBacktest.currency == currency,
        ForecastBacktest.metric == metric).order_by(ForecastBacktest.data_end.desc(), ForecastBacktest.id.desc()))


def view(row: ForecastBacktest) -> dict:
    return {"scope": row.scope, "scope_key": row.scope_key, "currency": row.currency, "metric": row.metric,
            "model": row.model, "data_start": row.data_start.isoformat(), "data_end": row.data_end.isoformat(),
            "horizon_days": row.horizon, "windows": row.windows, "step_days": row.step, "metrics": row.metrics,
            "details": row.details, "created_at": row.created_at.isoformat().replace("+00:00", "Z")}
