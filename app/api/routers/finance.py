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
from app.api.deps import db_session, get_runtime, warehouse
from app.currency import RateTable
from app.runtime import Runtime
from app.api.problems import PROBLEM_RESPONSES, problem

router = APIRouter(prefix="/finance", tags=["finance"], dependencies=[FINANCE])
MONTH_RE = r"^\d{4}-\d{2}$"
CURRENCY_RE = r"^[A-Za-z]{3}$"
CURRENCY_DOC = ("Report in this ISO 4217 currency: each billing currency converted with finance's rate for the month "
                "(/v1/fx-rates). Default: per billing currency.")


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
    currency: str | None = Query(None, pattern=CURRENCY_RE, description=CURRENCY_DOC),
    format: Literal["json", "csv"] = Query("json", description="JSON document or CSV table."),
    rt: Runtime = Depends(get_runtime),
    session: Session = Depends(db_session),
) -> Response:
    """Per group and currency the chosen metrics as exact decimal strings; `unallocated` marks the line of costs no
    rule claimed (allocation dimensions). `reconciliation`: per currency the sum of the groups and the warehouse
    total of the month, equal by construction and checked whenever the figures are computed (a repeated request
    is answered from memory while the warehouse is unchanged). If the month is closed, `closed` holds its snapshot
    and `restatement` what moved since: deltas per currency and the deliveries loaded after the close. With
    `currency`: rows converted with finance's rate for the month and merged across billing currencies, the
    reconciliation converted too (the per-currency one beside it), `conversion` the rates; `closed` and
    `restatement` stay per billing currency, as the month was closed."""
    metrics = tuple(dict.fromkeys(metric)) or finance.METRICS
    # The warehouse figures come from the read cache while the warehouse is unchanged (app.warehouse); the close
    # state is read from the control database on every request.
    figures = rt.warehouse.read_through(("monthly-totals", month, by, metrics),
                                        lambda con: finance.month_figures(con, month, by, metrics),
                                        size=lambda f: 256 * (len(f[0]["rows"]) + len(f[1]) + 4))
    if currency:
        figures = (finance.in_currency(figures[0], figures[1], RateTable.load(session, currency)), figures[1])
    doc = finance.with_close_state(session, month, figures)
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


# -- ITFM (issue 10): chargeback/showback statements, TBM totals, the flat hand-off export -------------------------
@router.get("/chargeback", summary="Chargeback or showback statements of a billing month",
            responses={200: {"content": {"text/csv": {}}}, **PROBLEM_RESPONSES})
def chargeback(
    month: str = Query(..., description="Billing month (YYYY-MM).", examples=["2026-10"], pattern=MONTH_RE),
    by: Literal["team", "cost_center"] = Query("team", description="Statement per team or per cost center."),
    mode: Literal["chargeback", "showback"] = Query("chargeback", description="Chargeback (charged to the group's "
                                                    "P&L) or showback (shown; the cost stays central)."),
    group: str | None = Query(None, max_length=200, description="Only this team's or cost center's statement."),
    currency: str | None = Query(None, pattern=CURRENCY_RE, description=CURRENCY_DOC),
    format: Literal["json", "csv"] = Query("json", description="JSON document or CSV table."),
    con: duckdb.DuckDBPyConnection = Depends(warehouse),
    rt: Runtime = Depends(get_runtime),
) -> Response:
    """Per group and currency: EffectiveCost (amortized) and BilledCost, direct (parts a rule gave the group whole)
    and shared (parts of lines a split rule divided, one line per rule), with lines by TBM tower and service; the
    `unallocated` statement holds what no rule gave a group. `reconciliation`: per currency statements +
    unallocated = the month's warehouse total, checked on every request. With `currency`: one statement per group
    in that currency, each line converted with finance's rate for the month and keeping its `billing_currency`;
    `conversion` lists the rates, and the reconciliation is also given converted (a missing rate is a 400)."""
    from app.itfm import statements

    doc = statements.statements(con, month, by, mode, group, RateTable.for_currency(rt, currency))
    if format == "csv":
        return Response(statements.statements_csv(doc), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{mode}-{month}-{by}.csv"'})
    return JSONResponse(doc)


@router.get("/tbm", summary="Month totals by TBM cost pool, tower or solution", responses=PROBLEM_RESPONSES)
def tbm_totals(
    month: str = Query(..., description="Billing month (YYYY-MM).", examples=["2026-10"], pattern=MONTH_RE),
    by: Literal["pool", "tower", "solution"] = Query("tower", description="TBM 5.0 layer: cost pool (Cloud "
                                                     "Services), resource tower (from ServiceCategory), or solution "
                                                     "(the allocated team)."),
    currency: str | None = Query(None, pattern=CURRENCY_RE, description=CURRENCY_DOC),
    con: duckdb.DuckDBPyConnection = Depends(warehouse),
    rt: Runtime = Depends(get_runtime),
) -> dict:
    """EffectiveCost and BilledCost per TBM layer value and currency, reconciled to the warehouse. The mapping is
    app/itfm/tbm.yaml, overridable with the YAML named by CLOUDTALLY_TBM_MAPPING."""
    from app.itfm import statements

    return statements.tbm_totals(con, month, by, RateTable.for_currency(rt, currency))


@router.get("/export", summary="Flat ITFM hand-off CSV of a billing month",
            responses={200: {"content": {"text/csv": {}}}, **PROBLEM_RESPONSES})
def itfm_export(
    month: str = Query(..., description="Billing month (YYYY-MM).", examples=["2026-10"], pattern=MONTH_RE),
    currency: str | None = Query(None, pattern=CURRENCY_RE, description=CURRENCY_DOC + " Budget rows too."),
    con: duckdb.DuckDBPyConnection = Depends(warehouse),
    session: Session = Depends(db_session),
) -> Response:
    """One flat CSV an ITFM tool or spreadsheet loads as is: period, cost_center, team, service, tower, provider,
    account, currency, billed, effective, budget, forecast, variance, row_type. `cost` rows: one per cost center,
    team, service, tower, provider, account and currency; they sum to the month's warehouse total per currency.
    `budget` rows: one per monthly budget of the month, with its scope, actual (`effective`), budget, forecast
    (EAC) and variance (EAC − budget)."""
    from app.itfm import statements

    rates = RateTable.load(session, currency) if currency else None
    rows = statements.export_rows(con, month, statements.budget_export_rows(con, session, month), rates)
    return Response(statements.export_csv(rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="itfm-export-{month}.csv"'})
