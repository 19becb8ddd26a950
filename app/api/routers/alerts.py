"""Alerts: channels (Slack, Teams, signed webhook), routing rules, events, the delivery ledger, anomalies.

Admin keys manage channels and rules; finance and admin keys see everything; a team key sees its team's channels,
events and deliveries only (the filter is in the query, a request naming another team is a 403)."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.access import Principal, ScopeForbidden
from app.alerts import delivery, store
from app.alerts.events import event_view, list_events
from app.api.auth import ADMIN, ANY, FINANCE, principal
from app.api.deps import db_session, get_runtime
from app.api.problems import PROBLEM_RESPONSES
from app.control import AlertEvent
from app.costs import QueryError
from app.runtime import Runtime

router = APIRouter(prefix="/alerts", tags=["alerts"])
LIMIT = Query(100, ge=1, le=1000, description="Maximum number of items.")
OFFSET = Query(0, ge=0, le=1_000_000_000, description="Items to skip (paging).")
ID = Path(description="The channel's id or name.", max_length=200)
TEAM = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


def _config_error(exc: store.AlertConfigError):
    raise QueryError(exc.parameter, exc.message) from None


def _scope_team(who: Principal, team: str | None) -> str | None:
    if who.scope is not None and team is not None and team != who.scope:
        raise ScopeForbidden("team", f"this key reads team {who.scope!r} only, not {team!r}")
    return team


class QuietHours(BaseModel):
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM local time the quiet hours start.",
                       examples=["22:00"])
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM local time they end.",
                     examples=["07:00"])
    timezone: str = Field("UTC", max_length=64, description="IANA time zone.", examples=["Europe/Berlin"])


class ChannelIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Unique channel name.", examples=["payments-slack"])
    kind: Literal["slack", "teams", "webhook"] = Field(description="slack (incoming webhook, Block Kit), teams "
                                                       "(Workflows webhook, Adaptive Card) or webhook (signed JSON).")
    url: str = Field(min_length=8, max_length=2000, description="The webhook URL: https (http only to hosts in "
                     "CLOUDTALLY_ALERTS_ALLOW_HOSTS); private, loopback and metadata addresses are refused. "
                     "Stored encrypted, never shown again.", examples=["https://hooks.slack.com/services/T/B/X"])
    team: str | None = Field(None, pattern=TEAM, description="Receives this team's alerts.", examples=["payments"])
    finance: bool = Field(False, description="Receives finance-wide alerts (company budgets, ingestion and "
                          "data-quality failures, anomalies of services and accounts).")
    quiet_hours: QuietHours | None = Field(None, description="Deliveries falling in this window wait until it "
                                           "ends.")
    rate_limit_per_hour: int | None = Field(None, ge=1, le=10_000, description="At most this many messages per "
                                            "hour; more wait for a free slot.")


class ChannelPatch(BaseModel):
    url: str | None = Field(None, min_length=8, max_length=2000, description="A new webhook URL.")
    team: str | None = Field(None, pattern=TEAM, description="The team whose alerts it receives.")
    finance: bool | None = Field(None, description="Receives finance-wide alerts.")
    quiet_hours: QuietHours | None = Field(None, description="Quiet hours (null clears them).")
    rate_limit_per_hour: int | None = Field(None, ge=1, le=10_000, description="Messages per hour (null: none).")
    enabled: bool | None = Field(None, description="A disabled channel receives nothing.")


class RuleIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Unique rule name.")
    kinds: list[str] = Field(min_length=1, max_length=50, description="Event kinds or fnmatch patterns: anomaly, "
                             "budget.actual, budget.*, data_quality.*, ingest.failure, digest.weekly; a rule whose "
                             "kinds include `budget` or `anomaly` also carries that trigger's params.",
                             examples=[["budget.*"]])
    mode: Literal["add", "replace", "mute"] = Field("add", description="add channels to the default route, "
                                                    "replace it, or mute matching events.")
    channels: list[str] = Field([], max_length=50, description="Channel ids or names (add, replace).")
    team: str | None = Field(None, pattern=TEAM, description="Only events of this team (default: any).")
    params: dict = Field({}, description="Trigger settings, e.g. {\"thresholds\": [50, 80, 100], "
                         "\"forecast_thresholds\": [100]} (budget) or {\"z\": 4, \"min_percent\": 0.2, "
                         "\"min_impact\": 25, \"dimensions\": [\"ServiceName\", \"team\"]} (anomaly); "
                         "digest.*: {\"teams\": [...]}.")
    priority: int = Field(100, ge=0, le=1_000_000, description="Lower runs first.")


# -- channels -----------------------------------------------------------------------------------------------------
@router.get("/channels", summary="List alert channels", dependencies=[ANY], responses=PROBLEM_RESPONSES)
def list_channels(session: Session = Depends(db_session), who: Principal = Depends(principal),
                  limit: int = LIMIT, offset: int = OFFSET) -> dict:
    """Channels with their kind, team, finance flag, quiet hours and rate limit; the target shows scheme, host and
    port only (the URL is a credential). A team key sees its team's channels."""
    total, items = store.list_channels(session, scope=who.scope, limit=limit, offset=offset)
    return {"channels": items, "total": total, "limit": limit, "offset": offset}


