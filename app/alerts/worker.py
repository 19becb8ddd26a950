"""The alerts' jobs: `serve`'s scheduler delivers due alerts every CLOUDTALLY_ALERTS_DELIVER_SECONDS (after checking
for failed ingests, a cheap query) and evaluates every trigger every CLOUDTALLY_ALERTS_EVALUATE_SECONDS; every
ingest run evaluates them as its `alerts` after-ingest step. The queue is the alert_deliveries table, so the jobs
themselves hold no state (in-memory job store): a restarted process picks up every pending delivery."""
from __future__ import annotations

import logging
import threading

from app.alerts.config import alert_settings

log = logging.getLogger(__name__)
_lock = threading.Lock()  # one delivery pass at a time in this process (the claims guard across processes)


def deliver_job(rt) -> None:
    from app.alerts.delivery import deliver_due
    from app.alerts.triggers import ingest_failures
    from app.control import utcnow

    if not _lock.acquire(blocking=False):
        return
    try:
        ingest_failures(rt, utcnow())
        counts = deliver_due(rt)
        if any(counts.values()):
            log.info("alerts: %s", counts)
    except Exception:  # noqa: BLE001 - the next pass retries
        log.exception("alert delivery pass failed")
    finally:
        _lock.release()


def has_channels(rt) -> bool:
    """Whether any enabled channel exists: without one there is nobody to alert, and the triggers (anomaly
    scoring, budget forecasts) are not worth their time; they catch up at the first evaluation after a channel is
    added (open conditions are raised then)."""
    from sqlalchemy import select

    from app.alerts.models import AlertChannel

    with rt.sessions() as session:
        return session.scalar(select(AlertChannel.id).where(AlertChannel.enabled).limit(1)) is not None


def evaluate_job(rt) -> None:
    from app.alerts.triggers import evaluate

    if not has_channels(rt):
        return
    try:
        evaluate(rt, deliver=False)
    except Exception:  # noqa: BLE001
        log.exception("alert evaluation failed")


def install(ingest_scheduler) -> None:
    """Add the alert jobs to app.scheduler's IngestScheduler (its in-memory `local` job store)."""
    rt, settings = ingest_scheduler.rt, alert_settings(ingest_scheduler.rt)
    ingest_scheduler.scheduler.add_job(deliver_job, "interval", args=[rt], seconds=settings.deliver_seconds,
                                       id="alerts-deliver", jobstore="local", replace_existing=True, coalesce=True,
                                       max_instances=1)
    ingest_scheduler.scheduler.add_job(evaluate_job, "interval", args=[rt], seconds=settings.evaluate_seconds,
                                       id="alerts-evaluate", jobstore="local", replace_existing=True,
                                       coalesce=True, max_instances=1)


def after_ingest(rt, source: str, periods: list) -> dict:
    """The `alerts` after-ingest step of app.runs: evaluate every trigger and deliver what is due (nothing to do, and
    no time spent on the ingest's clock, while no channel is enabled)."""
    from app.alerts.triggers import evaluate

    if not has_channels(rt):
        return {"detail": "no enabled alert channel: triggers not evaluated"}
    out = evaluate(rt)
    return {"events": {k: v for k, v in out.items() if k != "delivery"}, "delivery": out.get("delivery")}
