"""Routing events to channels and delivering them, with a ledger you can audit.

route(rt): every event not routed yet (new, or escalated) gets one delivery row per channel it goes to:
  - default route: a team's events go to the channels declared for that team (alert_channels.team); events
    without a team (finance-wide: budgets of the whole company, ingestion and data-quality failures) go to the
    channels marked `finance`;
  - rules (alert_rules, lowest priority first) matching the event's kind (fnmatch) and team add channels, replace
    the route, or mute it; the first replace or mute ends the routing;
  - the payload is rendered for the channel type once and stored in the delivery (what is sent is what is shown).
  An event with no channel is marked `no_route` and stays visible as undelivered (GET /v1/alert-events).

deliver_due(rt): sends every delivery whose time has come (pending rows are the queue: they survive restarts),
claiming each row first (a lease, so two workers never send one twice and a dead worker's claim expires):
  - quiet hours of the channel (local time window) or its rate limit (deliveries per hour) defer the delivery,
    never drop it;
  - each HTTP request is an attempt row: start, latency, status code or error, Retry-After, the answer's start;
  - 2xx: succeeded. 408/429/5xx and network errors: retried with exponential backoff and jitter, at least the
    Retry-After the receiver asked for, at most CLOUDTALLY_ALERTS_MAX_ATTEMPTS attempts; then failed. 3xx (never
    followed), other 4xx and unsafe targets: failed at once;
  - when an event's deliveries are all over, the event is `delivered` (delivered_at set) or `failed`.
"""
from __future__ import annotations

import fnmatch
import logging
import random
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update

from app.alerts import channels as payloads
from app.alerts.config import alert_settings
from app.alerts.events import event_view
from app.alerts.models import AlertAttempt, AlertChannel, AlertDelivery, AlertRule
from app.alerts.safety import UnsafeTarget, check_url, post
from app.alerts.secrets import unseal
from app.control import AlertEvent, utcnow

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 425, 429}


# -- routing -------------------------------------------------------------------------------------------------
def channels_for(session, event: AlertEvent) -> list[AlertChannel]:
    enabled = {c.id: c for c in session.scalars(select(AlertChannel).where(AlertChannel.enabled))}
    if event.team:
        chosen = [c.id for c in enabled.values() if c.team == event.team]
    else:
        chosen = [c.id for c in enabled.values() if c.finance]
    rules = session.scalars(select(AlertRule).where(AlertRule.enabled).order_by(AlertRule.priority, AlertRule.name))
    for rule in rules:
        if rule.team is not None and rule.team != (event.team or ""):
            continue
        if not any(fnmatch.fnmatchcase(event.kind, pattern) for pattern in rule.kinds or ["*"]):
            continue
        if rule.mode == "mute":
            chosen = []
            break
        targets = [cid for cid in rule.channels if cid in enabled]
        if rule.mode == "replace":
            chosen = targets
            break
        chosen += [cid for cid in targets if cid not in chosen]
    return [enabled[cid] for cid in dict.fromkeys(chosen)]


def route(rt, now: datetime | None = None, event_ids: list[int] | None = None) -> int:
    """Create the deliveries of every unrouted event; returns how many deliveries were created."""
    now = now or utcnow()
    created = 0
    with rt.sessions() as session:
        stmt = select(AlertEvent).where(AlertEvent.routed_at.is_(None)).order_by(AlertEvent.id)
        if event_ids is not None:
            stmt = stmt.where(AlertEvent.id.in_(event_ids))
        for event in session.scalars(stmt.limit(10_000)).all():
            is_update = (event.occurrences or 1) > 1
            targets = channels_for(session, event)
            view = event_view(event)
            for ch in targets:
                session.add(AlertDelivery(event_id=event.id, channel_id=ch.id, channel_name=ch.name,
                                          channel_kind=ch.kind, update=is_update, status="pending",
                                          payload=payloads.render(ch.kind, view, is_update), attempts=0,
                                          next_attempt_at=now, created_at=now))
            created += len(targets)
            event.routed_at = now
            event.delivery_status = "pending" if targets else "no_route"
        session.commit()
    return created


# -- deferral: quiet hours and rate limits ------------------------------------------------------------------
def _hm(text: str) -> tuple[int, int]:
    h, m = text.split(":")
    return int(h), int(m)


def quiet_until(quiet: dict | None, now: datetime) -> datetime | None:
    """The end of the quiet window `now` falls in, or None. {"start": "22:00", "end": "07:00", "timezone": ...}."""
    if not quiet:
        return None
    tz = ZoneInfo(quiet.get("timezone") or "UTC")
    local = now.astimezone(tz)
    (sh, sm), (eh, em) = _hm(quiet["start"]), _hm(quiet["end"])
    start, end = sh * 60 + sm, eh * 60 + em
    minute = local.hour * 60 + local.minute
    inside = (start <= minute < end) if start < end else (minute >= start or minute < end)
    if not inside or start == end:
        return None
    end_local = local.replace(hour=eh, minute=em, second=0, microsecond=0)
    if end_local <= local:
        end_local += timedelta(days=1)
    return end_local.astimezone(timezone.utc)