@router.post("/channels", summary="Create an alert channel", status_code=201, dependencies=[ADMIN],
             responses=PROBLEM_RESPONSES)
def create_channel(body: ChannelIn, rt: Runtime = Depends(get_runtime)):
    """The URL is checked (scheme, every resolved address) and stored encrypted. A generic webhook gets a signing
    secret, returned in `secret` this once: receivers verify `X-CloudTally-Signature: sha256=<HMAC-SHA256(secret,
    X-CloudTally-Timestamp + "." + raw body)>` and reject timestamps older than 5 minutes."""
    try:
        view, secret = store.create_channel(rt, body.name, body.kind, body.url, team=body.team,
                                            finance=body.finance,
                                            quiet_hours=body.quiet_hours.model_dump() if body.quiet_hours else None,
                                            rate_limit_per_hour=body.rate_limit_per_hour)
    except store.AlertConfigError as exc:
        _config_error(exc)
    return JSONResponse({**view, "secret": secret}, status_code=201)


@router.get("/channels/{channel_id}", summary="One alert channel", dependencies=[ANY], responses=PROBLEM_RESPONSES)
def get_channel(channel_id: str = ID, session: Session = Depends(db_session),
                who: Principal = Depends(principal)) -> dict:
    row = store.find_channel(session, channel_id)
    if row is None or (who.scope is not None and row.team != who.scope):
        raise HTTPException(404, f"no alert channel {channel_id!r}")
    return store.channel_view(row)


@router.patch("/channels/{channel_id}", summary="Change an alert channel", dependencies=[ADMIN],
              responses=PROBLEM_RESPONSES)
def patch_channel(body: ChannelPatch, channel_id: str = ID, rt: Runtime = Depends(get_runtime)) -> dict:
    """Only the fields given change (`quiet_hours: null` clears them)."""
    changes = body.model_dump(exclude_unset=True)
    if "quiet_hours" in changes and changes["quiet_hours"] is not None:
        changes["quiet_hours"] = dict(changes["quiet_hours"])
    try:
        return store.update_channel(rt, channel_id, **changes)
    except store.AlertConfigError as exc:
        _config_error(exc)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None


@router.delete("/channels/{channel_id}", summary="Delete an alert channel", dependencies=[ADMIN],
               responses=PROBLEM_RESPONSES)
def delete_channel(channel_id: str = ID, rt: Runtime = Depends(get_runtime)) -> dict:
    """Its pending deliveries fail ("the channel was deleted"); the ledger keeps their history."""
    try:
        return store.delete_channel(rt, channel_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/channels/{channel_id}/test", summary="Send a test message", dependencies=[ADMIN],
             responses=PROBLEM_RESPONSES)
def test_channel(channel_id: str = ID, rt: Runtime = Depends(get_runtime)) -> dict:
    """Sends a test message now (one attempt, no retries, quiet hours and rate limit ignored) and returns its
    delivery with the attempt: status code, latency, error. It is in the ledger like any delivery."""
    try:
        return store.send_test(rt, channel_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/channels/{channel_id}/rotate-secret", summary="New signing secret for a webhook",
             dependencies=[ADMIN], responses=PROBLEM_RESPONSES)
