"""What each channel type receives, byte for byte, and how the generic webhook is signed.

- slack: an incoming-webhook message with Block Kit blocks (header, the message, the facts as fields, a context
  line) and `text` as the notification fallback.
- teams: a Teams Workflows webhook ("Post to a channel when a webhook request is received") message: one
  attachment holding an Adaptive Card 1.4 (title, message, FactSet).
- webhook: JSON `{"event": {...}}` with the event's fields, POSTed with headers
  `X-CloudTally-Timestamp: <unix seconds>` and `X-CloudTally-Signature: sha256=<hex HMAC-SHA256(secret,
  "<timestamp>.<body>")>`; receivers recompute it over the raw body and reject timestamps older than 5 minutes
  (replays). Each attempt is signed anew with its own timestamp.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time

SEVERITY_ICON = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
TEAMS_COLOR = {"critical": "Attention", "warning": "Warning", "info": "Accent"}
REPLAY_WINDOW_SECONDS = 300


def message(event: dict, update: bool = False) -> tuple[str, str, list[tuple[str, str]]]:
    """(title, text, facts) of an event view (app.alerts.events.event_view)."""
    details = event.get("details") or {}
    title = details.get("title") or event["kind"].replace("_", " ").replace(".", ": ")
    if update:
        title = f"Update: {title}"
    facts = [(str(k), str(v)) for k, v in (details.get("facts") or [])]
    scope = event.get("team")
    facts.append(("Scope", f"team {scope}" if scope else "finance-wide"))
    if event.get("source"):
        facts.append(("Source", event["source"]))
    if event.get("billing_period"):
        facts.append(("Billing period", event["billing_period"]))
    return title, event["message"], facts


def slack_payload(event: dict, update: bool = False) -> dict:
    title, text, facts = message(event, update)
    severity = event.get("severity") or "warning"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{SEVERITY_ICON.get(severity, '')} {text}"[:3000]}},
    ]
    if facts:
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:2000]}
                                                     for k, v in facts[:10]]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                   f"CloudTally · {event['kind']} · event {event['id']} · {severity}"}]})
    return {"text": f"{title}: {text}"[:3000], "blocks": blocks}


def teams_payload(event: dict, update: bool = False) -> dict:
    title, text, facts = message(event, update)
    severity = event.get("severity") or "warning"
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True,
             "color": TEAMS_COLOR.get(severity, "Default")},
            {"type": "TextBlock", "text": text, "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]},
            {"type": "TextBlock", "text": f"CloudTally · {event['kind']} · event {event['id']}", "isSubtle": True,
             "size": "Small", "wrap": True},
        ],
    }
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


def webhook_payload(event: dict, update: bool = False) -> dict:
    title, text, facts = message(event, update)
    return {"event": {**{k: event.get(k) for k in ("id", "kind", "identity", "team", "severity", "status",
                                                   "source", "billing_period", "occurrences", "created_at",
                                                   "updated_at")},
                      "update": update, "title": title, "message": text, "details": event.get("details") or {}}}


PAYLOADS = {"slack": slack_payload, "teams": teams_payload, "webhook": webhook_payload}


def render(kind: str, event: dict, update: bool = False) -> dict:
    return PAYLOADS[kind](event, update)


def body_bytes(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float | None = None,
           window: int = REPLAY_WINDOW_SECONDS) -> bool:
    """What a receiver does (the README shows the same in a few lines): a fresh timestamp and a matching HMAC."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= window and hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def request(kind: str, payload: dict, secret: str | None, now: float | None = None) -> tuple[bytes, dict]:
    """The body and headers of one attempt."""
    body = body_bytes(payload)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "CloudTally-Alerts/1"}
    if kind == "webhook":
        ts = str(int(now if now is not None else time.time()))
        headers["X-CloudTally-Timestamp"] = ts
        headers["X-CloudTally-Signature"] = sign(secret or "", ts, body)
    return body, headers
