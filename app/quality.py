"""Data-quality checks per source and billing period, stored in the control database (`quality_checks`, the latest
result per source, period and check) and raising alert events (`alert_events`) when a check fails.

| check        | scope            | fails when                                                                          |
|--------------|------------------|-------------------------------------------------------------------------------------|
| freshness    | source           | no delivery loaded for longer than the source's expected cadence (below)            |
| completeness | closed period    | a day of the billing period has no row with that ChargePeriodStart day              |
| duplicates   | current delivery | a line identity (DUPLICATE_IDENTITY, per provider) occurs twice in the delivery     |
| schema_drift | current delivery | its raw files' columns differ from those of the source's previous delivery          |
| restatement  | current delivery | a closed period's BilledCost or EffectiveCost moved vs the delivery it replaced,    |
|              |                  | by more than the source option `restatement_tolerance` (default 0)                  |

Expected cadence (freshness): the source option `freshness_hours`, else twice the longest gap between two fires
of its cron schedule, at least 24 hours (providers deliver a few times a day at most); 48 hours without a schedule.

An alert event is raised when a check fails and its previous result was not the same failure (same message), so a
standing failure is reported once, not on every run. The alerts module delivers the events (sets delivered_at).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.control import AlertEvent, Delivery, QualityCheck, Source, utcnow

log = logging.getLogger(__name__)

CHECKS = ("freshness", "completeness", "duplicates", "schema_drift", "restatement")
STATUSES = ("passed", "failed", "skipped")
COST_TABLE = "cost_and_usage"

# What makes two warehouse rows "the same line", per provider: the charge's time, account, resource, SKU/price,
# category, commitment, quantities and amounts (and provider columns that split lines). The warehouse keeps no
# provider line id (AWS identity_line_item_id, ...), so an exact repeat of all of these is a duplicate line.
_COMMON = ("ChargePeriodStart", "ChargePeriodEnd", "BillingAccountId", "SubAccountId", "ChargeCategory",
           "ChargeClass", "ChargeDescription", "ResourceId", "SkuId", "SkuPriceId", "PricingCategory",
           "CommitmentDiscountId", "CommitmentDiscountStatus", "ConsumedQuantity", "PricingQuantity", "BilledCost",
           "EffectiveCost", "ListCost", "BillingCurrency", "ServiceName", "RegionId", "Tags")
DUPLICATE_IDENTITY: dict[str, tuple[str, ...]] = {
    "aws": _COMMON + ("AvailabilityZone",),
    "azure": _COMMON + ("x_ResourceGroupName", "x_SkuMeterCategory", "x_InvoiceSectionName"),
    "gcp": _COMMON,
    "focus": _COMMON + ("ProviderName", "x_ResourceGroupName", "x_SkuMeterCategory", "x_InvoiceSectionName"),
}


# -- column lists of raw files (recorded per delivery at ingest) -------------------------------------------------
def file_columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[str] | None:
    """The top-level column names of a raw data file (Parquet, CSV/gzip CSV, JSON lines); None if unreadable."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        name = path.name.lower()
        if head == b"PAR1":
            reader = "read_parquet(?)"
        elif ".json" in name or ".ndjson" in name:
            reader = "read_json_auto(?)"
        else:
            reader = "read_csv(?, header = true, all_varchar = true)"
        return sorted(r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}", [str(path)]).fetchall())
    except (OSError, duckdb.Error) as exc:
        log.info("cannot read the columns of %s: %s", path, exc)
        return None


# -- the checks ------------------------------------------------------------------------------------------------
@dataclass
class Result:
    kind: str
    period: str  # YYYY-MM or '' (source-wide)
    status: str
    message: str
    details: dict
    delivery_id: str | None = None


def _month(d: datetime | None) -> str:
    return f"{d:%Y-%m}" if d else ""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def expected_cadence(source: Source) -> timedelta:
    hours = source.options.get("freshness_hours")
    if hours:
        return timedelta(hours=float(hours))
    if source.schedule:
        from app.scheduler import longest_gap

        return max(2 * longest_gap(source.schedule), timedelta(hours=24))
    return timedelta(hours=48)


