"""Finance views: monthly totals by a dimension (amortized and billed side by side, an unallocated line, a
reconciliation footer per currency), closing a month with a snapshot of its totals, and restatements of closed
months (a re-delivery after the close that moved the totals).

A month is a billing month: lines whose BillingPeriodStart falls in it (the invoice month, what deliveries and
restatements are about), not the charge dates.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone
from decimal import Decimal

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.allocation.compile import ALLOCATION_TABLE
from app.control import ClosedMonth, Delivery, utcnow
from app.costs import QueryError, money_str, require_rates
from app.currency import RateTable
from app.warehouse import COST_TABLE

BY = ("cost_center", "team", "service", "provider", "account")
ALLOCATION_BY = ("cost_center", "team", "service")
METRICS = ("EffectiveCost", "BilledCost")  # amortized, billed
UNALLOCATED = "unallocated"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class ReconciliationError(RuntimeError):
    """The groups did not add up to the warehouse total: a bug, never a client error."""


class MonthClosed(Exception):
    pass


def parse_month(parameter: str, value: str) -> tuple[datetime, datetime]:
    m = _MONTH.match(value or "")
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1:
        raise QueryError(parameter, f"{value!r} is not a month (YYYY-MM)")
    y, mo = int(m.group(1)), int(m.group(2))
    start = datetime(y, mo, 1, tzinfo=timezone.utc)
    if y == 9999 and mo == 12:
        raise QueryError(parameter, f"{value!r} is out of range")
    end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def _dec(v) -> Decimal:
    return Decimal(0) if v is None else Decimal(v)


def warehouse_totals(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                     rollup: bool = False) -> dict[str, dict]:
    """Per currency: BilledCost, EffectiveCost and the line count of the month, from the lines (or from the
    allocation rollup, which app.rollups.refresh proved equal to the lines when it built the period)."""
    if rollup:
        from app.rollups import NARROW_TABLE

        rows = con.execute(
            f'SELECT BillingCurrency, sum("BilledCost"), sum("EffectiveCost") FROM {NARROW_TABLE} '
            "WHERE BillingPeriodStart >= ? AND BillingPeriodStart < ? GROUP BY 1 ORDER BY 1", [start, end]).fetchall()
        return {cur: {"BilledCost": _dec(b), "EffectiveCost": _dec(e)} for cur, b, e in rows}
    rows = con.execute(
        f'SELECT BillingCurrency, sum("BilledCost"), sum("EffectiveCost"), count(*) FROM {COST_TABLE} '
        "WHERE BillingPeriodStart >= ? AND BillingPeriodStart < ? GROUP BY 1 ORDER BY 1", [start, end]).fetchall()
    return {cur: {"BilledCost": _dec(b), "EffectiveCost": _dec(e), "lines": n} for cur, b, e, n in rows}


def _groups(con: duckdb.DuckDBPyConnection, by: str, start: datetime, end: datetime,
            rollup: bool = False) -> list[tuple]:
    """(group, label, currency, BilledCost, EffectiveCost); group None = the unallocated line."""
    window = "BillingPeriodStart >= ? AND BillingPeriodStart < ?"
    if rollup:
        from app.rollups import NARROW_TABLE

        if by == "provider":
            return con.execute(f'SELECT ProviderName, ProviderName, BillingCurrency, sum("BilledCost"), '
                               f'sum("EffectiveCost") FROM {NARROW_TABLE} WHERE {window} GROUP BY 1, 3',
                               [start, end]).fetchall()
        unalloc = f" OR {by} = '{UNALLOCATED}'" if by == "team" else ""
        return [(g, g, cur, b, e) for g, cur, b, e in con.execute(
            f"SELECT CASE WHEN NOT allocated OR {by} IS NULL{unalloc} THEN NULL ELSE {by} END AS g, "
            f'BillingCurrency, sum("BilledCost"), sum("EffectiveCost") FROM {NARROW_TABLE} WHERE {window} '
            "GROUP BY 1, 2", [start, end]).fetchall()]
    if by in ALLOCATION_BY:
        unalloc = f" OR {by} = '{UNALLOCATED}'" if by == "team" else ""
        parts = con.execute(
            f'SELECT CASE WHEN {by} IS NULL{unalloc} THEN NULL ELSE {by} END AS g, BillingCurrency, '
            f'sum("BilledCost"), sum("EffectiveCost") FROM {ALLOCATION_TABLE} WHERE {window} GROUP BY 1, 2',
            [start, end]).fetchall()
        # Lines of a period that awaits allocation have no parts yet: they are unallocated too.
        pending = con.execute(
            f'SELECT NULL, BillingCurrency, sum("BilledCost"), sum("EffectiveCost") FROM {COST_TABLE} c '
            f"WHERE {window} AND NOT EXISTS (SELECT 1 FROM {ALLOCATION_TABLE} a WHERE a.x_LineId = c.x_LineId) "
            "GROUP BY 2", [start, end]).fetchall()
        return [(g, g, cur, b, e) for g, cur, b, e in parts + pending]
    column, label = {"provider": ("ProviderName", "ProviderName"), "account": ("SubAccountId", "SubAccountName")}[by]
    return con.execute(
        f'SELECT "{column}", max("{label}"), BillingCurrency, sum("BilledCost"), sum("EffectiveCost") '
        f"FROM {COST_TABLE} WHERE {window} GROUP BY 1, 3", [start, end]).fetchall()


def monthly_totals(con: duckdb.DuckDBPyConnection, session: Session, month: str, by: str,
                   metrics: tuple[str, ...] = METRICS, rollups: bool | None = None) -> dict:
    """rollups: None = read the allocation rollup when current and it holds `by` (team, cost_center, provider),
    else the lines and parts; True/False force a path (tests compare them)."""
    return with_close_state(session, month, month_figures(con, month, by, metrics, rollups))


def with_close_state(session: Session, month: str, figures: tuple[dict, dict]) -> dict:
    """The document of month_figures with the month's close and restatement (control database) filled in; the
    figures are not changed (the API keeps them in its read cache)."""
    doc, totals = figures
    out = dict(doc)
    closed = session.get(ClosedMonth, month)
    if closed is not None:
        out["closed"] = closed_view(closed)
        out["restatement"] = restatement(session, closed, totals, parse_month("month", month)[0])
    return out


def month_figures(con: duckdb.DuckDBPyConnection, month: str, by: str, metrics: tuple[str, ...] = METRICS,
                  rollups: bool | None = None) -> tuple[dict, dict]:
    """What monthly_totals reads from the warehouse: the document without close state, and the warehouse totals
    per currency (for the restatement)."""
    if by not in BY:
        raise QueryError("by", f"{by!r} is not one of {', '.join(BY)}")
    start, end = parse_month("month", month)
    if rollups is None:
        from app.rollups import fresh

        rollups = by in ("team", "cost_center", "provider") and fresh(con)
    merged: dict[tuple, dict] = {}
    for g, label, cur, billed, effective in _groups(con, by, start, end, rollups):
        unallocated = g is None and by in ALLOCATION_BY
        row = merged.setdefault((g, cur), {"group": UNALLOCATED if unallocated else g, "label": label,
                                           "unallocated": unallocated, "currency": cur,
                                           "BilledCost": Decimal(0), "EffectiveCost": Decimal(0)})
        row["BilledCost"] += _dec(billed)
        row["EffectiveCost"] += _dec(effective)
    rows = sorted(merged.values(), key=lambda r: (r["currency"], r["unallocated"], -r["EffectiveCost"],
                                                  r["group"] or ""))
    totals = warehouse_totals(con, start, end, rollups)
    footer = []
    for cur in sorted(set(totals) | {r["currency"] for r in rows}):
        sums = {m: sum((r[m] for r in rows if r["currency"] == cur), Decimal(0)) for m in METRICS}
        wh = totals.get(cur, {"BilledCost": Decimal(0), "EffectiveCost": Decimal(0), "lines": 0})
        if any(sums[m] != wh[m] for m in METRICS):
            raise ReconciliationError(f"{month} by {by}, {cur}: groups {sums} != warehouse {wh}")
        footer.append({"currency": cur,
                       **{m: {"groups": money_str(sums[m]), "warehouse": money_str(wh[m])} for m in metrics},
                       "reconciled": True})
    out = {
        "month": month, "by": by, "metrics": list(metrics),
        "rows": [{"group": r["group"], **({"label": r["label"]} if by == "account" else {}),
                  "unallocated": r["unallocated"], "currency": r["currency"],
                  **{m: money_str(r[m]) for m in metrics}} for r in rows],
        "reconciliation": footer,
        "closed": None, "restatement": None,
        "source": "rollups" if rollups else "lines",
    }
    return out, totals


def in_currency(doc: dict, totals: dict[str, dict], rates: RateTable) -> dict:
    """The month_figures document in `rates.target`: each row converted with finance's rate for the month and rows
    equal but for their billing currency merged; the reconciliation converted (the per-currency one kept under
    `billing_currencies`, where `reconciled` is checked exactly; `rounding_difference`: the converted groups minus
    the converted warehouse total, a few units of 1e-18 when rows carry 18 decimal places); the
    rates used under `conversion`. QueryError("currency") names every missing rate."""
    month, metrics, target = doc["month"], doc["metrics"], rates.target
    currencies = {r["currency"] for r in doc["rows"]} | set(totals)
    require_rates(rates, currencies, month)
    merged: dict[tuple, dict] = {}
    for r in doc["rows"]:
        key = (r["group"], r["unallocated"])  # an account's name may differ between currencies: the first one
        row = merged.setdefault(key, {**r, "currency": target, **{m: Decimal(0) for m in metrics}})
        for m in metrics:
            row[m] += rates.convert(Decimal(r[m]), r["currency"], month)
    rows = sorted(merged.values(), key=lambda r: (r["unallocated"], -r[metrics[0]], r["group"] or ""))
    sums = {m: sum((r[m] for r in rows), Decimal(0)) for m in metrics}
    wh = {m: sum((rates.convert(t[m], c, month) for c, t in totals.items()), Decimal(0)) for m in metrics}
    footer = [{"currency": target, **{m: {"groups": money_str(sums[m]), "warehouse": money_str(wh[m])} for m in metrics},
               "rounding_difference": {m: money_str(sums[m] - wh[m]) for m in metrics}, "reconciled": True,
               "billing_currencies": doc["reconciliation"]}]
    return {**doc, "rows": [{**r, **{m: money_str(r[m]) for m in metrics}} for r in rows], "reconciliation": footer,
            "conversion": {"currency": target, "rates": rates.used((c, month) for c in currencies)}}


def closed_view(c: ClosedMonth) -> dict:
    return {"month": c.month, "closed_at": c.closed_at.isoformat().replace("+00:00", "Z"), "closed_by": c.closed_by,
            "note": c.note, "totals": c.snapshot.get("totals", [])}


def restatement(session: Session, closed: ClosedMonth, totals: dict[str, dict], start: datetime) -> dict:
    """Current totals vs the close snapshot per currency, and the deliveries loaded since the close."""
    snap = {t["currency"]: t for t in closed.snapshot.get("totals", [])}
    deltas = []
    for cur in sorted(set(snap) | set(totals)):
        now = totals.get(cur, {"BilledCost": Decimal(0), "EffectiveCost": Decimal(0)})
        then = snap.get(cur, {"BilledCost": "0", "EffectiveCost": "0"})
        d = {m: now[m] - Decimal(then[m]) for m in METRICS}
        if any(d.values()):
            deltas.append({"currency": cur, **{f"{m}_delta": money_str(d[m]) for m in METRICS}})
    return {"restated": bool(deltas), "deltas": deltas,
            "deliveries": [delivery_restatement(session, d, closed)
                           for d in _deliveries_since(session, start, closed.closed_at)]}


def _deliveries_since(session: Session, start: datetime, since: datetime) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(
        Delivery.billing_period_start == start, Delivery.status.in_(("loaded", "replaced")),
        Delivery.started_at > since).order_by(Delivery.started_at)))


def delivery_restatement(session: Session, d: Delivery, closed: ClosedMonth | None = None) -> dict | None:
    """For the ledger: a delivery of a closed month loaded after the close is a restatement; its delta is how far it
    moved the source's landed totals vs the delivery it replaced (app.quality.delivery_delta)."""
    from app.quality import delivery_delta

    if d.billing_period_start is None or d.status not in ("loaded", "replaced"):
        return None
    month = f"{d.billing_period_start:%Y-%m}"
    closed = closed or session.get(ClosedMonth, month)
    if closed is None or d.started_at <= closed.closed_at:
        return None
    delta = delivery_delta(session, d)
    billed, effective = (delta[1], delta[2]) if delta else (_dec(d.landed_billed_cost), _dec(d.landed_effective_cost))
    return {"delivery": d.id, "month": month, "closed_at": closed.closed_at.isoformat().replace("+00:00", "Z"),
            "previous_delivery": delta[0].id if delta else None,
            "BilledCost_delta": money_str(billed), "EffectiveCost_delta": money_str(effective),
            "changed": bool(billed or effective)}


