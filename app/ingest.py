"""Ingest: connector -> raw files -> FOCUS rows in the warehouse, with a ledger row per delivery.

A delivery is one source's statement of one billing period. The files at a location may state several periods;
each becomes its own delivery (own ledger row, own identity), all loaded in one warehouse transaction. A period
whose files are identical to the delivery already loaded is left alone, so re-loading the same files changes
nothing. Bad input never reaches the warehouse: the ingest stops with an IngestError naming file, row and column,
and records a failed ledger row.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

import duckdb
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.control import Delivery, Source, utcnow
from app.runtime import Runtime
from app.warehouse import COST_TABLE, FileLoadError, PeriodLoad, ReconciliationError, Totals
from connectors import get_connector
from connectors.base import IngestError, InspectedFile
from connectors.storage import fetch

log = logging.getLogger(__name__)
Progress = Callable[[str, float], None]


class SourceConflict(ValueError):
    """The named source exists with a different provider or format."""


@dataclass
class IngestResult:
    source: str
    loaded: list[Delivery] = field(default_factory=list)
    unchanged: list[Delivery] = field(default_factory=list)

    @property
    def deliveries(self) -> list[Delivery]:
        return sorted(self.loaded + self.unchanged, key=lambda d: d.billing_period_start)


def get_or_create_source(
    session: Session, name: str, provider: str, fmt: str, location: str, options: Mapping[str, str] | None = None
) -> Source:
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        source = Source(name=name, provider=provider, format=fmt, location=location, options=dict(options or {}))
        session.add(source)
        session.commit()
    elif (source.provider, source.format) != (provider, fmt):
        raise SourceConflict(
            f"source {name!r} is a {source.provider}/{source.format} source, not {provider}/{fmt}"
        )
    return source


def ingest(
    rt: Runtime,
    source_name: str,
    location: str,
    *,
    provider: str = "focus",
    fmt: str = "focus",
    options: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Load every billing period found at `location` for the source; see the module docstring."""
    report = progress or (lambda _msg, _frac: None)
    options = dict(options or {})
    connector = get_connector(provider)
    with rt.sessions() as session:
        source = get_or_create_source(session, source_name, provider, fmt, location, options)
        started, t0 = utcnow(), time.monotonic()
        files_seen: list[dict] = []
        try:
            report("finding files", 0.0)
            candidates = connector.discover(location, options, fmt)
            remote = [f for c in candidates for f in c.files]
            if not remote:
                raise IngestError("no data files found (expected .csv, .csv.gz or .parquet)", file=location)
            with rt.warehouse.connect() as con:
                _recover_interrupted(session, con, source)
                inspected: list[InspectedFile] = []
                for i, rf in enumerate(remote):
                    report(f"reading {_short(rf.uri)}", 0.4 * i / len(remote))
                    local = fetch(rf, options, rt.settings.raw_dir / source.name)
                    files_seen.append({"uri": local.uri, "bytes": local.size, "sha256": local.sha256})
                    inspected.append(connector.inspect(con, local, fmt))
                return _load(rt, session, con, source, inspected, started, t0, report)
        except IngestError as exc:
            if not exc.recorded:
                _record_failure(session, source, files_seen, str(exc), started, t0)
            raise


@dataclass
class _Period:
    """What the inspected files state about one billing period: a delivery to make, unless nothing changed."""

    start: datetime
    end: datetime
    raw: Totals = field(default_factory=Totals)
    files: list[dict] = field(default_factory=list)
    tolerated: set[str] = field(default_factory=set)


def _periods(inspected: list[InspectedFile]) -> list[_Period]:
    periods: dict[datetime, _Period] = {}
    for f in inspected:
        for ps in f.periods:
            p = periods.setdefault(ps.period_start, _Period(ps.period_start, ps.period_end))
            p.end = max(p.end, ps.period_end)
            p.raw = p.raw + ps.raw
            p.files.append({
                "uri": f.file.uri, "bytes": f.file.size, "sha256": f.file.sha256, "rows": ps.raw.rows,
                "billed_cost": str(ps.raw.billed_cost), "effective_cost": str(ps.raw.effective_cost),
            })
            p.tolerated.update(f"{_short(f.file.uri)}: {note}" for note in f.tolerated)
    return sorted(periods.values(), key=lambda p: p.start)


