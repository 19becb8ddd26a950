"""Cost anomaly detection: per monitor (a value of a dimension: ServiceName=BigQuery, SubAccountId=…, team=…,
tag:env=prod), daily EffectiveCost scored against a one-step-ahead seasonal forecast with a robust residual scale.

The model, in DuckDB SQL over a dense daily series per monitor (days without cost are 0), using only days before
the scored day (one step ahead):

    level_t  = median(y[t-28 .. t-1])                       a typical day of the last four weeks
    season_t = median(y[t-7k] / level[t-7k], k = 1..4)       the weekday's factor (1 when the level is 0)
    expected = level_t * season_t
    e_t      = (y_t - expected) / expected                    relative residual
    scale_t  = max(1.4826 * median(|e[t-56 .. t-1]|), 0.02)   robust (MAD) scale of past residuals, 2% floor
    flagged  = e_t / scale_t >= z  AND  y_t - expected >= min_impact  AND  e_t >= min_percent

Medians make the forecast immune to the spikes it is looking for (a 3-day spike moves no median of 28 days);
a level shift or a drift is flagged until the 28-day median has caught up (about two weeks), which is one
episode, not one alert a day: flagged days of a monitor closer than `gap_days` + 1 apart form one episode
(event). Only increases are alerts (a cost drop is good news or a data gap, which data-quality checks cover).
Scoring starts once a monitor has `min_history` days. The statistics run in DOUBLE; the money reported
(actual, expected, impact) is DECIMAL, expected rounded to the cent.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import duckdb

DEFAULT_DIMENSIONS = ("ServiceName", "SubAccountId", "team")
DRILL_DIMENSIONS = ("ServiceName", "SubAccountId", "RegionId", "SkuId", "ResourceId")


@dataclass(frozen=True)
class Params:
    z: float = 4.0  # residual / robust scale
    min_percent: float = 0.20  # relative impact (0.20 = +20 %)
    min_impact: Decimal = Decimal("25")  # absolute impact per day, billing currency
    min_history: int = 28  # days of history before a monitor is scored
    gap_days: int = 7  # flagged days at most this many unflagged days apart are one episode (resolved after)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Params":
        d = d or {}
        return cls(z=float(d.get("z", cls.z)), min_percent=float(d.get("min_percent", cls.min_percent)),
                   min_impact=Decimal(str(d.get("min_impact", cls.min_impact))),
                   min_history=int(d.get("min_history", cls.min_history)),
                   gap_days=int(d.get("gap_days", cls.gap_days)))


SERIES_DDL = "CREATE OR REPLACE TEMP TABLE anomaly_series (monitor VARCHAR, currency VARCHAR, day DATE, " \
             "cost DECIMAL(38,10))"


def score_sql(p: Params) -> str:
    """Scores every (monitor, currency, day) of the temp table anomaly_series into anomaly_scores."""
    return f"""
CREATE OR REPLACE TEMP TABLE anomaly_scores AS
WITH bounds AS (
    SELECT monitor, currency, min(day) AS first, max(day) AS last FROM anomaly_series GROUP BY ALL
), dense AS (
    SELECT b.monitor, b.currency, CAST(g.d AS DATE) AS day, coalesce(s.cost, 0)::DECIMAL(38,10) AS cost,
           datediff('day', b.first, CAST(g.d AS DATE)) AS age
    FROM bounds b, LATERAL generate_series(b.first::TIMESTAMP, b.last::TIMESTAMP, INTERVAL 1 DAY) AS g(d)
    LEFT JOIN (SELECT monitor, currency, day, sum(cost) AS cost FROM anomaly_series GROUP BY ALL) s
      ON s.monitor = b.monitor AND s.currency = b.currency AND s.day = CAST(g.d AS DATE)
), local AS (
    SELECT *, cost::DOUBLE AS y,
           median(cost::DOUBLE) OVER (PARTITION BY monitor, currency ORDER BY day
                                      ROWS BETWEEN 3 PRECEDING AND 3 FOLLOWING) AS around
    FROM dense
), ratio AS (
    SELECT *, CASE WHEN around > 0 THEN y / around END AS r FROM local
), season AS (
    -- the weekday's factor from the four previous same weekdays; each ratio r[t-7k] looks at most 3 days past
    -- t-7k, so the forecast of day t only uses days before t
    SELECT *, coalesce(median(r) OVER (PARTITION BY monitor, currency, dayofweek(day) ORDER BY day
                                       ROWS BETWEEN 4 PRECEDING AND 1 PRECEDING), 1.0) AS s
    FROM ratio
), deseason AS (
    SELECT *, CASE WHEN s > 0 THEN y / s END AS d FROM season
), fc AS (
    SELECT *, s * median(d) OVER (PARTITION BY monitor, currency ORDER BY day
                                  ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING) AS expected_f
    FROM deseason
), resid AS (
    SELECT *, CASE WHEN expected_f > 0 THEN (y - expected_f) / expected_f END AS e FROM fc
), scaled AS (
    SELECT *, greatest(1.4826 * median(abs(e)) OVER (PARTITION BY monitor, currency ORDER BY day
                                                     ROWS BETWEEN 56 PRECEDING AND 1 PRECEDING), 0.02) AS scale
    FROM resid
)
SELECT monitor, currency, day, cost AS actual,
       round(expected_f, 2)::DECIMAL(38,2) AS expected,
       cost - round(expected_f, 2)::DECIMAL(38,2) AS impact,
       e AS percent, scale, e / scale AS z,
       (age >= {int(p.min_history)} AND expected_f > 0 AND e / scale >= {float(p.z)}
        AND e >= {float(p.min_percent)}
        AND cost - round(expected_f, 2)::DECIMAL(38,2) >= {Decimal(p.min_impact)}) AS flagged
