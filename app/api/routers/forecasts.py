"""Forecasts per scope with 80%/95% intervals and their measured accuracy (rolling-origin backtests). Every role;
a team key forecasts its own team only."""
from __future__ import annotations

from typing import Literal

import duckdb
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.access import Scope, ScopeForbidden
from app.api.auth import ANY, scope
from app.api.deps import db_session, warehouse
from app.api.problems import PROBLEM_RESPONSES, problem
from app.itfm import backtest as bt
from app.itfm.actuals import ScopeDims
from app.itfm.forecast import MAX_HORIZON_DAYS
from app.itfm.models import ForecastBacktest
from app.itfm.service import forecast_scope

router = APIRouter(prefix="/forecasts", tags=["forecasts"], dependencies=[ANY])
UNPROCESSABLE = {422: {**PROBLEM_RESPONSES[400], "description": "Not enough history to forecast (fewer than 14 "
                                                                 "days of cost for the scope)."}}


def _scope(team, service, cost_center, provider, account, team_scope: Scope) -> ScopeDims:
    if team_scope is not None:
        if team not in (None, team_scope):
            raise ScopeForbidden("team", f"this key reads team {team_scope!r} only, not {team!r}")
        team = team_scope
    return ScopeDims(team or None, service or None, cost_center or None, provider or None, account or None)


DIM = dict(max_length=200)


@router.get("", summary="Daily forecast of a scope", responses={**PROBLEM_RESPONSES, **UNPROCESSABLE})
def get_forecast(
    request: Request, con: duckdb.DuckDBPyConnection = Depends(warehouse), session: Session = Depends(db_session),
    team_scope: Scope = Depends(scope),
    team: str | None = Query(None, description="Allocation team (team keys: their own, the default).", **DIM),
    service: str | None = Query(None, description="Allocation service, else FOCUS ServiceName.", **DIM),
    cost_center: str | None = Query(None, description="Allocation cost center.", **DIM),
    provider: str | None = Query(None, description="ProviderName.", **DIM),
    account: str | None = Query(None, description="SubAccountId.", **DIM),
    currency: str | None = Query(None, description="Billing currency; default: one forecast per currency.",
                                 pattern=r"^[A-Z]{3}$"),
    metric: Literal["EffectiveCost", "BilledCost"] = Query("EffectiveCost", description="Cost metric."),
    horizon_days: int = Query(90, ge=1, le=MAX_HORIZON_DAYS, description="Days to forecast after the last day of "
                              "data (at most 366: 12 months)."),
    model: Literal["mstl", "ets", "snaive", "arima"] = Query("mstl", description="Usage model, weekly seasonality: "
                                                             "MSTL (default), AutoETS, SeasonalNaive or AutoARIMA."),
    daily: bool = Query(True, description="Include the daily values (else month totals only)."),
):
    """Per currency: the daily forecast after the last day of data (point, 80% and 95% intervals, the calendar part
    of fees, tax and credits), month totals (the month in progress also as actual to date + forecast), and the
    scope's measured accuracy next to it: daily MAPE and WAPE, month-total APE median and p90, interval coverage and
    MASE vs seasonal-naive from a rolling-origin backtest (h = 30, 6 windows) of the same data. A scope with fewer
    than 14 days of cost is refused (422) with the reason."""
    s = _scope(team, service, cost_center, provider, account, team_scope)
    doc = forecast_scope(con, session, s, currency, metric, horizon_days, model, daily)
    if not doc["forecasts"]:
        reason = "; ".join(r["reason"] for r in doc["refused"])
        return problem(422, "Not enough history", reason, instance=str(request.url.path),
                       errors=[{"parameter": "scope", "detail": reason}])
    return JSONResponse(doc)


@router.get("/accuracy", summary="Measured forecast accuracy per scope", responses=PROBLEM_RESPONSES)
def get_accuracy(
    session: Session = Depends(db_session), team_scope: Scope = Depends(scope),
    team: str | None = Query(None, description="Only backtests of this team's scopes.", **DIM),
    currency: str | None = Query(None, pattern=r"^[A-Z]{3}$", description="Billing currency."),
    metric: Literal["EffectiveCost", "BilledCost"] | None = Query(None, description="Cost metric."),
    latest: bool = Query(True, description="Only the newest backtest per scope, currency and metric."),
    limit: int = Query(100, ge=1, le=1000, description="Maximum number of backtests."),
    offset: int = Query(0, ge=0, le=1_000_000_000, description="Backtests to skip (paging)."),
) -> dict:
    """Stored backtests (rolling origin, horizon 30 days, 6 windows): daily MAPE and WAPE, month-total absolute %
    error (median, p90), 80%/95% interval coverage, MASE and MASE of the seasonal naive, and per window the
    forecast and actual totals. Written whenever a forecast is served for new data, and by `cloudtally forecast
    backtest`. Team keys see their team's scopes only."""
    if team_scope is not None:
        if team not in (None, team_scope):
            raise ScopeForbidden("team", f"this key reads team {team_scope!r} only, not {team!r}")
        team = team_scope
    stmt = select(ForecastBacktest)
    if team is not None:
        stmt = stmt.where(ForecastBacktest.team == team)
    if currency:
        stmt = stmt.where(ForecastBacktest.currency == currency)
    if metric:
        stmt = stmt.where(ForecastBacktest.metric == metric)
    if latest:
        newest = select(ForecastBacktest.scope_key, ForecastBacktest.currency, ForecastBacktest.metric,
                        func.max(ForecastBacktest.data_end).label("d")).group_by(
            ForecastBacktest.scope_key, ForecastBacktest.currency, ForecastBacktest.metric).subquery()
        stmt = stmt.join(newest, (newest.c.scope_key == ForecastBacktest.scope_key)
                         & (newest.c.currency == ForecastBacktest.currency)
                         & (newest.c.metric == ForecastBacktest.metric) & (newest.c.d == ForecastBacktest.data_end))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(ForecastBacktest.scope_key, ForecastBacktest.currency,
                                         ForecastBacktest.data_end.desc()).limit(limit).offset(offset))
    return {"backtests": [bt.view(r) for r in rows], "total": total, "limit": limit, "offset": offset}