def rotate_secret(channel_id: str = ID, rt: Runtime = Depends(get_runtime)) -> dict:
    """A new secret for a generic webhook, returned this once; the old one stops signing at once."""
    try:
        view, secret = store.rotate_secret(rt, channel_id)
    except store.AlertConfigError as exc:
        _config_error(exc)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    return {**view, "secret": secret}


# -- rules ----------------------------------------------------------------------------------------------------------
@router.get("/rules", summary="List routing rules", dependencies=[FINANCE], responses=PROBLEM_RESPONSES)
def list_rules(session: Session = Depends(db_session), limit: int = LIMIT, offset: int = OFFSET) -> dict:
    """Rules in the order they apply (priority, name)."""
    total, items = store.list_rules(session, limit, offset)
    return {"rules": items, "total": total, "limit": limit, "offset": offset}


@router.post("/rules", summary="Create a routing rule", status_code=201, dependencies=[ADMIN],
             responses=PROBLEM_RESPONSES)
def create_rule(body: RuleIn, rt: Runtime = Depends(get_runtime)) -> dict:
    """Routing: by default a team's events go to that team's channels and finance-wide events to finance
    channels; a rule matching an event (kinds, team) adds channels, replaces the route or mutes it."""
    try:
        return store.create_rule(rt, body.name, kinds=body.kinds, mode=body.mode, channels=body.channels,
                                 team=body.team, params=body.params, priority=body.priority)
    except store.AlertConfigError as exc:
        _config_error(exc)


@router.delete("/rules/{rule_id}", summary="Delete a routing rule", dependencies=[ADMIN],
               responses=PROBLEM_RESPONSES)