def check_freshness(session: Session, source: Source, now: datetime) -> Result:
    last = session.scalar(select(Delivery.finished_at).where(
        Delivery.source_id == source.id, Delivery.status.in_(("loaded", "replaced")),
        Delivery.finished_at.is_not(None)).order_by(Delivery.finished_at.desc()).limit(1))
    cadence = expected_cadence(source)
    details = {"last_delivery_at": _iso(last), "expected_within_hours": round(cadence.total_seconds() / 3600, 3)}
    if last is None:
        return Result("freshness", "", "failed", "no delivery has been loaded from this source yet", details)
    age = now - last
    hours = age.total_seconds() / 3600
    details["hours_since_last_delivery"] = round(hours, 3)
    if age > cadence:
        return Result("freshness", "", "failed", f"stale: last delivery {hours:.1f} h ago, expected within "
                      f"{details['expected_within_hours']:g} h", details)
    return Result("freshness", "", "passed", f"last delivery {hours:.1f} h ago", details)


def check_completeness(con, source: Source, d: Delivery, now: datetime) -> Result:
    period = _month(d.billing_period_start)
    start, end = d.billing_period_start, d.billing_period_end
    if end is None or end > now:
        return Result("completeness", period, "skipped", "billing period still open", {}, d.id)
    missing = [day for (day,) in con.execute(f"""
        WITH days AS (
            SELECT unnest(generate_series(CAST(? AS TIMESTAMPTZ), CAST(? AS TIMESTAMPTZ) - INTERVAL 1 DAY,
                                          INTERVAL 1 DAY)) AS day),
        have AS (
            SELECT DISTINCT date_trunc('day', ChargePeriodStart) AS day FROM {COST_TABLE}
            WHERE x_SourceId = ? AND BillingPeriodStart = ?)
        SELECT day FROM days WHERE day NOT IN (SELECT day FROM have) ORDER BY day""",
        [start, end, source.name, start]).fetchall()]
    days = (end - start).days
    details = {"days": days, "missing_days": [f"{m:%Y-%m-%d}" for m in missing]}
    if missing:
        shown = ", ".join(details["missing_days"][:10]) + (" ..." if len(missing) > 10 else "")
        return Result("completeness", period, "failed",
                      f"{len(missing)} of {days} days of the closed period have no rows: {shown}", details, d.id)
    return Result("completeness", period, "passed", f"all {days} days have rows", details, d.id)


def check_duplicates(con, source: Source, d: Delivery) -> Result:
    period = _month(d.billing_period_start)
    identity = DUPLICATE_IDENTITY.get(source.provider, _COMMON)
    cols = ", ".join(f'"{c}"' for c in identity)
    groups, extra = con.execute(f"""
        SELECT count(*), coalesce(sum(n - 1), 0) FROM (
            SELECT count(*) AS n FROM {COST_TABLE} WHERE x_DeliveryId = ? GROUP BY {cols} HAVING count(*) > 1)""",
        [d.id]).fetchone()
    details = {"identity": list(identity), "duplicate_groups": groups, "extra_rows": int(extra)}
    if groups:
        sample = con.execute(f"""
            SELECT ChargePeriodStart, ResourceId, SkuId, ChargeDescription, BilledCost, count(*) AS n
            FROM {COST_TABLE} WHERE x_DeliveryId = ? GROUP BY {cols} HAVING count(*) > 1 ORDER BY n DESC LIMIT 5""",
            [d.id]).fetchall()
        details["examples"] = [{"ChargePeriodStart": _iso(r[0]), "ResourceId": r[1], "SkuId": r[2],
                                "ChargeDescription": r[3], "BilledCost": str(r[4]), "count": r[5]} for r in sample]
        return Result("duplicates", period, "failed",
                      f"{groups} line identities occur more than once ({int(extra)} extra rows)", details, d.id)
    return Result("duplicates", period, "passed", "every line identity occurs once", details, d.id)