def rate_limited_until(session, channel: AlertChannel, now: datetime) -> datetime | None:
    if not channel.rate_limit_per_hour:
        return None
    since = now - timedelta(hours=1)
    sent = list(session.scalars(select(AlertDelivery.finished_at).where(
        AlertDelivery.channel_id == channel.id, AlertDelivery.status == "succeeded",
        AlertDelivery.finished_at > since).order_by(AlertDelivery.finished_at)))
    if len(sent) < channel.rate_limit_per_hour:
        return None
    return sent[len(sent) - channel.rate_limit_per_hour] + timedelta(hours=1)


# -- one attempt ----------------------------------------------------------------------------------------------
def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def retry_delay(attempt: int, settings, retry_after: float | None, rand=random) -> float:
    """Seconds before the next attempt after attempt number `attempt` failed: exponential with jitter (half to
    full of base * 2**(attempt-1)), at least Retry-After, at most retry_max_delay."""
    ceiling = settings.retry_base_delay * (2 ** (attempt - 1))
    delay = rand.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, settings.retry_max_delay)


def _send(rt, channel: AlertChannel | None, delivery: AlertDelivery, now: datetime) -> dict:
    """One HTTP attempt; returns the attempt's fields and the verdict: ok | retry | fail."""
    settings = alert_settings(rt)
    if channel is None:
        return {"verdict": "fail", "error": "the channel was deleted"}
    if not channel.enabled:
        return {"verdict": "fail", "error": "the channel is disabled"}
    try:
        target = check_url(unseal(rt, channel.target), settings.allow_hosts)
    except UnsafeTarget as exc:
        return {"verdict": "fail", "error": f"unsafe target refused: {exc}"}
    secret = unseal(rt, channel.secret) if channel.secret else None
    body, headers = payloads.request(channel.kind, delivery.payload, secret, now=time.time())
    t0 = time.monotonic()
    try:
        resp = post(target, body, headers, settings.timeout)
    except OSError as exc:
        return {"verdict": "retry", "latency_ms": int((time.monotonic() - t0) * 1000),
                "error": f"{type(exc).__name__}: {exc}"[:1000]}
    latency = int((time.monotonic() - t0) * 1000)
    out = {"latency_ms": latency, "status_code": resp.status, "response": resp.body[:500]}
    if 200 <= resp.status < 300:
        return {**out, "verdict": "ok"}
    if resp.status in RETRY_STATUS or resp.status >= 500:
        return {**out, "verdict": "retry", "error": f"HTTP {resp.status}",
                "retry_after": retry_after_seconds(resp.headers.get("retry-after"), now)}
    if 300 <= resp.status < 400:
        return {**out, "verdict": "fail", "error": f"HTTP {resp.status}: redirects are not followed"}
    return {**out, "verdict": "fail", "error": f"HTTP {resp.status}"}


def _claim(session, delivery_id: int, now: datetime, lease: float) -> bool:
    res = session.execute(update(AlertDelivery).where(
        AlertDelivery.id == delivery_id,
        or_(AlertDelivery.status == "pending",
            (AlertDelivery.status == "sending") & (AlertDelivery.lease_until < now)),
    ).values(status="sending", lease_until=now + timedelta(seconds=lease)))
    session.commit()
    return res.rowcount == 1


def _finish_event(session, event_id: int, now: datetime) -> None:
    states = [s for (s,) in session.execute(select(AlertDelivery.status).where(AlertDelivery.event_id == event_id))]
    if not states or any(s in ("pending", "sending") for s in states):
        return
    event = session.get(AlertEvent, event_id)
    if event is None or event.routed_at is None:
        return  # re-opened by an escalation meanwhile: its new deliveries decide
    if all(s == "succeeded" for s in states):
        event.delivery_status, event.delivered_at = "delivered", now
    else:
        event.delivery_status = "failed"


