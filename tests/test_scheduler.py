"""The ingest scheduler (issue 9): cron parsing in UTC with crontab's weekdays, jobs persisted in the control
database and synced from the sources table, scheduled runs recorded once per fire time."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from app import scheduler as sched
from app import sources
from app.control import IngestRun
from app.runs import run_source

AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"
SUNDAY = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def next_fire(schedule, after=SUNDAY):
    return sched.make_trigger(schedule).get_next_fire_time(None, after)


def test_crontab_weekdays_mean_what_crontab_says():
    assert SUNDAY.strftime("%a") == "Sun"
    assert next_fire("0 6 * * 1") == datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)  # Monday
    assert next_fire("0 6 * * 0") == datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)  # Sunday
    assert next_fire("0 6 * * 7") == datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc)  # Sunday too
    assert next_fire("0 6 * * 6") == datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)  # Saturday
    assert next_fire("30 13 * * 1-5") == datetime(2026, 11, 23, 13, 30, tzinfo=timezone.utc)
    assert next_fire("0 6 * * sat,sun") == datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)
    assert next_fire("0 13 * * *") == datetime(2026, 11, 22, 13, 0, tzinfo=timezone.utc)  # UTC


def test_six_fields_have_leading_seconds():
    times = sched.fire_times("*/5 * * * * *", SUNDAY, SUNDAY + timedelta(seconds=20))
    assert [t.second for t in times] == [0, 5, 10, 15, 20]


@pytest.mark.parametrize("bad", ["every hour", "0 6 * *", "0 6 * * 9", "0 6 * * 5-1", "61 * * * *",
                                 "0 6 * * 1/2"])
def test_bad_schedules_are_refused(bad):
    with pytest.raises(ValueError, match="schedule|day of week"):
        sched.make_trigger(bad)


def test_last_fire_and_cadence():
    now = SUNDAY + timedelta(minutes=7, seconds=3)
    assert sched.last_fire_time("*/5 * * * *", now, timedelta(hours=1)) == SUNDAY + timedelta(minutes=5)
    assert sched.last_fire_time("0 0 1 * *", now, timedelta(hours=1)) is None  # outside the grace window
    assert sched.longest_gap("0 */6 * * *", SUNDAY) == timedelta(hours=6)
    assert sched.longest_gap("0 6 * * 1-5", SUNDAY) == timedelta(days=3)  # Friday to Monday
    assert sched.longest_gap("0 2 1 * *", SUNDAY) == timedelta(days=31)


def test_a_fire_time_runs_once(rt_any, samples):
    sources.add(rt_any, "aws", "focus", "focus", str(samples / AWS), schedule="*/5 * * * *")
    due = datetime(2026, 11, 22, 12, 5, tzinfo=timezone.utc)
    results = []
    barrier = threading.Barrier(3)

    def fire():
        barrier.wait()
        results.append(run_source(rt_any, "aws", "scheduled", scheduled_for=due))

    threads = [threading.Thread(target=fire) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ran = [r for r in results if r is not None]
    assert len(ran) == 1 and results.count(None) == 2 and ran[0].status == "succeeded"
    with rt_any.sessions() as s:
        assert s.scalar(select(func.count()).select_from(IngestRun)) == 1


def test_scheduler_persists_syncs_and_runs_jobs(rt_any, samples):
    sources.add(rt_any, "aws", "focus", "focus", str(samples / AWS), schedule="* * * * * *")
    sources.add(rt_any, "manual", "focus", "focus", str(samples / AWS))  # no schedule: no job
    s = sched.IngestScheduler(rt_any)
    s.start()
    try:
        assert [j.id for j in s.jobs()] == ["ingest:aws"]
        job = s.jobs()[0]
        assert job.coalesce is True and job.max_instances == 1
        assert job.misfire_grace_time == rt_any.settings.scheduler_misfire_grace
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with rt_any.sessions() as session:
                done = session.scalars(select(IngestRun).where(IngestRun.status != "running")).all()
            if len(done) >= 3:
                break
            time.sleep(0.2)
        assert len(done) >= 3
        assert {r.trigger for r in done} == {"scheduled"} and {r.source for r in done} == {"aws"}
        assert [r.status for r in sorted(done, key=lambda r: r.started_at)][0] == "succeeded"
        assert all(r.scheduled_for is not None for r in done)
        assert len({r.scheduled_for for r in done}) == len(done)  # one run per fire time
    finally:
        s.shutdown()
    # The job is in the control database (it survives a restart) and follows the sources table.
    with rt_any.engine.connect() as con:
        assert con.execute(text("SELECT id FROM apscheduler_jobs")).scalars().all() == ["ingest:aws"]
    with rt_any.sessions() as session:
        src = session.scalar(select(sources.Source).where(sources.Source.name == "aws"))
        src.schedule = "0 6 * * 1"
        session.commit()
    again = sched.IngestScheduler(rt_any)
    again.start()
    try:
        (job,) = again.jobs()
        assert job.name == "ingest aws [0 6 * * 1]"
        assert job.next_run_time.strftime("%a %H:%M") == "Mon 06:00"
        sources.remove(rt_any, "aws")
        again.sync()
        assert again.jobs() == []
    finally:
        again.shutdown()


def test_sources_add_refuses_a_bad_schedule(tmp_path):
    from tests.helpers import cli

    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}
    bad = cli("sources", "add", "x", "--provider", "focus", "--format", "focus", "--location", str(tmp_path),
              "--schedule", "0 6 * * 9", env=env)
    assert bad.exit_code == 2 and "day of week" in bad.stderr
    good = cli("sources", "add", "x", "--provider", "focus", "--format", "focus", "--location", str(tmp_path),
               "--schedule", "0 6 * * 1-5", env=env)
    assert good.exit_code == 0
