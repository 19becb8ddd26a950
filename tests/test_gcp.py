"""GCP connector: the billing export's rows as local files (Parquet, JSONL, nise-style CSV) and pulled from a fake
BigQuery REST server; list prices from a fake Cloud Billing Catalog REST server; koku-nise files."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from app import sources
from app.ingest import ingest
from connectors.base import IngestError
from tests import gcp_fixtures as fx


def q(rt, sql, params=None):
    with rt.warehouse.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def by_month(result):
    return {f"{d.billing_period_start:%Y%m}": d for d in result.loaded}


@pytest.mark.parametrize("writer", ["parquet", "jsonl", "csv"])
def test_export_files_map_credits_crossover_and_reconcile(rt, tmp_path, writer):
    rows = fx.scenario()
    folder = tmp_path / "export"
    folder.mkdir()
    write = {"parquet": fx.write_parquet, "jsonl": fx.write_jsonl, "csv": fx.write_nise_csv}[writer]
    write(folder / f"part-0.{writer}", rows[:4])
    write(folder / f"part-1.{writer}", rows[4:])
    sources.add(rt, "gcp", "gcp", "export", str(folder))
    deliveries = by_month(ingest(rt, "gcp"))
    want = fx.expected(rows)
    assert set(deliveries) == {"202610", "202611"}
    for month, d in deliveries.items():
        assert d.raw_billed_cost == d.raw_effective_cost == want[month]
        assert (d.landed_billed_cost, d.landed_effective_cost) == (want[month], want[month])
    assert want == {"202610": D("23.2"), "202611": D("4.25")}
    assert deliveries["202610"].landed_rows == deliveries["202610"].raw_rows + 1  # the promotion's Credit row

    # Crossover: usage on Oct 31 at 23:00 billed in November lands in November.
    assert q(rt, "SELECT BillingPeriodStart::DATE::VARCHAR, BilledCost FROM cost_and_usage "
                 "WHERE ChargePeriodStart = '2026-10-31 23:00:00+00'") == [("2026-11-01", D("1.25"))]
    # SUD netted; list price from cost_at_list; contracted = cost before credits.
    assert q(rt, "SELECT BilledCost, EffectiveCost, ListCost, ContractedCost, PricingCategory FROM cost_and_usage "
                 "WHERE ChargePeriodStart = '2026-10-05 01:00:00+00'") == [
        (D("8.5"), D("8.5"), D("12.5") if writer != "csv" else D("10"), D("10"), "Standard")]
    # Resource-based CUD: Committed, commitment columns, billed 0.
    assert q(rt, "SELECT BilledCost, PricingCategory, CommitmentDiscountId, CommitmentDiscountCategory, "
                 "CommitmentDiscountStatus, CommitmentDiscountType FROM cost_and_usage WHERE ResourceName = 'vm-2'") == [
        (D(0), "Committed", fx.CUD_ID, "Usage", "Used", "Committed Use Discount (resource-based)")]
    assert q(rt, "SELECT CommitmentDiscountCategory, BilledCost FROM cost_and_usage WHERE ResourceName = 'vm-3'") == [
        ("Spend", D(3))]
    # The commitment fee is a recurring Purchase.
    assert q(rt, "SELECT ChargeCategory, ChargeFrequency, BilledCost, EffectiveCost FROM cost_and_usage "
                 "WHERE SkuId = 'CUD-FEE-1'") == [("Purchase", "Recurring", D(15), D(15))]
    # Promotion: its own Credit row; the line keeps its cost.
    storage = q(rt, "SELECT ChargeCategory, BilledCost, EffectiveCost, ListCost, ContractedCost, ChargeDescription, "
                    "SkuId FROM cost_and_usage WHERE ServiceName = 'Cloud Storage' ORDER BY BilledCost")
    assert storage == [("Credit", D("-0.4"), D("-0.4"), D("-0.4"), D("-0.4"), "Free trial credit", None),
                       ("Usage", D(2), D(2), D(2), D(2), "Standard Storage US Regional", "E5F0-6A5D-7BAD")]
    # Tax, and a negative adjustment of September usage billed in October: a Correction.
    assert q(rt, "SELECT ChargeCategory, ChargeClass, BilledCost, PricingQuantity, SkuId FROM cost_and_usage "
                 "WHERE ChargeCategory IN ('Tax', 'Adjustment') ORDER BY 1") == [
        ("Adjustment", "Correction", D(-5), None, None), ("Tax", None, D("3.1"), None, None)]
    one = q(rt, "SELECT ProviderName, BillingAccountId, SubAccountId, SubAccountName, ServiceCategory, "
                "ServiceSubcategory, RegionId, RegionName, AvailabilityZone, ResourceId, ResourceType, PricingUnit, "
                "ConsumedUnit, Tags FROM cost_and_usage WHERE ChargePeriodStart = '2026-10-05 01:00:00+00'")[0]
    assert one == ("Google Cloud", fx.ACCOUNT, "p-prod", "Project prod", "Compute", "Virtual Machines", "us-central1",
                   "Iowa", "us-central1-a", "//compute.googleapis.com/projects/p-prod/zones/us-central1-a/instances/"
                   "vm-1", "compute.googleapis.com/instances", "Hours", "Seconds",
                   {"env": "prod", "team": "checkout", "compute.googleapis.com/machine_spec": "n1-standard-1"})

    again = ingest(rt, "gcp")
    assert not again.loaded and len(again.unchanged) == 2


def test_bad_cost_names_file_row_and_column(rt, tmp_path):
    rows = fx.scenario()
    path = fx.write_nise_csv(tmp_path / "bad.csv", rows)
    text = path.read_text().splitlines()
    text[3] = text[3].replace(",15.0,USD,", ",two,USD,")
    path.write_text("\n".join(text) + "\n")
    sources.add(rt, "gcp", "gcp", "export", str(path))
    with pytest.raises(IngestError) as err:
        ingest(rt, "gcp")
    assert (err.value.file, err.value.row, err.value.column) == (str(path), 3, "cost")
    assert "not a decimal" in str(err.value)


def test_bad_credits_and_missing_columns_are_named(rt, tmp_path):
    rows = fx.scenario()
    path = fx.write_nise_csv(tmp_path / "bad.csv", rows)
    text = path.read_text().splitlines()
    text[2] = text[2].replace("'amount': -20.0", "'amount': 'lots'")
    path.write_text("\n".join(text) + "\n")
    sources.add(rt, "gcp", "gcp", "export", str(path))
    with pytest.raises(IngestError) as err:
        ingest(rt, "gcp")
    assert (err.value.row, err.value.column) == (2, "credits")

    other = tmp_path / "other.csv"
    other.write_text("billing_account_id,cost\nA,1\n")
    sources.add(rt, "gcp2", "gcp", "export", str(other))
    with pytest.raises(IngestError, match="missing columns service.description, usage_start_time"):
        ingest(rt, "gcp2")


# -- BigQuery at the HTTP boundary -------------------------------------------------------------------------------
@pytest.fixture
def bq(monkeypatch):
    from datetime import date

    import connectors.gcp.bigquery as bigquery_module

    monkeypatch.setattr(bigquery_module, "today", lambda: date(2026, 11, 3))
    server = fx.FakeBigQuery(fx.scenario())
    yield server
    server.close()


def bq_source(rt, server, tmp_path, name="bq", **extra):
    options = {"api_endpoint": server.endpoint, "auth": "none", "cache_dir": str(tmp_path / "cache"),
               "billing_project": "finops-jobs", **extra}
    sources.add(rt, name, "gcp", "bigquery", f"bq://billing-prj.billing_ds.{fx.TABLE}", options)


def test_bigquery_pull_late_row_repulls_only_its_day(rt, bq, tmp_path):
    bq_source(rt, bq, tmp_path)
    first = by_month(ingest(rt, "bq"))
    want = fx.expected(bq.rows)
    assert {m: d.landed_billed_cost for m, d in first.items()} == want
    assert all(d.raw_billed_cost == d.landed_billed_cost for d in first.values())
    # First run: the whole previous invoice month (still open on Nov 3) and November, one query per day.
    assert bq.pulled_days() == ["2026-10-05", "2026-10-06", "2026-10-07", "2026-10-08", "2026-10-31", "2026-11-01"]
    (since,) = [p["since"] for _, p in bq.queries if "since" in p]
    assert since == "2026-10-01"
    assert any("pageToken=" in path for _, path, _ in bq.requests)  # results came in several pages
    # Crossover: Oct 31 23:00 usage exported in the Nov 1 partition lands in November (its invoice month).
    assert q(rt, "SELECT BillingPeriodStart::DATE::VARCHAR FROM cost_and_usage "
                 "WHERE ChargePeriodStart = '2026-10-31 23:00:00+00'") == [("2026-11-01",)]
    assert q(rt, "SELECT CommitmentDiscountId, BilledCost FROM cost_and_usage WHERE ResourceName = 'vm-2'") == [
        (fx.CUD_ID, D(0))]
    assert q(rt, "SELECT ChargeClass, BilledCost FROM cost_and_usage WHERE ChargeCategory = 'Adjustment'") == [
        ("Correction", D(-5))]
    day_files = sorted(p.name for p in (tmp_path / "cache" / "invoice_month=202611").iterdir())
    assert day_files == ["day=2026-11-01.parquet"]

    # Nothing moved: no day re-pulled, both months unchanged.
    bq.queries.clear()
    again = ingest(rt, "bq")
    assert bq.pulled_days() == [] and not again.loaded and len(again.unchanged) == 2

    # A late row for Oct 6 (a correction exported on Nov 2 into the Oct 6 partition): only that day is re-pulled
    # and October is replaced, not doubled.
    bq.rows.append(fx.line("2026-10-06", 5, cost=0.75, resource="vm-9", export_time="2026-11-02T01:00:00"))
    bq.queries.clear()
    third = by_month(ingest(rt, "bq"))
    assert bq.pulled_days() == ["2026-10-06"]
    assert set(third) == {"202610"}
    assert third["202610"].landed_billed_cost == want["202610"] + D("0.75")
    total = q(rt, "SELECT sum(BilledCost) FROM cost_and_usage WHERE BillingPeriodStart = '2026-10-01'")[0][0]
    assert total == want["202610"] + D("0.75")
    pulled_sql = [sql for sql, p in bq.queries if "day" in p]
    assert pulled_sql == [f"SELECT * FROM `billing-prj.billing_ds.{fx.TABLE}` WHERE DATE(_PARTITIONTIME) = @day"]
    jobs = [path for method, path, _ in bq.requests if method == "POST"]
    assert all(path.startswith("/bigquery/v2/projects/finops-jobs/jobs") for path in jobs)


def test_bigquery_403_names_the_table_and_the_roles(rt, bq, tmp_path):
    bq.forbidden = True
    bq_source(rt, bq, tmp_path)
    with pytest.raises(IngestError) as err:
        ingest(rt, "bq")
    text = str(err.value)
    assert f"billing-prj.billing_ds.{fx.TABLE}" in text and "403" in text
    assert "roles/bigquery.dataViewer" in text and "roles/bigquery.jobUser" in text


def test_scan_window_keeps_the_previous_month_until_it_closes():
    from datetime import date

    from connectors.gcp.bigquery import scan_start

    assert scan_start(date(2026, 11, 5), {}, first_run=False) == date(2026, 10, 1)
    assert scan_start(date(2026, 11, 6), {}, first_run=False) == date(2026, 10, 27)
    assert scan_start(date(2026, 11, 20), {"lookback_days": "3"}, first_run=False) == date(2026, 11, 17)
    assert scan_start(date(2026, 11, 20), {}, first_run=True) == date(2026, 10, 1)
    assert scan_start(date(2026, 1, 2), {"initial_months": "3"}, first_run=True) == date(2025, 10, 1)


# -- koku-nise (run as a command: AGPL, never imported) ----------------------------------------------------------
NISE_STATIC = """\
generators:
  - ComputeEngineGenerator:
      start_date: 2026-10-30
      end_date: 2026-11-02
      price: 0.0475
      usage.amount_in_pricing_units: 1
      credit_amount: -0.0125
      sku_id: CP-COMPUTEENGINE-VMIMAGE-N1-STANDARD-1
  - CloudStorageGenerator:
      start_date: 2026-10-30
      end_date: 2026-11-02
