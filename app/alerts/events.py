"""Alert events with an identity: "once, not a flood".

An event's identity names what it is about: (rule or trigger, scope, period, threshold), e.g.
`budget.actual|team:payments|2026-10|80` or `anomaly|ServiceName=BigQuery|2026-09-21`. While an event with that
identity is open, raising it again only updates it (details, occurrences, updated_at) and sends nothing, unless
the caller says it escalated: then the event is re-routed and its channels get an update message. Resolving it
(the condition cleared) lets the same identity fire again later. Events without identity (data-quality failures,
which app.quality already raises once per failure) are new every time.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.control import AlertEvent, utcnow

SEVERITIES = ("info", "warning", "critical")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def event_view(e: AlertEvent) -> dict:
    return {"id": e.id, "kind": e.kind, "identity": e.identity, "team": e.team, "severity": e.severity or "warning",
            "status": e.status or "open", "source": e.source, "billing_period": e.billing_period,
            "message": e.message, "details": e.details or {}, "occurrences": e.occurrences or 1,
            "created_at": _iso(e.created_at), "updated_at": _iso(e.updated_at), "resolved_at": _iso(e.resolved_at),
            "routed_at": _iso(e.routed_at), "delivered_at": _iso(e.delivered_at),
            "delivery_status": e.delivery_status or ("pending" if e.routed_at is None else None)}


def open_event(session: Session, identity: str) -> AlertEvent | None:
    return session.scalar(select(AlertEvent).where(AlertEvent.identity == identity,
                                                   func.coalesce(AlertEvent.status, "open") == "open")
                          .order_by(AlertEvent.id.desc()).limit(1))


def raise_event(session: Session, kind: str, message: str, *, identity: str | None = None, team: str | None = None,
                severity: str = "warning", details: dict | None = None, source: str | None = None,
                billing_period: str | None = None, escalate: bool = False,
                now: datetime | None = None) -> tuple[AlertEvent, str]:
    """Raise or update an event; returns (event, what happened: created | updated | escalated)."""
    now = now or utcnow()
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    existing = open_event(session, identity) if identity else None
    if existing is not None:
        existing.message, existing.details, existing.updated_at = message, details or {}, now
        existing.occurrences = (existing.occurrences or 1) + 1
        if escalate:
            existing.severity = severity
            existing.routed_at = None  # the router sends the update to the event's channels
            existing.delivery_status = "pending"
            existing.delivered_at = None
        session.flush()
        return existing, "escalated" if escalate else "updated"
    event = AlertEvent(kind=kind, source=source, billing_period=billing_period, message=message,
                       details=details or {}, created_at=now, identity=identity, team=team, severity=severity,
                       status="open", occurrences=1, updated_at=now, delivery_status="pending")
    session.add(event)
    session.flush()
    return event, "created"


def resolve(session: Session, identity: str, now: datetime | None = None) -> AlertEvent | None:
    """Close the open event of this identity (the condition cleared): the next raise fires anew."""
    event = open_event(session, identity)
    if event is not None:
        event.status, event.resolved_at = "resolved", now or utcnow()
        session.flush()
    return event


def list_events(session: Session, *, team: str | None = None, scope: str | None = None, kind: str | None = None,
                status: str | None = None, delivery_status: str | None = None, limit: int = 100,
                offset: int = 0) -> tuple[int, list[dict]]:
    """Events newest first. scope: a team key's team (it sees only that team's events)."""
    stmt = select(AlertEvent)
    if scope is not None:
        stmt = stmt.where(AlertEvent.team == scope)
    if team is not None:
        stmt = stmt.where(AlertEvent.team == team)
    if kind:
        stmt = stmt.where((AlertEvent.kind == kind) | AlertEvent.kind.like(kind.replace("%", "") + ".%"))
    if status:
        stmt = stmt.where(func.coalesce(AlertEvent.status, "open") == status)
    if delivery_status:
        stmt = stmt.where(AlertEvent.delivery_status == delivery_status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(AlertEvent.id.desc()).limit(limit).offset(offset))
    return total, [event_view(e) for e in rows]
