"""The control database (SQLAlchemy 2): sources, the delivery ledger, the allocation rule versions, ingest runs,
source locks, data-quality results, alert events, API keys, closed months (and APScheduler's job table, created by migration 0003).

SQLite by default, PostgreSQL in production. Schema changes go through alembic (migrations/control); `upgrade()`
brings any database to the newest revision.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal
from importlib import resources

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker
from sqlalchemy.types import TypeDecorator


class Money(TypeDecorator):
    """Exact decimal money: NUMERIC(38,18) where the database has it, text on SQLite (whose NUMERIC is a float)."""

    impl = Numeric(38, 18)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(60))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(value)
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return None if value is None else value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class Source(Base):
    """Where one provider's billing data comes from (a folder, a bucket prefix, an export)."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    provider: Mapped[str] = mapped_column(String(20), nullable=False)
    format: Mapped[str] = mapped_column(String(30), nullable=False)
    location: Mapped[str] = mapped_column(Text, nullable=False)
    options: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    schedule: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="source", cascade="all, delete-orphan", passive_deletes=True
    )


class Delivery(Base):
    """The ledger: one attempt to load one source's statement of one billing period, with its proof."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), nullable=False, index=True)
    # Null only when the ingest failed before the files' billing periods could be read.
    billing_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    billing_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # running -> loaded | failed; a loaded delivery becomes "replaced" when a newer one of its period lands.
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    identity: Mapped[str | None] = mapped_column(String(64), index=True)
    files: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    raw_rows: Mapped[int | None] = mapped_column(Integer)
    raw_billed_cost: Mapped[Decimal | None] = mapped_column(Money)
    raw_effective_cost: Mapped[Decimal | None] = mapped_column(Money)
    landed_rows: Mapped[int | None] = mapped_column(Integer)
    landed_billed_cost: Mapped[Decimal | None] = mapped_column(Money)
    landed_effective_cost: Mapped[Decimal | None] = mapped_column(Money)
    tolerated: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    replaced_by: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # Sorted column names of the delivery's raw files (union over its files), for the schema-drift check.
    columns: Mapped[list | None] = mapped_column(JSON)

    source: Mapped[Source] = relationship(back_populates="deliveries")


class AllocationRuleVersion(Base):
    """One version of the allocation rule document. Exactly one is active once any was applied; applying a new
    document (file or API edit) adds a version and makes it active only if its allocation committed."""

    __tablename__ = "allocation_rule_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
    document: Mapped[str] = mapped_column(Text, nullable=False)  # the normalized document (JSON text)
    checksum: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, index=True)
    rule_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Billing periods (YYYY-MM-DD) this version re-allocated when applied; the others kept their allocation.
    periods: Mapped[list] = mapped_column(JSON, nullable=False, default=list)


class IngestRun(Base):
    """One run of a source's ingest job (scheduled, CLI or API): its outcome, the deliveries it touched, figures
    and the timing of each after-ingest step. A scheduled run carries the cron fire time it ran for; (source,
    scheduled_for) is unique, so two schedulers sharing this database run each fire time once."""

    __tablename__ = "ingest_runs"
    __table_args__ = (UniqueConstraint("source", "scheduled_for", name="uq_ingest_runs_source_scheduled_for"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    source: Mapped[str] = mapped_column(String(200), nullable=False, index=True)  # by name: history outlives it
    trigger: Mapped[str] = mapped_column(String(20), nullable=False)  # scheduled | cli | api
    # running -> succeeded | nothing_new | failed; skipped when another run of the source held the lock.
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    runner: Mapped[str] = mapped_column(String(200), nullable=False)  # host:pid of the process
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # {"loaded": [delivery ids], "unchanged": [...], "failed": [...]}
    deliveries: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    raw_rows: Mapped[int | None] = mapped_column(Integer)
    raw_billed_cost: Mapped[Decimal | None] = mapped_column(Money)
    raw_effective_cost: Mapped[Decimal | None] = mapped_column(Money)
    landed_rows: Mapped[int | None] = mapped_column(Integer)
    landed_billed_cost: Mapped[Decimal | None] = mapped_column(Money)
    landed_effective_cost: Mapped[Decimal | None] = mapped_column(Money)
    # [{"name": "allocation", "status": ..., "duration_ms": ..., ...}, ...] in the order they ran
    steps: Mapped[list] = mapped_column(JSON, nullable=False, default=list)


class SourceLock(Base):
    """SQLite's per-source run lock (PostgreSQL uses an advisory lock instead): a row per held lock, with its
    owner (host:pid:token), a heartbeat and an expiry, so a crashed holder never blocks the source for long."""

    __tablename__ = "source_locks"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class QualityCheck(Base):
    """The latest result of one data-quality check for one source and billing period ('' = the whole source)."""

    __tablename__ = "quality_checks"
    __table_args__ = (UniqueConstraint("source", "billing_period", "kind", name="uq_quality_checks_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    billing_period: Mapped[str] = mapped_column(String(7), nullable=False)  # YYYY-MM, or '' for source-wide
    # freshness | completeness | duplicates | schema_drift | restatement
    kind: Mapped[str] = mapped_column(String(30), nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False)  # passed | failed | skipped
    message: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    delivery_id: Mapped[str | None] = mapped_column(String(36))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class AlertEvent(Base):
    """Something worth telling people (a failed data-quality check, ...), waiting for the alerts module to deliver
    it: delivered_at stays NULL until then."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_undelivered", "delivered_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(50), nullable=False)  # e.g. data_quality.freshness
    source: Mapped[str | None] = mapped_column(String(200))
    billing_period: Mapped[str | None] = mapped_column(String(7))
    message: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Added by the alerts module (migration 0006, app.alerts): identity (rule, scope, period, threshold) for "once,
    # not a flood"; the team it concerns (None: finance-wide); open/resolved; how its deliveries ended.
    identity: Mapped[str | None] = mapped_column(String(400), index=False)
    team: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(20))
    occurrences: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    routed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivery_status: Mapped[str | None] = mapped_column(String(20))


class ApiKey(Base):
    """An API key: `ct_<prefix>_<secret>`, shown once; stored as the prefix (lookup) and HMAC-SHA256(server
    secret, key) (app.access). role: admin | finance | team:<name>."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(220), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClosedMonth(Base):
    """A billing month finance closed: its totals when closed (per currency), so a later re-delivery that moves
    them shows as a restatement with its delta (app.finance)."""

    __tablename__ = "closed_months"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM (BillingPeriodStart)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    closed_by: Mapped[str | None] = mapped_column(String(200))  # the API key's name, or the CLI user
    note: Mapped[str | None] = mapped_column(Text)
    # {"totals": [{"currency", "BilledCost", "EffectiveCost", "lines"}], "deliveries": [ids loaded when closed]}
    snapshot: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)


def make_engine(url: str) -> Engine:
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_con, _record):
            cur = dbapi_con.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("migrations") / "control"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Bring the control database at `url` to the newest schema revision."""
    from alembic import command

    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # "heads": features that land side by side (budgets, alerts, recommendations) each branch from the revision
    # they were built on; a later merge revision joins them, and every head is applied either way.
    command.upgrade(alembic_config(url), "heads")