FROM scaled
"""


def episodes_sql(p: Params) -> str:
    """Flagged days grouped into episodes per monitor: anomaly_episodes (monitor, currency, episode, first_day,
    last_day, days, actual, expected, impact, peak_day, peak_percent)."""
    return f"""
CREATE OR REPLACE TEMP TABLE anomaly_episodes AS
WITH f AS (
    SELECT *, CASE WHEN datediff('day', lag(day) OVER w, day) <= {int(p.gap_days) + 1} THEN 0 ELSE 1 END AS start
    FROM anomaly_scores WHERE flagged
    WINDOW w AS (PARTITION BY monitor, currency ORDER BY day)
), g AS (
    SELECT *, sum(start) OVER (PARTITION BY monitor, currency ORDER BY day) AS episode FROM f
)
SELECT monitor, currency, episode, min(day) AS first_day, max(day) AS last_day, count(*) AS days,
       sum(actual) AS actual, sum(expected) AS expected, sum(impact) AS impact,
       arg_max(day, percent) AS peak_day, max(percent) AS peak_percent
FROM g GROUP BY monitor, currency, episode
"""


def detect(con: duckdb.DuckDBPyConnection, p: Params) -> None:
    """Score anomaly_series (fill it first: SERIES_DDL) into anomaly_scores and anomaly_episodes."""
    con.execute(score_sql(p))
    con.execute(episodes_sql(p))


# -- from the warehouse -------------------------------------------------------------------------------------------
USAGE = ("Usage",)  # what is scored: usage (with its amortized commitments); not purchases, taxes, credits


def load_series(rt, mem: duckdb.DuckDBPyConnection, dimensions, start: date, end: date,
                charge_categories=USAGE) -> int:
    """Daily EffectiveCost of the charge categories (default: Usage) per monitor (`<dimension>=<value>`) in
    [start, end) through the cost query layer (rollups when current), into mem's anomaly_series. Purchases, taxes
    and credits are left out: they are monthly or one-off lumps (an RI fee or the tax on the 1st) that a daily
    forecast would call anomalies every month. Returns the number of rows."""
    from app.costs import parse_query, run_query

    mem.execute(SERIES_DDL)
    rows = []
    with rt.warehouse.connect(read_only=True) as con:
        for dim in dimensions:
            q = parse_query(start=start.isoformat(), end=end.isoformat(), granularity="day", group_by=[dim],
                            filters=[f"ChargeCategory={c}" for c in charge_categories], metric="EffectiveCost",
                            limit=1_000_000)
            key = q.group_by[0]
            for r in run_query(con, q).rows:
                if r[key] is None or r[key] == "":
                    continue
                rows.append((f"{key}={r[key]}", r["currency"], r["period"], r["cost"]))
    if rows:
        mem.executemany("INSERT INTO anomaly_series VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def drilldown(rt, monitor: str, currency: str, first_day: date, last_day: date, expected_start: date,
              top: int = 3) -> dict[str, list[dict]]:
    """Top contributors of an episode: per drill dimension (service, account, region, SKU, resource), the values
    whose daily cost rose most in [first_day, last_day] vs their daily average over the 28 days before
    `expected_start` (the baseline the forecast used)."""
    from app.costs import parse_query, run_query

    key, _, value = monitor.partition("=")
    days = (last_day - first_day).days + 1
    out: dict[str, list[dict]] = {}
    with rt.warehouse.connect(read_only=True) as con:
        for dim in DRILL_DIMENSIONS:
            if dim == key:
                continue
            now_q = parse_query(start=first_day.isoformat(), end=(last_day + timedelta(days=1)).isoformat(),
                                granularity="month", group_by=[dim],
                                filters=[f"{key}={value}", *(f"ChargeCategory={c}" for c in USAGE)],
                                metric="EffectiveCost")
            base_q = parse_query(start=(expected_start - timedelta(days=28)).isoformat(),
                                 end=expected_start.isoformat(), granularity="month", group_by=[dim],
                                 filters=[f"{key}={value}", *(f"ChargeCategory={c}" for c in USAGE)],
                                 metric="EffectiveCost")
            cur: dict[str, Decimal] = {}
            base: dict[str, Decimal] = {}
            for r in run_query(con, now_q).rows:
                if r["currency"] == currency:
                    cur[r[dim] or ""] = cur.get(r[dim] or "", Decimal(0)) + r["cost"]
            for r in run_query(con, base_q).rows:
                if r["currency"] == currency:
                    base[r[dim] or ""] = base.get(r[dim] or "", Decimal(0)) + r["cost"]
            deltas = []
            for v in set(cur) | set(base):
                per_day_base = base.get(v, Decimal(0)) / 28
                delta = cur.get(v, Decimal(0)) - per_day_base * days
                deltas.append((delta, v, cur.get(v, Decimal(0)), per_day_base * days))
            deltas.sort(key=lambda t: (-t[0], t[1]))
            out[dim] = [{"value": v or None, "actual": str(a.quantize(Decimal("0.01"))),
                         "expected": str(b.quantize(Decimal("0.01"))), "impact": str(d.quantize(Decimal("0.01")))}
                        for d, v, a, b in deltas[:top] if d > 0]
    return out