def check_schema_drift(session: Session, source: Source, d: Delivery) -> Result:
    period = _month(d.billing_period_start)
    if d.columns is None:
        return Result("schema_drift", period, "skipped", "the delivery's column list was not recorded", {}, d.id)
    previous = session.scalar(select(Delivery).where(
        Delivery.source_id == source.id, Delivery.id != d.id, Delivery.status.in_(("loaded", "replaced")),
        Delivery.columns.is_not(None), Delivery.started_at < d.started_at,
    ).order_by(Delivery.started_at.desc()).limit(1))
    if previous is None:
        return Result("schema_drift", period, "skipped", "no earlier delivery of this source to compare with",
                      {"columns": len(d.columns)}, d.id)
    now_cols, before = set(d.columns), set(previous.columns)
    added, vanished = sorted(now_cols - before), sorted(before - now_cols)
    details = {"previous_delivery": previous.id, "added": added, "vanished": vanished}
    if added or vanished:
        parts = ([f"new columns: {', '.join(added)}"] if added else []) + (
            [f"vanished columns: {', '.join(vanished)}"] if vanished else [])
        return Result("schema_drift", period, "failed", "; ".join(parts) + f" (vs delivery {previous.id[:8]})",
                      details, d.id)
    return Result("schema_drift", period, "passed", f"same {len(now_cols)} columns as the previous delivery",
                  details, d.id)


def delivery_delta(session: Session, d: Delivery) -> tuple[Delivery, Decimal, Decimal] | None:
    """The delivery `d` replaced (the previous loaded one of its source and billing period) and how far d moved
    the landed BilledCost and EffectiveCost; None for the first delivery of a period. Also used by the ledger's
    restatement flag of finance-closed months (app.finance)."""
    previous = session.scalar(select(Delivery).where(
        Delivery.source_id == d.source_id, Delivery.billing_period_start == d.billing_period_start,
        Delivery.id != d.id, Delivery.status.in_(("loaded", "replaced")), Delivery.started_at < d.started_at,
    ).order_by(Delivery.started_at.desc()).limit(1))
    if previous is None:
        return None
    billed = (d.landed_billed_cost or 0) - (previous.landed_billed_cost or 0)
    effective = (d.landed_effective_cost or 0) - (previous.landed_effective_cost or 0)
    return previous, Decimal(billed), Decimal(effective)


def check_restatement(session: Session, source: Source, d: Delivery) -> Result:
    """A period counts as closed once its billing period ended, or once finance closed its month (app.finance)."""
    from app.control import ClosedMonth

    period = _month(d.billing_period_start)
    delta = delivery_delta(session, d)
    if delta is None:
        return Result("restatement", period, "skipped", "first delivery of this billing period", {}, d.id)
    previous, billed, effective = delta
    try:
        tolerance = Decimal(source.options.get("restatement_tolerance") or "0")
    except InvalidOperation:
        tolerance = Decimal(0)
    closed = (d.billing_period_end is not None and d.billing_period_end <= d.started_at) or (
        session.get(ClosedMonth, period) is not None)
    details = {"previous_delivery": previous.id, "billed_cost_delta": str(billed),
               "effective_cost_delta": str(effective), "period_closed": closed, "tolerance": str(tolerance)}
    moved = f"BilledCost {billed:+f}, EffectiveCost {effective:+f} vs delivery {previous.id[:8]}"
    if closed and (abs(billed) > tolerance or abs(effective) > tolerance):
        return Result("restatement", period, "failed", f"closed period restated: {moved}", details, d.id)
    what = "open period updated" if not closed else "closed period re-delivered within tolerance"
    return Result("restatement", period, "passed", f"{what}: {moved}", details, d.id)


