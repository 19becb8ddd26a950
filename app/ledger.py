"""Reading the delivery ledger: the same listing and the same row shape for the CLI and the API."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.control import Delivery, Source
from app.costs import money_str

STATUSES = ("running", "loaded", "replaced", "failed")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def delivery_view(d: Delivery, source_name: str, restatement: dict | None = None) -> dict:
    """`restatement`: set when the delivery re-delivered a month finance had closed (app.finance)."""
    return {
        "id": d.id,
        "source": source_name,
        "billing_period_start": _iso(d.billing_period_start),
        "billing_period_end": _iso(d.billing_period_end),
        "status": d.status,
        "raw": {"rows": d.raw_rows, "billed_cost": money_str(d.raw_billed_cost),
                "effective_cost": money_str(d.raw_effective_cost)},
        "landed": {"rows": d.landed_rows, "billed_cost": money_str(d.landed_billed_cost),
                   "effective_cost": money_str(d.landed_effective_cost)},
        "files": d.files,
        "tolerated": d.tolerated,
        "error": d.error,
        "replaced_by": d.replaced_by,
        "started_at": _iso(d.started_at),
        "finished_at": _iso(d.finished_at),
        "duration_ms": d.duration_ms,
        "restatement": restatement,
    }


def list_deliveries(
    session: Session,
    source: str | None = None,
    status: str | None = None,
    billing_period: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    return page_deliveries(session, source, status, billing_period, limit, offset)[1]


def page_deliveries(
    session: Session,
    source: str | None = None,
    status: str | None = None,
    billing_period: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict]]:
    """(total matching, one page newest first); restatements of closed months flagged."""
    from app.finance import delivery_restatement

    stmt = select(Delivery, Source.name).join(Source, Delivery.source_id == Source.id)
    if source:
        stmt = stmt.where(Source.name == source)
    if status:
        stmt = stmt.where(Delivery.status == status)
    if billing_period:
        stmt = stmt.where(Delivery.billing_period_start == billing_period)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    stmt = stmt.order_by(Delivery.started_at.desc(), Delivery.billing_period_start.desc(), Delivery.id)
    rows = session.execute(stmt.limit(limit).offset(offset)).all()
    return total, [delivery_view(d, name, delivery_restatement(session, d)) for d, name in rows]


def get_delivery(session: Session, delivery_id: str) -> dict | None:
    row = session.execute(
        select(Delivery, Source.name).join(Source, Delivery.source_id == Source.id).where(Delivery.id == delivery_id)
    ).first()
    if row is None:
        return None
    from app.finance import delivery_restatement

    return delivery_view(*row, delivery_restatement(session, row[0]))
