from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy.orm import Session

from app.api.auth import FINANCE
from app.api.deps import db_session
from app.api.problems import PROBLEM_RESPONSES
from app.costs import parse_date
from app.ledger import get_delivery, page_deliveries

# The ledger is about whole deliveries (every team's lines): admin and finance keys only.
router = APIRouter(tags=["deliveries"], dependencies=[FINANCE])


@router.get("/deliveries", summary="The delivery ledger", responses=PROBLEM_RESPONSES)
def get_deliveries(
    session: Session = Depends(db_session),
    source: str | None = Query(None, description="Only this source's deliveries (by name)."),
    status: Literal["running", "loaded", "replaced", "failed"] | None = Query(
        None, description="loaded = current data of its period; replaced = superseded by a newer delivery."
    ),
    billing_period: str | None = Query(None, description="Only this billing period (YYYY-MM).", examples=["2024-09"]),
    limit: int = Query(100, ge=1, le=10_000, description="Maximum number of deliveries, newest first."),
    offset: int = Query(0, ge=0, le=1_000_000_000, description="Deliveries to skip (paging)."),
) -> dict:
    """Every attempt to load a billing period: files, raw row count and sums computed from the files, what landed,
    status, duration, error and what was tolerated in the input. `restatement` is set on a delivery of a month
    finance closed that was loaded after the close: how far it moved BilledCost and EffectiveCost. `total` counts
    every matching delivery."""
    period = parse_date("billing_period", billing_period)
    start = datetime(period.year, period.month, period.day, tzinfo=timezone.utc) if period else None
    total, page = page_deliveries(session, source, status, start, limit, offset)
    return {"deliveries": page, "total": total, "limit": limit, "offset": offset}


@router.get("/deliveries/{delivery_id}", summary="One delivery", responses=PROBLEM_RESPONSES)
def get_one_delivery(
    delivery_id: str = Path(description="Delivery id (x_DeliveryId of its rows)."),
    session: Session = Depends(db_session),
) -> dict:
    found = get_delivery(session, delivery_id)
    if found is None:
        raise HTTPException(404, f"no delivery {delivery_id}")
    return found
