"""An ingest run: the one job function behind `cloudtally ingest`, the scheduler and the API.

    run_source(rt, name, trigger)
      1. records a run (ingest_runs, status running); a scheduled run claims (source, fire time), and when another
         scheduler claimed it first there is nothing to do (returns None);
      2. takes the source's lock (app.locks); when another run holds it, the run is recorded as skipped,
         "already running";
      3. settles runs a dead process left "running" for this source (the lock proves they are over);
      4. ingests (app.ingest), retrying transient errors with exponential backoff and full jitter
         (app.retry; CLOUDTALLY_INGEST_RETRIES, CLOUDTALLY_INGEST_RETRY_BASE_DELAY), failing fast on permanent ones;
      5. runs the after-ingest steps, each timed in the run record: allocation (done by the ingest for the periods
         it loaded; its time is measured there), data_quality (app.quality), rollups (app.rollups) and alerts
         (app.alerts: evaluate the triggers, deliver what is due); a step registered as None in AFTER_INGEST_STEPS
         is recorded as "not available";
      6. records the outcome: succeeded, nothing_new (every delivery unchanged or nothing found) or failed, with the
         deliveries loaded, unchanged and failed, their raw and landed counts and sums, the error.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Mapping

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.control import Delivery, IngestRun, Source, utcnow
from app.locks import runner_id, source_lock
from app.retry import backoff, classify

log = logging.getLogger(__name__)

TRIGGERS = ("scheduled", "cli", "api")
STATUSES = ("running", "succeeded", "nothing_new", "failed", "skipped")
ALREADY_RUNNING = "already running"
NOT_AVAILABLE = "not available"

# Later after-ingest steps, in order, by name: a callable (rt, source_name, periods) -> dict of details, or None
# while the module that provides it does not exist yet (the run records the step as "not available").
def _rollups(rt, source: str, periods: list) -> dict:
    from app.rollups import after_ingest

    return after_ingest(rt, source, periods)


def _alerts(rt, source: str, periods: list) -> dict:
    from app.alerts.worker import after_ingest

    return after_ingest(rt, source, periods)


def _recommendations(rt, source: str, periods: list) -> dict:
    from optimizers.ledger import after_ingest

    return after_ingest(rt, source, periods)


AFTER_INGEST_STEPS: dict[str, Callable | None] = {"rollups": _rollups, "alerts": _alerts,
                                                  "recommendations": _recommendations}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


def run_source(
    rt,
    source_name: str,
    trigger: str,
    *,
    location: str | None = None,
    options: Mapping[str, str] | None = None,
    period: datetime | None = None,
    progress=None,
    scheduled_for: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> IngestRun | None:
    """Run the source's ingest once, under its lock, with retries; returns the finished run record (None when a
    scheduled fire was already claimed by another scheduler). Never raises for a failed ingest: the run says so."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger {trigger!r} is not one of {', '.join(TRIGGERS)}")
    t0 = time.monotonic()
    with rt.sessions() as session:
        run = IngestRun(source=source_name, trigger=trigger, status="running", scheduled_for=scheduled_for,
                        runner=runner_id(), started_at=utcnow(), attempts=0, deliveries={}, steps=[])
        session.add(run)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return None  # (source, scheduled_for) taken: another scheduler runs this fire
        with source_lock(rt.engine, source_name, rt.settings.lock_ttl) as locked:
            if not locked:
                _finish(session, run, t0, "skipped", message=ALREADY_RUNNING)
                log.info("ingest of %s skipped: %s", source_name, ALREADY_RUNNING)
                return run
            since = utcnow()  # every ledger row of this source from now until we release the lock is ours
            _settle_dead_runs(session, source_name, run.id)
            _execute(rt, session, run, t0, since, location, options, period, progress, sleep)
            return run


def _settle_dead_runs(session, source_name: str, own_id: str) -> None:
    """Runs of this source still 'running' while we hold its lock belong to a process that died."""
    session.execute(update(IngestRun).where(
        IngestRun.source == source_name, IngestRun.status == "running", IngestRun.id != own_id,
    ).values(status="failed", error="interrupted: the process running it stopped", finished_at=utcnow()))
    session.commit()


