"""Budgets: scopes, versions, CSV round-trip and status (actual, EAC, variance, burn rate, crossing date).
Reading: every role (a team key sees only budgets scoped to its team); writing: admin and finance."""
from __future__ import annotations

from datetime import date
from typing import Literal

import duckdb
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.access import Scope
from app.api.auth import ANY, FINANCE, scope
from app.api.deps import db_session, warehouse
from app.api.problems import PROBLEM_RESPONSES, problem
from app.costs import parse_date
from app.itfm import budgets

router = APIRouter(prefix="/budgets", tags=["budgets"])
ID_RE = r"^[A-Za-z0-9 ._:@()/-]{1,200}$"
NOT_FOUND = {404: PROBLEM_RESPONSES[404]}
MAX_CSV = 5_000_000


class AmountIn(BaseModel):
    version: str = Field("plan", description="`plan`, or `reforecast-N` (N = 1, 2, ...): kept side by side.",
                         max_length=40)
    period: str = Field(description="Period label: `2026-10` (month), `FY2027-Q2` (quarter), `FY2027` (fiscal "
                        "year, named by the calendar year it ends in).", max_length=20)
    amount: str = Field(description="Exact decimal amount >= 0 in the budget's currency.", max_length=60,
                        examples=["12500.00"])


class BudgetIn(BaseModel):
    name: str = Field(description="Unique name.", min_length=1, max_length=200)
    team: str | None = Field(None, max_length=200, description="Allocation team (None: any).")
    service: str | None = Field(None, max_length=200, description="Allocation service, else FOCUS ServiceName.")
    cost_center: str | None = Field(None, max_length=200, description="Allocation cost center.")
    provider: str | None = Field(None, max_length=200, description="ProviderName.")
    account: str | None = Field(None, max_length=200, description="SubAccountId.")
    period: Literal["month", "quarter", "fiscal_year"] = Field("month", description="Period kind of the amounts.")
    fiscal_year_start: int = Field(1, ge=1, le=12, description="First month of the fiscal year (1 = January).")
    currency: str = Field(description="ISO 4217 currency of the amounts. Only costs billed in it count, unless "
                          "`convert_currencies` is true.", min_length=3, max_length=3, examples=["USD"])
    convert_currencies: bool = Field(False, description="Also count costs billed in other currencies, converted "
                                     "into `currency` with finance's monthly exchange rates (/v1/fx-rates). Costs "
                                     "of a month without a rate are not counted; the status lists them under "
                                     "`not_counted`.")
    metric: Literal["EffectiveCost", "BilledCost"] = Field("EffectiveCost", description="What is budgeted.")
    description: str | None = Field(None, max_length=2000)
    amounts: list[AmountIn] = Field([], max_length=1000, description="Amounts per version and period.")


def _problem400(request: Request, exc: budgets.BudgetError):
    return problem(400, "Invalid budget", str(exc), instance=str(request.url.path), errors=exc.problems)


def _as_of(value: str | None) -> date | None:
    return parse_date("as_of", value)


@router.get("", summary="List budgets", dependencies=[ANY], responses=PROBLEM_RESPONSES)
def list_budgets(
    session: Session = Depends(db_session), team_scope: Scope = Depends(scope),
    limit: int = Query(100, ge=1, le=1000, description="Maximum number of budgets (by name)."),
    offset: int = Query(0, ge=0, le=1_000_000_000, description="Budgets to skip (paging)."),
) -> dict:
    """Budgets with their scope, period kind, currency, metric and amounts per version and period. A team key sees
    only budgets scoped to its team."""
    total, page = budgets.list_budgets(session, team_scope, limit, offset)
    return {"budgets": [budgets.budget_view(b) for b in page], "total": total, "limit": limit, "offset": offset}


@router.post("", summary="Create a budget", status_code=201, dependencies=[FINANCE], responses=PROBLEM_RESPONSES)
def create_budget(request: Request, body: BudgetIn, session: Session = Depends(db_session)):
    """A new budget with its amounts; a problem names each invalid field (`amounts[0].period`, ...)."""
    data = body.model_dump()
    amounts = data.pop("amounts")
    try:
        b = budgets.create_budget(session, data, amounts)
    except budgets.BudgetError as exc:
        return _problem400(request, exc)
    return JSONResponse(budgets.budget_view(b), status_code=201)


@router.get("/export", summary="Budgets as CSV", dependencies=[ANY],
            responses={200: {"content": {"text/csv": {}}}, **PROBLEM_RESPONSES})
