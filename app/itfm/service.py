"""Forecasts of a scope as the API and CLI serve them: daily values, month totals and the scope's measured
accuracy (its stored backtest for the same data, run and stored first when missing)."""
from __future__ import annotations

from decimal import Decimal

import duckdb
from sqlalchemy.orm import Session

from app.costs import money_str
from app.itfm import backtest as bt
from app.itfm.actuals import ScopeDims, daily_series
from app.itfm.budgets import cached_forecast
from app.itfm.forecast import DEFAULT_MODEL, MAX_HORIZON_DAYS, MIN_DAYS, NotEnoughHistory, forecast_series


def _too_short(s) -> NotEnoughHistory:
    try:
        forecast_series(s, 1)
    except NotEnoughHistory as exc:
        return exc
    raise AssertionError("not too short")


def accuracy(session: Session, series, metric: str, model: str = DEFAULT_MODEL) -> dict:
    row = bt.latest(session, series.scope, series.currency, metric)
    if row is None or row.data_end != series.end or row.model != f"calendar+{model}":
        try:
            row = bt.store(session, bt.backtest(series, metric, model))
        except NotEnoughHistory as exc:
            return {"available": False, "reason": f"no backtest: {exc}"}
    return {"available": True, **bt.view(row)}


def forecast_scope(con: duckdb.DuckDBPyConnection, session: Session, scope: ScopeDims, currency: str | None = None,
                   metric: str = "EffectiveCost", horizon_days: int = 90, model: str = DEFAULT_MODEL,
                   daily: bool = True) -> dict:
    """{"forecasts": [per currency], "refused": [{currency, reason}]}."""
    if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise ValueError(f"horizon_days must be 1 to {MAX_HORIZON_DAYS}")
    found = daily_series(con, [scope], metric, currency)
    out, refused = [], []
    for (_, cur), s in sorted(found.items(), key=lambda kv: kv[0][1]):
        if len(s.usage) < MIN_DAYS:
            refused.append({"currency": cur, "reason": str(_too_short(s))})
            continue
        acc = accuracy(session, s, metric, model)
        scale = ((acc["metrics"].get("interval_scale80") or 1.0, acc["metrics"].get("interval_scale95") or 1.0)
                 if acc["available"] else (1.0, 1.0))
        f = cached_forecast(s, horizon_days, model, scale)
        months = {}
        for i, v in enumerate(f.point):
            m = f"{f.day(i):%Y-%m}"
            months[m] = months.get(m, Decimal(0)) + v
        # the month in progress: actual so far + forecast of its remaining days
        first = f.start.replace(day=1)
        so_far = sum((s.usage[i] + s.calendar[i] for i in range(len(s.usage)) if s.day(i) >= first), Decimal(0))
        doc = {"scope": scope.dims(), "currency": cur, "metric": metric, "model": f.model,
               "history": {"start": s.start.isoformat(), "end": s.end.isoformat(), "days": len(s.usage)},
               "start": f.start.isoformat(), "horizon_days": horizon_days, "intervals": [80, 95],
               "months": [{"month": m, "forecast": money_str(v),
                           **({"actual_to_date": money_str(so_far), "estimate": money_str(so_far + v)}
                              if m == f"{first:%Y-%m}" and f.start.day != 1 else {})}
                          for m, v in months.items()],
               "total": money_str(sum(f.point, Decimal(0))),
               "intervals_calibration": ({"method": "split conformal on the scope's backtest", "scale80": scale[0],
                                          "scale95": scale[1]} if acc["available"] else
                                         {"method": "model (no backtest yet)", "scale80": 1.0, "scale95": 1.0}),
               "accuracy": acc}
        if daily:
            doc["days"] = [{k: (money_str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in f.rows()]
        out.append(doc)
    if not found:
        refused.append({"currency": currency, "reason": f"no {metric} for {scope.key()}"
                        f"{' in ' + currency if currency else ''}: nothing to forecast from (at least 14 days needed)"})
    return {"forecasts": out, "refused": refused}
