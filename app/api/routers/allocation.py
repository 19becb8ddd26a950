"""Allocation rules (CRUD: every change is a new version through the same apply path), versions and their diff,
explain and coverage.

Who may: reading the rules and the version list (no amounts): any key; writing rules: admin; the version diff
and coverage (every team's amounts): admin and finance; explain: any key, a team key within its team only."""
from __future__ import annotations

import copy
from typing import Literal

import duckdb
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query

from app.allocation import engine
from app.allocation.rules import BUILTIN_DIMENSIONS
from app.access import Scope, scope_explain_line, scope_group_filters
from app.api.auth import ADMIN, FINANCE, scope
from app.api.deps import get_runtime, warehouse
from app.api.problems import PROBLEM_RESPONSES
from app.costs import QueryError, parse_date
from app.runtime import Runtime

router = APIRouter(prefix="/allocation", tags=["allocation"])

NOTE = Query(None, description="Why the rules changed; stored with the new version.")
RULE_NAME = Path(description="The rule's name (unique within the document).")


def _current(rt: Runtime) -> tuple[int, dict]:
    version, doc = engine.active_document(rt)
    return version, copy.deepcopy(doc.raw)


def _apply(rt: Runtime, document: dict, note: str | None) -> dict:
    from app.rollups import refresh_rt

    applied = engine.apply(rt, document, note=note).to_json()
    refresh_rt(rt)  # the periods the new version re-allocated
    return applied


@router.get("/rules", summary="The active rule document", responses=PROBLEM_RESPONSES)
def get_rules(rt: Runtime = Depends(get_runtime)) -> dict:
    """The active version's document: `dimensions`, `tag_aliases` and the ordered `rules` (README: "Allocation
    rules"). Version 0 and no rules before anything was applied."""
    version, doc = _current(rt)
    return {"version": version, "document": doc}


@router.put("/rules", summary="Replace the whole rule document", dependencies=[ADMIN], responses=PROBLEM_RESPONSES)
def put_rules(
    document: dict = Body(..., description="The whole document: {dimensions, tag_aliases, rules}."),
    note: str | None = NOTE,
    rt: Runtime = Depends(get_runtime),
) -> dict:
    """Validate and apply a new document (a new version re-allocating the billing periods it changes). An invalid
    document is a 400 problem naming each rule and field; the previous version stays active."""
    return _apply(rt, document, note)


@router.post("/rules", summary="Add a rule", status_code=201, dependencies=[ADMIN], responses=PROBLEM_RESPONSES)
def post_rule(
    rule: dict = Body(..., description="One rule: {name, when, set, split, effective_from, effective_to}."),
    position: int | None = Query(None, ge=1, le=100_000, description="1-based position in the ordered list (first match wins). "
                                                         "Default: last."),
    note: str | None = NOTE,
    rt: Runtime = Depends(get_runtime),
) -> dict:
    """Insert a rule and apply the result as a new version."""
    _, doc = _current(rt)
    rules = doc.setdefault("rules", [])
    rules.insert(len(rules) if position is None else position - 1, rule)
    return _apply(rt, doc, note)


def _index(doc: dict, name: str) -> int:
    for i, r in enumerate(doc.get("rules", [])):
        if isinstance(r, dict) and r.get("name") == name:
            return i
    raise HTTPException(404, f"no rule named {name!r} in the active version")


@router.get("/rules/{name}", summary="One rule", responses=PROBLEM_RESPONSES)
def get_rule(name: str = RULE_NAME, rt: Runtime = Depends(get_runtime)) -> dict:
    version, doc = _current(rt)
    i = _index(doc, name)
    return {"version": version, "position": i + 1, "rule": doc["rules"][i]}


@router.put("/rules/{name}", summary="Replace one rule", dependencies=[ADMIN], responses=PROBLEM_RESPONSES)
def put_rule(
    name: str = RULE_NAME,
    rule: dict = Body(..., description="The rule's new definition (its `name` may rename it)."),
    note: str | None = NOTE,
    rt: Runtime = Depends(get_runtime),
) -> dict:
    """Replace a rule in place (same position) and apply the result as a new version."""
    _, doc = _current(rt)
    doc["rules"][_index(doc, name)] = {"name": name, **rule}
    return _apply(rt, doc, note)


@router.delete("/rules/{name}", summary="Delete one rule", dependencies=[ADMIN], responses=PROBLEM_RESPONSES)
def delete_rule(name: str = RULE_NAME, note: str | None = NOTE, rt: Runtime = Depends(get_runtime)) -> dict:
    """Remove a rule and apply the result as a new version (its lines fall to later rules or to unallocated)."""
    _, doc = _current(rt)
    del doc["rules"][_index(doc, name)]
    return _apply(rt, doc, note)


