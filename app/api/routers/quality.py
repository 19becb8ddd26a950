"""Data-quality checks per source and billing period, and the alert events they raised."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.api.auth import FINANCE
from app.api.deps import db_session
from app.api.problems import PROBLEM_RESPONSES
from app.costs import QueryError
from app.control import AlertEvent
from app.quality import list_checks, pending_alerts

# Checks and alerts are about whole sources: admin and finance keys only.
router = APIRouter(tags=["data quality"], dependencies=[FINANCE])
LIMIT = Query(100, ge=1, le=1000, description="Maximum number of items.")
OFFSET = Query(0, ge=0, le=1_000_000_000, description="Items to skip (paging).")


@router.get("/data-quality", summary="Data-quality check results", responses=PROBLEM_RESPONSES)
def get_quality(
    session: Session = Depends(db_session),
    source: str | None = Query(None, description="Only this source (by name)."),
    period: str | None = Query(None, description="Only this billing period (YYYY-MM); source-wide checks "
                                                 "(freshness) are included.", examples=["2026-10"]),
    check: Literal["freshness", "completeness", "duplicates", "schema_drift", "restatement"] | None = Query(
        None, description="Only this check."),
    status: Literal["passed", "failed", "skipped"] | None = Query(None, description="Only results with this status."),
    limit: int = LIMIT,
    offset: int = OFFSET,
) -> dict:
    """The latest result of each check per source and billing period (run after every ingest and by
    `cloudtally quality`): freshness (hours since the last delivery vs the expected cadence), completeness (days
    without rows in a closed period), duplicates (a line identity twice in a delivery), schema_drift (columns
    added or vanished vs the previous delivery), restatement (totals moved vs the previous delivery of a closed
    period). `billing_period` is null for source-wide checks."""
    if period is not None and not (len(period) == 7 and period[4] == "-" and period.replace("-", "").isdigit()):
        raise QueryError("period", f"{period!r} is not YYYY-MM")
    checks = list_checks(session, source, period, check, status)
    return {"checks": checks[offset:offset + limit], "total": len(checks), "limit": limit, "offset": offset}


@router.get("/alert-events", summary="Undelivered alert events", responses=PROBLEM_RESPONSES)
def get_alert_events(
    session: Session = Depends(db_session),
    limit: int = Query(100, ge=1, le=1000, description="Maximum number of events, oldest first."),
    offset: int = OFFSET,
) -> dict:
    """Events waiting for the alerts module to deliver them (delivered_at null), such as failed data-quality
    checks (kind `data_quality.<check>`)."""
    total = session.scalar(select(func.count()).select_from(AlertEvent).where(AlertEvent.delivered_at.is_(None)))
    return {"events": pending_alerts(session, limit + offset)[offset:], "total": total, "limit": limit,
            "offset": offset}
