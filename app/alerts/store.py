"""Channels and routing rules: create (the webhook secret is shown once), list, change, delete; the test message."""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select

from app.access import TEAM_NAME
from app.alerts.config import alert_settings
from app.alerts.models import CHANNEL_KINDS, RULE_MODES, AlertChannel, AlertRule
from app.alerts.safety import UnsafeTarget, check_url
from app.alerts.secrets import hint, new_webhook_secret, seal
from app.control import utcnow

_HM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class AlertConfigError(ValueError):
    """Bad channel or rule input; `parameter` names the field."""

    def __init__(self, parameter: str, message: str):
        self.parameter, self.message = parameter, message
        super().__init__(f"{parameter}: {message}")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def channel_view(c: AlertChannel) -> dict:
    return {"id": c.id, "name": c.name, "kind": c.kind, "team": c.team, "finance": c.finance,
            "target": c.target_hint, "signed": c.secret is not None, "quiet_hours": c.quiet_hours,
            "rate_limit_per_hour": c.rate_limit_per_hour, "enabled": c.enabled, "created_at": _iso(c.created_at)}


def _check_quiet(quiet: dict | None) -> dict | None:
    if not quiet:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(quiet, dict) or not _HM.match(str(quiet.get("start", ""))) \
            or not _HM.match(str(quiet.get("end", ""))):
        raise AlertConfigError("quiet_hours", "give start and end as HH:MM (24 h), e.g. 22:00 and 07:00")
    tz = quiet.get("timezone") or "UTC"
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise AlertConfigError("quiet_hours.timezone", f"{tz!r} is not an IANA time zone") from None
    return {"start": quiet["start"], "end": quiet["end"], "timezone": str(tz)}


def _check_team(team: str | None, parameter: str = "team") -> str | None:
    if team is None or team == "":
        return None
    if not TEAM_NAME.match(team):
        raise AlertConfigError(parameter, f"{team!r} is not a team name (letters, digits, . _ -)")
    return team


