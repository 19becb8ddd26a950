"""Data-quality checks (issue 9): freshness, completeness, duplicates, schema drift, restatements; stored per source
and billing period, exposed in /v1/data-quality and `cloudtally quality`, raising alert events once per failure."""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select

from app import quality, sources
from app.control import AlertEvent, Delivery
from app.runs import run_source
from tests.helpers import api_client, cli, write_csv

AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"


def month_file(samples, path, year, month, days, *, duplicate=0, extra_column=None, drop_column=None,
               add_to_first=Decimal(0)):
    """The public AWS FOCUS sample's 200 rows moved into one billing month, each row charged on one of `days`
    (cycled); optionally with `duplicate` rows repeated, a column added or dropped, the first row's costs moved."""
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    col = {c: i for i, c in enumerate(header)}
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
    out = []
    for i, row in enumerate(rows):
        row = list(row)
        day = start + timedelta(days=days[i % len(days)] - 1)
        row[col["BillingPeriodStart"]], row[col["BillingPeriodEnd"]] = (f"{start:%Y-%m-%dT%H:%M:%SZ}",
                                                                        f"{end:%Y-%m-%dT%H:%M:%SZ}")
        row[col["ChargePeriodStart"]] = f"{day:%Y-%m-%dT%H:%M:%SZ}"
        row[col["ChargePeriodEnd"]] = f"{day + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
        out.append(row)
    if add_to_first:
        for name in ("BilledCost", "EffectiveCost"):
            out[0][col[name]] = str(Decimal(out[0][col[name]]) + add_to_first)
    out += [list(r) for r in out[:duplicate]]
    if extra_column:
        header = header + [extra_column]
        out = [r + ["v"] for r in out]
    if drop_column:
        i = header.index(drop_column)
        header = header[:i] + header[i + 1:]
        out = [r[:i] + r[i + 1:] for r in out]
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(path, header, out)


def checks(rt, source, period=None):
    with rt.sessions() as s:
        return {(c["check"], c["billing_period"]): c for c in quality.list_checks(s, source, period)}


def events(rt):
    with rt.sessions() as s:
        return [(e.kind, e.source, e.billing_period) for e in s.scalars(select(AlertEvent).order_by(AlertEvent.id))]


def test_complete_clean_delivery_passes_and_gaps_and_duplicates_fail(rt_any, samples, tmp_path):
    all_days = list(range(1, 32))
    month_file(samples, tmp_path / "a" / "may.csv", 2026, 5, all_days)
    run = run_source(rt_any, "a", "cli", location=str(tmp_path / "a"))
    assert run.status == "succeeded"
    got = checks(rt_any, "a")
    assert got[("completeness", "2026-05")]["status"] == "passed"
    assert got[("completeness", "2026-05")]["details"] == {"days": 31, "missing_days": []}
    assert got[("duplicates", "2026-05")]["status"] == "passed"
    assert got[("freshness", None)]["status"] == "passed"
    assert got[("schema_drift", "2026-05")]["status"] == "skipped"  # nothing earlier to compare with
    assert got[("restatement", "2026-05")]["status"] == "skipped"
    assert events(rt_any) == []

    gaps = [d for d in all_days if d not in (3, 17, 31)]
    month_file(samples, tmp_path / "b" / "may.csv", 2026, 5, gaps, duplicate=2)
    run_source(rt_any, "b", "cli", location=str(tmp_path / "b"))
    got = checks(rt_any, "b", "2026-05")
    completeness = got[("completeness", "2026-05")]
    assert completeness["status"] == "failed"
    assert completeness["details"]["missing_days"] == ["2026-05-03", "2026-05-17", "2026-05-31"]
    assert completeness["message"].startswith("3 of 31 days of the closed period have no rows")
    dup = got[("duplicates", "2026-05")]
    assert dup["status"] == "failed" and dup["details"]["duplicate_groups"] == 2 and dup["details"]["extra_rows"] == 2
    assert events(rt_any) == [("data_quality.completeness", "b", "2026-05"), ("data_quality.duplicates", "b", "2026-05")]

    # On demand: the same failures stand, so no new events; the CLI exits 1 and shows them.
    env = {"CLOUDTALLY_DATA_DIR": str(rt_any.settings.data_dir),
           "CLOUDTALLY_DATABASE_URL": rt_any.settings.resolved_database_url}
    result = cli("quality", "b", "--output", "json", env=env)
    assert result.exit_code == 1 and '"completeness"' in result.stdout
    assert cli("quality", "a", env=env).exit_code == 0
    assert len(events(rt_any)) == 2

    with api_client(rt_any) as client:
        body = client.get("/v1/data-quality", params={"source": "b", "period": "2026-05"}).json()["checks"]
        assert {(c["check"], c["status"]) for c in body} == {
            ("freshness", "passed"), ("completeness", "failed"), ("duplicates", "failed"),
            ("schema_drift", "skipped"), ("restatement", "skipped")}
        failed = client.get("/v1/data-quality", params={"status": "failed"}).json()["checks"]
        assert {(c["source"], c["check"]) for c in failed} == {("b", "completeness"), ("b", "duplicates")}
        bad = client.get("/v1/data-quality", params={"period": "May"})
        assert bad.status_code == 400 and bad.json()["errors"][0]["parameter"] == "period"
        pending = client.get("/v1/alert-events").json()["events"]
        assert [e["kind"] for e in pending] == ["data_quality.completeness", "data_quality.duplicates"]
        assert all(e["delivered_at"] is None for e in pending)


def test_open_period_is_not_judged_complete(rt, samples, tmp_path):
    month_file(samples, tmp_path / "a" / "f.csv", 2099, 1, [1, 2])  # far in the future: still open
    run_source(rt, "a", "cli", location=str(tmp_path / "a"))
    assert checks(rt, "a")[("completeness", "2099-01")]["status"] == "skipped"


