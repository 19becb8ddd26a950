"""Recommendations (optimizers/): the ledger of recommendations with their predicted and realized savings, their
measured accuracy, a refresh, and commitment utilization and coverage.

Who may: listing, reading and accuracy: any key, a team key only for recommendations on resources allocated to its
team (commitment purchases are account-wide: admin and finance only); refresh: admin; commitment utilization and
coverage (whole accounts): admin and finance."""
from __future__ import annotations

from typing import Literal

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy.orm import Session

from app.access import Scope, ScopeForbidden
from app.api.auth import ADMIN, FINANCE, scope
from app.api.deps import db_session, get_runtime, warehouse
from app.api.problems import PROBLEM_RESPONSES
from app.runtime import Runtime

router = APIRouter(tags=["recommendations"])

MONTH = r"^(19|20|21)\d\d-(0[1-9]|1[0-2])$"
KINDS = Literal["commitment_purchase", "idle_public_ip", "unattached_volume", "old_snapshot", "idle_network",
                "gp2_to_gp3", "nonprod_schedule", "rightsize_idle", "rightsize_downsize", "rightsize_generation"]


def _team(team: str | None, team_scope: Scope) -> str | None:
    if team_scope is None:
        return team
    if team is not None and team != team_scope:
        raise ScopeForbidden("team", f"this key reads team {team_scope!r} only, not {team!r}")
    return team_scope


@router.get("/recommendations", summary="Recommendations, biggest savings first", responses=PROBLEM_RESPONSES)
def list_recommendations(
    session: Session = Depends(db_session),
    team_scope: Scope = Depends(scope),
    status: Literal["open", "acted_on", "expired", "any"] = Query(
        "open", description="open (current findings), acted_on (the data shows it was done; realized savings "
        "measured), expired (no longer found, nothing done) or any.", examples=["open"]),
    kind: KINDS | None = Query(None, description="Only this kind (README: \"Recommendations\")."),
    category: Literal["commitment", "waste", "rightsizing"] | None = Query(None, description="Only this category."),
    provider: str | None = Query(None, max_length=200, description="Only this ProviderName (AWS, Microsoft, "
                                                                   "Google Cloud)."),
    team: str | None = Query(None, max_length=200, description="Only recommendations on resources allocated "
                                                               "mostly to this team. Team keys: their own team only."),
    limit: int = Query(100, ge=1, le=1000, description="Maximum number of recommendations."),
    offset: int = Query(0, ge=0, le=1_000_000_000, description="Recommendations to skip (paging)."),
) -> dict:
    """Each recommendation: kind, action, provider, account, resource, region, team, predicted `monthly_savings`
    and the `monthly_cost` of what it acts on (decimal strings in `currency`, at the effective rate the bill
    shows), `under_commitment`, `evidence` (the figures it rests on), `assumptions`, `inputs` (the optimizer
    settings), and once acted on its `outcome` and `realized_monthly_savings`. Run `POST
    /v1/recommendations/refresh` (or `cloudtally recommend refresh`) to update them from the warehouse."""
    from optimizers import ledger

    total, rows = ledger.list_recommendations(session, team=_team(team, team_scope),
                                              status=None if status == "any" else status, kind=kind,
                                              category=category, provider=provider, limit=limit, offset=offset)
    return {"recommendations": rows, "total": total, "limit": limit, "offset": offset}


@router.get("/recommendations/accuracy", summary="Realized vs predicted savings", responses=PROBLEM_RESPONSES)
def get_accuracy(
    session: Session = Depends(db_session),
    team_scope: Scope = Depends(scope),
    team: str | None = Query(None, max_length=200, description="Only this team's recommendations (team keys: "
                                                               "their own)."),
) -> dict:
    """Per kind and currency: how many recommendations are open, expired and acted on, and for those acted on the
    predicted and realized monthly savings (decimal strings), their ratio (sum realized / sum predicted) and the
    median of the per-recommendation ratios. Realized savings come from the data that arrived after the
    recommendation: the resource's cost before minus after (0 once gone), or the net savings of the commitment
    bought."""
    from optimizers import ledger

    return ledger.accuracy(session, team=_team(team, team_scope))


