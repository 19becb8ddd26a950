"""Shared fixtures: runtimes on SQLite and PostgreSQL, the public FOCUS samples, a real S3 (moto server mode), a
real Azure Blob Storage (Azurite, from the repository's package.json: `npm ci`).

Services a test needs are started here or must already run (PostgreSQL on 127.0.0.1:5432). With CI=true a missing
service or missing ../shared fails the run loudly; locally such tests are skipped with the reason.
"""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time
import uuid
from types import SimpleNamespace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.runtime import Runtime
from app.settings import Settings

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get("CLOUDTALLY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def unavailable(reason: str):
    """Fail in CI, skip locally: a test that cannot reach what it needs must never pass silently in CI."""
    if IN_CI:
        pytest.fail(f"required test service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("CLOUDTALLY_SHARED_DIR", REPO.parent / "shared"))
    if not (path / "samples" / "focus").is_dir():
        unavailable(f"../shared with samples/focus not found at {path} (set CLOUDTALLY_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def samples(shared_dir: Path) -> Path:
    return shared_dir / "samples" / "focus"


# -- control databases -------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_admin():
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as con:
            con.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        engine.dispose()
        unavailable(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"cloudtally_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as con:
        con.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with pg_admin.connect() as con:
        con.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def control_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    return request.getfixturevalue("pg_url")


def make_runtime(data_dir: Path, database_url: str | None = None) -> Runtime:
    rt = Runtime(Settings(data_dir=data_dir, database_url=database_url, warehouse_lock_timeout=5))
    rt.init()
    return rt


@pytest.fixture
def rt(tmp_path):
    """A runtime on the embedded default (DuckDB file + SQLite)."""
    runtime = make_runtime(tmp_path / "data")
    yield runtime
    runtime.close()


@pytest.fixture
def rt_any(tmp_path, control_url):
    """The same runtime on each control database: SQLite and PostgreSQL."""
    runtime = make_runtime(tmp_path / "data", control_url)
    yield runtime
    runtime.close()


# -- S3 through moto's server mode -------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        unavailable(f"moto[server] not installed: {exc}")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3(s3_endpoint):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"bills-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


# -- Azure Blob Storage through Azurite ----------------------------------------------------------------------------
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key (public, documented by Microsoft; not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _stop(proc: subprocess.Popen) -> None:
    """Stop a server we started, by its PID: SIGTERM, then SIGKILL if it ignores that (Azurite may)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """Azurite's blob service on a free 127.0.0.1 port, with a throw-away data folder."""
    exe = REPO / "node_modules" / ".bin" / "azurite-blob"
    if not exe.exists():
        unavailable(f"Azurite not installed at {exe} (run `npm ci` in the repository root)")
    port = _free_port()
    folder = tmp_path_factory.mktemp("azurite")
    log = open(folder / "azurite.log", "wb")
    proc = subprocess.Popen(
        [str(exe), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(folder / "data"),
         "--skipApiVersionCheck", "--loose", "--silent"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # answers = any HTTP response from the blob endpoint
            if proc.poll() is not None:
                unavailable(f"Azurite exited with code {proc.returncode}: "
                            f"{(folder / 'azurite.log').read_text(errors='replace')[-500:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", f"/{AZURITE_ACCOUNT}?comp=list")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    unavailable("Azurite did not answer within 30 s")
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        yield SimpleNamespace(
            endpoint=endpoint,
            connection_string=(f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                               f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"),
        )
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def blob_container(azurite, monkeypatch):
    """A fresh container in Azurite, with AZURE_STORAGE_CONNECTION_STRING pointing at it for the test."""
    from azure.storage.blob import BlobServiceClient

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    name = f"bills-{uuid.uuid4().hex[:8]}"
    client = BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return client
