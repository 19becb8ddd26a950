"""Reliability of scheduled ingestion (issue 9), with real processes, on SQLite and PostgreSQL:

1. SIGKILL a `cloudtally ingest` in the middle of a delivery load: the warehouse keeps exactly the old delivery,
   the ledger says so, and the next run loads the new one.
2. Two `cloudtally serve` processes (API + scheduler) on one PostgreSQL control database: each due fire of a
   source runs exactly once, and loads each delivery once.
3. A source whose S3 bucket vanishes (moto's real server): its runs fail fast with a clear message while another
   source keeps running on time.

The crash test stops the load at a known point with the warehouse's test hook (CLOUDTALLY_TEST_PAUSE_IN_LOAD, a
no-op unless set: app/warehouse/__init__.py), after the new rows are written and before the commit.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from app import sources
from app.control import Delivery, IngestRun
from app.scheduler import IngestScheduler, fire_times
from tests import aws_fixtures as fx
from tests.conftest import REPO, _free_port, _stop, make_runtime
from tests.helpers import read_rows, sums, write_csv

AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"


def cli_env(rt, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDTALLY_")}
    env.update(CLOUDTALLY_DATA_DIR=str(rt.settings.data_dir), CLOUDTALLY_DATABASE_URL=rt.settings.resolved_database_url,
               CLOUDTALLY_WAREHOUSE_LOCK_TIMEOUT="60", **extra)
    return env


def warehouse(rt, source):
    with rt.warehouse.connect(read_only=True) as con:
        return con.execute("SELECT count(*), sum(BilledCost), sum(EffectiveCost), list(DISTINCT x_DeliveryId) "
                           "FROM cost_and_usage WHERE x_SourceId = ?", [source]).fetchone()


def expected(path):
    rows = read_rows(path)
    return len(rows), sums(rows, "BilledCost"), sums(rows, "EffectiveCost")


def restated_copy(samples, path):
    """The AWS sample restated: 10 lines dropped, one line's costs lowered by 1.25."""
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    rows = [list(r) for r in rows[10:]]
    for name in ("BilledCost", "EffectiveCost"):
        i = header.index(name)
        rows[0][i] = str(Decimal(rows[0][i]) - Decimal("1.25"))
    return write_csv(path, header, rows)


# -- 1. SIGKILL in the middle of a load --------------------------------------------------------------------------
def test_sigkill_during_load_keeps_old_or_new_never_a_mix(tmp_path, control_url, samples):
    rt = make_runtime(tmp_path / "data", control_url)
    try:
        folder = tmp_path / "bills"
        folder.mkdir()
        v1 = write_csv(folder / "may.csv", *_sample(samples))
        sources.add(rt, "aws", "focus", "focus", str(folder))
        first = subprocess.run([sys.executable, "-m", "app.cli", "ingest", "aws"], env=cli_env(rt), cwd=REPO,
                               capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        old = expected(v1)
        assert warehouse(rt, "aws")[:3] == old

        v1.unlink()
        v2 = restated_copy(samples, folder / "may-restated.csv")
        new = expected(v2)
        assert new != old
        marker = tmp_path / "inside-load"
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "ingest", "aws"], cwd=REPO,
                                env=cli_env(rt, CLOUDTALLY_TEST_PAUSE_IN_LOAD=str(marker)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 300
            while not marker.exists():
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the load never reached the hook"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stderr.close()

        # After the crash: exactly the old delivery, and the ledger says it is the loaded one.
        rows, billed, effective, ids = warehouse(rt, "aws")
        assert (rows, billed, effective) == old
        with rt.sessions() as s:
            loaded = s.scalars(select(Delivery).where(Delivery.status == "loaded")).all()
            running = s.scalars(select(Delivery).where(Delivery.status == "running")).all()
            runs = {r.status: r for r in s.scalars(select(IngestRun))}
        assert [d.id for d in loaded] == ids and (loaded[0].landed_billed_cost, loaded[0].landed_rows) == (billed, rows)
        assert len(running) == 1 and running[0].raw_billed_cost == new[1]  # the new one never committed
        assert set(runs) == {"succeeded", "running"}  # the killed run is still marked running

        # Restart: the next run settles the crash and loads the new delivery.
        again = subprocess.run([sys.executable, "-m", "app.cli", "ingest", "aws"], env=cli_env(rt), cwd=REPO,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        rows, billed, effective, ids = warehouse(rt, "aws")
        assert (rows, billed, effective) == new
        with rt.sessions() as s:
            by_id = {d.id: d for d in s.scalars(select(Delivery))}
            runs = sorted(s.scalars(select(IngestRun)), key=lambda r: r.started_at)
        assert by_id[ids[0]].status == "loaded" and by_id[ids[0]].landed_billed_cost == new[1]
        assert by_id[loaded[0].id].status == "replaced" and by_id[loaded[0].id].replaced_by == ids[0]
        assert by_id[running[0].id].status == "failed"
        assert by_id[running[0].id].error == "interrupted before its rows were committed"
        assert [r.status for r in runs] == ["succeeded", "failed", "succeeded"]
        assert runs[1].error == "interrupted: the process running it stopped"
    finally:
        rt.close()


def _sample(samples):
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    return header, rows


# -- 2. two schedulers, one PostgreSQL control database ------------------------------------------------------------
INTERVAL = 3


def test_two_schedulers_run_each_fire_once(tmp_path, pg_url, samples):
    rt = make_runtime(tmp_path / "data", pg_url)
    servers = []
    try:
        folder = tmp_path / "bills"
        folder.mkdir()
        write_csv(folder / "may.csv", *_sample(samples))
        sources.add(rt, "aws", "focus", "focus", str(folder), schedule=f"*/{INTERVAL} * * * * *")
        logs = []
        for i in range(2):
            log = open(tmp_path / f"serve-{i}.log", "wb")
            logs.append(log)
            servers.append(subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(_free_port())], cwd=REPO,
                env=cli_env(rt, CLOUDTALLY_SCHEDULER_SYNC_SECONDS="1", CLOUDTALLY_LOG_LEVEL="INFO"),
                stdout=log, stderr=subprocess.STDOUT))
        started = _wait_for_runs(rt, 3, 90)
        (folder / "may.csv").unlink()
        v2 = restated_copy(samples, folder / "may-v2.csv")
        _wait_for_runs(rt, len(started) + 4, 90)
        for proc in servers:
            assert proc.poll() is None, "a scheduler process died"
    finally:
        for proc in servers:
            _stop(proc)
        for log in locals().get("logs", []):
            log.close()
    with rt.sessions() as s:
        runs = sorted(s.scalars(select(IngestRun)), key=lambda r: r.scheduled_for)
        deliveries = s.scalars(select(Delivery)).all()
    rt.close()
    output = "".join((tmp_path / f"serve-{i}.log").read_text(errors="replace") for i in range(2))
    assert all(r.trigger == "scheduled" for r in runs)
    assert {r.status for r in runs} <= {"succeeded", "nothing_new"}, [(r.status, r.error) for r in runs]
    fires = [r.scheduled_for for r in runs]
    assert len(fires) == len(set(fires))  # never twice
    expected_fires = fire_times(f"*/{INTERVAL} * * * * *", fires[0], fires[-1])
    assert fires == expected_fires, "a due fire did not run"  # never zero times
    assert [r.status for r in runs].count("succeeded") == 2  # the first load and the restatement, once each
    assert sorted(d.status for d in deliveries) == ["loaded", "replaced"]
    assert warehouse_totals(rt, "aws") == expected(v2)
    assert output.count("scheduler started: 1 source jobs") >= 2, output[-3000:]
    # Both schedulers really competed: both ran fires, or one lost a fire's claim to the other.
    assert len({r.runner for r in runs}) == 2 or "claimed by another scheduler" in output


