"""Ingest runs (issue 9): the sources API, `sources test`, the per-source lock, run history, retries and the error
classification, on SQLite and PostgreSQL where the control database matters."""
from __future__ import annotations

import os
import random
import socket
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

import app.ingest as ingest_module
from app import sources
from app.control import Delivery, SourceLock, utcnow
from app.locks import source_lock
from app.retry import backoff, classify
from app.runs import run_source
from connectors.base import IngestError
from tests import aws_fixtures as fx
from tests.helpers import api_client, cli, cli_json

AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"


def ledger_sums(rt, ids):
    with rt.sessions() as s:
        rows = [s.get(Delivery, i) for i in ids]
    return (sum(d.landed_rows for d in rows), sum((d.landed_billed_cost for d in rows), Decimal(0)),
            sum((d.landed_effective_cost for d in rows), Decimal(0)))


# -- run history -------------------------------------------------------------------------------------------------
def test_run_records_deliveries_sums_steps_and_nothing_new(rt_any, tmp_path):
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 9))
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 10))
    sources.add(rt_any, "aws", "aws", "cur2", str(tmp_path / "e"))
    first = run_source(rt_any, "aws", "cli")
    assert first.status == "succeeded" and first.attempts == 1 and first.error is None
    assert len(first.deliveries["loaded"]) == 2 and first.deliveries["unchanged"] == []
    rows, billed, effective = ledger_sums(rt_any, first.deliveries["loaded"])
    expected = [fx.expected(fx.month_lines(2026, m)) for m in (9, 10)]
    assert (first.landed_billed_cost, first.landed_effective_cost) == (
        sum(e[0] for e in expected), sum(e[1] for e in expected))
    assert (first.landed_rows, first.landed_billed_cost, first.landed_effective_cost) == (rows, billed, effective)
    assert first.raw_billed_cost == first.landed_billed_cost
    assert [s["name"] for s in first.steps] == ["allocation", "data_quality", "rollups", "alerts", "recommendations"]
    assert first.steps[0]["status"] == "succeeded" and first.steps[0]["periods"] == ["2026-09", "2026-10"]
    assert first.steps[0]["duration_ms"] >= 0 and first.steps[1]["checks"] >= 5
    # rollups, alerts (app/alerts), recommendations (optimizers/ledger.py; off unless configured)
    assert [s["status"] for s in first.steps[2:]] == ["succeeded", "succeeded", "succeeded"]
    assert first.steps[4]["ran"] is False
    assert first.steps[2]["periods"] == ["2026-09", "2026-10"]  # the daily rollups of the loaded periods

    again = run_source(rt_any, "aws", "cli")
    assert again.status == "nothing_new" and again.message == "nothing new: 2 deliveries unchanged"
    assert sorted(again.deliveries["unchanged"]) == sorted(first.deliveries["loaded"])
    assert again.deliveries["loaded"] == [] and again.landed_billed_cost is None
    assert again.steps[0]["status"] == "skipped"

    with api_client(rt_any) as client:
        body = client.get("/v1/ingest-runs", params={"source": "aws"}).json()
        assert [r["status"] for r in body["runs"]] == ["nothing_new", "succeeded"]
        ok = client.get("/v1/ingest-runs", params={"status": "succeeded"}).json()["runs"]
        assert [r["id"] for r in ok] == [first.id]
        assert Decimal(ok[0]["landed"]["billed_cost"]) == first.landed_billed_cost
        page = client.get("/v1/ingest-runs", params={"limit": 1, "offset": 1}).json()["runs"]
        assert [r["id"] for r in page] == [first.id]
        bad = client.get("/v1/ingest-runs", params={"status": "great"})
        assert bad.status_code == 400 and bad.json()["errors"][0]["parameter"] == "status"
    listed = cli_json("runs", "--source", "aws", "--output", "json",
                      env={"CLOUDTALLY_DATA_DIR": str(rt_any.settings.data_dir),
                           "CLOUDTALLY_DATABASE_URL": rt_any.settings.resolved_database_url})
    assert [r["id"] for r in listed] == [again.id, first.id]