def export_budgets(session: Session = Depends(db_session), team_scope: Scope = Depends(scope)) -> Response:
    """One row per budget, version and period: budget, team, service, cost_center, provider, account, period_type,
    fiscal_year_start, currency, metric, version, period, amount, convert_currencies. POST /v1/budgets/import reads
    it back."""
    return Response(budgets.export_csv(session, team_scope), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="budgets.csv"'})


@router.post("/import", summary="Import budgets from CSV", dependencies=[FINANCE], responses=PROBLEM_RESPONSES,
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def import_budgets(
    request: Request, session: Session = Depends(db_session),
    replace: bool = Query(False, description="Also delete amounts of the named budgets that the file does not "
                          "list (the file becomes the truth for them)."),
):
    """The CSV of GET /v1/budgets/export (columns budget, currency, period and amount required): creates or
    updates the budgets it names and upserts their amounts by version and period. All or nothing: each problem
    names its row and column."""
    raw = await request.body()
    if len(raw) > MAX_CSV:
        return problem(400, "Invalid budget", "the CSV is larger than 5 MB", instance=str(request.url.path),
                       errors=[{"parameter": "body", "detail": "larger than 5 MB"}])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return problem(400, "Invalid budget", "the CSV is not UTF-8", instance=str(request.url.path),
                       errors=[{"parameter": "body", "detail": "not UTF-8"}])
    try:
        return budgets.import_csv(session, text, replace)
    except budgets.BudgetError as exc:
        return _problem400(request, exc)


@router.get("/status", summary="Status of every budget", dependencies=[ANY],
            responses={200: {"content": {"text/csv": {}}}, **PROBLEM_RESPONSES})
def status_all(
    request: Request, session: Session = Depends(db_session), con: duckdb.DuckDBPyConnection = Depends(warehouse),
    team_scope: Scope = Depends(scope),
    as_of: str | None = Query(None, description="Count actuals up to the day before (YYYY-MM-DD). Default: the day "
                              "after the warehouse's last day of data."),
    period: str | None = Query(None, max_length=20, description="A period label (2026-10, FY2027-Q2, FY2027), or "
                               "`all` for every period with amounts. Default: each budget's current period."),
    format: Literal["json", "csv"] = Query("json", description="JSON document or CSV table."),
):
    """Per budget and period: budget (newest version, all versions beside it), actual to date, forecast of the rest
    of the period, EAC = actual + forecast, variance = EAC − budget (amount, %, favorable), burn rate, phased budget,
    % of budget actual and forecast, and the projected crossing date. Money as exact decimal strings. `conversion`
    lists the exchange rates applied (budgets with `convert_currencies`); `not_counted` lists, per currency, the
    scope's costs in the period that the actual leaves out and why (billed in another currency, or no rate)."""
    _, found = budgets.list_budgets(session, team_scope)
    try:
        got = budgets.statuses(con, found, _as_of(as_of), period, rates=budgets.rates_from(session))
    except budgets.BudgetError as exc:
        return _problem400(request, exc)
    rows = [s.to_json() for s in got]
    if format == "csv":
        return Response(budgets.status_csv(rows), media_type="text/csv; charset=utf-8")
    return JSONResponse({"statuses": rows, "total": len(rows)})


@router.get("/{budget_id}", summary="One budget", dependencies=[ANY], responses={**PROBLEM_RESPONSES, **NOT_FOUND})
def get_budget(request: Request, budget_id: str = Path(description="Budget id or name.", pattern=ID_RE),
               session: Session = Depends(db_session), team_scope: Scope = Depends(scope)):
    try:
        return budgets.budget_view(budgets.get_budget(session, budget_id, team_scope))
    except budgets.BudgetNotFound as exc:
        return problem(404, "Not found", str(exc), instance=str(request.url.path))


@router.get("/{budget_id}/status", summary="Status of one budget", dependencies=[ANY],
            responses={**PROBLEM_RESPONSES, **NOT_FOUND})
def status_one(
    request: Request, budget_id: str = Path(description="Budget id or name.", pattern=ID_RE),
    session: Session = Depends(db_session), con: duckdb.DuckDBPyConnection = Depends(warehouse),
    team_scope: Scope = Depends(scope),
    as_of: str | None = Query(None, description="Count actuals up to the day before (YYYY-MM-DD)."),
    period: str | None = Query(None, max_length=20, description="A period label, or `all`. Default: current."),
):
    """The budget's status in the period (see GET /v1/budgets/status)."""
    try:
        b = budgets.get_budget(session, budget_id, team_scope)
        got = budgets.statuses(con, [b], _as_of(as_of), period, rates=budgets.rates_from(session))
    except budgets.BudgetNotFound as exc:
        return problem(404, "Not found", str(exc), instance=str(request.url.path))
    except budgets.BudgetError as exc:
        return _problem400(request, exc)
    return {"budget": budgets.budget_view(b), "statuses": [s.to_json() for s in got]}


@router.delete("/{budget_id}", summary="Delete a budget", dependencies=[FINANCE],
               responses={**PROBLEM_RESPONSES, **NOT_FOUND})
def delete_budget(request: Request, budget_id: str = Path(description="Budget id or name.", pattern=ID_RE),
                  session: Session = Depends(db_session)):
    try:
        budgets.delete_budget(session, budget_id)
    except budgets.BudgetNotFound as exc:
        return problem(404, "Not found", str(exc), instance=str(request.url.path))
    return {"deleted": budget_id}