# -- running and storing -----------------------------------------------------------------------------------------
def run_checks(rt, source_name: str, periods: list[datetime] | None = None, now: datetime | None = None) -> list[dict]:
    """Evaluate every check for the source (the given billing periods, default all with a loaded delivery), store
    the results, raise alert events for new failures; returns the results as stored."""
    now = now or utcnow()
    results: list[Result] = []
    with rt.sessions() as session:
        source = session.scalar(select(Source).where(Source.name == source_name))
        if source is None:
            raise LookupError(f"no source named {source_name!r}")
        stmt = select(Delivery).where(Delivery.source_id == source.id, Delivery.status == "loaded")
        if periods is not None:
            stmt = stmt.where(Delivery.billing_period_start.in_(periods))
        current = list(session.scalars(stmt.order_by(Delivery.billing_period_start)))
        results.append(check_freshness(session, source, now))
        if current:
            # Read-write like the ingests of other sources this process may be running (DuckDB refuses a read-only
            # connection beside a read-write one in one process); the checks only read.
            with rt.warehouse.connect() as con:
                for d in current:
                    results.append(check_completeness(con, source, d, now))
                    results.append(check_duplicates(con, source, d))
        for d in current:
            results.append(check_schema_drift(session, source, d))
            results.append(check_restatement(session, source, d))
        stored = [_store(session, source.name, r, now) for r in results]
        session.commit()
        return [check_view(c) for c in stored]


def _store(session: Session, source: str, r: Result, now: datetime) -> QualityCheck:
    key = (QualityCheck.source == source, QualityCheck.billing_period == r.period, QualityCheck.kind == r.kind)
    row = session.scalar(select(QualityCheck).where(*key))
    was_same_failure = row is not None and row.status == "failed" and row.message == r.message
    if row is None:
        try:
            with session.begin_nested():
                row = QualityCheck(source=source, billing_period=r.period, kind=r.kind, status=r.status,
                                   message=r.message, details=r.details, checked_at=now)
                session.add(row)
        except IntegrityError:  # another process stored this key first: update its row
            row = session.scalar(select(QualityCheck).where(*key))
    row.status, row.message, row.details, row.delivery_id, row.checked_at = (
        r.status, r.message, r.details, r.delivery_id, now)
    if r.status == "failed" and not was_same_failure:
        session.add(AlertEvent(kind=f"data_quality.{r.kind}", source=source, billing_period=r.period or None,
                               message=f"{source}{' ' + r.period if r.period else ''}: {r.message}",
                               details=r.details, created_at=now))
    session.flush()
    return row


def check_view(c: QualityCheck) -> dict:
    return {"source": c.source, "billing_period": c.billing_period or None, "check": c.kind, "status": c.status,
            "message": c.message, "details": c.details, "delivery_id": c.delivery_id,
            "checked_at": _iso(c.checked_at)}


def list_checks(session: Session, source: str | None = None, period: str | None = None, kind: str | None = None,
                status: str | None = None) -> list[dict]:
    stmt = select(QualityCheck)
    if source:
        stmt = stmt.where(QualityCheck.source == source)
    if period:
        stmt = stmt.where(QualityCheck.billing_period.in_((period, "")))
    if kind:
        stmt = stmt.where(QualityCheck.kind == kind)
    if status:
        stmt = stmt.where(QualityCheck.status == status)
    stmt = stmt.order_by(QualityCheck.source, QualityCheck.billing_period, QualityCheck.kind)
    return [check_view(c) for c in session.scalars(stmt)]


def alert_view(e: AlertEvent) -> dict:
    return {"id": e.id, "kind": e.kind, "source": e.source, "billing_period": e.billing_period,
            "message": e.message, "details": e.details, "created_at": _iso(e.created_at),
            "delivered_at": _iso(e.delivered_at)}


def pending_alerts(session: Session, limit: int = 100) -> list[dict]:
    """Alert events not delivered yet, oldest first (what the alerts module picks up)."""
    return [alert_view(e) for e in session.scalars(
        select(AlertEvent).where(AlertEvent.delivered_at.is_(None)).order_by(AlertEvent.id).limit(limit))]

