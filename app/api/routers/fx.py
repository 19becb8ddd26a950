"""Exchange rates (app.currency): what finance reports other currencies at, per month, for `GET /v1/costs?currency=`.
Reading: every role; writing: admin and finance."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app import currency as fx
from app.api.auth import ANY, FINANCE
from app.api.deps import db_session
from app.api.problems import PROBLEM_RESPONSES, problem

router = APIRouter(prefix="/fx-rates", tags=["fx-rates"])
MAX_CSV = 5_000_000
NOT_FOUND = {404: PROBLEM_RESPONSES[404]}
CODE = r"^[A-Za-z]{3}$"


class RateIn(BaseModel):
    month: str = Field(description="Calendar month the rate applies to (YYYY-MM): rows of a cost query in that "
                       "month are converted with it.", examples=["2026-10"], max_length=7)
    currency: str = Field(description="ISO 4217 code converted from (a billing currency).", examples=["USD"],
                          max_length=3)
    to_currency: str = Field(description="ISO 4217 code converted into (the reporting currency).", examples=["EUR"],
                             max_length=3)
    rate: str = Field(description="Exact decimal: one unit of `currency` in `to_currency` (> 0, at most 18 decimal "
                      "places).", examples=["0.9213"], max_length=60)
    source: str | None = Field(None, description="Where the rate comes from, shown beside converted results.",
                               examples=["ECB month-end"], max_length=200)


class RatesIn(BaseModel):
    rates: list[RateIn] = Field(description="Rates to insert or replace, by (currency, to_currency, month).",
                                max_length=10_000)


def _invalid(request: Request, exc: fx.RateError):
    return problem(400, "Invalid exchange rate", str(exc), instance=str(request.url.path), errors=exc.problems)


@router.get("", summary="List exchange rates", dependencies=[ANY],
            responses={200: {"content": {"text/csv": {}}}, **PROBLEM_RESPONSES})
def list_rates(
    session: Session = Depends(db_session),
    to_currency: str | None = Query(None, description="Only rates into this currency.", pattern=CODE),
    from_currency: str | None = Query(None, alias="currency", description="Only rates from this currency.",
                                      pattern=CODE),
    format: Literal["json", "csv"] = Query("json", description="JSON document, or the CSV that POST "
                                           "/v1/fx-rates/import takes."),
):
    """Every rate, ordered by target currency, source currency and month."""
    rows = fx.list_rates(session, to_currency, from_currency)
    if format == "csv":
        return Response(fx.to_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="fx-rates.csv"'})
    return {"rates": [r.to_dict() for r in rows]}


@router.put("", summary="Set exchange rates", dependencies=[FINANCE], responses=PROBLEM_RESPONSES)
def put_rates(request: Request, body: RatesIn, session: Session = Depends(db_session)):
    """Insert or replace each (currency, to_currency, month)'s rate. All or nothing: each problem names its
    position (`rates[N].field`)."""
    rates, problems = [], []
    for i, r in enumerate(body.rates):
        try:
            rates.append(fx.check_rate(r.month, r.currency, r.to_currency, r.rate, r.source))
        except ValueError as exc:
            field, _, detail = str(exc).partition(": ")
            problems.append({"parameter": f"rates[{i}].{field}", "detail": detail})
    if problems:
        return _invalid(request, fx.RateError(problems))
    count = fx.set_rates(session, rates)
    session.commit()
    return {"stored": count}


@router.post("/import", summary="Import exchange rates from CSV", dependencies=[FINANCE],
             responses=PROBLEM_RESPONSES,
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def import_rates(request: Request, session: Session = Depends(db_session)):
    """A CSV with the header `month,currency,to_currency,rate[,source]` (what GET /v1/fx-rates?format=csv returns):
    inserts or replaces each row's rate. All or nothing: each problem names its row and column."""
    raw = await request.body()
    if len(raw) > MAX_CSV:
        return _invalid(request, fx.RateError([{"parameter": "body", "detail": "larger than 5 MB"}]))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _invalid(request, fx.RateError([{"parameter": "body", "detail": "not UTF-8"}]))
    try:
        rates = fx.parse_csv(text, "body")
    except fx.RateError as exc:
        return _invalid(request, exc)
    count = fx.set_rates(session, rates)
    session.commit()
    return {"stored": count}


@router.delete("/{currency}/{to_currency}/{month}", summary="Delete an exchange rate", dependencies=[FINANCE],
               responses={**PROBLEM_RESPONSES, **NOT_FOUND})
def delete_rate(
    request: Request,
    currency: str = Path(description="Currency converted from.", pattern=CODE),
    to_currency: str = Path(description="Currency converted into.", pattern=CODE),
    month: str = Path(description="YYYY-MM", pattern=r"^\d{4}-\d{2}$"),
    session: Session = Depends(db_session),
):
    """Delete one month's rate from `currency` into `to_currency`; cost queries of that month in `to_currency`
    then fail until a rate is set again."""
    if not fx.delete_rate(session, month, currency, to_currency):
        return problem(404, "Not found", f"no rate from {currency.upper()} to {to_currency.upper()} for {month}",
                       instance=str(request.url.path))
    session.commit()
    return {"deleted": {"currency": currency.upper(), "to_currency": to_currency.upper(), "month": month}}