@router.get("/versions", summary="Rule versions, newest first", responses=PROBLEM_RESPONSES)
def get_versions(
    rt: Runtime = Depends(get_runtime),
    limit: int = Query(100, ge=1, le=1000, description="Maximum number of versions, newest first."),
    offset: int = Query(0, ge=0, le=1_000_000_000, description="Versions to skip (paging)."),
) -> dict:
    """Versions: number, time, note, checksum, whether active, and the billing periods it re-allocated."""
    every = engine.list_versions(rt)
    return {"versions": every[offset:offset + limit], "total": len(every), "limit": limit, "offset": offset}


@router.get("/versions/diff", summary="What moved between two versions", dependencies=[FINANCE],
            responses=PROBLEM_RESPONSES)
def get_diff(
    from_: int = Query(..., alias="from", ge=0, le=2**31 - 1, description="The earlier version number."),
    to: int = Query(..., ge=0, le=2**31 - 1, description="The later version number."),
    by: Literal["team", "cost_center", "service"] = Query("team", description="Dimension to total by."),
    metric: Literal["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"] = Query(
        "EffectiveCost", description="Cost metric to compare."),
    rt: Runtime = Depends(get_runtime),
    con: duckdb.DuckDBPyConnection = Depends(warehouse),
) -> dict:
    """Totals per billing period, currency and `by` as each version allocated them, and `moved` = to - from
    (`moved` lists only the rows that changed). Amounts are exact decimal strings."""
    try:
        return engine.jsonable(engine.diff(rt, con, from_, to, by, metric))
    except engine.VersionNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/explain", summary="Why a line or a group is allocated as it is", responses=PROBLEM_RESPONSES)
def get_explain(
    line_id: int | None = Query(None, ge=0, le=2**63 - 1, description="One line (x_LineId): its parts, rule, version, the rule's "
                                                  "tests re-evaluated on the line, and the split computation."),
    team: str | None = Query(None, description="Group: parts allocated to this team."),
    service: str | None = Query(None, description="Group: parts allocated to this service dimension value."),
    cost_center: str | None = Query(None, description="Group: parts allocated to this cost center."),
    environment: str | None = Query(None, description="Group: parts allocated to this environment."),
    day: str | None = Query(None, description="Group: charges of this day (YYYY-MM-DD)."),
    rt: Runtime = Depends(get_runtime),
    con: duckdb.DuckDBPyConnection = Depends(warehouse),
    team_scope: Scope = Depends(scope),
) -> dict:
    """With `line_id`: the line, its parts, the claiming rule and version, each test of the rule re-evaluated in
    SQL (true/false) and, for splits, the targets or the drivers and their total. Otherwise, for the group the
    dimension filters and `day` select: per rule and version the lines, parts, amounts, how many lines each test
    was true for, and sample line ids. A team key: a line with a part of its team (403 otherwise), showing only
    its parts; a group always within its team (`team` naming another is a 403)."""
    if line_id is not None:
        try:
            explained = engine.explain_line(rt, con, line_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        return engine.jsonable(scope_explain_line(explained, team_scope))
    filters = {k: v for k, v in (("team", team), ("service", service), ("cost_center", cost_center),
                                  ("environment", environment)) if v is not None}
    d = parse_date("day", day)
    if not filters and d is None:
        raise QueryError("line_id", "give line_id, or a group: team, service, cost_center, environment and/or day")
    filters = scope_group_filters(filters, team_scope)
    return engine.jsonable(engine.explain_group(rt, con, filters, d))


@router.get("/coverage", summary="Share of EffectiveCost allocated, per provider and month", dependencies=[FINANCE],
            responses=PROBLEM_RESPONSES)
def get_coverage(
    start: str | None = Query(None, description="First day (YYYY-MM-DD or YYYY-MM). Default: all data."),
    end: str | None = Query(None, description="Day after the window (exclusive)."),
    granularity: Literal["month", "day"] = Query("month", description="Period of each row."),
    con: duckdb.DuckDBPyConnection = Depends(warehouse),
) -> dict:
    """Per provider, period and currency: EffectiveCost `total` (the lines), `allocated` (parts a rule claimed),
    `unallocated` (team 'unallocated'), and `coverage_pct` = allocated / total x 100 (2 places; null when the total
    is 0). allocated + unallocated = total; `not_allocated_yet` is non-zero only while a period awaits allocation."""
    s, e = parse_date("start", start), parse_date("end", end)
    return {"coverage": engine.jsonable(engine.coverage(con, s, e, granularity)),
            "dimensions": list(BUILTIN_DIMENSIONS)}