def delete_rule(rule_id: str = Path(description="The rule's id or name.", max_length=200),
                rt: Runtime = Depends(get_runtime)) -> dict:
    try:
        return store.delete_rule(rt, rule_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None


# -- events and deliveries --------------------------------------------------------------------------------------------
@router.get("/events", summary="Alert events", dependencies=[ANY], responses=PROBLEM_RESPONSES)
def get_events(
    session: Session = Depends(db_session),
    who: Principal = Depends(principal),
    kind: str | None = Query(None, max_length=100, description="Only this kind, or kinds under it (budget: "
                             "budget.actual, budget.forecast, budget.overrun)."),
    status: Literal["open", "resolved"] | None = Query(None, description="open or resolved."),
    delivery_status: Literal["pending", "delivered", "failed", "no_route"] | None = Query(
        None, description="How its deliveries ended: failed events are the ones to look at."),
    team: str | None = Query(None, pattern=TEAM, description="Only this team's events (a team key: its own)."),
    limit: int = LIMIT,
    offset: int = OFFSET,
) -> dict:
    """Events newest first, with identity (rule, scope, period, threshold), team, severity, open/resolved,
    occurrences (how often the same condition was seen), delivery outcome. A team key sees its team's events."""
    total, items = list_events(session, team=_scope_team(who, team), scope=who.scope, kind=kind, status=status,
                               delivery_status=delivery_status, limit=limit, offset=offset)
    return {"events": items, "total": total, "limit": limit, "offset": offset}


@router.get("/events/{event_id}", summary="One alert event", dependencies=[ANY], responses=PROBLEM_RESPONSES)
def get_event(event_id: int = Path(ge=1, le=2**31 - 1, description="The event's id."),
              session: Session = Depends(db_session), who: Principal = Depends(principal)) -> dict:
    row = session.get(AlertEvent, event_id)
    if row is None or (who.scope is not None and row.team != who.scope):
        raise HTTPException(404, f"no alert event {event_id}")
    return event_view(row)


@router.get("/deliveries", summary="The delivery ledger", dependencies=[ANY], responses=PROBLEM_RESPONSES)
def get_deliveries(
    session: Session = Depends(db_session),
    who: Principal = Depends(principal),
    status: Literal["pending", "sending", "succeeded", "failed"] | None = Query(None, description="Only this "
                                                                                "status."),
    event_id: int | None = Query(None, ge=1, le=2**31 - 1, description="Only this event's deliveries."),
    channel: str | None = Query(None, max_length=200, description="Only this channel (id or name)."),
    limit: int = LIMIT,
    offset: int = OFFSET,
) -> dict:
    """Every delivery newest first: event, channel, status, the exact payload, attempts (each with start, latency,
    status code, error, Retry-After, the answer's first 500 characters), the next attempt and why it waits (quiet
    hours, rate limit). A team key sees deliveries of its team's events."""
    total, items = delivery.list_deliveries(session, scope=who.scope, status=status, event_id=event_id,
                                            channel=channel, limit=limit, offset=offset)
    return {"deliveries": items, "total": total, "limit": limit, "offset": offset}


@router.post("/deliver", summary="Deliver due alerts now", dependencies=[ADMIN], responses=PROBLEM_RESPONSES)
def deliver_now(rt: Runtime = Depends(get_runtime)) -> dict:
    """Route new events and attempt every due delivery once (what the scheduler does every
    CLOUDTALLY_ALERTS_DELIVER_SECONDS). Returns counts."""
    return delivery.deliver_due(rt)


@router.post("/evaluate", summary="Evaluate alert triggers now", dependencies=[ADMIN], responses=PROBLEM_RESPONSES)
def evaluate_now(
    rt: Runtime = Depends(get_runtime),
    as_of: date | None = Body(None, embed=True, description="Evaluate as if the data ended the day before this "
                              "date (default: the warehouse's last day)."),
) -> dict:
    """Ingestion failures, anomalies, budgets and digests, then delivery (what runs after every ingest)."""
    from app.alerts.triggers import evaluate

    if as_of is not None and not (date(2000, 1, 1) <= as_of <= date(2100, 1, 1)):
        raise QueryError("as_of", "must be between 2000-01-01 and 2100-01-01")
    return evaluate(rt, as_of=as_of)


@router.get("/anomalies", summary="Detect cost anomalies", dependencies=[FINANCE], responses=PROBLEM_RESPONSES)
def get_anomalies(
    rt: Runtime = Depends(get_runtime),
    start: date = Query(description="First day of the window searched (episodes ending on or after it).",
                        examples=["2026-09-01"]),
    end: date = Query(description="Day after the window (exclusive).", examples=["2026-10-01"]),
    dimension: list[Literal["ServiceName", "SubAccountId", "RegionId", "team", "cost_center", "ProviderName"]] = Query(
        ["ServiceName", "SubAccountId", "team"], description="Monitored dimensions (each value is a monitor)."),
    z: float = Query(4.0, ge=1, le=100, description="Residual / robust scale needed."),
    min_percent: float = Query(0.2, ge=0, le=100, description="Relative impact needed (0.2 = +20 %)."),
    min_impact: float = Query(25, ge=0, le=1e12, description="Absolute daily impact needed (billing currency)."),
    limit: int = LIMIT,
    offset: int = OFFSET,
) -> dict:
    """Anomaly episodes per monitor (daily usage EffectiveCost vs a one-step-ahead seasonal forecast with a MAD
    scale), biggest impact first: actual, expected, impact, peak, the flagged days. Read-only: raises no events
    (`POST /v1/alerts/evaluate` does)."""
    from decimal import Decimal

    from app.alerts import anomaly
    from app.alerts.triggers import detect_anomalies

    if end <= start:
        raise QueryError("end", "must be after start")
    if (end - start).days > 366 or start.year < 2000 or end.year > 2100:
        raise QueryError("end", "the window spans at most 366 days, within 2000..2100")
    params = anomaly.Params(z=z, min_percent=min_percent, min_impact=Decimal(str(min_impact)))
    found = detect_anomalies(rt, start, end, params, tuple(dict.fromkeys(dimension)))
    items = [{**e, "first_day": e["first_day"].isoformat(), "last_day": e["last_day"].isoformat(),
              "peak_day": e["peak_day"].isoformat(), "peak_percent": round(e["peak_percent"] * 100, 1),
              "actual": str(Decimal(e["actual"]).quantize(Decimal("0.01"))), "expected": str(e["expected"]),
              "impact": str((Decimal(e["actual"]).quantize(Decimal("0.01")) - e["expected"]))}
             for e in found[offset:offset + limit]]
    return {"anomalies": items, "total": len(found), "limit": limit, "offset": offset,
            "window": {"start": start.isoformat(), "end": end.isoformat(),
                       "history_from": (start - timedelta(days=84)).isoformat()}}
