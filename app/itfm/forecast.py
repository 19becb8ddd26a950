"""Daily cost forecasts per scope: a deterministic calendar part plus a statistical usage part, with 80% and 95%
prediction intervals.

1. **Calendar part** (lines that are not usage: commitment and support fees, tax, credits; app.itfm.actuals):
   projected from the schedule it showed, not modelled. Its daily level is the median of the last 7 days; on top
   of it, each day of the month repeats the deviation ("spike") the same day of the month last showed, so a fee
   on the 1st, tax on the 1st or a charge on the last day of the month come back on their day. Days are keyed by
   their day of month, the last three of each month by their distance from its end (so "the last day" is the
   last day in February too). Spikes smaller than 3x the median spike of the last 60 days are noise and dropped.
2. **Usage part**: statsforecast's MSTL with weekly seasonality (season length 7; the deseasonalized rest by
   AutoETS without seasonality) over at most the last 365 days, with its 80% and 95% intervals; SeasonalNaive(7)
   if it cannot fit. `ets` (AutoETS, season 7), `arima` (AutoARIMA) and `snaive` can be chosen instead. MSTL is the
   default: as accurate as AutoETS on the benchmark (bench/RESULTS.md) and about 9x faster to fit (500 scopes:
   33 s vs about 290 s), which the 500-scope target (< 60 s) needs. A scope whose usage never went negative is never forecast below zero.
3. The forecast is the sum; the intervals are the usage intervals shifted by the calendar part (which has none).
   Served forecasts calibrate the interval widths on the scope's own backtest (split conformal: the half-widths are
   multiplied by the 80th / 95th percentile of |error| / half-width over the backtest's days; app.itfm.backtest).

A scope with fewer than 14 days of history (from its first day with cost) is refused with the reason: no forecast
from so little data. Forecast values are Decimal, rounded to the cent (half even); the model computes in floats.
"""
from __future__ import annotations

import calendar as _calendar
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

from app.itfm.actuals import DailySeries, ScopeDims

MIN_DAYS = 14
MAX_HORIZON_DAYS = 366  # up to 12 months
TRAIN_DAYS = 365
SEASON = 7
LEVELS = (80, 95)
CENT = Decimal("0.01")
MODELS = ("ets", "snaive", "mstl", "arima")
DEFAULT_MODEL = "mstl"


class NotEnoughHistory(ValueError):
    pass


def cents(x: float) -> Decimal:
    if not math.isfinite(x):
        raise ValueError(f"non-finite forecast value {x!r}")
    return Decimal(repr(float(x))).quantize(CENT, ROUND_HALF_EVEN)


@dataclass
class Forecast:
    """A daily forecast from `start` (the day after the history) for len(point) days."""

    scope: ScopeDims
    currency: str
    start: date
    point: list[Decimal]
    lo80: list[Decimal]
    hi80: list[Decimal]
    lo95: list[Decimal]
    hi95: list[Decimal]
    calendar: list[Decimal]
    model: str
    history_start: date
    history_end: date
    floats: dict = field(default_factory=dict, repr=False)  # the unrounded arrays (backtests)

    @property
    def history_days(self) -> int:
        return (self.history_end - self.history_start).days + 1

    def day(self, i: int) -> date:
        return self.start + timedelta(days=i)

    def total(self, start: date, end: date) -> Decimal:
        """The point forecast summed over the days in [start, end) it covers."""
        a = max(0, (start - self.start).days)
        b = max(0, min(len(self.point), (end - self.start).days))
        return sum(self.point[a:b], Decimal(0))

    def rows(self) -> list[dict]:
        return [{"day": self.day(i).isoformat(), "forecast": self.point[i], "lo80": self.lo80[i], "hi80": self.hi80[i],
                 "lo95": self.lo95[i], "hi95": self.hi95[i], "calendar": self.calendar[i]}
                for i in range(len(self.point))]


def _key(d: date) -> tuple[str, int]:
    left = _calendar.monthrange(d.year, d.month)[1] - d.day
    return ("end", left) if left < 3 else ("day", d.day)


def calendar_projection(cal: np.ndarray, start: date, horizon: int) -> np.ndarray:
    """The calendar part of the next `horizon` days after a history `cal` whose first day is `start`."""
    n = len(cal)
    if n == 0 or not np.any(cal):
        return np.zeros(horizon)
    base = float(np.median(cal[-SEASON:]))
    # deviation of each of the last 93 days (three months: every day-of-month key) from the median of the 7 before
    first_i = max(0, n - 93)
    devs = np.zeros(n)
    for i in range(first_i, min(n, SEASON)):
        prior = cal[max(0, i - SEASON):i] if i > 0 else cal[1:1 + SEASON]
        devs[i] = cal[i] - (float(np.median(prior)) if len(prior) else cal[i])
    lo = max(first_i, SEASON)
    if lo < n:
        windows = np.lib.stride_tricks.sliding_window_view(cal, SEASON)[lo - SEASON:n - SEASON]
        devs[lo:] = cal[lo:] - np.median(windows, axis=1)
    noise = 3 * float(np.median(np.abs(devs[max(first_i, n - 60):])))
    spikes: dict[tuple[str, int], float] = {}
    for i in range(first_i, n):
        k = _key(start + timedelta(days=i))
        if abs(devs[i]) > noise:
            spikes[k] = float(devs[i])
        else:
            spikes.pop(k, None)
    first = start + timedelta(days=n)
    return np.array([base + spikes.get(_key(first + timedelta(days=j)), 0.0) for j in range(horizon)])


