"""Configured sources: list, read, create, delete (never secrets), and start a run of one."""
from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app import sources as sources_mod
from app.api.auth import ADMIN, FINANCE
from app.api.deps import get_runtime
from app.api.problems import PROBLEM_RESPONSES, problem
from app.runtime import Runtime

# Reading sources: admin and finance keys; adding, removing and running them: admin only.
router = APIRouter(prefix="/sources", tags=["sources"], dependencies=[FINANCE])
NAME = Path(description="The source's name.")


class SourceIn(BaseModel):
    name: str = Field(description="Letters, digits, - and _.", examples=["aws-prod"])
    provider: str = Field(description="aws, azure, gcp or focus.", examples=["aws"])
    format: str = Field(description="aws: cur, cur2, focus; azure: actual, amortized, actual+amortized, focus; "
                                    "gcp: bigquery, export; focus: focus.", examples=["cur2"])
    location: str = Field(description="s3://bucket/prefix/<export>, azure://account/container/<root>/<export>, "
                                      "bq://project.dataset.table, or a local folder laid out the same way.",
                          examples=["s3://billing-bucket/exports/cur2-daily"])
    options: dict[str, str] = Field(default_factory=dict, description="Connector options (endpoint_url, region, "
                                    "billing_project, freshness_hours, restatement_tolerance, ...). Keys that look "
                                    "like secrets are refused: credentials come from the environment.")
    schedule: str | None = Field(None, description="Cron expression in UTC for scheduled ingests: 5 fields "
                                 "(minute hour day month day-of-week) or 6 with leading seconds.",
                                 examples=["0 */6 * * *"])


def _sync(request: Request) -> None:
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        scheduler.sync()


@router.get("", summary="List sources", responses=PROBLEM_RESPONSES)
def list_sources(
    rt: Runtime = Depends(get_runtime),
    limit: int = Query(100, ge=1, le=1000, description="Maximum number of sources, by name."),
    offset: int = Query(0, ge=0, le=1_000_000_000, description="Sources to skip (paging)."),
) -> dict:
    """Configured sources: provider, format, location, options and schedule (never credentials)."""
    every = sources_mod.list_all(rt)
    return {"sources": [sources_mod.view(s) for s in every[offset:offset + limit]], "total": len(every),
            "limit": limit, "offset": offset}


@router.get("/{name}", summary="One source", responses=PROBLEM_RESPONSES)
def get_source(name: str = NAME, rt: Runtime = Depends(get_runtime)) -> dict:
    source = sources_mod.get(rt, name)
    if source is None:
        raise HTTPException(404, f"no source named {name!r}")
    return sources_mod.view(source)


@router.post("", summary="Add a source", status_code=201, dependencies=[ADMIN], responses={
    **PROBLEM_RESPONSES, 409: {"description": "A source of that name exists.", **PROBLEM_RESPONSES[400]}})
def create_source(body: SourceIn, request: Request, rt: Runtime = Depends(get_runtime)):
    """Add a source; with a `schedule`, the scheduler of a running `cloudtally serve` picks it up at once."""
    if sources_mod.get(rt, body.name) is not None:
        return problem(409, "Conflict", f"a source named {body.name!r} exists already",
                       instance=str(request.url.path), errors=[{"parameter": "name", "detail": "exists already"}])
    try:
        source = sources_mod.add(rt, body.name, body.provider, body.format, body.location, body.options,
                                 body.schedule)
    except sources_mod.SourceError as exc:
        return problem(400, "Invalid source", str(exc), instance=str(request.url.path),
                       errors=[{"parameter": exc.parameter, "detail": str(exc)}])
    _sync(request)
    return JSONResponse(sources_mod.view(source), status_code=201,
                        headers={"Location": f"/v1/sources/{source.name}"})


@router.delete("/{name}", summary="Remove a source", status_code=204, dependencies=[ADMIN],
               responses=PROBLEM_RESPONSES)
def delete_source(request: Request, name: str = NAME, rt: Runtime = Depends(get_runtime)):
    """Remove the source, its ledger and its rows in the warehouse (its run history stays)."""
    if sources_mod.get(rt, name) is None:
        raise HTTPException(404, f"no source named {name!r}")
    sources_mod.remove(rt, name)
    _sync(request)
    return JSONResponse(None, status_code=204)


@router.post("/{name}/runs", summary="Start an ingest run", status_code=202, dependencies=[ADMIN],
             responses=PROBLEM_RESPONSES)
def start_run(request: Request, name: str = NAME, rt: Runtime = Depends(get_runtime)):
    """Run the source's ingest now, in the background (trigger `api`), under the same lock, retries and run record
    as scheduled runs; follow it in `GET /v1/ingest-runs?source=NAME`."""
    from app.runs import run_source

    if sources_mod.get(rt, name) is None:
        raise HTTPException(404, f"no source named {name!r}")
    threading.Thread(target=run_source, args=(rt, name, "api"), name=f"ingest-{name}", daemon=True).start()
    return JSONResponse({"source": name, "status": "accepted", "runs": f"/v1/ingest-runs?source={name}"},
                        status_code=status.HTTP_202_ACCEPTED)
