"""Finance: monthly totals (amortized and billed side by side, unallocated, reconciliation per currency), closing
months, restatements of closed months. Admin and finance keys only."""
from __future__ import annotations

from typing import Literal

import duckdb
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from app import finance
from app.access import Principal
from app.api.auth import FINANCE, principal
from app.api.deps import db_session, warehouse
from app.api.problems import PROBLEM_RESPONSES, problem

router = APIRouter(prefix="/finance", tags=["finance"], dependencies=[FINANCE])
MONTH_RE = r"^\d{4}-\d{2}$"


@router.get("/monthly-totals", summary="Totals of a billing month by a dimension",
            responses={200: {"content": {"text/csv": {}}}, **PROBLEM_RESPONSES})
def monthly_totals(
    month: str = Query(..., description="Billing month (YYYY-MM): lines whose BillingPeriodStart is in it.",
                       examples=["2026-05"], pattern=MONTH_RE),
    by: Literal["cost_center", "team", "service", "provider", "account"] = Query(
        "cost_center", description="Dimension: cost_center, team, service (allocation dimensions, from the "
        "allocation parts, with an `unallocated` line), provider (ProviderName) or account (SubAccountId)."),
    metric: list[Literal["EffectiveCost", "BilledCost"]] = Query(
        ["EffectiveCost", "BilledCost"], description="Metrics to show side by side: EffectiveCost (amortized) and/or "
        "BilledCost (invoiced). The reconciliation checks both whatever is shown."),
    format: Literal["json", "csv"] = Query("json", description="JSON document or CSV table."),
    con: duckdb.DuckDBPyConnection = Depends(warehouse),
    session: Session = Depends(db_session),
) -> Response:
    """Per group and currency the chosen metrics as exact decimal strings; `unallocated` marks the line of costs no
    rule claimed (allocation dimensions). `reconciliation`: per currency the sum of the groups and the warehouse
    total of the month, equal by construction and checked on every request. If the month is closed, `closed`
    holds its snapshot and `restatement` what moved since: deltas per currency and the deliveries loaded after
    the close."""
    metrics = tuple(dict.fromkeys(metric)) or finance.METRICS
    doc = finance.monthly_totals(con, session, month, by, metrics)
    if format == "csv":
        return Response(finance.to_csv(doc), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="monthly-totals-{month}-{by}.csv"'})
    return JSONResponse(doc)


@router.post("/months/{month}/close", summary="Close a billing month", status_code=201,
             responses={**PROBLEM_RESPONSES, 409: {"description": "The month is closed already.",
                                                    **PROBLEM_RESPONSES[400]}})
def close_month(
    request: Request,
    month: str = Path(description="Billing month (YYYY-MM).", examples=["2026-05"], pattern=MONTH_RE),
    note: str | None = Query(None, max_length=2000, description="Why or by what process the month closed."),
    con: duckdb.DuckDBPyConnection = Depends(warehouse),
    session: Session = Depends(db_session),
    who: Principal = Depends(principal),
):
    """Record the month as closed with a snapshot of its totals per currency. Later deliveries of the month still
    load, but show as restatements (here in monthly-totals and in the ledger) with their delta."""
    try:
        closed = finance.close_month(con, session, month, who.name, note)
    except finance.MonthClosed as exc:
        return problem(409, "Conflict", str(exc), instance=str(request.url.path),
                       errors=[{"parameter": "month", "detail": str(exc)}])
    return JSONResponse(closed, status_code=201)


@router.get("/months", summary="Closed months", responses=PROBLEM_RESPONSES)
def closed_months(
    session: Session = Depends(db_session),
    limit: int = Query(100, ge=1, le=1000, description="Maximum number of months, newest first."),
    offset: int = Query(0, ge=0, le=1_000_000_000, description="Months to skip (paging)."),
) -> dict:
    total, page = finance.list_closed(session, limit, offset)
    return {"months": page, "total": total, "limit": limit, "offset": offset}
