"""`cloudtally sources add --provider azure --manage-export [--run-export]` and `cloudtally sources exports NAME`,
against the local Cost Management emulator (a real HTTP server) and an Azure export in a local folder.

Only the credential is swapped (DefaultAzureCredential -> a fixed token); every SDK request goes over HTTP."""
from __future__ import annotations

from decimal import Decimal as D

import azure.identity
import pytest

from tests import azure_fixtures as fx
from tests.helpers import cli, cli_json
from tests.test_azure_management import SCOPE, STORAGE, FakeCredential, cm  # noqa: F401 - cm is a fixture

LOCATION = "azure://ctexports/exports/cost/daily-focus"


@pytest.fixture
def env(tmp_path, monkeypatch, cm):  # noqa: F811
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", FakeCredential)
    return {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}


def management_options(cm, **extra):  # noqa: F811
    opts = {"scope": SCOPE, "storage_account_id": STORAGE, "management_url": cm.url, **extra}
    return [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]


def test_add_creates_the_export_runs_it_and_reports_its_runs(env, cm):  # noqa: F811
    added = cli("sources", "add", "az", "--provider", "azure", "--format", "focus", "--location", LOCATION,
                "--manage-export", "--run-export", *management_options(cm, focus_version="1.2"), env=env)
    assert added.exit_code == 0, added.stderr + added.stdout
    assert "export daily-focus at " + SCOPE + ": created; a run was started" in added.stdout
    (export,) = cm.exports.values()
    props = export["properties"]
    assert props["definition"]["dataSet"]["configuration"]["dataVersion"] == "1.2"
    assert props["definition"]["type"] == "FocusCost" and props["definition"]["timeframe"] == "MonthToDate"
    dest = props["deliveryInfo"]["destination"]
    assert (dest["container"], dest["rootFolderPath"], dest["resourceId"]) == ("exports", "cost", STORAGE.lower())
    assert props["partitionData"] is True and props["format"] == "Parquet"
    assert [r["method"] + " " + r["path"].rsplit("/", 1)[-1] for r in cm.requests
            if r["method"] in ("PUT", "POST")] == ["PUT daily-focus", "POST run"]

    status = cli_json("sources", "exports", "az", "--output", "json", env=env)
    (e,) = status["exports"]
    assert (e["export"], e["dataset"], e["failed"]) == ("daily-focus", "FocusCost", False)
    assert [(r["run"], r["status"], r["type"]) for r in e["runs"]] == [("run-new", "Queued", "OnDemand")]


def test_existing_export_is_updated_to_cloudtally_settings_and_failed_run_exits_1(env, cm, tmp_path):  # noqa: F811
    first = cli("sources", "add", "a1", "--provider", "azure", "--format", "focus", "--location", LOCATION,
                "--manage-export", *management_options(cm), env=env)
    assert "created" in first.stdout, first.stderr
    second = cli("sources", "add", "a2", "--provider", "azure", "--format", "focus", "--location", LOCATION,
                 "--manage-export", *management_options(cm, export_format="Csv"), env=env)
    assert second.exit_code == 0, second.stderr
    assert "updated (" in second.stdout and "properties.format" in second.stdout
    (export,) = cm.exports.values()
    assert export["properties"]["format"] == "Csv"

    key = next(iter(cm.exports))
    cm.history[key] = [{"name": "run-1", "properties": {
        "status": "Failed", "executionType": "Scheduled", "submittedTime": "2026-11-20T01:00:00Z",
        "processingEndTime": "2026-11-20T01:05:00Z",
        "error": {"code": "StorageAccountNotFound", "message": "cannot write to ctexports"}}}]
    status = cli("sources", "exports", "a2", env=env)
    assert status.exit_code == 1
    assert "failed" in status.stdout and "cannot write to ctexports" in status.stdout


def test_refusals_name_what_is_missing(env, cm):  # noqa: F811
    no_scope = cli("sources", "add", "az", "--provider", "azure", "--format", "focus", "--location", LOCATION,
                   "--manage-export", env=env)
    assert no_scope.exit_code == 1 and "--option scope=" in no_scope.stderr
    wrong_account = cli("sources", "add", "az", "--provider", "azure", "--format", "focus", "--location",
                        "azure://otheraccount/exports/cost/daily-focus", "--manage-export",
                        *management_options(cm), env=env)
    assert wrong_account.exit_code == 1 and "is not the account of the location" in wrong_account.stderr
    aws = cli("sources", "add", "aws", "--provider", "aws", "--format", "cur2", "--location", "/tmp/x",
              "--manage-export", env=env)
    assert aws.exit_code == 2 and "for Azure sources" in aws.stderr
    cm.fail("PUT", "/exports/", 403, {"error": {"code": "AuthorizationFailed", "message": "no write permission"}})
    denied = cli("sources", "add", "az", "--provider", "azure", "--format", "focus", "--location", LOCATION,
                 "--manage-export", *management_options(cm), env=env)
    assert denied.exit_code == 1 and "Cost Management Contributor" in denied.stderr
    # Nothing was added by the refused commands.
    assert cli_json("sources", "list", "--output", "json", env=env) == []


def test_actual_plus_amortized_manages_both_exports_and_checks_a_month(env, cm, tmp_path):  # noqa: F811
    rows = fx.month_rows()
    local = tmp_path / "c"
    actual = fx.write_export(local, "daily-actual", rows, "actual")
    fx.write_export(local, "daily-amortized", rows, "amortized")
    added = cli("sources", "add", "az", "--provider", "azure", "--format", "actual+amortized", "--location",
                "azure://ctexports/exports/cost/daily-actual", "--manage-export",
                *management_options(cm, amortized_location="daily-amortized"), env=env)
    assert added.exit_code == 0, added.stderr
    assert sorted(name for _, name in cm.exports) == ["daily-actual", "daily-amortized"]
    assert sorted(e["properties"]["definition"]["type"] for e in cm.exports.values()) == ["ActualCost",
                                                                                         "AmortizedCost"]

    # Load the same exports from a local copy (the blob path is covered in test_azure.py), then cross-check.
    local_opts = ["-o", f"scope={SCOPE}", "-o", f"management_url={cm.url}", "-o",
                  "amortized_location=daily-amortized"]
    assert cli("sources", "add", "disk", "--provider", "azure", "--format", "actual+amortized", "--location",
               str(actual.root), *local_opts, env=env).exit_code == 0
    assert cli("ingest", "disk", env=env).exit_code == 0
    billed, _ = fx.expected(rows, "actual+amortized")
    service = billed + D("0.01")  # the service counts one more cent than the files hold
    cm.query_response = ('{"properties":{"nextLink":null,"columns":[{"name":"totalCost","type":"Number"},'
                         '{"name":"Currency","type":"String"}],"rows":[[' + str(service) + ',"USD"]]}}')
    check = cli_json("sources", "exports", "disk", "--check-month", "2026-10", "--output", "json", env=env)
    (c,) = check["month_check"]
    assert (c["currency"], D(c["service_total"]), D(c["landed_total"]), D(c["difference"])) == \
        ("USD", service, fx.q18(billed), fx.q18(billed) - service)