def _load(rt, session, con, source, inspected, started, t0, report) -> IngestResult:
    result = IngestResult(source.name)
    present = {d for (d,) in con.execute(
        f"SELECT DISTINCT x_DeliveryId FROM {COST_TABLE} WHERE x_SourceId = ?", [source.name]
    ).fetchall()}
    pending: list[Delivery] = []
    for period in _periods(inspected):
        identity = _identity(source, period.start, period.files)
        current = _current_delivery(session, source, period.start)
        if current is not None and current.identity == identity and current.id in present:
            result.unchanged.append(current)
            continue
        pending.append(Delivery(
            source_id=source.id, billing_period_start=period.start, billing_period_end=period.end, status="running",
            identity=identity, files=period.files, raw_rows=period.raw.rows, raw_billed_cost=period.raw.billed_cost,
            raw_effective_cost=period.raw.effective_cost, tolerated=sorted(period.tolerated), started_at=started,
        ))
    session.add_all(pending)
    session.commit()
    if not pending:
        report("unchanged", 1.0)
        return result

    loads = [PeriodLoad(d.id, d.billing_period_start, Totals(d.raw_rows, d.raw_billed_cost, d.raw_effective_cost))
             for d in pending]
    starts = {d.billing_period_start for d in pending}
    staged = [f.staged for f in inspected if any(ps.period_start in starts for ps in f.periods)]
    try:
        landed = rt.warehouse.replace_deliveries(
            con, source.name, loads, staged,
            on_progress=lambda uri, frac: report(f"loading {_short(uri)}", 0.4 + 0.6 * frac),
        )
    except (FileLoadError, ReconciliationError, duckdb.Error) as exc:
        error = _explain(exc, inspected)
        _finish(session, pending, t0, status="failed", error=str(error))
        error.recorded = True
        raise error from exc

    for d in pending:
        got = landed[d.id]
        d.landed_rows, d.landed_billed_cost, d.landed_effective_cost = got.rows, got.billed_cost, got.effective_cost
        for old in session.scalars(select(Delivery).where(
            Delivery.source_id == source.id, Delivery.billing_period_start == d.billing_period_start,
            Delivery.status == "loaded", Delivery.id != d.id,
        )):
            old.status, old.replaced_by = "replaced", d.id
    _finish(session, pending, t0, status="loaded")
    result.loaded = pending
    report("done", 1.0)
    return result


def _current_delivery(session: Session, source: Source, start: datetime) -> Delivery | None:
    return session.scalar(
        select(Delivery).where(
            Delivery.source_id == source.id, Delivery.billing_period_start == start, Delivery.status == "loaded"
        ).order_by(Delivery.started_at.desc())
    )


def _explain(exc: Exception, inspected: list[InspectedFile]) -> IngestError:
    """The load's database error as bad input naming file, row and column (found by the connector's diagnosis)."""
    if isinstance(exc, FileLoadError):
        diagnose = next(f.diagnose for f in inspected if f.file.uri == exc.uri)
        return diagnose(exc.cause) if diagnose else IngestError(str(exc.cause), file=exc.uri)
    return IngestError(str(exc))


def _identity(source: Source, start: datetime, files: list[dict]) -> str:
    h = hashlib.sha256(f"{source.provider}|{source.format}|{start.isoformat()}".encode())
    for digest in sorted(f["sha256"] for f in files):
        h.update(digest.encode())
    return h.hexdigest()


def _finish(session: Session, deliveries: list[Delivery], t0: float, status: str, error: str | None = None) -> None:
    now = utcnow()
    for d in deliveries:
        d.status, d.error, d.finished_at = status, error, now
        d.duration_ms = int((time.monotonic() - t0) * 1000)
    session.commit()


def _record_failure(session, source, files, error, started, t0) -> None:
    session.rollback()
    session.add(Delivery(
        source_id=source.id, status="failed", files=files, error=error, started_at=started,
        finished_at=utcnow(), duration_ms=int((time.monotonic() - t0) * 1000),
    ))
    session.commit()


def _recover_interrupted(session: Session, con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Settle ledger rows a crashed process left 'running': loaded if their rows are in the warehouse."""
    for d in session.scalars(select(Delivery).where(Delivery.source_id == source.id, Delivery.status == "running")):
        rows, billed, effective = con.execute(
            f"SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM {COST_TABLE} WHERE x_DeliveryId = ?", [d.id]
        ).fetchone()
        if rows:
            d.status, d.landed_rows, d.landed_billed_cost, d.landed_effective_cost = "loaded", rows, billed, effective
        else:
            d.status, d.error = "failed", "interrupted before its rows were committed"
        d.finished_at = utcnow()
    session.commit()


def _short(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]
