"""Control-database tables of the alerts module (migration 0006): channels, routing rules, and the delivery ledger
(one delivery per event and channel, one attempt row per HTTP request). alert_events itself lives in app.control."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.control import Base, UTCDateTime, new_id, utcnow

CHANNEL_KINDS = ("slack", "teams", "webhook")
RULE_MODES = ("add", "replace", "mute")
DELIVERY_STATUSES = ("pending", "sending", "succeeded", "failed")


class AlertChannel(Base):
    """Where alerts go. `target` (the webhook URL, which for Slack and Teams is itself a credential) and `secret`
    (the generic webhook's HMAC key) are encrypted at rest (app.alerts.secrets); `target_hint` is what views show."""

    __tablename__ = "alert_channels"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # slack | teams | webhook
    team: Mapped[str | None] = mapped_column(String(200))  # receives this team's alerts
    finance: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # receives finance-wide alerts
    target: Mapped[str] = mapped_column(Text, nullable=False)
    target_hint: Mapped[str] = mapped_column(String(300), nullable=False)
    secret: Mapped[str | None] = mapped_column(Text)
    # {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}: deliveries wait until the end
    quiet_hours: Mapped[dict | None] = mapped_column(JSON)
    rate_limit_per_hour: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class AlertRule(Base):
    """A routing override: events whose kind matches one of `kinds` (fnmatch patterns: `anomaly`, `budget.*`,
    `data_quality.*`) and whose team is `team` (None: any) go to `channels` in addition (`add`), instead of the
    default route (`replace`), or nowhere (`mute`). `params` holds trigger settings (thresholds) for rules of a
    trigger kind. Lower priority numbers are applied first; the first replace or mute ends the routing."""

    __tablename__ = "alert_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    kinds: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    team: Mapped[str | None] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(20), nullable=False, default="add")
    channels: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    params: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class AlertDelivery(Base):
    """One event to one channel: the exact payload, its state and its retry schedule. Pending rows are the queue
    the delivery worker drains; they survive restarts because they are rows."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("alert_events.id", ondelete="CASCADE"), nullable=False)
    channel_id: Mapped[str | None] = mapped_column(ForeignKey("alert_channels.id", ondelete="SET NULL"))
    channel_name: Mapped[str] = mapped_column(String(200), nullable=False)
    channel_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    update: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # an update of an open event
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deferred: Mapped[str | None] = mapped_column(Text)  # why the next attempt waits (quiet hours, rate limit)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertAttempt(Base):
    """One HTTP request of a delivery: when, how long, the status code or the error."""

    __tablename__ = "alert_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("alert_deliveries.id", ondelete="CASCADE"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    retry_after: Mapped[float | None] = mapped_column(Float)
    response: Mapped[str | None] = mapped_column(Text)  # the first 500 characters of the receiver's answer