def test_failed_run_keeps_the_message_and_what_loaded(rt, tmp_path):
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 9))
    broken = fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 10))
    victim = next(p for p in broken.root.rglob("*.parquet") if "2026-10" in str(p))
    victim.unlink()  # the October manifest names a file that is gone
    sources.add(rt, "aws", "aws", "cur2", str(tmp_path / "e"))
    run = run_source(rt, "aws", "cli")
    assert run.status == "failed" and run.attempts == 1  # a missing file is permanent: no retry
    assert victim.name in run.error
    assert len(run.deliveries["loaded"]) == 1 and len(run.deliveries["failed"]) == 1
    with rt.sessions() as s:
        assert s.get(Delivery, run.deliveries["loaded"][0]).billing_period_start.month == 9


# -- the lock ----------------------------------------------------------------------------------------------------
def test_loser_of_the_lock_records_skipped_already_running(rt_any, samples):
    with source_lock(rt_any.engine, "aws", 30) as held:
        assert held
        with source_lock(rt_any.engine, "aws", 30) as second:
            assert not second  # another connection (PostgreSQL) / another owner (SQLite) cannot take it
        with source_lock(rt_any.engine, "other", 30) as other:
            assert other  # per source
        run = run_source(rt_any, "aws", "cli", location=str(samples / AWS))
        assert (run.status, run.message) == ("skipped", "already running")
        assert run.finished_at is not None and run.attempts == 0
    with rt_any.sessions() as s:
        assert s.scalars(select(Delivery)).all() == []  # the skipped run loaded nothing
    done = run_source(rt_any, "aws", "cli", location=str(samples / AWS))
    assert done.status == "succeeded"


def test_cli_ingest_exits_1_when_already_running(rt, samples):
    sources.add(rt, "aws", "focus", "focus", str(samples / AWS))
    env = {"CLOUDTALLY_DATA_DIR": str(rt.settings.data_dir)}
    with source_lock(rt.engine, "aws", 30):
        result = cli("ingest", "aws", env=env)
    assert result.exit_code == 1 and "already running" in result.stderr


def test_sqlite_lock_of_a_dead_or_expired_holder_is_taken_over(rt, samples):
    now = utcnow()
    dead_pid = _dead_pid()
    with rt.engine.begin() as con:
        con.execute(insert(SourceLock).values(
            source="aws", owner=f"{socket.gethostname()}:{dead_pid}:x", acquired_at=now, heartbeat_at=now,
            expires_at=now + timedelta(hours=1)))
        con.execute(insert(SourceLock).values(
            source="b", owner="other-host:1:x", acquired_at=now, heartbeat_at=now, expires_at=now + timedelta(hours=1)))
        con.execute(insert(SourceLock).values(
            source="c", owner="other-host:1:y", acquired_at=now, heartbeat_at=now, expires_at=now - timedelta(seconds=1)))
    with source_lock(rt.engine, "aws", 30) as got:
        assert got  # its holder's process is gone
    with source_lock(rt.engine, "b", 30) as got:
        assert not got  # another host, heartbeat fresh: it may still be running
    with source_lock(rt.engine, "c", 30) as got:
        assert got  # expired
    with rt.sessions() as s:
        assert s.scalars(select(SourceLock.source)).all() == ["b"]  # released rows are gone


def test_sqlite_lock_heartbeat_extends_expiry(rt):
    with source_lock(rt.engine, "aws", 0.4) as got:
        assert got
        with rt.sessions() as s:
            first = s.get(SourceLock, "aws").expires_at
        import time

        time.sleep(0.35)
        with rt.sessions() as s:
            assert s.get(SourceLock, "aws").expires_at > first


def _dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


# -- retries -----------------------------------------------------------------------------------------------------
def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "ListObjectsV2")


def _wrapped(exc):
    """As connectors.storage raises it: an IngestError naming the location, from the SDK's error."""
    try:
        raise IngestError(f"cannot list s3://b/p: {exc}") from exc
    except IngestError as wrapped:
        return wrapped


@pytest.mark.parametrize("exc", [
    _client_error("SlowDown", 503), _client_error("ThrottlingException", 400), _client_error("Whatever", 500),
    _client_error("TooManyRequests", 429), _wrapped(_client_error("SlowDown", 503)),
    ConnectionResetError("reset"), TimeoutError("timed out"),
], ids=["s3-slowdown", "throttling-code", "s3-500", "429", "wrapped-slowdown", "reset", "timeout"])
def test_transient_errors(exc):
    assert classify(exc) == "transient"


@pytest.mark.parametrize("exc", [
    _client_error("AccessDenied", 403), _client_error("NoSuchBucket", 404), _wrapped(_client_error("NoSuchBucket", 404)),
    IngestError("row 3, column BilledCost: 'x' is not a decimal number"), ValueError("bug"),
], ids=["access-denied", "no-such-bucket", "wrapped-no-such-bucket", "bad-input", "bug"])
def test_permanent_errors(exc):
    assert classify(exc) == "permanent"