def _snaive(y: np.ndarray, h: int) -> dict:
    """Seasonal naive with intervals from its in-sample seasonal errors (normal, sqrt of seasons ahead)."""
    season = y[-SEASON:] if len(y) >= SEASON else np.resize(y, SEASON)
    mean = np.resize(season, h)
    err = y[SEASON:] - y[:-SEASON] if len(y) > SEASON else np.zeros(1)
    sd = float(np.sqrt(np.mean(err ** 2))) if len(err) else 0.0
    k = np.sqrt(np.arange(h) // SEASON + 1)
    out = {"mean": mean}
    for level, z in ((80, 1.2815515655446004), (95, 1.959963984540054)):
        out[f"lo-{level}"], out[f"hi-{level}"] = mean - z * sd * k, mean + z * sd * k
    return out


def _model(name: str):
    from statsforecast.models import MSTL, AutoARIMA, AutoETS

    if name == "ets":
        return AutoETS(season_length=SEASON)
    if name == "arima":
        return AutoARIMA(season_length=SEASON)
    if name == "mstl":
        return MSTL(season_length=[SEASON], trend_forecaster=AutoETS(model="ZZN"))
    raise ValueError(f"model {name!r} is not one of {', '.join(MODELS)}")


def usage_forecast(y: np.ndarray, h: int, model: str = DEFAULT_MODEL) -> tuple[dict, str]:
    """(arrays mean, lo-80, hi-80, lo-95, hi-95; the model that produced them)."""
    if not np.any(y):
        z = np.zeros(h)
        return {"mean": z, **{f"{s}-{lv}": z for s in ("lo", "hi") for lv in LEVELS}}, "zero"
    if model != "snaive":
        try:
            out = _model(model).forecast(y=y.astype(np.float64), h=h, level=list(LEVELS))
            if all(np.all(np.isfinite(out[k])) for k in ("mean", "lo-80", "hi-80", "lo-95", "hi-95")):
                return out, model
        except Exception:  # noqa: BLE001 - a series the model cannot fit falls back to the seasonal naive
            pass
    return _snaive(y, h), "snaive"


def forecast_arrays(usage: np.ndarray, cal: np.ndarray, start: date, h: int, model: str = DEFAULT_MODEL,
                    scale: tuple[float, float] = (1.0, 1.0)) -> dict:
    """Float arrays of one series' forecast (point, lo80, hi80, lo95, hi95, calendar) and the model used. `scale`
    multiplies the model's 80% and 95% interval half-widths (conformal calibration from the scope's backtest)."""
    y = usage[-TRAIN_DAYS:]
    u, used = usage_forecast(y, h, model)
    cal_f = calendar_projection(cal, start, h)
    floor = 0.0 if np.all(usage >= 0) else -np.inf
    mean = np.asarray(u["mean"], dtype=float)
    out = {"calendar": cal_f, "model": used, "point": np.maximum(mean, floor) + cal_f}
    for level, k in zip(LEVELS, scale):
        lo, hi = np.asarray(u[f"lo-{level}"], dtype=float), np.asarray(u[f"hi-{level}"], dtype=float)
        out[f"half{level}"] = (hi - lo) / 2  # the model's own half-width, before calibration
        out[f"lo{level}"] = np.maximum(mean - (mean - lo) * k, floor) + cal_f
        out[f"hi{level}"] = np.maximum(mean + (hi - mean) * k, floor) + cal_f
    return out


def forecast_series(s: DailySeries, horizon: int, model: str = DEFAULT_MODEL,
                    scale: tuple[float, float] = (1.0, 1.0)) -> Forecast:
    """Forecast `horizon` days after the series' last day; NotEnoughHistory below MIN_DAYS days."""
    n = len(s.usage)
    if n < MIN_DAYS:
        raise NotEnoughHistory(
            f"only {n} day{'s' if n != 1 else ''} of cost data for {s.scope.key()} in {s.currency} "
            f"({s.start} to {s.end}); a forecast needs at least {MIN_DAYS} days")
    if not 1 <= horizon <= MAX_HORIZON_DAYS:
        raise ValueError(f"horizon must be 1 to {MAX_HORIZON_DAYS} days")
    usage = np.array([float(v) for v in s.usage])
    cal = np.array([float(v) for v in s.calendar])
    f = forecast_arrays(usage, cal, s.start, horizon, model, scale)
    return Forecast(
        s.scope, s.currency, s.end + timedelta(days=1),
        *([cents(x) for x in f[k]] for k in ("point", "lo80", "hi80", "lo95", "hi95", "calendar")),
        model=("calendar+" + f["model"]), history_start=s.start, history_end=s.end, floats=f)
