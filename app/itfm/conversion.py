"""A scope's daily series in one currency: the series of each billing currency, converted with finance's monthly
exchange rates (app.currency) into the currency of a budget that asks for it (`convert_currencies`).

Each day's amount in another currency is multiplied by the rate of its month and rounded half-up to 18 decimal
places (RateTable.convert, as the cost query converts). A day whose month has no rate is not converted and not
counted: its amount is kept aside per currency and day, so a budget status can say what it left out and why, and
the forecast learns only from the days after the last one left out (never from a history with holes in it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, localcontext

from app import MONEY_PRECISION
from app.currency import RateTable
from app.itfm.actuals import DailySeries

ZERO = Decimal(0)


@dataclass
class ConvertedSeries:
    """`series` in the target currency (None: the scope had no cost in any currency); `left_out` the amounts not
    converted for want of a rate, {currency: {day: amount in that currency}}; `used` the rates applied,
    {(currency, month): (rate, source)}."""

    target: str
    series: DailySeries | None
    left_out: dict[str, dict[date, Decimal]] = field(default_factory=dict)
    used: dict[tuple[str, str], tuple[Decimal, str | None]] = field(default_factory=dict)

    def forecast_history(self) -> DailySeries | None:
        """The series from the day after the last day left out (the whole series when nothing was)."""
        s = self.series
        if s is None or not self.left_out:
            return s
        last_gap = max(d for days in self.left_out.values() for d in days)
        n = (last_gap - s.start).days + 1
        if n >= len(s.usage):
            return None
        return DailySeries(s.scope, s.currency, last_gap + timedelta(days=1), s.usage[n:], s.calendar[n:])

    def rates_in(self, start: date, end: date) -> list[dict]:
        """The rates used for days in [start, end): [{currency, month, rate, source}]."""
        months, d = set(), date(start.year, start.month, 1)
        while d < end:
            months.add(f"{d.year:04d}-{d.month:02d}")
            d = (d + timedelta(days=32)).replace(day=1)
        return [{"currency": cur, "month": month, "rate": rate, "source": source}
                for (cur, month), (rate, source) in sorted(self.used.items()) if month in months]


def convert_series(by_currency: dict[str, DailySeries], rates: RateTable) -> ConvertedSeries:
    """One series in `rates.target` from the series of one scope in each billing currency (all ending on the same
    day, as actuals.daily_series builds them)."""
    target = rates.target
    out = ConvertedSeries(target, None)
    if not by_currency:
        return out
    first = min(s.start for s in by_currency.values())
    last = max(s.end for s in by_currency.values())
    n = (last - first).days + 1
    usage, calendar = [ZERO] * n, [ZERO] * n
    scope = next(iter(by_currency.values())).scope
    with localcontext(prec=MONEY_PRECISION):
        for cur, s in sorted(by_currency.items()):
            offset = (s.start - first).days
            for i, (u, c) in enumerate(zip(s.usage, s.calendar)):
                if cur != target:
                    day = s.day(i)
                    month = f"{day.year:04d}-{day.month:02d}"
                    found = rates.rates.get((cur, month))
                    if found is None:
                        if u or c:
                            out.left_out.setdefault(cur, {})[day] = u + c
                        continue
                    if not (u or c):
                        continue
                    out.used[(cur, month)] = found
                    u, c = rates.convert(u, cur, month), rates.convert(c, cur, month)
                usage[offset + i] += u
                calendar[offset + i] += c
    out.series = DailySeries(scope, target, first, usage, calendar)
    return out


def left_out_in(left_out: dict[str, dict[date, Decimal]], start: date, end: date, reason) -> list[dict]:
    """The amounts of `left_out` on days in [start, end) per currency: [{currency, amount, months, reason}], where
    reason(currency, months) says why they were not counted."""
    out = []
    for cur, days in sorted(left_out.items()):
        inside = {d: a for d, a in days.items() if start <= d < end}
        if not inside:
            continue
        months = sorted({f"{d.year:04d}-{d.month:02d}" for d in inside})
        out.append({"currency": cur, "amount": sum(inside.values(), ZERO), "months": months,
                    "reason": reason(cur, months)})
    return out