def test_botocore_connection_errors_are_transient():
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    assert classify(_wrapped(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))) == "transient"
    assert classify(ConnectTimeoutError(endpoint_url="http://x")) == "transient"
    assert classify(ReadTimeoutError(endpoint_url="http://x")) == "transient"


def test_azure_errors():
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

    class Response:
        def __init__(self, status):
            self.status_code, self.reason, self.headers = status, "r", {}

        def text(self):
            return ""

    assert classify(HttpResponseError(response=Response(503))) == "transient"
    assert classify(HttpResponseError(response=Response(429))) == "transient"
    assert classify(HttpResponseError(response=Response(403))) == "permanent"
    assert classify(ResourceNotFoundError(response=Response(404))) == "permanent"
    assert classify(ServiceRequestError("connection refused")) == "transient"


def test_google_errors():
    from google.api_core import exceptions as ge

    for transient in (ge.TooManyRequests("quota"), ge.ServiceUnavailable("down"), ge.InternalServerError("x"),
                      ge.DeadlineExceeded("slow")):
        assert classify(_wrapped(transient)) == "transient", transient
    for permanent in (ge.Forbidden("denied"), ge.NotFound("no table"), ge.BadRequest("bad column")):
        assert classify(_wrapped(permanent)) == "permanent", permanent


def test_warehouse_busy_is_transient():
    from app.warehouse import WarehouseBusy

    assert classify(WarehouseBusy("in use")) == "transient"