def create_channel(rt, name: str, kind: str, url: str, *, team: str | None = None, finance: bool = False,
                   quiet_hours: dict | None = None, rate_limit_per_hour: int | None = None) -> tuple[dict, str | None]:
    """A new channel and, for a generic webhook, its signing secret (returned this once; stored encrypted)."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise AlertConfigError("name", "must be 1 to 200 characters")
    if kind not in CHANNEL_KINDS:
        raise AlertConfigError("kind", f"{kind!r} is not one of {', '.join(CHANNEL_KINDS)}")
    team = _check_team(team)
    if team is None and not finance:
        raise AlertConfigError("team", "a channel receives a team's alerts (team) or the finance-wide ones "
                                       "(finance: true), or both")
    if rate_limit_per_hour is not None and not (1 <= rate_limit_per_hour <= 10_000):
        raise AlertConfigError("rate_limit_per_hour", "must be between 1 and 10000")
    try:
        check_url(url, alert_settings(rt).allow_hosts)
    except UnsafeTarget as exc:
        raise AlertConfigError("url", str(exc)) from None
    secret = new_webhook_secret() if kind == "webhook" else None
    with rt.sessions() as session:
        if session.scalar(select(AlertChannel.id).where(AlertChannel.name == name)):
            raise AlertConfigError("name", f"a channel named {name!r} exists")
        row = AlertChannel(name=name, kind=kind, team=team, finance=bool(finance), target=seal(rt, url.strip()),
                           target_hint=hint(url.strip()), secret=seal(rt, secret) if secret else None,
                           quiet_hours=_check_quiet(quiet_hours), rate_limit_per_hour=rate_limit_per_hour,
                           enabled=True, created_at=utcnow())
        session.add(row)
        session.commit()
        return channel_view(row), secret


def find_channel(session, ident: str) -> AlertChannel | None:
    return session.scalar(select(AlertChannel).where((AlertChannel.id == ident) | (AlertChannel.name == ident)))


def update_channel(rt, ident: str, **changes) -> dict:
    with rt.sessions() as session:
        row = find_channel(session, ident)
        if row is None:
            raise LookupError(f"no alert channel {ident!r}")
        if "team" in changes:
            row.team = _check_team(changes["team"])
        if "finance" in changes and changes["finance"] is not None:
            row.finance = bool(changes["finance"])
        if "quiet_hours" in changes:
            row.quiet_hours = _check_quiet(changes["quiet_hours"])
        if "rate_limit_per_hour" in changes:
            rl = changes["rate_limit_per_hour"]
            if rl is not None and not (1 <= rl <= 10_000):
                raise AlertConfigError("rate_limit_per_hour", "must be between 1 and 10000")
            row.rate_limit_per_hour = rl
        if "enabled" in changes and changes["enabled"] is not None:
            row.enabled = bool(changes["enabled"])
        if "url" in changes and changes["url"]:
            try:
                check_url(changes["url"], alert_settings(rt).allow_hosts)
            except UnsafeTarget as exc:
                raise AlertConfigError("url", str(exc)) from None
            row.target, row.target_hint = seal(rt, changes["url"].strip()), hint(changes["url"].strip())
        if row.team is None and not row.finance:
            raise AlertConfigError("team", "a channel needs a team or finance: true")
        session.commit()
        return channel_view(row)


def rotate_secret(rt, ident: str) -> tuple[dict, str]:
    with rt.sessions() as session:
        row = find_channel(session, ident)
        if row is None:
            raise LookupError(f"no alert channel {ident!r}")
        if row.kind != "webhook":
            raise AlertConfigError("channel_id", "only generic webhooks are signed")
        secret = new_webhook_secret()
        row.secret = seal(rt, secret)
        session.commit()
        return channel_view(row), secret


def delete_channel(rt, ident: str) -> dict:
    with rt.sessions() as session:
        row = find_channel(session, ident)
        if row is None:
            raise LookupError(f"no alert channel {ident!r}")
        view = channel_view(row)
        session.delete(row)
        session.commit()
        return view


def list_channels(session, *, scope: str | None = None, limit: int = 100, offset: int = 0) -> tuple[int, list[dict]]:
    stmt = select(AlertChannel)
    if scope is not None:
        stmt = stmt.where(AlertChannel.team == scope)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    return total, [channel_view(c) for c in session.scalars(stmt.order_by(AlertChannel.name).limit(limit)
                                                             .offset(offset))]


# -- rules ----------------------------------------------------------------------------------------------------
def rule_view(r: AlertRule) -> dict:
    return {"id": r.id, "name": r.name, "kinds": r.kinds, "team": r.team, "mode": r.mode, "channels": r.channels,
            "params": r.params, "priority": r.priority, "enabled": r.enabled, "created_at": _iso(r.created_at)}


def create_rule(rt, name: str, *, kinds: list[str], mode: str = "add", channels: list[str] | None = None,
                team: str | None = None, params: dict | None = None, priority: int = 100) -> dict:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise AlertConfigError("name", "must be 1 to 200 characters")
    if mode not in RULE_MODES:
        raise AlertConfigError("mode", f"{mode!r} is not one of {', '.join(RULE_MODES)}")
    kinds = [k.strip() for k in (kinds or ["*"]) if k and k.strip()]
    if not kinds or any(len(k) > 100 for k in kinds):
        raise AlertConfigError("kinds", "give event kinds or patterns (anomaly, budget.*, data_quality.*)")
    team = _check_team(team)
    with rt.sessions() as session:
        if session.scalar(select(AlertRule.id).where(AlertRule.name == name)):
            raise AlertConfigError("name", f"a rule named {name!r} exists")
        ids = []
        for i, ident in enumerate(channels or []):
            ch = find_channel(session, ident)
            if ch is None:
                raise AlertConfigError(f"channels[{i}]", f"no alert channel {ident!r}")
            ids.append(ch.id)
        if mode != "mute" and not ids:
            raise AlertConfigError("channels", f"a {mode} rule needs at least one channel")
        row = AlertRule(name=name, kinds=kinds, team=team, mode=mode, channels=ids, params=params or {},
                        priority=priority, enabled=True, created_at=utcnow())
        session.add(row)
        session.commit()
        return rule_view(row)


def delete_rule(rt, ident: str) -> dict:
    with rt.sessions() as session:
        row = session.scalar(select(AlertRule).where((AlertRule.id == ident) | (AlertRule.name == ident)))
        if row is None:
            raise LookupError(f"no alert rule {ident!r}")
        view = rule_view(row)
        session.delete(row)
        session.commit()
        return view


def list_rules(session, limit: int = 100, offset: int = 0) -> tuple[int, list[dict]]:
    total = session.scalar(select(func.count()).select_from(AlertRule))
    return total, [rule_view(r) for r in session.scalars(select(AlertRule).order_by(AlertRule.priority,
                                                                                   AlertRule.name)
                                                          .limit(limit).offset(offset))]


def rule_params(session, kind: str) -> dict:
    """Trigger settings: the params of enabled rules whose kinds match `kind` exactly, merged by priority."""
    out: dict = {}
    for r in session.scalars(select(AlertRule).where(AlertRule.enabled).order_by(AlertRule.priority.desc())):
        if kind in (r.kinds or []):
            out.update(r.params or {})
    return out


def send_test(rt, ident: str, now: datetime | None = None) -> dict:
    """A test message to one channel, now, through the ledger (an event of kind `test`, one delivery, its attempt).
    Returns the delivery view."""
    from app.alerts.delivery import list_deliveries
    from app.alerts.events import raise_event
    from app.alerts.models import AlertDelivery
    from app.alerts import channels as payloads
    from app.alerts.events import event_view

    now = now or utcnow()
    with rt.sessions() as session:
        ch = find_channel(session, ident)
        if ch is None:
            raise LookupError(f"no alert channel {ident!r}")
        event, _ = raise_event(session, "test", f"Test message from CloudTally to channel {ch.name!r}: if you read "
                               "this, alerts reach this channel.", team=ch.team, severity="info",
                               details={"title": "CloudTally test message", "facts": [["Channel", ch.name]]},
                               now=now)
        event.routed_at = now
        d = AlertDelivery(event_id=event.id, channel_id=ch.id, channel_name=ch.name, channel_kind=ch.kind,
                          update=False, status="pending", payload=payloads.render(ch.kind, event_view(event)),
                          attempts=0, next_attempt_at=now, created_at=now)
        session.add(d)
        session.commit()
        delivery_id = d.id
    deliver_one_once(rt, delivery_id, now)
    with rt.sessions() as session:
        return list_deliveries(session, event_id=session.get(AlertDelivery, delivery_id).event_id)[1][0]


def deliver_one_once(rt, delivery_id: int, now: datetime) -> None:
    """A test message is attempted once, ignoring quiet hours and rate limits, and never retried."""
    from app.alerts.delivery import _finish_event, _send
    from app.alerts.models import AlertAttempt, AlertDelivery

    with rt.sessions() as session:
        d = session.get(AlertDelivery, delivery_id)
        channel = session.get(AlertChannel, d.channel_id)
        result = _send(rt, channel, d, now)
        d.attempts = 1
        session.add(AlertAttempt(delivery_id=d.id, number=1, started_at=now, latency_ms=result.get("latency_ms"),
                                 status_code=result.get("status_code"), error=result.get("error"),
                                 retry_after=result.get("retry_after"), response=result.get("response")))
        d.status = "succeeded" if result["verdict"] == "ok" else "failed"
        d.last_status_code, d.last_error, d.finished_at = result.get("status_code"), result.get("error"), now
        session.flush()
        _finish_event(session, d.event_id, now)
        session.commit()
