"""Daily actuals per scope, from the warehouse, in one SQL statement for any number of scopes.

A scope is any combination of `team`, `service`, `cost_center` (allocation dimensions, from the allocation parts),
`provider` (ProviderName) and `account` (SubAccountId); a dimension left out matches everything. `service` is the
allocation's service where a rule set one, else the line's FOCUS ServiceName. Lines of a period still awaiting
allocation count with their whole amount (no team) like in the rollups, so the unscoped series is the warehouse.

Each day's cost is split into a **calendar** part (lines that are not usage: ChargeCategory other than Usage, or a
ChargeFrequency other than Usage-Based: commitment and support fees, tax, credits, refunds, purchases) and a
**usage** part. The forecast treats the first as a deterministic schedule and models only the second.
Days are UTC days of ChargePeriodStart (the warehouse connection runs in UTC).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import duckdb

from app.allocation.compile import ALLOCATION_TABLE
from app.warehouse import COST_TABLE

DIMS = ("team", "service", "cost_center", "provider", "account")
METRICS = ("EffectiveCost", "BilledCost")
ZERO = Decimal(0)


@dataclass(frozen=True)
class ScopeDims:
    """What a budget or forecast covers; None = any value of that dimension."""

    team: str | None = None
    service: str | None = None
    cost_center: str | None = None
    provider: str | None = None
    account: str | None = None

    @classmethod
    def of(cls, obj) -> ScopeDims:
        get = obj.get if isinstance(obj, dict) else (lambda k: getattr(obj, k, None))
        return cls(**{d: (get(d) or None) for d in DIMS})

    def dims(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def key(self) -> str:
        """A canonical text key: `team=payments;provider=AWS`, or `all`."""
        return ";".join(f"{d}={v}" for d, v in self.dims().items() if v is not None) or "all"


@dataclass
class DailySeries:
    """Daily cost of one scope in one currency, from `start` (the scope's first day with cost) to `end` (the last
    day of data in the warehouse), every day present (zeros filled)."""

    scope: ScopeDims
    currency: str
    start: date
    usage: list[Decimal]
    calendar: list[Decimal]

    @property
    def end(self) -> date:
        return self.start + timedelta(days=len(self.usage) - 1)

    @property
    def total(self) -> list[Decimal]:
        return [u + c for u, c in zip(self.usage, self.calendar)]

    def day(self, i: int) -> date:
        return self.start + timedelta(days=i)

    def until(self, end: date) -> DailySeries:
        """The days before `end` (exclusive)."""
        n = max(0, (end - self.start).days)
        return DailySeries(self.scope, self.currency, self.start, self.usage[:n], self.calendar[:n])


def _ts(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def data_end(con: duckdb.DuckDBPyConnection) -> date | None:
    """The last day with any cost line in the warehouse."""
    (last,) = con.execute(f"SELECT max(ChargePeriodStart) FROM {COST_TABLE}").fetchone()
    return None if last is None else last.astimezone(timezone.utc).date()


def _base_sql(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    return (
        "SELECT CAST(date_trunc('day', c.ChargePeriodStart) AS DATE) AS day, c.BillingCurrency AS currency, "
        "a.team AS team, coalesce(a.service, c.ServiceName) AS service, a.cost_center AS cost_center, "
        "c.ProviderName AS provider, c.SubAccountId AS account, "
        "(coalesce(c.ChargeCategory, 'Usage') <> 'Usage' "
        " OR coalesce(c.ChargeFrequency, 'Usage-Based') <> 'Usage-Based') AS calendar, "
        f'sum(CASE WHEN a.x_LineId IS NULL THEN c."{metric}" ELSE a."{metric}" END) AS cost '
        f"FROM {COST_TABLE} c LEFT JOIN {ALLOCATION_TABLE} a ON a.x_LineId = c.x_LineId "
        "AND a.BillingPeriodStart = c.BillingPeriodStart "
        "WHERE c.ChargePeriodStart >= ? AND c.ChargePeriodStart < ? GROUP BY ALL"
    )


def _scopes_sql(scopes: list[ScopeDims], params: list) -> str:
    rows = []
    for i, s in enumerate(scopes):
        rows.append("(" + ", ".join(["?"] + ["CAST(? AS VARCHAR)"] * len(DIMS)) + ")")
        params += [i, *(getattr(s, d) for d in DIMS)]
    return f"scopes(sid, {', '.join(DIMS)}) AS (VALUES {', '.join(rows)})"


def daily_costs(con: duckdb.DuckDBPyConnection, scopes: list[ScopeDims], start: date, end: date,
                metric: str = "EffectiveCost", currency: str | None = None) -> dict[int, dict[str, dict[date, tuple]]]:
    """{scope index: {currency: {day: (usage, calendar)}}} for days in [start, end): one statement for every
    scope (the lines are aggregated once by day and every dimension, then matched against the scopes)."""
    if not scopes:
        return {}
    params: list = []
    scopes_cte = _scopes_sql(scopes, params)
    params += [_ts(start), _ts(end)]
    match = " AND ".join(f"(s.{d} IS NULL OR agg.{d} = s.{d})" for d in DIMS)
    cur = ""
    if currency is not None:
        cur = " WHERE agg.currency = ?"
        params.append(currency)
    sql = (f"WITH {scopes_cte}, agg AS ({_base_sql(metric)}) "
           "SELECT s.sid, agg.currency, agg.day, coalesce(sum(cost) FILTER (WHERE NOT calendar), 0), "
           "coalesce(sum(cost) FILTER (WHERE calendar), 0) "
           f"FROM agg JOIN scopes s ON {match}{cur} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    out: dict[int, dict[str, dict[date, tuple]]] = defaultdict(lambda: defaultdict(dict))
    for sid, cur_, day, usage, calendar in con.execute(sql, params).fetchall():
        out[sid][cur_][day] = (Decimal(usage), Decimal(calendar))
    return out


def daily_series(con: duckdb.DuckDBPyConnection, scopes: list[ScopeDims], metric: str = "EffectiveCost",
                 currency: str | None = None, end: date | None = None,
                 max_days: int = 731) -> dict[tuple[int, str], DailySeries]:
    """{(scope index, currency): DailySeries} ending on the warehouse's last day of data (or the day before `end`),
    each starting at the scope's first day with a non-zero cost within the last `max_days` days."""
    last = data_end(con)
    if last is None:
        return {}
    if end is not None:
        last = min(last, end - timedelta(days=1))
    first = last - timedelta(days=max_days - 1)
    raw = daily_costs(con, scopes, first, last + timedelta(days=1), metric, currency)
    out = {}
    for sid, by_cur in raw.items():
        for cur, days in by_cur.items():
            nonzero = [d for d, (u, c) in days.items() if u or c]
            if not nonzero:
                continue
            start = min(nonzero)
            n = (last - start).days + 1
            usage, calendar = [ZERO] * n, [ZERO] * n
            for d, (u, c) in days.items():
                if d >= start:
                    usage[(d - start).days], calendar[(d - start).days] = u, c
            out[(sid, cur)] = DailySeries(scopes[sid], cur, start, usage, calendar)
    return out
