"""Ingest run history."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.api.auth import FINANCE
from app.api.deps import db_session
from app.api.problems import PROBLEM_RESPONSES
from app.control import IngestRun
from app.runs import list_runs

router = APIRouter(tags=["ingest runs"], dependencies=[FINANCE])


@router.get("/ingest-runs", summary="Ingest run history", responses=PROBLEM_RESPONSES)
def get_runs(
    session: Session = Depends(db_session),
    source: str | None = Query(None, description="Only this source's runs (by name)."),
    status: Literal["running", "succeeded", "nothing_new", "failed", "skipped"] | None = Query(
        None, description="succeeded = loaded at least one delivery; nothing_new = every delivery unchanged or none "
                          "found; skipped = another run of the source held its lock (\"already running\")."),
    limit: int = Query(50, ge=1, le=1000, description="Maximum number of runs, newest first."),
    offset: int = Query(0, ge=0, le=1_000_000_000, description="Runs to skip (paging)."),
) -> dict:
    """Every run of a source's ingest (scheduled, CLI or API): status and message, error, attempts, the deliveries
    loaded, unchanged and failed, raw and landed row counts and sums (decimal strings), duration, and the
    after-ingest steps (allocation, data_quality, rollups, alerts) with their own timings."""
    stmt = select(func.count()).select_from(IngestRun)
    if source:
        stmt = stmt.where(IngestRun.source == source)
    if status:
        stmt = stmt.where(IngestRun.status == status)
    return {"runs": list_runs(session, source, status, limit, offset), "total": session.scalar(stmt),
            "limit": limit, "offset": offset}
