"""Scheduled ingests: an APScheduler 3 BackgroundScheduler whose jobs live in the control database.

- One job per source that has a `schedule` (id `ingest:<source>`), calling `scheduled_ingest(source_name)` by
  reference, so the job pickles into the SQLAlchemy job store (table `apscheduler_jobs`) and survives restarts.
- Jobs are synced from the sources table when the scheduler starts, when the API adds or removes a source, and
  every `CLOUDTALLY_SCHEDULER_SYNC_SECONDS` (30), which picks up `cloudtally sources add/remove` from other
  processes.
- Job defaults: `coalesce=True` (fires missed while the process was down run once, not once per missed fire),
  `max_instances=1` (never twice at once in one process), `misfire_grace_time=CLOUDTALLY_SCHEDULER_MISFIRE_GRACE`
  (3600 s: a fire up to an hour late still runs; later than that it is dropped and the next fire catches up, since
  every ingest loads whatever is new).
- Schedules are cron expressions evaluated in UTC: five fields (minute hour day month day-of-week, day-of-week 0
  or 7 = Sunday as in crontab), or six with a leading seconds field (e.g. `*/5 * * * * *`, every 5 seconds).

Several processes may run a scheduler against the same database (two `serve` replicas): each fire time of a source
runs once, because the run record claims (source, fire time) under a unique constraint before anything runs, and
the source lock keeps any two runs from overlapping.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.control import Source, utcnow

log = logging.getLogger(__name__)

JOB_PREFIX = "ingest:"
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_runtime = None  # the Runtime of the scheduler running in this process (set by IngestScheduler.start)


# -- cron ------------------------------------------------------------------------------------------------------
def _day_of_week(field: str) -> str:
    """crontab's day-of-week (0/7 = Sunday) in APScheduler 3's terms (which counts 0 = Monday): numbers become
    day names, ranges of numbers lists of names."""
    out = []
    for part in field.split(","):
        if not re.search(r"\d", part):
            out.append(part)
            continue
        if "/" in part:
            raise ValueError(f"day of week {part!r}: use day names (mon-fri) with a step")
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()) or int(lo) > 7 or (sep and int(hi) > 7):
            raise ValueError(f"day of week {part!r} is not 0-7 or a range of them")
        if sep:
            if int(hi) < int(lo):
                raise ValueError(f"day of week range {part!r} runs backwards")
            out.extend(_DAYS[d] for d in range(int(lo), int(hi) + 1))
        else:
            out.append(_DAYS[int(lo)])
    return ",".join(dict.fromkeys(out))


def make_trigger(schedule: str) -> CronTrigger:
    """A UTC CronTrigger from a 5-field crontab expression or a 6-field one with leading seconds.
    Raises ValueError naming what is wrong."""
    fields = schedule.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"schedule {schedule!r}: a cron expression has 5 fields (minute hour day month "
                         f"day-of-week) or 6 with leading seconds")
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, dow = fields
    try:
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_day_of_week(dow), timezone=timezone.utc)
    except ValueError as exc:
        raise ValueError(f"schedule {schedule!r}: {exc}") from exc


def fire_times(schedule: str, start: datetime, end: datetime, limit: int = 100_000) -> list[datetime]:
    """The schedule's fire times in [start, end]."""
    trigger = make_trigger(schedule)
    out: list[datetime] = []
    t = trigger.get_next_fire_time(None, start)
    while t is not None and t <= end and len(out) < limit:
        out.append(t)
        t = trigger.get_next_fire_time(t, t + timedelta(microseconds=1))
    return out


def last_fire_time(schedule: str, now: datetime, window: timedelta) -> datetime | None:
    """The latest fire time at or before `now`, looking back at most `window` (the misfire grace)."""
    times = fire_times(schedule, now - window, now)
    return times[-1] if times else None


def longest_gap(schedule: str, now: datetime | None = None) -> timedelta:
    """The longest time between two consecutive fires over the next 62 days (a monthly cron shows its cadence)."""
    now = now or utcnow()
    times = fire_times(schedule, now, now + timedelta(days=62), limit=2000)
    gaps = [b - a for a, b in zip(times, times[1:])]
    return max(gaps) if gaps else timedelta(days=62)


# -- the job -----------------------------------------------------------------------------------------------------
def scheduled_ingest(source_name: str) -> None:
    """What a source's job calls (by reference, so it pickles): one scheduled run of the source's ingest."""
    from app import runs

    rt = _runtime
    if rt is None:  # a job store shared with a process that did not start us: build the runtime from settings
        from app.runtime import Runtime

        rt = Runtime.from_env()
    with rt.sessions() as session:
        source = session.scalar(select(Source).where(Source.name == source_name))
        schedule = source.schedule if source else None
    if not schedule:
        log.info("source %s is gone or unscheduled; its job is removed at the next sync", source_name)
        return
    grace = timedelta(seconds=rt.settings.scheduler_misfire_grace)
    due = last_fire_time(schedule, utcnow(), grace)
    run = runs.run_source(rt, source_name, "scheduled", scheduled_for=due)
    if run is None:
        log.info("fire of %s at %s was claimed by another scheduler", source_name, due)


class IngestScheduler:
    """The scheduler `cloudtally serve` runs beside the API."""

    def __init__(self, rt, workers: int = 4):
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self.rt = rt
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=rt.engine, tablename="apscheduler_jobs"),
                       "local": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": rt.settings.scheduler_misfire_grace},
            timezone=timezone.utc,
        )

    def start(self) -> None:
        global _runtime
        _runtime = self.rt
        self.scheduler.start()
        self.sync()
        self.scheduler.add_job(self.sync, "interval", seconds=self.rt.settings.scheduler_sync_seconds,
                               id="sync-sources", jobstore="local", replace_existing=True, coalesce=True)
        from app.alerts.worker import install as install_alerts

        install_alerts(self)  # deliver due alerts and evaluate alert triggers (app/alerts)
        log.info("scheduler started: %d source jobs", len(self.jobs()))

    def shutdown(self, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    def jobs(self) -> list:
        return [j for j in self.scheduler.get_jobs(jobstore="default") if j.id.startswith(JOB_PREFIX)]

    def sync(self) -> None:
        """Make the job store's source jobs match the sources table (add, change schedule, remove)."""
        try:
            with self.rt.sessions() as session:
                wanted = {s.name: s.schedule for s in session.scalars(select(Source)) if s.schedule}
            have = {j.id: j for j in self.jobs()}
            for name, schedule in wanted.items():
                job_id, label = JOB_PREFIX + name, f"ingest {name} [{schedule}]"
                if job_id in have and have[job_id].name == label:
                    continue
                try:
                    trigger = make_trigger(schedule)
                except ValueError as exc:
                    log.error("source %s: %s; not scheduled", name, exc)
                    continue
                try:
                    self.scheduler.add_job(scheduled_ingest, trigger, args=[name], id=job_id, name=label,
                                           jobstore="default", replace_existing=True)
                except (ConflictingIdError, IntegrityError):
                    pass  # another scheduler on this database added it a moment ago
            for job_id in have:
                if job_id.removeprefix(JOB_PREFIX) not in wanted:
                    try:
                        self.scheduler.remove_job(job_id, jobstore="default")
                    except JobLookupError:
                        pass
        except Exception:  # noqa: BLE001 - a failed sync must not stop the scheduler; the next one retries
            log.exception("syncing scheduled jobs from the sources table failed")