projects:
  - billing_account_id: 01A2B3-C4D5E6-F7A8B9
    project.id: p-nise
    project.name: nise project
    project.labels: env:dev;team:payments
    location.region: us-central1
"""


def nise_gcp(folder, static: bool):
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import unavailable

    nise = Path(sys.executable).parent / "nise"
    if not nise.exists():
        unavailable("koku-nise is not installed (pip install -e '.[dev]')")
    folder.mkdir(parents=True, exist_ok=True)
    args = [str(nise), "report", "gcp", "-s", "2026-10-30", "-e", "2026-11-02", "-w", "-r"]
    if static:
        (folder / "static.yml").write_text(NISE_STATIC)
        args += ["--static-report-file", "static.yml"]
    proc = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (folder / "static.yml").unlink(missing_ok=True)
    files = sorted(folder.glob("*.csv"))
    assert files, proc.stderr[-2000:]
    return files


def python_sums(files) -> dict[str, D]:
    """sum(cost) + sum(credits.amount) per invoice.month, read with the csv module and ast, in Decimal."""
    import ast
    import csv

    out: dict[str, D] = {}
    for f in files:
        with f.open(newline="") as fh:
            for r in csv.DictReader(fh):
                credits = ast.literal_eval(r["credits"]) if r["credits"] else []
                total = D(r["cost"]) + sum((D(repr(c["amount"])) for c in credits), D(0))
                out[r["invoice.month"]] = out.get(r["invoice.month"], D(0)) + total
    return out


@pytest.mark.slow
@pytest.mark.parametrize("static", [False, True], ids=["random", "static-with-credits"])
def test_nise_gcp_files_reconcile_to_the_cent(rt, tmp_path, static):
    files = nise_gcp(tmp_path / "nise", static)
    sources.add(rt, "nise", "gcp", "export", str(tmp_path / "nise"))
    deliveries = by_month(ingest(rt, "nise"))
    want = python_sums(files)
    assert set(deliveries) == set(want) == {"202610", "202611"}
    for month, d in deliveries.items():
        assert d.raw_billed_cost == d.landed_billed_cost == d.raw_effective_cost == d.landed_effective_cost
        assert abs(d.landed_billed_cost - want[month]) < D("0.000000000001")
    if static:
        credits = q(rt, "SELECT count(*), sum(BilledCost) FROM cost_and_usage WHERE ChargeCategory = 'Credit'")[0]
        assert credits[0] > 0 and credits[1] < 0  # nise's FreeTrial PROMOTION credits, as Credit rows
        tags = q(rt, "SELECT Tags['team'], Tags['env'] FROM cost_and_usage WHERE SubAccountId = 'p-nise' LIMIT 1")
        assert tags == [("payments", "dev")]


@pytest.mark.validator
@pytest.mark.slow
def test_gcp_focus_output_passes_the_validator(shared_dir, tmp_path):
    from tests.test_validator import export, validate

    rows = fx.scenario()
    folder = tmp_path / "export"
    folder.mkdir()
    fx.write_parquet(folder / "rows.parquet", rows)
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}
    from tests.helpers import cli

    result = cli("sources", "add", "gcp", "--provider", "gcp", "--format", "export", "--location", str(folder),
                 env=env)
    assert result.exit_code == 0, result.stderr
    result = cli("ingest", "gcp", env=env)
    assert result.exit_code == 0, result.stderr
    # The billing export carries no invoice number (only invoice.month), so InvoiceId is absent, not invented.
    allowed = ["CostAndUsage-D-033-O", "InvoiceId-C-000-O", "InvoiceId-C-001-M", "InvoiceId-C-002-M",
               "InvoiceId-C-003-C"]
    proc, report = validate(shared_dir, export(env, tmp_path / "out"), *[a for r in allowed for a in ("--allow", r)])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert not report["failed"] and len(report["passed"]) > 100


# -- list prices from the Cloud Billing Catalog at the HTTP boundary ---------------------------------------------
def test_catalog_list_prices_fill_list_cost_where_the_export_lacks_it(rt, tmp_path):
    catalog = fx.FakeCatalog()
    try:
        folder = tmp_path / "export"
        folder.mkdir()
        fx.write_parquet(folder / "rows.parquet", fx.scenario())
        sources.add(rt, "gcp", "gcp", "export", str(folder), {
            "list_prices": "catalog", "catalog_endpoint": catalog.endpoint, "auth": "none",
            "cache_dir": str(tmp_path / "cache")})
        deliveries = by_month(ingest(rt, "gcp"))
    finally:
        catalog.close()
    assert {m: d.landed_billed_cost for m, d in deliveries.items()} == fx.expected(fx.scenario())
    assert any(p.startswith("/v1/services/6F81-5844-456A/skus") for p in catalog.requests)
    assert any("pageToken=1" in p for p in catalog.requests)  # paged
    stored = q(rt, "SELECT sku_id, tier_start, unit_price, fetched_at IS NOT NULL FROM gcp_sku_prices ORDER BY 1, 2")
    assert (("E5F0-6A5D-7BAD", D(5), D("0.02"), True)) in stored and len(stored) == 4
    # vm-2 (1 hour, no cost_at_list): ListUnitPrice from the catalog, ListCost = price x quantity.
    assert q(rt, "SELECT ListUnitPrice, ListCost FROM cost_and_usage WHERE ResourceName = 'vm-2'") == [
        (D("0.0475"), D("0.0475"))]
    # The export's cost_at_list wins over the catalog; storage uses the first non-zero tier.
    assert q(rt, "SELECT ListCost FROM cost_and_usage WHERE ChargePeriodStart = '2026-10-05 01:00:00+00'") == [
        (D("12.5"),)]
    assert q(rt, "SELECT ListUnitPrice, ListCost FROM cost_and_usage WHERE ServiceName = 'Cloud Storage' "
                 "AND ChargeCategory = 'Usage'") == [(D("0.02"), D("0.02") * D("0.0013689"))]


def test_service_table_uses_focus_category_pairs():
    from app.focus import SERVICE_SUBCATEGORIES
    from connectors.gcp.services import GCP_SERVICES

    bad = {n: pair for n, pair in GCP_SERVICES.items() if pair[1] not in SERVICE_SUBCATEGORIES.get(pair[0], ())}
    assert not bad


def test_units_in_focus_format():
    import duckdb

    from connectors.gcp.export import focus_unit

    units = ["gibibyte month", "byte-seconds", "hour", "seconds", "bytes", "gibibyte", "requests", "month",
             "tebibyte hour", "count"]
    got = duckdb.sql(f"SELECT {focus_unit('u')} FROM (SELECT unnest({units!r}) AS u)").fetchall()
    assert [g for (g,) in got] == ["GiB-Months", "B-Seconds", "Hours", "Seconds", "B", "GiB", "requests", "Months",
                                   "TiB-Hours", "count"]
