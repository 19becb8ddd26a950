from __future__ import annotations

import json
from typing import Literal

import duckdb
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.allocation.engine import active_document
from app.access import Scope
from app.api.auth import scope
from app.api.deps import get_runtime
from app.runtime import Runtime
from app.api.problems import PROBLEM_RESPONSES
from app.costs import DEFAULT_METRIC, MAX_ROWS, parse_query, rollup_covers, run_query
from app.currency import RateTable
from app.rollups import fresh

router = APIRouter(tags=["costs"])


class CurrencyTotal(BaseModel):
    currency: str = Field(description="ISO 4217 billing currency.")
    cost: str = Field(description="Exact decimal string.", examples=["1234.56"])


class RateUsed(BaseModel):
    currency: str = Field(description="Billing currency converted from.")
    month: str = Field(description="YYYY-MM: the rows of this month were converted with this rate.")
    rate: str = Field(description="One unit of `currency` in the reporting currency (exact decimal).")
    source: str | None = Field(None, description="Where finance took the rate from.")


class Conversion(BaseModel):
    currency: str = Field(description="The reporting currency every row and total is in.")
    rates: list[RateUsed] = Field(description="Each rate the result used (rows already in the reporting currency "
                                  "need none).")


class CostsResponse(BaseModel):
    query: dict = Field(description="The parsed query, with the defaulted window filled in.")
    rows: list[dict[str, str | None]] = Field(
        description="One row per period, group and currency: `period` (YYYY-MM-DD, the day or the month's first "
        "day), one key per group_by entry (null where a tag is missing), `cost` (decimal string) and `currency`."
    )
    totals: list[CurrencyTotal] = Field(description="Sum of the metric per currency over the whole query.")
    truncated: bool | None = Field(None, description="Present and true when `limit` cut the rows; totals are whole.")
    conversion: Conversion | None = Field(None, description="Present when the query asked for a `currency`.")


@router.get(
    "/costs",
    summary="Costs over time, grouped and filtered",
    response_model=None,
    responses={200: {"model": CostsResponse, "content": {"text/csv": {}}}, **PROBLEM_RESPONSES},
)
def get_costs(
    rt: Runtime = Depends(get_runtime),
    team_scope: Scope = Depends(scope),
    start: str | None = Query(
        None, description="First day of the window (YYYY-MM-DD, or YYYY-MM for the month's first day). "
        "Default: the first day of the latest month with data, or one month before `end`.", examples=["2024-09-01"],
    ),
    end: str | None = Query(
        None, description="Day after the window (exclusive), same formats. Default: one month after `start`.",
        examples=["2024-10-01"],
    ),
    granularity: Literal["day", "month"] = Query("month", description="Bucket of the `period` column."),
    group_by: list[str] = Query(
        [], description="Dimensions to group by, repeated or comma-separated: any FOCUS text column "
        "(ProviderName, ServiceName, SubAccountId, RegionId, ChargeCategory, ...), x_SourceId, a provider column "
        "(x_ResourceGroupName, x_SkuMeterCategory, x_InvoiceSectionName), tag:<key>, or an allocation dimension "
        "(team, service, cost_center, environment, or a custom dimension of the active rules): those read the "
        "allocation parts, whose amounts sum to the lines'.",
        examples=["ServiceName"],
    ),
    filter: list[str] = Query(
        [], description="KEY=VALUE, repeatable. Keys as for group_by. Values of one key are OR-ed, different keys "
        "AND-ed. An empty value (tag:team=) matches rows where the key is missing. Allocation dimensions also take "
        "KEY:VALUE (cost_center:CC-42).", examples=["ProviderName=AWS"],
    ),
    metric: Literal["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"] = Query(
        DEFAULT_METRIC, description="FOCUS cost metric to sum: BilledCost (invoice), EffectiveCost (amortized), "
        "ListCost (public price) or ContractedCost (negotiated price)."
    ),
    limit: int = Query(100_000, ge=1, le=MAX_ROWS, description="Maximum number of rows returned."),
    currency: str | None = Query(
        None, description="Report in this ISO 4217 currency instead of per billing currency: each row is converted "
        "with the rate for its month (PUT /v1/fx-rates), rounded half-up to 18 decimal places, rows that differ only "
        "by currency are merged and the totals are one sum. A missing rate is a 400 naming the currency and months.",
        pattern=r"^[A-Za-z]{3}$", examples=["EUR"],
    ),
    format: Literal["json", "csv"] = Query("json", description="Response format: JSON document or CSV table."),
) -> Response:
    """Sum a FOCUS cost metric over `[start, end)` by period and the requested dimensions.

    Every amount is an exact decimal string in its row's billing currency; two currencies are never added, unless
    `currency` asks for one reporting currency (then `conversion` lists every rate used).
    A `team:<name>` key reads only the parts allocated to its team: grouping and filters narrow that, a `team`
    filter naming another team is a 403. Limits: 2 years with granularity=day, 10 years with month,
    4 group_by dimensions, 100 filter values (400 beyond)."""
    q = parse_query(start, end, granularity, group_by, filter, metric, limit, active_document(rt)[1].dimensions,
                    limits=True, currency=currency)
    rates = RateTable.for_currency(rt, q.currency)

    def answer(con: duckdb.DuckDBPyConnection) -> bytes:
        # whether the rollups are current is the same for every query of one pinned instance: asked once per epoch
        rollups = rollup_covers(q) and bool(rt.warehouse.per_epoch("rollups-fresh", con, fresh))
        result = run_query(con, q, team_scope, rollups=rollups, rates=rates)
        if format == "csv":
            return result.to_csv().encode()
        return json.dumps(result.to_json(), ensure_ascii=False, separators=(",", ":")).encode()

    # Repeated queries are answered from the read cache while the warehouse is unchanged (app.warehouse); the key
    # holds the parsed query, the caller's team scope and the rates used (a changed rate is a new key), and the key
    # itself was checked for this request.
    body = rt.warehouse.read_through(("costs", format, team_scope, json.dumps(q.echo(), sort_keys=True),
                                      rates.fingerprint() if rates else None), answer)
    if format == "csv":
        return Response(body, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="costs.csv"'})
    return Response(body, media_type="application/json")
