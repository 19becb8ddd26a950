"""The user's first contact: README commands, CI script, installed package contents, CLI help, a served API."""
from __future__ import annotations

import csv
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from decimal import Decimal

import pytest

from tests.conftest import REPO
from tests.helpers import cli, cli_json, read_rows, sums

COMMANDS = [["init"], ["ingest"], ["deliveries"], ["costs"], ["export", "focus"], ["serve"], ["demo"],
            ["sources", "add"], ["sources", "list"], ["sources", "remove"], ["sources", "exports"],
            ["sources", "test"], ["runs"], ["quality"], ["export", "lake"], ["export", "lake-ddl"],
            ["fx", "set"], ["fx", "import"], ["fx", "list"], ["fx", "delete"]]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick)


def test_readme_has_the_two_commands_and_ci_runs_the_test_one():
    install_demo, run_tests = _readme_commands()[:2]
    assert install_demo.endswith("cloudtally demo") and 'pip install -e ".[demo]"' in install_demo
    assert "pytest" in run_tests and '".[dev]"' in run_tests
    ci = (REPO / ".ci" / "run").read_text()
    assert run_tests in ci.splitlines()


def test_built_package_carries_the_migrations(tmp_path):
    """The Docker image installs the package non-editably: the DDL and alembic files must be inside the wheel."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("cloudtally-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "migrations/warehouse/0001_cost_and_usage.sql" in names
    assert "migrations/control/env.py" in names and "migrations/control/script.py.mako" in names
    assert any(n.startswith("migrations/control/versions/0001_") for n in names)
    assert "app/cli.py" in names and "connectors/focus/mapping.py" in names


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_help(command):
    result = cli(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout
    assert len(result.stdout.split("Usage", 1)[1].strip()) > 40


def test_version_needs_no_command():
    from app import __version__

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"cloudtally {__version__}"


def test_init_creates_both_stores(tmp_path):
    result = cli("init", env={"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 0
    assert (tmp_path / "d" / "warehouse.duckdb").exists() and (tmp_path / "d" / "control.db").exists()


def test_export_csv_has_focus_names_and_utc_timestamps(samples, tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}
    src = samples / "finops-foundation-focus-1.0/focus_sample.csv"
    cli_json("ingest", str(src), "--source", "ff", "--output", "json", env=env)
    assert cli("export", "focus", str(tmp_path / "out"), "--format", "csv", env=env).exit_code == 0
    with open(tmp_path / "out" / "focus_cost_and_usage.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[0]["ChargePeriodStart"])
    assert "Id" not in rows[0] and "x_SourceId" in rows[0]
    assert sum(Decimal(r["BilledCost"]) for r in rows) == sums(read_rows(src), "BilledCost")
    meta = json.loads((tmp_path / "out" / "focus_metadata.json").read_text())
    assert meta["Schema"]["FocusVersion"] == "1.2"
    assert {"ColumnName": "BilledCost", "DataType": "Decimal", "NumericPrecision": 38, "NumberScale": 18} in \
        meta["Schema"]["ColumnDefinition"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_over_http_and_shares_the_file_with_a_cli_ingest(samples, tmp_path):
    data = tmp_path / "d"
    port = _free_port()
    env = {"CLOUDTALLY_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    assert json.load(r)["status"] == "ok"
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(proc.stdout.read())
                time.sleep(0.1)
        # A CLI ingest in another process while the server runs.
        src = samples / "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_gcp.csv"
        ingest = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(src), "--source", "gcp"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert ingest.returncode == 0, ingest.stderr
        made = subprocess.run([sys.executable, "-m", "app.cli", "keys", "create", "--role", "finance", "--name", "t"],
                              env=env, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        url = base + "/v1/costs?start=2026-05&end=2026-06&metric=BilledCost"
        with pytest.raises(urllib.error.HTTPError) as refused:  # serve needs a key
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {made.stdout.strip()}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            body = json.load(r)
        assert Decimal(body["totals"][0]["cost"]) == sums(read_rows(src), "BilledCost")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
