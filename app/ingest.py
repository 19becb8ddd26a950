"""Ingest: connector -> raw files -> FOCUS rows in the warehouse, with a ledger row per delivery.

A delivery is one source's statement of one billing period. The connector groups raw files into candidates:
a manifest-based export (AWS CUR / Data Exports) gives one candidate per billing period with an identity, plain
FOCUS files give one candidate whose rows may state several periods (each its own delivery). Each candidate is
loaded in its own warehouse transaction, so one bad month never blocks the others. A delivery whose identity is
already the loaded one is left alone (a manifest is skipped before anything is downloaded), so re-loading the
same files changes nothing. Bad input never reaches the warehouse: the candidate fails with an IngestError naming
file, row and column, and a failed ledger row records it.
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

from app.allocation.engine import after_ingest
from app.control import Delivery, Source, utcnow
from app.quality import file_columns
from app.runtime import Runtime
from app.warehouse import COST_TABLE, FileLoadError, PeriodLoad, ReconciliationError, Totals
from connectors import get_connector
from connectors.base import Candidate, FileReport, IngestError, Inspection
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
    failed: list[IngestError] = field(default_factory=list)
    allocation_errors: list[str] = field(default_factory=list)
    allocation_ms: int = 0  # time spent allocating the loaded periods (the first after-ingest step)

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
    location: str | None = None,
    *,
    provider: str = "focus",
    fmt: str = "focus",
    options: Mapping[str, str] | None = None,
    period: datetime | None = None,
    progress: Progress | None = None,
    into: IngestResult | None = None,
) -> IngestResult:
    """Load what the source's location holds (or `location`, for the quick path), optionally one billing period.

    Raises the IngestError of a failed candidate after every candidate was tried (each failure is in the ledger);
    with several failures, the message lists them all. `into`, when given, is filled as the ingest goes, so the
    caller (app.runs) still sees what loaded or was unchanged when the call raises."""
    report = progress or (lambda _msg, _frac: None)
    with rt.sessions() as session:
        source = session.scalar(select(Source).where(Source.name == source_name))
        if source is None or location is not None:
            source = get_or_create_source(session, source_name, provider, fmt, location or "", options)
        where = location or source.location
        opts = {**source.options, **dict(options or {})}
        connector = get_connector(source.provider)
        result = into if into is not None else IngestResult(source.name)
        started = utcnow()
        report("finding files", 0.0)
        try:
            candidates = connector.discover(where, opts, source.format)
            if period is not None:
                candidates = [c for c in candidates if c.billing_period in (None, period)]
            if not candidates:
                what = f" for billing period {period:%Y-%m}" if period else ""
                raise IngestError(f"no data files found{what} (CSV, gzip CSV, Parquet, or an export's manifests)",
                                  file=where)
        except IngestError as exc:
            _record_failure(session, source, [], str(exc), started, time.monotonic())
            raise
        with rt.warehouse.connect() as con:
            _recover_interrupted(session, con, source)
            for i, cand in enumerate(candidates):
                step = _Step(report, i, len(candidates), cand.label)
                try:
                    _ingest_candidate(rt, session, con, source, cand, opts, period, step, result)
                except (IngestError, duckdb.OutOfMemoryException) as exc:
                    exc = _out_of_memory(exc, rt.settings.warehouse_memory_limit) or exc
                    if not exc.recorded:
                        _record_failure(session, source, step.files_seen, str(exc), utcnow(), step.t0, cand)
                    result.failed.append(exc)
                except Exception as exc:  # network, disk, a bug: still leave a failed ledger row, then raise
                    _record_failure(session, source, step.files_seen, f"{type(exc).__name__}: {exc}", utcnow(),
                                    step.t0, cand)
                    raise
    report("done", 1.0)
    if len(result.failed) == 1:
        raise result.failed[0]
    if result.failed:
        raise IngestError(f"{len(result.failed)} deliveries failed: " + " | ".join(map(str, result.failed)))
    return result


@dataclass
class _Step:
    """Progress of one candidate, scaled into the whole run."""

    report: Progress
    index: int
    count: int
    label: str
    files_seen: list[dict] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def __call__(self, message: str, fraction: float) -> None:
        prefix = f"{self.label}: " if self.label and self.count > 1 else ""
        self.report(prefix + message, (self.index + fraction) / self.count)


def _ingest_candidate(rt, session, con, source, cand: Candidate, options, period, step: _Step, result) -> None:
    if cand.problem:
        raise IngestError(cand.problem, file=cand.label or None)
    if cand.identity is not None and cand.billing_period is not None:
        current = _current_delivery(session, source, cand.billing_period)
        if current is not None and current.identity == cand.identity and _present(con, current.id):
            result.unchanged.append(current)
            return
    connector = get_connector(source.provider)
    local = _fetch_all(cand, options, rt.settings.raw_dir / source.name, rt.settings.download_concurrency, step)
    step(f"reading {len(local)} file{'s' if len(local) != 1 else ''}", 0.2)
    inspection = connector.inspect(con, local, source.format)
    _load(rt, session, con, source, cand, inspection, period, step, result)


def _fetch_all(cand: Candidate, options, cache_dir, workers: int, step: _Step) -> list:
    """Bring the candidate's files here, several at a time (boto3 streams each to disk, so memory stays bounded).

    Files already in the cache with the same ETag are not downloaded again, so a delivery interrupted halfway
    resumes where it stopped."""
    from concurrent.futures import ThreadPoolExecutor

    local = [None] * len(cand.files)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(fetch, rf, options, cache_dir): i for i, rf in enumerate(cand.files)}
        for done, future in enumerate(futures):
            i = futures[future]
            local[i] = future.result()
            step(f"fetched {_short(local[i].uri)}", 0.2 * (done + 1) / len(cand.files))
    step.files_seen.extend({"uri": f.uri, "bytes": f.size, "sha256": f.sha256} for f in local)
    return local


@dataclass
class _Period:
    """What the inspected files state about one billing period: a delivery to make, unless nothing changed."""

    start: datetime
    end: datetime
    raw: Totals = field(default_factory=Totals)
    files: list[dict] = field(default_factory=list)
    tolerated: set[str] = field(default_factory=set)


def _periods(reports: list[FileReport]) -> list[_Period]:
    periods: dict[datetime, _Period] = {}
    for f in reports:
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


def _load(rt, session, con, source, cand: Candidate, inspection: Inspection, period, step: _Step,
          result: IngestResult) -> None:
    periods = _periods(inspection.files)
    if cand.billing_period is not None:
        stray = [p for p in periods if p.start != cand.billing_period]
        if stray:
            raise IngestError(
                f"files of the {cand.billing_period:%Y-%m} delivery hold rows of billing period "
                f"{', '.join(f'{p.start:%Y-%m}' for p in stray)}", file=cand.label or None,
            )
    if period is not None:
        periods = [p for p in periods if p.start == period]
    present = {d for (d,) in con.execute(
        f"SELECT DISTINCT x_DeliveryId FROM {COST_TABLE} WHERE x_SourceId = ?", [source.name]
    ).fetchall()}
    columns = {f.file.uri: file_columns(con, f.file.path) for f in inspection.files}  # for the schema-drift check
    pending: list[Delivery] = []
    for p in periods:
        identity = cand.identity or _identity(source, p.start, p.files)
        current = _current_delivery(session, source, p.start)
        if current is not None and current.identity == identity and current.id in present:
            result.unchanged.append(current)
            continue
        pending.append(Delivery(
            columns=_columns_of(columns, p.files),
            source_id=source.id, billing_period_start=p.start, billing_period_end=p.end, status="running",
            identity=identity, files=p.files, raw_rows=p.raw.rows, raw_billed_cost=p.raw.billed_cost,
            raw_effective_cost=p.raw.effective_cost, tolerated=sorted(p.tolerated), started_at=utcnow(),
        ))
    session.add_all(pending)
    session.commit()
    if not pending:
        step("unchanged", 1.0)
        return

    loads = [PeriodLoad(d.id, d.billing_period_start, Totals(d.raw_rows, d.raw_billed_cost, d.raw_effective_cost),
                        inspection.rows_reconcile) for d in pending]
    try:
        landed = rt.warehouse.replace_deliveries(
            con, source.name, loads, inspection.staged,
            on_progress=lambda uri, frac: step(f"loading {_short(uri)}", 0.4 + 0.6 * frac),
        )
    except (FileLoadError, ReconciliationError, duckdb.Error) as exc:
        error = _explain(exc, inspection, rt.settings.warehouse_memory_limit)
        _finish(session, pending, step.t0, status="failed", error=str(error))
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
    _finish(session, pending, step.t0, status="loaded")
    result.loaded.extend(pending)
    # The loaded periods' lines are new (new x_LineId): allocate them under the active rule version. A failure
    # there does not undo the delivery; it is logged and the next `rules apply` redoes those periods.
    step("allocating", 0.95)
    t_alloc = time.monotonic()
    result.allocation_errors += filter(None, [after_ingest(rt, con, [d.billing_period_start for d in pending])])
    result.allocation_ms += int((time.monotonic() - t_alloc) * 1000)
    step("done", 1.0)


def _columns_of(columns: dict[str, list[str] | None], files: list[dict]) -> list[str] | None:
    """The sorted union of the raw column names of a delivery's files (None if a file's could not be read)."""
    names: set[str] = set()
    for f in files:
        cols = columns.get(f["uri"])
        if cols is None:
            return None
        names.update(cols)
    return sorted(names)


def _present(con: duckdb.DuckDBPyConnection, delivery_id: str) -> bool:
    return con.execute(f"SELECT count(*) > 0 FROM {COST_TABLE} WHERE x_DeliveryId = ?", [delivery_id]).fetchone()[0]


def _current_delivery(session: Session, source: Source, start: datetime) -> Delivery | None:
    return session.scalar(
        select(Delivery).where(
            Delivery.source_id == source.id, Delivery.billing_period_start == start, Delivery.status == "loaded"
        ).order_by(Delivery.started_at.desc())
    )


def _out_of_memory(exc: BaseException, memory_limit: str | None) -> IngestError | None:
    """Running out of DuckDB memory is not bad input: say so, and which setting to raise (None if not that)."""
    seen, cause, uri = set(), exc, getattr(exc, "file", None)
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, duckdb.OutOfMemoryException):
            error = IngestError(f"the warehouse ran out of memory reading this delivery ({str(cause).splitlines()[0]}); "
                                f"raise CLOUDTALLY_WAREHOUSE_MEMORY_LIMIT (now {memory_limit or 'DuckDB default'})",
                                file=uri)
            error.recorded = getattr(exc, "recorded", False)
            return error
        uri = uri or getattr(cause, "uri", None)
        cause = getattr(cause, "cause", None) or cause.__cause__
    return None


def _explain(exc: Exception, inspection: Inspection, memory_limit: str | None = None) -> IngestError:
    """The load's database error as bad input naming file, row and column (found by the connector's diagnosis)."""
    if (error := _out_of_memory(exc, memory_limit)) is not None:
        return error
    if isinstance(exc, FileLoadError):
        if inspection.diagnose:
            return inspection.diagnose(exc.uri, exc.cause)
        return IngestError(str(exc.cause), file=exc.uri)
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


def _record_failure(session, source, files, error, started, t0, cand: Candidate | None = None) -> None:
    session.rollback()
    session.add(Delivery(
        source_id=source.id, status="failed", files=files, error=error, started_at=started,
        billing_period_start=cand.billing_period if cand else None, identity=cand.identity if cand else None,
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
