"""Daily rollups of the cost lines by the dimensions the API groups on (warehouse migration 0005).

`refresh` rebuilds only the billing periods whose allocation stamp (allocation_periods.allocated_at, which every
ingest and every rule change that touches a period renews) differs from the one the rollup was built from, drops
periods that have no lines any more, and records the warehouse data version it is current for. It runs as the
`rollups` after-ingest step of every ingest run (app.runs) and after every rule apply (API, CLI, demo).

`fresh` says whether the rollups match the warehouse right now; app.costs reads them only then, and only for a
query whose dimensions and filters they cover (COVERED), so a stale or partial rollup can never change an answer:
the line table answers instead.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import duckdb

from app.allocation.compile import ALLOCATION_TABLE
from app.warehouse import COST_TABLE

log = logging.getLogger(__name__)

ROLLUP_TABLE = "cost_rollup_daily"
NARROW_TABLE = "cost_rollup_alloc_daily"
FOCUS_DIMENSIONS = ("ProviderName", "ServiceName", "SubAccountId", "RegionId", "ChargeCategory", "BillingCurrency")
ALLOCATION_DIMENSIONS = ("team", "cost_center")
COVERED = frozenset(FOCUS_DIMENSIONS + ALLOCATION_DIMENSIONS)
NARROW = frozenset(("ProviderName", "BillingCurrency") + ALLOCATION_DIMENSIONS)


class RollupMismatch(RuntimeError):
    """A rebuilt period's rollup does not sum to its lines (a bug): the refresh is rolled back."""


def table_for(keys) -> str | None:
    """The smallest rollup holding every key, or None."""
    keys = set(keys)
    if keys <= NARROW:
        return NARROW_TABLE
    if keys <= COVERED:
        return ROLLUP_TABLE
    return None
METRICS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")


def fresh(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the rollups were built at the warehouse's current data version and every billing period's
    allocation stamp is the one they were built from (a period never allocated was built from its lines: stamp
    NULL)."""
    try:
        current, stale = con.execute(
            "SELECT (SELECT data_version FROM rollup_state) = (SELECT data_version FROM warehouse_state), "
            "(SELECT count(*) FROM allocation_periods ap FULL JOIN rollup_periods rp "
            " ON ap.BillingPeriodStart = rp.BillingPeriodStart "
            " WHERE NOT coalesce((ap.BillingPeriodStart IS NOT NULL AND rp.BillingPeriodStart IS NOT NULL "
            "                     AND ap.allocated_at = rp.allocated_at) "
            "                    OR (ap.BillingPeriodStart IS NULL AND rp.allocated_at IS NULL), false))"
        ).fetchone()
    except duckdb.CatalogException:
        return False
    return bool(current) and stale == 0


def _insert_sql() -> str:
    dims = ", ".join(f'c."{d}"' for d in FOCUS_DIMENSIONS)
    metrics = ", ".join(f'sum(CASE WHEN a.x_LineId IS NULL THEN c."{m}" ELSE a."{m}" END)' for m in METRICS)
    return (
        f"INSERT INTO {ROLLUP_TABLE} SELECT c.BillingPeriodStart, date_trunc('day', c.ChargePeriodStart), "
        f"CAST(date_trunc('day', c.ChargePeriodStart) AS DATE), {dims}, "
        f"a.x_LineId IS NOT NULL, a.team, a.cost_center, {metrics}, count(*) "
        f"FROM {COST_TABLE} c LEFT JOIN {ALLOCATION_TABLE} a ON a.x_LineId = c.x_LineId "
        f"AND a.BillingPeriodStart = c.BillingPeriodStart WHERE c.BillingPeriodStart = ? "
        f"GROUP BY ALL"
    )


def refresh(con: duckdb.DuckDBPyConnection) -> dict:
    """Rebuild the stale billing periods (in one transaction); returns what it did."""
    t0 = time.monotonic()
    stamps = dict(con.execute("SELECT BillingPeriodStart, allocated_at FROM allocation_periods").fetchall())
    built = dict(con.execute("SELECT BillingPeriodStart, allocated_at FROM rollup_periods").fetchall())
    (version,) = con.execute("SELECT data_version FROM warehouse_state").fetchone()
    (built_version,) = con.execute("SELECT data_version FROM rollup_state").fetchone()
    with_lines = {p for (p,) in con.execute(f"SELECT DISTINCT BillingPeriodStart FROM {COST_TABLE}").fetchall()}
    todo = sorted(p for p in with_lines if p not in built or built[p] != stamps.get(p)
                  or (stamps.get(p) is None and built_version != version))
    gone = sorted(p for p in built if p not in with_lines)
    now = datetime.now(timezone.utc)
    con.begin()
    try:
        for p in todo + gone:
            for table in (ROLLUP_TABLE, NARROW_TABLE):
                con.execute(f"DELETE FROM {table} WHERE BillingPeriodStart = ?", [p])
            con.execute("DELETE FROM rollup_periods WHERE BillingPeriodStart = ?", [p])
        sql = _insert_sql()
        sums = ", ".join(f'sum("{m}")' for m in METRICS)
        for p in todo:
            con.execute(sql, [p])
            con.execute(f"INSERT INTO {NARROW_TABLE} SELECT BillingPeriodStart, ChargePeriodStart, day, ProviderName, "
                        f"BillingCurrency, allocated, team, cost_center, {sums}, sum(n) FROM {ROLLUP_TABLE} "
                        f"WHERE BillingPeriodStart = ? GROUP BY ALL", [p])
            # Both rollups must sum to the period's lines, per currency and metric, exactly.
            check = [con.execute(f"SELECT BillingCurrency, {sums} FROM {t} WHERE BillingPeriodStart = ? "
                                 f"GROUP BY 1 ORDER BY 1", [p]).fetchall()
                     for t in (COST_TABLE, ROLLUP_TABLE, NARROW_TABLE)]
            if not check[0] == check[1] == check[2]:
                raise RollupMismatch(f"rollup of {p:%Y-%m} does not sum to its lines: {check}")
            con.execute("INSERT INTO rollup_periods VALUES (?, ?, ?)", [p, stamps.get(p), now])
        con.execute("UPDATE rollup_state SET data_version = ?", [version])
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return {"periods": [f"{p:%Y-%m}" for p in todo], "dropped": [f"{p:%Y-%m}" for p in gone],
            "ms": int((time.monotonic() - t0) * 1000)}


def refresh_rt(rt) -> dict:
    with rt.warehouse.connect() as con:
        return refresh(con)


def after_ingest(rt, source: str, periods: list) -> dict:
    """The `rollups` after-ingest step of app.runs."""
    done = refresh_rt(rt)
    return {"periods": done["periods"], "dropped": done["dropped"]}