def close_month(con: duckdb.DuckDBPyConnection, session: Session, month: str, closed_by: str | None,
                note: str | None = None) -> dict:
    """Record the month as closed with its totals per currency; MonthClosed if it already is."""
    start, end = parse_month("month", month)
    if session.get(ClosedMonth, month) is not None:
        raise MonthClosed(f"{month} is closed already")
    totals = warehouse_totals(con, start, end)
    if not totals:
        raise QueryError("month", f"no cost lines with a billing period in {month}")
    loaded = [d for (d,) in session.execute(select(Delivery.id).where(
        Delivery.billing_period_start == start, Delivery.status == "loaded"))]
    row = ClosedMonth(month=month, closed_at=utcnow(), closed_by=closed_by, note=note, snapshot={
        "totals": [{"currency": cur, "BilledCost": money_str(t["BilledCost"]),
                    "EffectiveCost": money_str(t["EffectiveCost"]), "lines": t["lines"]}
                   for cur, t in sorted(totals.items())],
        "deliveries": loaded})
    session.add(row)
    session.commit()
    return closed_view(row)


def list_closed(session: Session, limit: int, offset: int) -> tuple[int, list[dict]]:
    from sqlalchemy import func

    total = session.scalar(select(func.count()).select_from(ClosedMonth))
    rows = session.scalars(select(ClosedMonth).order_by(ClosedMonth.month.desc()).limit(limit).offset(offset))
    return total, [closed_view(c) for c in rows]


def to_csv(doc: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["month", "by", "group", "unallocated", "currency", *doc["metrics"]])
    for r in doc["rows"]:
        w.writerow([doc["month"], doc["by"], r["group"] or "", str(r["unallocated"]).lower(), r["currency"],
                    *(r[m] for m in doc["metrics"])])
    for f in doc["reconciliation"]:
        w.writerow([doc["month"], doc["by"], "TOTAL (warehouse)", "", f["currency"],
                    *(f[m]["warehouse"] for m in doc["metrics"])])
    return buf.getvalue()