def warehouse_totals(rt, source):
    return warehouse(rt, source)[:3]


def _wait_for_runs(rt, count, timeout):
    deadline = time.monotonic() + timeout
    while True:
        with rt.sessions() as s:
            done = s.scalars(select(IngestRun).where(IngestRun.status != "running")).all()
        if len(done) >= count:
            return done
        assert time.monotonic() < deadline, f"only {len(done)} scheduled runs finished in {timeout} s"
        time.sleep(0.25)


# -- 3. a bucket vanishes ----------------------------------------------------------------------------------------
def test_vanished_bucket_fails_fast_and_other_sources_keep_time(rt_any, s3, s3_endpoint, tmp_path, samples):
    client, bucket = s3
    fx.write_cur2(tmp_path / "export", "cur2", fx.month_lines())
    fx.upload(client, bucket, tmp_path / "export", "exports")
    sources.add(rt_any, "doomed", "aws", "cur2", f"s3://{bucket}/exports/cur2", {"endpoint_url": s3_endpoint},
                schedule="*/2 * * * * *")
    healthy = tmp_path / "healthy"
    healthy.mkdir()
    write_csv(healthy / "may.csv", *_sample(samples))
    sources.add(rt_any, "healthy", "focus", "focus", str(healthy), schedule="*/2 * * * * *")
    scheduler = IngestScheduler(rt_any)
    scheduler.start()
    try:
        _wait_until(rt_any, lambda runs: any(r.source == "doomed" and r.status == "succeeded" for r in runs), 60)
        for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)
        gone_at = time.monotonic()
        _wait_until(rt_any, lambda runs: sum(r.source == "doomed" and r.status == "failed" for r in runs) >= 3, 60)
        assert time.monotonic() - gone_at < 30
    finally:
        scheduler.shutdown()
    with rt_any.sessions() as s:
        runs = sorted(s.scalars(select(IngestRun).where(IngestRun.status != "running")), key=lambda r: r.scheduled_for)
    failed = [r for r in runs if r.source == "doomed" and r.status == "failed"]
    for r in failed:
        assert r.attempts == 1, "a missing bucket is permanent: no retries"
        assert f"s3://{bucket}/exports/cur2" in r.error, r.error
        # Usually the listing fails on the missing bucket. A run already past the listing when the objects went
        # (they are deleted before the bucket) fails reading the manifest, on the missing key or the missing bucket.
        if "cannot list" in r.error:
            assert "NoSuchBucket" in r.error, r.error
        else:
            assert "cannot read" in r.error and ("NoSuchBucket" in r.error or "NoSuchKey" in r.error), r.error
        assert r.message == "failed (permanent error)"
    # The healthy source ran at every fire time from before the bucket vanished to after the failures, on time.
    ok = [r for r in runs if r.source == "healthy"]
    assert {r.status for r in ok} <= {"succeeded", "nothing_new"}
    window = [r for r in ok if failed[0].scheduled_for - timedelta(seconds=2) <= r.scheduled_for <= failed[-1].scheduled_for]
    assert [r.scheduled_for for r in window] == fire_times("*/2 * * * * *", window[0].scheduled_for,
                                                          window[-1].scheduled_for)
    assert len(window) >= 3
    assert all(r.started_at - r.scheduled_for < timedelta(seconds=2) for r in window)


def _wait_until(rt, predicate, timeout):
    deadline = time.monotonic() + timeout
    while True:
        with rt.sessions() as s:
            runs = s.scalars(select(IngestRun).where(IngestRun.status != "running")).all()
        if predicate(runs):
            return runs
        assert time.monotonic() < deadline, [(r.source, r.status, r.error) for r in runs]
        time.sleep(0.2)