def _execute(rt, session, run: IngestRun, t0, since, location, options, period, progress, sleep) -> None:
    from app.ingest import IngestResult, SourceConflict, ingest
    from connectors.base import IngestError

    settings = rt.settings
    result = IngestResult(run.source)
    error: BaseException | None = None
    while True:
        run.attempts += 1
        session.commit()
        result = IngestResult(run.source)
        try:
            ingest(rt, run.source, location, options=options, period=period, progress=progress, into=result)
            error = None
            break
        except SourceConflict as exc:
            error = exc
            break
        except Exception as exc:  # noqa: BLE001 - every failure is recorded in the run; classify decides retrying
            error = exc
            kind = classify(exc)
            if kind == "permanent" or run.attempts > settings.ingest_retries:
                break
            delay = backoff(run.attempts, settings.ingest_retry_base_delay, settings.ingest_retry_max_delay)
            log.warning("ingest of %s, attempt %d: transient error (%s); retrying in %.1f s", run.source,
                        run.attempts, exc, delay)
            sleep(delay)

    loaded, failed = _ledger_of_run(session, run.source, since)
    unchanged = sorted({d.id for d in result.unchanged} - {d.id for d in loaded})
    run.deliveries = {"loaded": [d.id for d in loaded], "unchanged": unchanged, "failed": [d.id for d in failed]}
    if loaded:
        run.raw_rows = sum(d.raw_rows or 0 for d in loaded)
        run.raw_billed_cost = sum((d.raw_billed_cost or Decimal(0) for d in loaded), Decimal(0))
        run.raw_effective_cost = sum((d.raw_effective_cost or Decimal(0) for d in loaded), Decimal(0))
        run.landed_rows = sum(d.landed_rows or 0 for d in loaded)
        run.landed_billed_cost = sum((d.landed_billed_cost or Decimal(0) for d in loaded), Decimal(0))
        run.landed_effective_cost = sum((d.landed_effective_cost or Decimal(0) for d in loaded), Decimal(0))
    periods = sorted({d.billing_period_start for d in loaded if d.billing_period_start})
    checks = _source_exists(session, run.source)
    session.commit()  # the after-ingest steps write through their own sessions (SQLite: one writer at a time)
    run.steps = _after_ingest(rt, run.source, periods, result, ran_checks=checks)

    if error is not None:
        kind = "" if isinstance(error, SourceConflict) else classify(error)
        attempts = f" after {run.attempts} attempts" if run.attempts > 1 else ""
        detail = str(error) or type(error).__name__
        if not isinstance(error, (IngestError, SourceConflict)):  # not our own message: say what raised it
            detail = f"{type(error).__name__}: {detail}"
        message = f"failed{attempts}" + (f" ({kind} error)" if kind else "")
        _finish(session, run, t0, "failed", message=message, error=detail)
        # The CLI prints the error itself; the scheduler's log is where a scheduled failure is seen.
        log.log(logging.ERROR if run.trigger != "cli" else logging.INFO, "ingest of %s failed%s: %s", run.source,
                attempts, detail)
    elif loaded:
        what = ", ".join(f"{d.billing_period_start:%Y-%m}" for d in loaded)
        extra = f"; {len(unchanged)} unchanged" if unchanged else ""
        _finish(session, run, t0, "succeeded", message=f"loaded {len(loaded)} deliveries ({what}){extra}")
    else:
        why = (f"nothing new: {len(unchanged)} deliveries unchanged" if unchanged
               else "nothing new: no delivery found")
        _finish(session, run, t0, "nothing_new", message=why)


def _source_exists(session, name: str) -> bool:
    return session.scalar(select(Source.id).where(Source.name == name)) is not None


