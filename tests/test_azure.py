"""Azure connector: Cost Management exports (ActualCost, AmortizedCost, both joined, FocusCost), from Azure Blob
Storage (Azurite, a real blob service) and from local folders laid out as Azure delivers them."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import pytest

import app.ingest as ingest_module
from app import sources
from app.control import Delivery
from app.focus import SERVICE_SUBCATEGORIES
from app.ingest import ingest
from connectors.azure.mapping import SERVICES
from connectors.base import IngestError
from tests import azure_fixtures as fx
from tests.conftest import unavailable
from tests.helpers import read_rows


def q(rt, sql, params=None):
    with rt.warehouse.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def totals(rt, source):
    return q(rt, "SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM cost_and_usage WHERE x_SourceId = ?",
             [source])[0]


def sums_of(rows, fmt):
    return tuple(fx.q18(v) for v in fx.expected(rows, fmt))


# -- partitioned exports: Azurite and local folders ----------------------------------------------------------------
def test_partitioned_export_from_azurite_and_from_a_local_folder(rt, blob_container, tmp_path):
    rows = fx.month_rows()
    local = tmp_path / "container"
    delivered = fx.write_export(local, "daily-actual", rows, "actual")
    fx.upload(blob_container, local)
    url = f"azure://{fx_account()}/{blob_container.container_name}/exports/daily-actual"
    sources.add(rt, "blob", "azure", "actual", url)
    sources.add(rt, "disk", "azure", "actual", str(delivered.root))

    (blob,) = ingest(rt, "blob").loaded
    (disk,) = ingest(rt, "disk").loaded
    billed, effective = sums_of(rows, "actual")
    for d in (blob, disk):
        assert (d.raw_billed_cost, d.raw_effective_cost) == (billed, effective)
        assert (d.landed_billed_cost, d.landed_effective_cost) == (billed, effective)
        assert d.raw_rows == d.landed_rows == sum(r["actual"] is not None for r in rows)
        assert len(d.files) == 2 and d.billing_period_start.isoformat() == "2026-10-01T00:00:00+00:00"
    assert blob.files[0]["uri"].startswith("azure://")
    cols = ("ChargeCategory, ChargeClass, BilledCost, EffectiveCost, ResourceId, Tags, SubAccountId, "
            "CommitmentDiscountId, CommitmentDiscountStatus, PricingCategory, ChargePeriodStart")
    assert q(rt, f"SELECT {cols} FROM cost_and_usage WHERE x_SourceId = 'blob' ORDER BY ALL") == \
        q(rt, f"SELECT {cols} FROM cost_and_usage WHERE x_SourceId = 'disk' ORDER BY ALL")

    vm = q(rt, "SELECT BilledCost, ServiceName, ServiceCategory, ServiceSubcategory, RegionId, RegionName, Tags, "
               "ResourceName, ResourceType, BillingAccountId, SubAccountId, SubAccountName, ChargePeriodStart, "
               "ChargePeriodEnd, BillingPeriodEnd, PricingQuantity, PricingUnit, ListCost, ProviderName, "
               "InvoiceIssuerName, SkuPriceDetails FROM cost_and_usage "
               "WHERE x_SourceId = 'blob' AND ResourceName = 'vm-1' AND ServiceName = 'Virtual Machines'")
    (one,) = vm
    assert one[0] == D("2.3040000000000003")  # the float artefact read as the exact decimal text
    assert one[1:10] == ("Virtual Machines", "Compute", "Virtual Machines", "eastus", "East US",  # EA has no Location column: the region's display name
                         {"team": "payments", "env": "prod"}, "vm-1", "microsoft.compute/virtualmachines",
                         fx.ENROLLMENT)
    assert one[10] == f"/subscriptions/{fx.SUB_A}" and one[11] == "Trey Corporate"
    assert (one[12].day, one[13].day, one[14].month, one[14].day) == (5, 6, 11, 1)  # inclusive end -> exclusive
    assert one[15:20] == (D(24), "1 Hour", D("2.304"), "Microsoft", "Microsoft")
    assert one[20] == '{"ServiceType":"Standard_DS2_v2","VCPUs":2}'
    assert q(rt, "SELECT x_ResourceGroupName, x_SkuMeterCategory, x_InvoiceSectionName FROM cost_and_usage "
                 "WHERE x_SourceId = 'blob' AND ResourceName = 'disk-1'") == [("data-rg", "Storage", "ACM")]
    # Tags and AdditionalInfo written without their braces still parse.
    assert q(rt, "SELECT Tags, SkuPriceDetails FROM cost_and_usage WHERE x_SourceId = 'blob' "
                 "AND ResourceName = 'disk-1'") == [({"team": "data", "costCenter": "42"}, '{"UsageType":"disks"}')]


def fx_account() -> str:
    from tests.conftest import AZURITE_ACCOUNT

    return AZURITE_ACCOUNT


def test_azure_credentials_from_a_named_variable_and_endpoint_option(rt, blob_container, azurite, tmp_path,
                                                                     monkeypatch):
    rows = fx.month_rows()
    fx.write_export(tmp_path / "c", "e", rows, "actual", kind="csv")
    fx.upload(blob_container, tmp_path / "c")
    # The key is only in the environment; the source names the variable and the endpoint, never the secret.
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("BILLING_BLOB_CONN", azurite.connection_string.replace(azurite.endpoint, "http://wrong:1/x"))
    url = f"azure://{fx_account()}/{blob_container.container_name}/exports/e"
    sources.add(rt, "b", "azure", "actual", url,
                {"connection_string_env": "BILLING_BLOB_CONN", "endpoint_url": azurite.endpoint})
    (d,) = ingest(rt, "b").loaded
    assert (d.landed_billed_cost, d.landed_effective_cost) == sums_of(rows, "actual")
    monkeypatch.delenv("BILLING_BLOB_CONN")
    with pytest.raises(IngestError, match="BILLING_BLOB_CONN"):
        ingest(rt, "b")


def test_missing_container_says_what_to_check(rt, azurite, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    sources.add(rt, "nope", "azure", "actual", f"azure://{fx_account()}/no-such-container/exports/e")
    with pytest.raises(IngestError, match=r"cannot list: not found .*check the account, container and prefix"):
        ingest(rt, "nope")


def test_rerun_of_the_month_replaces_it_and_an_unchanged_run_is_not_downloaded(rt, blob_container, tmp_path,
                                                                               monkeypatch):
    local = tmp_path / "c"
    fx.write_export(local, "e", fx.month_rows(), "actual", run_time="202610061200")
    fx.upload(blob_container, local)
    sources.add(rt, "az", "azure", "actual", f"azure://{fx_account()}/{blob_container.container_name}/exports/e")
    (first,) = ingest(rt, "az").loaded

    def no_fetch(*_a, **_k):
        raise AssertionError("an unchanged run must not be fetched")

    real_fetch = ingest_module.fetch
    monkeypatch.setattr(ingest_module, "fetch", no_fetch)
    again = ingest(rt, "az")
    assert again.loaded == [] and [u.id for u in again.unchanged] == [first.id]
    monkeypatch.setattr(ingest_module, "fetch", real_fetch)

    # The next day's run restates the whole month (new amounts, one more line); the older run stays in place.
    restated = fx.month_rows(scale=D(2)) + [dict(fx.month_rows()[0], date=fx.month_rows()[0]["date"].replace(day=9))]
    fx.write_export(local, "e", restated, "actual", run_time="202610071200")
    fx.upload(blob_container, local)
    (second,) = ingest(rt, "az").loaded
    rows, billed, effective = totals(rt, "az")
    assert (billed, effective) == sums_of(restated, "actual")  # replaced, not doubled
    assert rows == sum(r["actual"] is not None for r in restated)
    with rt.sessions() as s:
        assert s.get(Delivery, first.id).status == "replaced"
        assert s.get(Delivery, first.id).replaced_by == second.id


def test_manifest_listing_a_missing_blob_fails_and_keeps_the_previous_data(rt, blob_container, tmp_path):
    local = tmp_path / "c"
    fx.write_export(local, "e", fx.month_rows(), "actual", run_time="202610061200")
    fx.upload(blob_container, local)
    sources.add(rt, "az", "azure", "actual", f"azure://{fx_account()}/{blob_container.container_name}/exports/e")
    ingest(rt, "az")
    before = totals(rt, "az")
    run = fx.write_export(local, "e", fx.month_rows(scale=D(3)), "actual", run_time="202610071200")
    fx.upload(blob_container, local)
    gone = run.files[1].relative_to(local).as_posix()
    blob_container.delete_blob(gone)
    with pytest.raises(IngestError, match=r"manifest.json: manifest lists 1 blob\(s\) that are not there: "
                                          + gone.replace(".", r"\.")):
        ingest(rt, "az")
    assert totals(rt, "az") == before
    with rt.sessions() as s:
        from sqlalchemy import select

        failed = s.scalars(select(Delivery).where(Delivery.status == "failed")).all()
        assert len(failed) == 1 and "not there" in failed[0].error


def test_run_without_manifest_is_not_loaded_yet(rt, tmp_path):
    run = fx.write_export(tmp_path / "c", "e", fx.month_rows(), "actual", manifest=False)
    sources.add(rt, "az", "azure", "actual", str(run.root))
    with pytest.raises(IngestError, match="no complete export run yet: .* has data files but no manifest.json yet"):
        ingest(rt, "az")
    assert totals(rt, "az")[0] == 0


def test_blob_size_differing_from_the_manifest_fails(rt, tmp_path):
    run = fx.write_export(tmp_path / "c", "e", fx.month_rows(), "actual", kind="csv")
    with open(run.files[0], "ab") as fh:  # overwritten by a later run while this manifest is still current
        fh.write(b"\r\n")
    sources.add(rt, "az", "azure", "actual", str(run.root))
    with pytest.raises(IngestError, match=r"part_0_0001\.csv has \d+ bytes but the manifest says \d+"):
        ingest(rt, "az")


# -- legacy, non-partitioned exports -------------------------------------------------------------------------------
def test_legacy_export_loads_once_settled_and_the_newest_file_wins(rt, tmp_path):
    rows = fx.month_rows()
    first = fx.write_legacy(tmp_path / "c", "monthly", rows, "actual")
    sources.add(rt, "legacy", "azure", "actual", str(tmp_path / "c" / "monthly"))
    with pytest.raises(IngestError, match=r"no complete export run yet: .*written \d+s ago \(settle_seconds=60\)"):
        ingest(rt, "legacy")  # just written: a copy may still be writing it
    past = time.time() - 3600
    os.utime(first, (past, past))
    (d,) = ingest(rt, "legacy").loaded
    assert (d.landed_billed_cost, d.landed_effective_cost) == sums_of(rows, "actual")
    assert d.identity and first.name.split("_", 1)[1][:36] in d.files[0]["uri"]

    restated = fx.month_rows(scale=D("1.5"))
    newer = fx.write_legacy(tmp_path / "c", "monthly", restated, "actual")
    os.utime(newer, (past + 60, past + 60))
    (d2,) = ingest(rt, "legacy").loaded
    assert totals(rt, "legacy")[1:] == sums_of(restated, "actual")
    assert [f["uri"] for f in d2.files] == [str(newer)]


# -- column variants -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers,kind,bom,date_format", [
    ("ea", "csv", True, "us"),          # EA PascalCase, `Cost`, MM/dd/yyyy, UTF-8 BOM
    ("mca", "csv.gz", False, "iso"),    # MCA camelCase, yyyy-MM-dd
    ("csp", "csv", True, "iso-time"),   # CSP camelCase + partner columns, ISO 8601 with 7 fractional digits
    ("mca", "parquet", False, "us"),    # Parquet: money as DOUBLE
])
def test_header_sets_and_value_forms(rt, tmp_path, headers, kind, bom, date_format):
    rows = fx.month_rows()
    run = fx.write_export(tmp_path / "c", "e", rows, "amortized", headers=headers, kind=kind, bom=bom,
                          date_format=date_format)
    if bom and kind == "csv":
        assert run.files[0].read_bytes()[:3] == b"\xef\xbb\xbf"
    sources.add(rt, "az", "azure", "amortized", str(run.root))
    (d,) = ingest(rt, "az").loaded
    assert (d.raw_billed_cost, d.raw_effective_cost) == sums_of(rows, "amortized")
    assert (d.landed_billed_cost, d.landed_effective_cost) == sums_of(rows, "amortized")
    got = q(rt, "SELECT BillingAccountId, InvoiceIssuerName, ChargePeriodStart, Tags FROM cost_and_usage "
                "WHERE (ResourceName = 'vm-1' OR ResourceId LIKE '%/vm-1') AND ServiceName = 'Virtual Machines' "
                "AND CommitmentDiscountStatus IS NULL")
    (account, issuer, day, tags) = got[0]
    assert day.isoformat() == "2026-10-05T00:00:00+00:00" and tags == {"team": "payments", "env": "prod"}
    if headers == "csp":  # no billing account id: the customer tenant; the partner issues the invoice
        assert (account, issuer) == (rows[0]["customer_tenant_id"], "Contoso Partner")
    else:
        assert (account, issuer) == (fx.ENROLLMENT, "Microsoft")
    unused = q(rt, "SELECT BilledCost, EffectiveCost, CommitmentDiscountStatus, CommitmentDiscountId "
                   "FROM cost_and_usage WHERE CommitmentDiscountStatus = 'Unused'")
    # The CSP header set has no benefitId: the commitment is known by its ReservationId alone.
    assert unused == [(D(0), D("0.986304"), "Unused", "f39d1c73" if headers == "csp" else fx.RI_ID)]


def test_localized_german_headers_fail_naming_the_file_and_missing_columns(rt, tmp_path):
    folder = tmp_path / "c" / "e" / fx.range_folder(2026, 10)
    folder.mkdir(parents=True)
    path = folder / "e_0b1f3c7e-2f7a-4a55-9d62-1b0c6f7a9e01.csv"
    path.write_bytes(fx.render(fx.GERMAN_HEADER, [fx.GERMAN_ROW], bom=True))
    os.utime(path, (time.time() - 600,) * 2)
    sources.add(rt, "de", "azure", "actual", str(tmp_path / "c" / "e"))
    with pytest.raises(IngestError) as err:
        ingest(rt, "de")
    text = str(err.value)
    assert text.startswith(f"{path}, header: not an Azure cost-details export: missing columns ")
    for missing in ("date (Date / UsageDate / UsageDateTime)", "cost (CostInBillingCurrency / Cost / PreTaxCost)",
                    "subscription_id (SubscriptionId / SubscriptionGuid)"):
        assert missing in text
    assert "billing_currency" not in text  # `Currency` is understood
    assert "headers look localized" in text


def test_bad_date_names_file_row_and_column(rt, tmp_path):
    rows = fx.month_rows()
    rows[3]["date"] = "31/10/2026"  # day-first: not an Azure form
    run = fx.write_export(tmp_path / "c", "e", rows, "actual", kind="csv", parts=1)
    sources.add(rt, "az", "azure", "actual", str(run.root))
    with pytest.raises(IngestError, match=r"part_0_0001\.csv, row 4, column Date: '31/10/2026' is not a date"):
        ingest(rt, "az")


def test_truncated_gzip_part_fails_clearly(rt, tmp_path):
    rows = fx.month_rows() * 400  # enough rows to cut mid-stream
    run = fx.write_export(tmp_path / "c", "e", rows, "actual", kind="csv.gz")
    data = run.files[1].read_bytes()
    run.files[1].write_bytes(data[: len(data) // 2])
    # The manifest still states the full size: rewrite it so only the gzip itself is wrong.
    manifest = run.manifest.read_text().replace(f'"byteCount": {len(data)}', f'"byteCount": {len(data) // 2}')
    run.manifest.write_text(manifest)
    sources.add(rt, "az", "azure", "actual", str(run.root))
    with pytest.raises(IngestError, match=r"part_1_0001\.csv\.gz: cannot decompress: gzip data is truncated"):
        ingest(rt, "az")
    assert totals(rt, "az")[0] == 0


def test_dataset_that_does_not_match_the_format_is_refused(rt, tmp_path):
    run = fx.write_export(tmp_path / "c", "e", fx.month_rows(), "amortized")
    sources.add(rt, "az", "azure", "actual", str(run.root))
    with pytest.raises(IngestError, match="the export's dataset is AmortizedCost, but the source's format 'actual'"):
        ingest(rt, "az")


# -- actual + amortized ----------------------------------------------------------------------------------------------
def test_actual_plus_amortized_reconciles_both_sums_to_the_cent(rt, blob_container, tmp_path):
    rows = fx.month_rows()
    local = tmp_path / "c"
    fx.write_export(local, "daily-actual", rows, "actual", headers="mca", kind="csv.gz")
    fx.write_export(local, "daily-amortized", rows, "amortized", headers="mca", kind="parquet", parts=3)
    fx.upload(blob_container, local)
    url = f"azure://{fx_account()}/{blob_container.container_name}/exports/daily-actual"
    sources.add(rt, "both", "azure", "actual+amortized", url, {"amortized_location": "daily-amortized"})
    (d,) = ingest(rt, "both").loaded
    billed, effective = sums_of(rows, "actual+amortized")
    assert (d.raw_billed_cost, d.raw_effective_cost) == (billed, effective)
    assert (d.landed_billed_cost, d.landed_effective_cost) == (billed, effective)
    assert round(d.landed_billed_cost, 2) == D("77.15") and round(d.landed_effective_cost, 2) == D("13.81")
    n_actual = sum(r["actual"] is not None for r in rows)
    n_amortized = sum(r["amortized"] is not None for r in rows)
    assert d.raw_rows == n_actual + n_amortized
    assert d.landed_rows == len(rows)  # every line once: matched pairs are one row
    assert any("matched: 7; only in actual (purchases, refunds: EffectiveCost 0): 2; only in amortized "
               "(unused commitments: BilledCost 0): 1" in n for n in d.tolerated)

    by_kind = q(rt, """SELECT ChargeCategory, coalesce(CommitmentDiscountStatus, '-'), BilledCost, EffectiveCost
                       FROM cost_and_usage WHERE CommitmentDiscountId IS NOT NULL ORDER BY ALL""")
    assert by_kind == [
        ("Purchase", "-", D("-5.25"), D(0)),       # refund: billed, not amortized
        ("Purchase", "-", D("70.08"), D(0)),       # reservation purchase: billed once, amortized onto usage
        ("Usage", "Unused", D(0), D("0.986304")),  # unused hours: only the amortized view has them
        ("Usage", "Used", D(0), D("0.006000000468")),  # savings-plan-covered usage
        ("Usage", "Used", D(0), D("0.493152")),    # reservation-covered usage
    ]
    # Two lines with the same descriptive columns stay two rows.
    assert q(rt, "SELECT count(*) FROM cost_and_usage WHERE ServiceName = 'Bandwidth'") == [(2,)]


def test_actual_plus_amortized_with_one_export_missing_a_month_fails_that_month(rt, tmp_path):
    local = tmp_path / "c"
    fx.write_export(local, "a", fx.month_rows(2026, 9), "actual", year=2026, month=9, run_time="202610011200")
    fx.write_export(local, "a", fx.month_rows(), "actual")
    fx.write_export(local, "m", fx.month_rows(), "amortized")
    sources.add(rt, "both", "azure", "actual+amortized", str(local / "exports" / "a"),
                {"amortized_location": str(local / "exports" / "m")})
    with pytest.raises(IngestError, match=r"2026-09: no complete AmortizedCost run under .*exports/m"):
        ingest(rt, "both")
    assert q(rt, "SELECT DISTINCT BillingPeriodStart FROM cost_and_usage")[0][0].month == 10  # October loaded


def test_actual_plus_amortized_needs_the_amortized_location(rt, tmp_path):
    run = fx.write_export(tmp_path / "c", "a", fx.month_rows(), "actual")
    sources.add(rt, "both", "azure", "actual+amortized", str(run.root))
    with pytest.raises(IngestError, match="needs --option amortized_location="):
        ingest(rt, "both")


# -- FocusCost --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["1.0", "1.2"])
def test_focus_cost_export_passes_through(rt, tmp_path, version):
    rows = fx.month_rows()
    run = fx.write_focus_export(tmp_path / "c", "focus-daily", rows, version)
    sources.add(rt, "f", "azure", "focus", str(run.root))
    (d,) = ingest(rt, "f").loaded
    raw = read_rows(run.files[0])
    assert d.raw_rows == d.landed_rows == len(raw)
    assert d.landed_billed_cost == fx.q18(sum(D(r["BilledCost"]) for r in raw))
    assert d.landed_effective_cost == fx.q18(sum(D(r["EffectiveCost"]) for r in raw))
    # Resource group and meter category are stored; other x_ columns are reported as not stored.
    assert any("custom x_ columns not stored: x_BilledCostInUsd" in n for n in d.tolerated), d.tolerated
    groups = dict(q(rt, "SELECT x_ResourceGroupName, sum(BilledCost) FROM cost_and_usage GROUP BY 1"))
    assert set(groups) == {r["resource_group"] for r in rows if r.get("resource_group")} | (
        {None} if any(not r.get("resource_group") for r in rows) else set())
    assert q(rt, "SELECT DISTINCT x_SkuMeterCategory FROM cost_and_usage WHERE ServiceName = 'Virtual Machines'") == \
        [("Virtual Machines",)]
    assert q(rt, "SELECT ChargePeriodStart FROM cost_and_usage WHERE Tags['env'] = 'prod'")[0][0].day == 5


# -- registry, services --------------------------------------------------------------------------------------------
def test_source_formats_and_services_table():
    from connectors import PROVIDERS, get_connector

    assert "azure" in PROVIDERS and get_connector("azure").formats == sources.FORMATS["azure"]
    assert sources.FORMATS["azure"] == ("actual", "amortized", "actual+amortized", "focus")
    with pytest.raises(sources.SourceError, match="connection_key"):
        sources.validate("x", "azure", "actual", "azure://a/b/c", {"connection_key": "abc"})
    for meter, (category, subcategory) in SERVICES.items():
        assert subcategory in SERVICE_SUBCATEGORIES[category], meter


# -- koku-nise --------------------------------------------------------------------------------------------------------
def nise_azure(folder: Path) -> Path:
    nise = Path(sys.executable).parent / "nise"
    if not nise.exists():
        unavailable("koku-nise is not installed (pip install -e '.[dev]')")
    container = folder / "container"
    container.mkdir(parents=True)  # nise treats a missing path as a real container and silently writes nothing
    proc = subprocess.run(
        [str(nise), "report", "azure", "-s", "2026-10-01", "-e", "2026-10-03", "--azure-container-name",
         str(container), "--azure-report-name", "cur", "--azure-report-prefix", "prefix"],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = container / "prefix" / "cur"
    assert list(report.rglob("*.csv")), f"nise wrote nothing: {proc.stdout[-1000:]} {proc.stderr[-1000:]}"
    return report


@pytest.mark.slow
def test_nise_azure_export_ingests_and_reconciles_to_the_cent(rt, blob_container, tmp_path):
    report = nise_azure(tmp_path)
    for p in sorted(report.rglob("*")):
        if p.is_file():
            blob_container.upload_blob(f"prefix/cur/{p.relative_to(report).as_posix()}", p.read_bytes())
    url = f"azure://{fx_account()}/{blob_container.container_name}/prefix/cur"
    sources.add(rt, "nise", "azure", "actual", url)
    (d,) = ingest(rt, "nise").loaded
    (csv_file,) = report.rglob("*.csv")
    raw = read_rows(csv_file)
    # Python's Decimal reads every digit nise wrote (float artefacts included); the warehouse keeps 18 places.
    billed = sum(D(r["CostInBillingCurrency"]) for r in raw)
    assert d.raw_rows == d.landed_rows == len(raw)
    assert abs(d.landed_billed_cost - billed) < D("1e-15") and round(d.landed_billed_cost, 2) == round(billed, 2)
    assert (d.raw_billed_cost, d.raw_effective_cost) == (d.landed_billed_cost, d.landed_effective_cost)
    # nise's inclusive end date: rows for 1, 2 and 3 October.
    days = [r[0].day for r in q(rt, "SELECT DISTINCT ChargePeriodStart FROM cost_and_usage ORDER BY 1")]
    assert days == [1, 2, 3]
    tagged = q(rt, "SELECT count(*) FROM cost_and_usage WHERE Tags IS NOT NULL")[0][0]
    assert tagged == sum(1 for r in raw if r["Tags"] not in (None, '""'))


def test_cost_query_groups_and_filters_by_resource_group(rt, tmp_path):
    """The provider columns are dimensions of the cost query (CLI `costs -g`, API `group_by`)."""
    from app.costs import parse_query, run_query

    rows = fx.month_rows()
    run = fx.write_export(tmp_path / "c", "e", rows, "actual")
    sources.add(rt, "az", "azure", "actual", str(run.root))
    ingest(rt, "az")
    with rt.warehouse.connect(read_only=True) as con:
        result = run_query(con, parse_query(start="2026-10", group_by=["x_resourcegroupname"],
                                            filters=["x_SkuMeterCategory=Storage"], metric="BilledCost"))
    (row,) = result.rows
    assert (row["x_ResourceGroupName"], row["cost"], row["currency"]) == ("data-rg", D("0.0200016"), "USD")