@router.post("/recommendations/refresh", summary="Run the optimizers now", dependencies=[ADMIN],
             responses=PROBLEM_RESPONSES)
def post_refresh(
    rt: Runtime = Depends(get_runtime),
    lookback_days: int = Query(30, ge=7, le=60, description="Commitment lookback in days (7, 30 or 60 are "
                                                            "reported in the evidence; this one is recommended)."),
    commitment_downside: float = Query(0.3, ge=0, le=0.95, description="Commitment purchases come in tranches "
                                       "sized for this fall in usage right after the purchase: each is (1 - "
                                       "downside) of the optimum; 0 buys it all at once."),
    commitment_review_days: int = Query(7, ge=1, le=365, description="Days between commitment reviews (each "
                                        "review period has its own tranche)."),
) -> dict:
    """Run every optimizer over the warehouse, store new findings, update open ones and check earlier ones
    against newer data (acted on: realized savings measured; expired). Returns the counts and the open predicted
    monthly savings per currency."""
    from optimizers import ledger

    return ledger.refresh(rt, {"lookback_days": lookback_days, "commitment_downside": repr(commitment_downside),
                               "commitment_review_days": commitment_review_days})


@router.get("/recommendations/{rec_id}", summary="One recommendation", responses=PROBLEM_RESPONSES)
def get_recommendation(
    rec_id: str = Path(max_length=36, description="The recommendation's id."),
    session: Session = Depends(db_session),
    team_scope: Scope = Depends(scope),
) -> dict:
    """One recommendation with its evidence, assumptions, inputs and outcome. A team key may read only those on
    resources allocated to its team (403 otherwise)."""
    from optimizers import ledger

    row = ledger.get(session, rec_id)
    if row is None:
        raise HTTPException(404, f"no recommendation {rec_id!r}")
    if team_scope is not None and row.team != team_scope:
        raise ScopeForbidden("rec_id", f"recommendation {rec_id} is not on a resource of team {team_scope!r}")
    return ledger.view(row)


@router.get("/commitments/utilization", summary="Commitment utilization and coverage", dependencies=[FINANCE],
            responses=PROBLEM_RESPONSES)
def get_utilization(
    con: duckdb.DuckDBPyConnection = Depends(warehouse),
    start: str | None = Query(None, pattern=MONTH, description="First month (YYYY-MM). Default: the latest month "
                              "with usage, or the month before `end`.", examples=["2026-08"]),
    end: str | None = Query(None, pattern=MONTH, description="Month after the last (YYYY-MM, exclusive). Default: "
                            "the month after `start`.", examples=["2026-11"]),
    provider: str | None = Query(None, max_length=200, description="Only this ProviderName."),
) -> dict:
    """Per commitment (CommitmentDiscountId) and month: used and unused cost (EffectiveCost of its Used and Unused
    rows), utilization = used / (used + unused), the amortized fee (its Purchase rows prorated exactly to the
    month) and the identity gap used + unused - fee (0 where the provider amortizes), and net savings vs on-demand
    at contracted prices. Per provider, currency and month: eligible usage, coverage, commitment cost, unused cost
    and the effective savings rate. Money as decimal strings, ratios as 4-decimal strings."""
    from app.costs import money_str
    from optimizers import commitment_utilization

    if start and end and start >= end:
        from app.costs import QueryError

        raise QueryError("end", f"end {end} is not after start {start}")
    result = commitment_utilization.utilization(con, start, end, provider)

    def text(row: dict) -> dict:
        from decimal import Decimal

        return {k: (money_str(v) if isinstance(v, Decimal) else v) for k, v in row.items()}

    return {"start": result["start"], "end": result["end"],
            "commitments": [text(r) for r in result["commitments"]],
            "providers": [text(r) for r in result["providers"]]}