def test_backoff_is_exponential_with_full_jitter_and_capped():
    rand = random.Random(7)
    for retry in range(1, 10):
        ceiling = min(30.0, 2.0 * 2 ** (retry - 1))
        draws = [backoff(retry, 2.0, 30.0, rand) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # full jitter spans the range, not a fixed delay


class _Flaky:
    """The real connector, whose discover fails `failures` times first with the given error."""

    def __init__(self, real, failures: int, error):
        self.real, self.failures, self.error, self.calls = real, failures, error, 0
        self.provider, self.formats = real.provider, real.formats

    def discover(self, *args):
        self.calls += 1
        if self.calls <= self.failures:
            raise _wrapped(self.error)
        return self.real.discover(*args)

    def inspect(self, *args):
        return self.real.inspect(*args)


def _flaky(monkeypatch, failures, error):
    real = ingest_module.get_connector("focus")
    flaky = _Flaky(real, failures, error)
    monkeypatch.setattr(ingest_module, "get_connector", lambda provider: flaky)
    return flaky


def test_transient_error_is_retried_with_backoff(rt_any, samples, monkeypatch):
    sources.add(rt_any, "aws", "focus", "focus", str(samples / AWS))
    flaky = _flaky(monkeypatch, 2, _client_error("SlowDown", 503))
    waits = []
    run = run_source(rt_any, "aws", "cli", sleep=waits.append)
    assert run.status == "succeeded" and run.attempts == 3 and flaky.calls == 3
    settings = rt_any.settings
    assert len(waits) == 2
    assert all(0 <= w <= min(settings.ingest_retry_max_delay, settings.ingest_retry_base_delay * 2 ** i)
               for i, w in enumerate(waits))


def test_retries_are_bounded(rt, samples, monkeypatch):
    sources.add(rt, "aws", "focus", "focus", str(samples / AWS))
    rt.settings.ingest_retries = 2
    flaky = _flaky(monkeypatch, 99, _client_error("SlowDown", 503))
    waits = []
    run = run_source(rt, "aws", "cli", sleep=waits.append)
    assert run.status == "failed" and run.attempts == 3 and flaky.calls == 3 and len(waits) == 2
    assert run.message == "failed after 3 attempts (transient error)" and "SlowDown" in run.error


def test_permanent_error_fails_fast(rt, samples, monkeypatch):
    sources.add(rt, "aws", "focus", "focus", str(samples / AWS))
    flaky = _flaky(monkeypatch, 99, _client_error("AccessDenied", 403))
    waits = []
    run = run_source(rt, "aws", "cli", sleep=waits.append)
    assert run.status == "failed" and run.attempts == 1 and waits == [] and flaky.calls == 1
    assert "AccessDenied" in run.error and run.message == "failed (permanent error)"


# -- sources API and `sources test` --------------------------------------------------------------------------------
def test_sources_api_crud_without_secrets(rt_any, tmp_path):
    with api_client(rt_any) as client:
        body = {"name": "aws-prod", "provider": "aws", "format": "cur2", "location": "s3://bills/exports/cur2",
                "options": {"region": "eu-west-1"}, "schedule": "0 */6 * * *"}
        created = client.post("/v1/sources", json=body)
        assert created.status_code == 201 and created.headers["location"] == "/v1/sources/aws-prod"
        assert {k: created.json()[k] for k in body} == body
        assert client.post("/v1/sources", json=body).status_code == 409
        secret = client.post("/v1/sources", json={**body, "name": "x", "options": {"aws_secret_access_key": "s"}})
        assert secret.status_code == 400 and secret.json()["errors"][0]["parameter"] == "options"
        assert "never stores secrets" in secret.json()["detail"]
        cron = client.post("/v1/sources", json={**body, "name": "y", "schedule": "every hour"})
        assert cron.status_code == 400 and cron.json()["errors"][0]["parameter"] == "schedule"
        fmt = client.post("/v1/sources", json={**body, "name": "z", "format": "csv"})
        assert fmt.status_code == 400 and fmt.json()["errors"][0]["parameter"] == "format"
        assert [s["name"] for s in client.get("/v1/sources").json()["sources"]] == ["aws-prod"]
        assert client.get("/v1/sources/aws-prod").json()["schedule"] == "0 */6 * * *"
        assert client.delete("/v1/sources/aws-prod").status_code == 204
        missing = client.get("/v1/sources/aws-prod")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert client.delete("/v1/sources/aws-prod").status_code == 404
        spec = client.get("/openapi.json").json()
        for path in ("/v1/sources", "/v1/sources/{name}", "/v1/ingest-runs", "/v1/data-quality"):
            for op in spec["paths"][path].values():
                for param in op.get("parameters", []):
                    assert param.get("description"), (path, param["name"])


def test_api_run_trigger(rt, samples):
    sources.add(rt, "aws", "focus", "focus", str(samples / AWS))
    with api_client(rt) as client:
        started = client.post("/v1/sources/aws/runs")
        assert started.status_code == 202
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = client.get("/v1/ingest-runs", params={"source": "aws"}).json()["runs"]
            if runs and runs[0]["status"] != "running":
                break
            time.sleep(0.2)
        assert runs[0]["trigger"] == "api" and runs[0]["status"] == "succeeded"
        assert client.post("/v1/sources/nope/runs").status_code == 404


def test_sources_test_reports_what_would_load(tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 10))
    assert cli("sources", "add", "aws", "--provider", "aws", "--format", "cur2", "--location",
               str(tmp_path / "e"), env=env).exit_code == 0
    before = cli_json("sources", "test", "aws", "--output", "json", env=env)
    assert [(d["billing_period"], d["would"]) for d in before["deliveries"]] == [("2026-10", "load")]
    with_runs = cli_json("runs", "--output", "json", env=env)
    assert with_runs == []  # a test loads nothing and records no run
    assert cli("ingest", "aws", env=env).exit_code == 0
    after = cli_json("sources", "test", "aws", "--output", "json", env=env)
    assert [d["would"] for d in after["deliveries"]] == ["skip: already loaded"]

    assert cli("sources", "add", "gone", "--provider", "aws", "--format", "cur2", "--location",
               str(tmp_path / "nowhere"), env=env).exit_code == 0
    failed = cli("sources", "test", "gone", env=env)
    assert failed.exit_code == 1 and "no such file or folder" in failed.stderr
    assert cli("sources", "test", "nope", env=env).exit_code == 1


def test_duckdb_write_conflict_is_transient():
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE t (v INT)")
    con.execute("INSERT INTO t VALUES (1)")
    a, b = con.cursor(), con.cursor()
    a.begin()
    b.begin()
    a.execute("UPDATE t SET v = v + 1")
    with pytest.raises(duckdb.TransactionException) as conflict:
        b.execute("UPDATE t SET v = v + 1")
    assert classify(_wrapped(conflict.value)) == "transient"


def test_read_only_beside_read_write_in_one_process_waits_then_is_busy(rt):
    from app.warehouse import WarehouseBusy

    with rt.warehouse.connect():
        with pytest.raises(WarehouseBusy):
            with rt.warehouse.connect(read_only=True, timeout=0.3):
                pass
    with rt.warehouse.connect(read_only=True, timeout=0.3) as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