def _ledger_of_run(session, source: str, since: datetime) -> tuple[list[Delivery], list[Delivery]]:
    """The ledger rows this run wrote (we hold the source's lock, so every row of the source started since we took
    it is ours): those that loaded (even if replaced since) and those that failed."""
    rows = list(session.scalars(select(Delivery).join(Source, Delivery.source_id == Source.id).where(
        Source.name == source, Delivery.started_at >= since).order_by(Delivery.billing_period_start)))
    return ([d for d in rows if d.status in ("loaded", "replaced")], [d for d in rows if d.status == "failed"])


def _after_ingest(rt, source: str, periods: list[datetime], result, ran_checks: bool) -> list[dict]:
    steps = []
    if periods:
        errors = list(result.allocation_errors)
        steps.append({"name": "allocation", "status": "failed" if errors else "succeeded",
                      "duration_ms": result.allocation_ms, "periods": [f"{p:%Y-%m}" for p in periods],
                      **({"error": " | ".join(errors)} if errors else {})})
    else:
        steps.append({"name": "allocation", "status": "skipped", "duration_ms": 0,
                      "detail": "no delivery loaded"})
    if ran_checks:
        from app.quality import run_checks

        t = time.monotonic()
        try:
            checks = run_checks(rt, source, periods)
            failed = [c for c in checks if c["status"] == "failed"]
            steps.append({"name": "data_quality", "status": "succeeded", "duration_ms": _ms(t),
                          "checks": len(checks), "failed": [f"{c['check']} {c['billing_period'] or ''}".strip()
                                                            for c in failed]})
        except Exception as exc:  # noqa: BLE001 - a check failing to run must not hide the ingest's outcome
            log.exception("data-quality checks of %s failed to run", source)
            steps.append({"name": "data_quality", "status": "failed", "duration_ms": _ms(t),
                          "error": f"{type(exc).__name__}: {exc}"})
    for name, fn in AFTER_INGEST_STEPS.items():
        if fn is None:
            steps.append({"name": name, "status": NOT_AVAILABLE, "duration_ms": None})
            continue
        t = time.monotonic()
        try:
            details = fn(rt, source, periods) or {}
            steps.append({"name": name, "status": "succeeded", "duration_ms": _ms(t), **details})
        except Exception as exc:  # noqa: BLE001
            log.exception("after-ingest step %s of %s failed", name, source)
            steps.append({"name": name, "status": "failed", "duration_ms": _ms(t),
                          "error": f"{type(exc).__name__}: {exc}"})
    return steps


def _finish(session, run: IngestRun, t0: float, status: str, message: str | None = None,
            error: str | None = None) -> None:
    run.status, run.message, run.error = status, message, error
    run.finished_at = utcnow()
    run.duration_ms = _ms(t0)
    session.commit()


# -- reading ---------------------------------------------------------------------------------------------------
def _money(value: Decimal | None) -> str | None:
    from app.costs import money_str

    return money_str(value) if value is not None else None


def run_view(r: IngestRun) -> dict:
    return {
        "id": r.id, "source": r.source, "trigger": r.trigger, "status": r.status, "message": r.message,
        "error": r.error, "scheduled_for": _iso(r.scheduled_for), "runner": r.runner,
        "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at), "duration_ms": r.duration_ms,
        "attempts": r.attempts, "deliveries": {k: r.deliveries.get(k, []) for k in ("loaded", "unchanged", "failed")},
        "raw": {"rows": r.raw_rows, "billed_cost": _money(r.raw_billed_cost),
                "effective_cost": _money(r.raw_effective_cost)},
        "landed": {"rows": r.landed_rows, "billed_cost": _money(r.landed_billed_cost),
                   "effective_cost": _money(r.landed_effective_cost)},
        "steps": r.steps,
    }


def list_runs(session, source: str | None = None, status: str | None = None, limit: int = 50,
              offset: int = 0) -> list[dict]:
    stmt = select(IngestRun)
    if source:
        stmt = stmt.where(IngestRun.source == source)
    if status:
        stmt = stmt.where(IngestRun.status == status)
    stmt = stmt.order_by(IngestRun.started_at.desc(), IngestRun.id).limit(limit).offset(offset)
    return [run_view(r) for r in session.scalars(stmt)]