def deliver_one(rt, delivery_id: int, now: datetime | None = None) -> AlertDelivery | None:
    """Claim and attempt one due delivery (or defer it); returns its row after the attempt, None if not claimed."""
    settings = alert_settings(rt)
    now = now or utcnow()
    with rt.sessions() as session:
        if not _claim(session, delivery_id, now, settings.lease_seconds):
            return None
        d = session.get(AlertDelivery, delivery_id)
        channel = session.get(AlertChannel, d.channel_id) if d.channel_id else None
        if channel is not None and channel.enabled:
            wait = quiet_until(channel.quiet_hours, now)
            why = "quiet hours" if wait else None
            if wait is None:
                wait = rate_limited_until(session, channel, now)
                why = f"rate limit {channel.rate_limit_per_hour}/hour" if wait else None
            if wait is not None:
                d.status, d.next_attempt_at, d.lease_until, d.deferred = "pending", wait, None, \
                    f"{why}: waits until {wait.isoformat().replace('+00:00', 'Z')}"
                session.commit()
                return d
        result = _send(rt, channel, d, now)
        d.attempts += 1
        session.add(AlertAttempt(delivery_id=d.id, number=d.attempts, started_at=now,
                                 latency_ms=result.get("latency_ms"), status_code=result.get("status_code"),
                                 error=result.get("error"), retry_after=result.get("retry_after"),
                                 response=result.get("response")))
        d.last_status_code, d.last_error, d.lease_until, d.deferred = (
            result.get("status_code"), result.get("error"), None, None)
        if result["verdict"] == "ok":
            d.status, d.finished_at, d.next_attempt_at = "succeeded", now, None
        elif result["verdict"] == "retry" and d.attempts < settings.max_attempts:
            delay = retry_delay(d.attempts, settings, result.get("retry_after"))
            d.status, d.next_attempt_at = "pending", now + timedelta(seconds=delay)
        else:
            d.status, d.finished_at, d.next_attempt_at = "failed", now, None
            if result["verdict"] == "retry":
                d.last_error = f"{result.get('error')} (gave up after {d.attempts} attempts)"
            log.warning("alert delivery %s to channel %s failed: %s", d.id, d.channel_name, d.last_error)
        session.flush()
        _finish_event(session, d.event_id, now)
        session.commit()
        return d


def due(rt, now: datetime, limit: int = 500) -> list[int]:
    with rt.sessions() as session:
        return list(session.scalars(select(AlertDelivery.id).where(or_(
            (AlertDelivery.status == "pending") & (AlertDelivery.next_attempt_at <= now),
            (AlertDelivery.status == "sending") & (AlertDelivery.lease_until < now),
        )).order_by(AlertDelivery.next_attempt_at, AlertDelivery.id).limit(limit)))


def deliver_due(rt, now: datetime | None = None, limit: int = 500, progress=None) -> dict:
    """Route unrouted events, then attempt every due delivery once. Returns counts by outcome."""
    now = now or utcnow()
    routed = route(rt, now)
    counts = {"routed": routed, "succeeded": 0, "retrying": 0, "failed": 0, "deferred": 0}
    ids = due(rt, now, limit)
    for i, delivery_id in enumerate(ids):
        d = deliver_one(rt, delivery_id, now)
        if d is not None:
            key = {"succeeded": "succeeded", "failed": "failed"}.get(d.status)
            counts[key or ("deferred" if d.deferred else "retrying")] += 1
        if progress:
            progress(i + 1, len(ids))
    return counts


def pending_count(rt) -> int:
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(AlertDelivery).where(
            AlertDelivery.status.in_(("pending", "sending"))))


# -- views --------------------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def attempt_view(a: AlertAttempt) -> dict:
    return {"number": a.number, "started_at": _iso(a.started_at), "latency_ms": a.latency_ms,
            "status_code": a.status_code, "error": a.error, "retry_after": a.retry_after, "response": a.response}


def delivery_view(d: AlertDelivery, attempts: list[AlertAttempt]) -> dict:
    return {"id": d.id, "event_id": d.event_id, "channel_id": d.channel_id, "channel": d.channel_name,
            "channel_kind": d.channel_kind, "update": d.update, "status": d.status, "attempts": d.attempts,
            "next_attempt_at": _iso(d.next_attempt_at), "deferred": d.deferred,
            "last_status_code": d.last_status_code, "last_error": d.last_error, "created_at": _iso(d.created_at),
            "finished_at": _iso(d.finished_at), "payload": d.payload,
            "attempt_log": [attempt_view(a) for a in attempts]}


def list_deliveries(session, *, scope: str | None = None, status: str | None = None, event_id: int | None = None,
                    channel: str | None = None, limit: int = 100, offset: int = 0) -> tuple[int, list[dict]]:
    stmt = select(AlertDelivery)
    if scope is not None:
        stmt = stmt.join(AlertEvent, AlertEvent.id == AlertDelivery.event_id).where(AlertEvent.team == scope)
    if status:
        stmt = stmt.where(AlertDelivery.status == status)
    if event_id is not None:
        stmt = stmt.where(AlertDelivery.event_id == event_id)
    if channel:
        stmt = stmt.where((AlertDelivery.channel_id == channel) | (AlertDelivery.channel_name == channel))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = list(session.scalars(stmt.order_by(AlertDelivery.id.desc()).limit(limit).offset(offset)))
    attempts: dict[int, list] = {d.id: [] for d in rows}
    if rows:
        for a in session.scalars(select(AlertAttempt).where(AlertAttempt.delivery_id.in_(list(attempts)))
                                 .order_by(AlertAttempt.delivery_id, AlertAttempt.number)):
            attempts[a.delivery_id].append(a)
    return total, [delivery_view(d, attempts[d.id]) for d in rows]
