"""`cloudtally demo`, the README's main job: loads through the real connector, prints last month, serves the API."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

from tests.helpers import cli, cli_json

# The seeded dataset's October 2026 EffectiveCost, per currency. Deterministic: any change to the generator or to
# the ingest that moves these is a change someone must explain. Computed from the files with pyarrow and Decimal
# (AWS: the CUR lines' amortized cost by the CUR query library's formula, as test_demo.amortized does). The AWS part
# became a CUR 2.0 export at 48910.17477368 USD: CUR taxes each usage account and product code separately, each
# rounded to the cent, where the FOCUS files had one tax row per account (48897.68477368 before). The GCP part became
# Cloud Billing export rows at 48913.92477368 USD: GCP's tax row is 5% of its invoice month, and October's invoice
# also bills the Cloud Run usage of 30 September (invoice-month crossover), so October's tax row is 3.75 USD higher;
# the crossover rows themselves count in September here, as `costs` periods follow ChargePeriodStart.
OCTOBER = {"USD": Decimal("48913.92477368"), "EUR": Decimal("1624.8695985216")}


def test_demo_loads_prints_last_month_and_is_repeatable(tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}
    first = cli("demo", "--no-serve", env=env)
    assert first.exit_code == 0, first.stderr
    assert "EffectiveCost 2026-10 by ProviderName" in first.stdout and "by team" in first.stdout
    assert "48913.92" in first.stdout and "1624.87" in first.stdout
    assert "allocation rules rules.yaml: version 1 active" in first.stdout
    for team in ("payments", "data", "platform", "search", "mobile", "unallocated"):
        assert team in first.stdout
    # The sample rules allocate at least 95% of every provider's month (only the sandbox account is left out).
    coverage = cli_json("rules", "coverage", "--output", "json", env=env)
    assert len(coverage) == 12  # 3 months x (AWS, Google Cloud, Microsoft USD, Microsoft EUR)
    for c in coverage:
        assert Decimal(c["allocated"]) + Decimal(c["unallocated"]) + Decimal(c["not_allocated_yet"]) == \
            Decimal(c["total"]), c
        assert Decimal(c["allocated"]) >= Decimal(c["total"]) * Decimal("0.95"), c
    total = sum(Decimal(c["total"]) for c in coverage)
    assert 0 < sum(Decimal(c["unallocated"]) for c in coverage) < total * Decimal("0.01")  # the sandbox account
    # One even split (commitment fees) and one proportional split (invoice tax) divide lines among the teams.
    explained = cli_json("rules", "explain", "--team", "search", "--day", "2026-10-01", env=env)
    assert {"shared-commitments", "invoice-tax"} <= {g["rule"] for g in explained["groups"]}, explained

    body = cli_json("costs", "--start", "2026-10", "--format", "json", env=env)
    assert {t["currency"]: Decimal(t["cost"]) for t in body["totals"]} == OCTOBER
    ledger = cli_json("deliveries", "--output", "json", env=env)
    assert len(ledger) == 9 and all(d["status"] == "loaded" for d in ledger)
    # Money reconciles everywhere; row counts differ by design for CUR (negations netted, Unused added) and for the
    # GCP export (PROMOTION credits become Credit rows of their own).
    for d in ledger:
        assert {k: v for k, v in d["raw"].items() if k != "rows"} == {k: v for k, v in d["landed"].items()
                                                                      if k != "rows"}, d
        assert (d["raw"]["rows"] == d["landed"]["rows"]) == (d["source"] == "demo-azure"), d

    again = cli("demo", "--no-serve", env=env)
    assert again.exit_code == 0
    assert cli_json("deliveries", "--output", "json", env=env) == ledger  # same files: nothing reloaded


def test_demo_serves_the_api(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "demo", "--port", str(port)],
                            env={"CLOUDTALLY_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # A liveness bound, not a speed target (bench/ measures speed): the whole demo runs first, and a loaded CI
        # machine has taken more than 120 s for it.
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/v1/costs?start=2026-10&group_by=ProviderName", timeout=5) as r:
                    body = json.load(r)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stdout.read() if proc.poll() is not None else "demo did not serve")
                time.sleep(0.25)
        assert {t["currency"]: Decimal(t["cost"]) for t in body["totals"]} == OCTOBER
        assert {r["ProviderName"] for r in body["rows"]} == {"AWS", "Microsoft", "Google Cloud"}
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "open to anyone" in out  # the demo says its API is open