def test_schema_drift_against_the_previous_delivery(rt_any, samples, tmp_path):
    folder = tmp_path / "src"
    month_file(samples, folder / "may.csv", 2026, 5, range(1, 32))
    run_source(rt_any, "s", "cli", location=str(folder))
    (folder / "may.csv").unlink()
    month_file(samples, folder / "jun.csv", 2026, 6, range(1, 31), extra_column="x_Team",
               drop_column="CapacityReservationStatus")
    run_source(rt_any, "s", "cli", location=str(folder))
    drift = checks(rt_any, "s")[("schema_drift", "2026-06")]
    assert drift["status"] == "failed"
    assert drift["details"]["added"] == ["x_Team"] and drift["details"]["vanished"] == ["CapacityReservationStatus"]
    assert "new columns: x_Team; vanished columns: CapacityReservationStatus" in drift["message"]
    with rt_any.sessions() as s:
        recorded = [d.columns for d in s.scalars(select(Delivery).order_by(Delivery.started_at))]
    assert "x_Team" in recorded[1] and "x_Team" not in recorded[0] and len(recorded[0]) == 57
    assert ("data_quality.schema_drift", "s", "2026-06") in events(rt_any)


def test_restatement_of_a_closed_period(rt_any, samples, tmp_path):
    folder = tmp_path / "src"
    first = month_file(samples, folder / "may.csv", 2026, 5, range(1, 32))
    run_source(rt_any, "s", "cli", location=str(folder))
    first.unlink()
    month_file(samples, folder / "may-v2.csv", 2026, 5, range(1, 32), add_to_first=Decimal("-12.345"))
    run = run_source(rt_any, "s", "cli", location=str(folder))
    assert run.status == "succeeded"
    restated = checks(rt_any, "s")[("restatement", "2026-05")]
    assert restated["status"] == "failed" and restated["details"]["period_closed"] is True
    assert Decimal(restated["details"]["billed_cost_delta"]) == Decimal("-12.345")
    assert Decimal(restated["details"]["effective_cost_delta"]) == Decimal("-12.345")
    assert restated["message"].startswith("closed period restated: BilledCost -12.345")


def test_restatement_of_an_open_period_is_growth_not_an_alert(rt, samples, tmp_path):
    folder = tmp_path / "src"
    first = month_file(samples, folder / "a.csv", 2099, 1, [1, 2])
    run_source(rt, "s", "cli", location=str(folder))
    first.unlink()
    month_file(samples, folder / "b.csv", 2099, 1, [1, 2, 3], add_to_first=Decimal("5"))
    run_source(rt, "s", "cli", location=str(folder))
    restated = checks(rt, "s")[("restatement", "2099-01")]
    assert restated["status"] == "passed" and restated["message"].startswith("open period updated")
    assert Decimal(restated["details"]["billed_cost_delta"]) == Decimal(5)


def test_freshness_against_option_and_cron_cadence(rt, samples, tmp_path):
    month_file(samples, tmp_path / "a" / "f.csv", 2026, 5, range(1, 32))
    run_source(rt, "a", "cli", location=str(tmp_path / "a"))
    with rt.sessions() as s:
        last = s.scalar(select(Delivery.finished_at))
    # Without schedule or option: 48 hours.
    assert quality.run_checks(rt, "a", [], now=last + timedelta(hours=47))[0]["status"] == "passed"
    stale = quality.run_checks(rt, "a", [], now=last + timedelta(hours=49))[0]
    assert stale["status"] == "failed" and stale["message"] == "stale: last delivery 49.0 h ago, expected within 48 h"
    # A cron every 6 hours: twice its gap is 12 h, below the 24 h floor.
    with rt.sessions() as s:
        src = s.scalar(select(sources.Source).where(sources.Source.name == "a"))
        src.schedule = "0 */6 * * *"
        s.commit()
    assert quality.run_checks(rt, "a", [], now=last + timedelta(hours=23))[0]["status"] == "passed"
    assert quality.run_checks(rt, "a", [], now=last + timedelta(hours=25))[0]["status"] == "failed"
    # A weekly cron: 2 weeks. The option wins over the cron.
    with rt.sessions() as s:
        src = s.scalar(select(sources.Source).where(sources.Source.name == "a"))
        src.schedule = "0 6 * * 1"
        s.commit()
    assert quality.run_checks(rt, "a", [], now=last + timedelta(days=13))[0]["status"] == "passed"
    with rt.sessions() as s:
        src = s.scalar(select(sources.Source).where(sources.Source.name == "a"))
        src.options = {"freshness_hours": "2"}
        s.commit()
    assert quality.run_checks(rt, "a", [], now=last + timedelta(hours=3))[0]["status"] == "failed"
    # Two distinct stale messages: two events; the same one again: none.
    kinds = [k for k in events(rt) if k[0] == "data_quality.freshness"]
    assert len(kinds) == 3  # 49 h / 48 h, 25 h / 24 h, 3 h / 2 h
    quality.run_checks(rt, "a", [], now=last + timedelta(hours=3))
    assert len([k for k in events(rt) if k[0] == "data_quality.freshness"]) == 3


def test_duplicate_identity_is_defined_per_provider():
    for provider in ("aws", "azure", "gcp", "focus"):
        identity = quality.DUPLICATE_IDENTITY[provider]
        assert {"ChargePeriodStart", "ResourceId", "SkuPriceId", "BilledCost"} <= set(identity)
    assert "x_ResourceGroupName" in quality.DUPLICATE_IDENTITY["azure"]
