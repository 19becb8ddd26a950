"""AWS connector: CUR 2.0, legacy CUR and FOCUS exports, from S3 (moto's real server) and local folders."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

import app.ingest as ingest_module
from app import sources
from app.ingest import ingest
from connectors.base import IngestError
from tests import aws_fixtures as fx


def q(rt, sql, params=None):
    with rt.warehouse.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def totals(rt, source):
    return q(rt, "SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM cost_and_usage WHERE x_SourceId = ?",
             [source])[0]


def test_cur2_from_s3_reconciles_and_maps_every_line_item_type(rt_any, s3, s3_endpoint, tmp_path):
    client, bucket = s3
    rows = fx.month_lines()
    fx.write_cur2(tmp_path, "cur2-export", rows)
    fx.upload(client, bucket, tmp_path, "exports")
    sources.add(rt_any, "aws", "aws", "cur2", f"s3://{bucket}/exports/cur2-export", {"endpoint_url": s3_endpoint})
    result = ingest(rt_any, "aws")
    (d,) = result.loaded
    billed, amortized = fx.expected(rows)
    assert (d.raw_billed_cost, d.raw_effective_cost) == (billed, amortized)
    assert (d.landed_billed_cost, d.landed_effective_cost) == (billed, amortized)
    assert d.raw_rows == len(rows) and d.landed_rows == len(rows) - 1 + 2  # one negation netted, two Unused rows
    assert len(d.files) == 2 and d.identity

    by_line = {r[0]: r[1:] for r in q(rt_any, """
        SELECT ChargeDescription, ChargeCategory, PricingCategory, CommitmentDiscountStatus, BilledCost,
               EffectiveCost, CommitmentDiscountId, ResourceId FROM cost_and_usage ORDER BY ChargeDescription""")}
    cats = q(rt_any, "SELECT ChargeCategory, count(*) FROM cost_and_usage GROUP BY 1 ORDER BY 1")
    assert dict(cats) == {"Adjustment": 2, "Credit": 2, "Purchase": 3, "Tax": 1, "Usage": 7}
    covered = q(rt_any, "SELECT BilledCost, EffectiveCost, PricingCategory, CommitmentDiscountStatus, "
                        "CommitmentDiscountId FROM cost_and_usage WHERE ResourceId = 'i-3'")
    assert covered == [(D(0), D("0.1122"), "Committed", "Used", fx.SP_ARN)]  # netted with its negation
    unused = dict(q(rt_any, "SELECT CommitmentDiscountId, EffectiveCost FROM cost_and_usage "
                            "WHERE CommitmentDiscountStatus = 'Unused'"))
    assert unused == {fx.SP_ARN: D("0.75"), fx.RI_ARN: D("2.00")}
    assert q(rt_any, "SELECT ResourceId, BilledCost FROM cost_and_usage WHERE ChargeCategory = 'Adjustment' "
                     "AND ResourceId = 'i-9'") == [("i-9", D("-0.05"))]  # a lone negation is kept, not lost
    assert q(rt_any, "SELECT PricingCategory FROM cost_and_usage WHERE ResourceId = 'i-2'") == [("Dynamic",)]
    purchases = q(rt_any, "SELECT ChargeFrequency, BilledCost, EffectiveCost FROM cost_and_usage "
                          "WHERE ChargeCategory = 'Purchase' ORDER BY BilledCost")
    assert purchases == [("Recurring", D("10.00"), D(0)), ("Recurring", D("37.20"), D(0)),
                         ("One-Time", D("500.00"), D(0))]
    one = q(rt_any, "SELECT BillingAccountId, SubAccountId, ServiceName, ServiceCategory, ServiceSubcategory, "
                    "RegionId, RegionName, AvailabilityZone, Tags, SkuId, SkuPriceId, ListCost, ContractedCost, "
                    "ProviderName, PublisherName, InvoiceIssuerName FROM cost_and_usage WHERE ResourceId = 'i-1'")[0]
    assert one == (fx.PAYER, fx.ACCT_A, "Amazon Elastic Compute Cloud", "Compute", "Virtual Machines", "us-east-1",
                   "US East (N. Virginia)", "us-east-1a", {"team": "payments", "env": "prod"}, "SKU1", "SKU1.RATE",
                   D("0.096"), D("0.096"), "AWS", "AWS", "AWS")
    assert by_line  # every line has a description (AWS's or ours)
    assert any("AWSNewService2026" in n for n in d.tolerated)  # an unmapped product code is reported
    assert not any("ComputeSavingsPlans" in n for n in d.tolerated)
    # Units in FOCUS Unit Format; commitment quantities in hours (RI) or spend (SP).
    units = dict(q(rt_any, "SELECT ResourceId, PricingUnit FROM cost_and_usage WHERE ResourceId IN ('bucket-a', 'i-1')"))
    assert units == {"bucket-a": "GB-Months", "i-1": "Hours"}
    commitments = q(rt_any, """
        SELECT ChargeCategory, ChargeFrequency, CommitmentDiscountStatus, CommitmentDiscountQuantity,
               CommitmentDiscountUnit, PricingQuantity, PricingUnit, ServiceName FROM cost_and_usage
        WHERE CommitmentDiscountId IS NOT NULL AND ChargeCategory IN ('Usage', 'Purchase') ORDER BY ALL""")
    assert commitments == [
        ("Purchase", "One-Time", None, None, None, None, None, "Amazon Elastic Compute Cloud"),  # no term dates
        ("Purchase", "Recurring", None, D(10), "USD", D(720), "Hours", "Savings Plans for AWS Compute usage"),
        ("Purchase", "Recurring", None, D(744), "Hours", D(744), "Hours", "Amazon Elastic Compute Cloud"),
        ("Usage", "Usage-Based", "Unused", D("0.75"), "USD", D("0.75"), "USD", "Savings Plans for AWS Compute usage"),
        ("Usage", "Usage-Based", "Unused", D(20), "Hours", D(20), "Hours", "Amazon Elastic Compute Cloud"),
        ("Usage", "Usage-Based", "Used", D("0.1122"), "USD", D(1), "Hours", "Amazon Elastic Compute Cloud"),
        ("Usage", "Usage-Based", "Used", D(1), "Hours", D(1), "Hours", "Amazon Elastic Compute Cloud"),
    ]


@pytest.mark.parametrize("layout", ["create-new", "overwrite"])
def test_legacy_cur_both_report_version_layouts(layout, rt, tmp_path):
    rows = fx.month_lines()
    delivered = fx.write_legacy(tmp_path / "bucket" / "prefix", "cur",
                                rows, assembly="asm-1" if layout == "create-new" else None)
    sources.add(rt, "legacy", "aws", "cur", str(delivered.root))
    (d,) = ingest(rt, "legacy").loaded
    assert (d.landed_billed_cost, d.landed_effective_cost) == fx.expected(rows)
    tags = q(rt, "SELECT Tags FROM cost_and_usage WHERE ResourceId = 'i-1'")[0][0]
    assert tags == {"team": "payments", "env": "prod", "costCategory:Business Unit": "Retail"}


def test_cur2_csv_flavour_matches_parquet(rt, tmp_path):
    rows = fx.month_lines()
    a = fx.write_cur2(tmp_path / "a", "x", rows)
    b = fx.write_cur2(tmp_path / "b", "x", rows, fmt="csv")
    sources.add(rt, "pq", "aws", "cur2", str(a.root))
    sources.add(rt, "csv", "aws", "cur2", str(b.root))
    ingest(rt, "pq")
    ingest(rt, "csv")
    cols = "ChargeCategory, ChargeDescription, BilledCost, EffectiveCost, ListCost, Tags, ResourceId"
    assert q(rt, f"SELECT {cols} FROM cost_and_usage WHERE x_SourceId = 'pq' ORDER BY ALL") == \
        q(rt, f"SELECT {cols} FROM cost_and_usage WHERE x_SourceId = 'csv' ORDER BY ALL")


def test_redelivery_replaces_and_same_manifest_is_skipped_without_download(rt_any, tmp_path, monkeypatch):
    folder = tmp_path / "b"
    fx.write_cur2(folder, "e", fx.month_lines())
    sources.add(rt_any, "aws", "aws", "cur2", str(folder / "e"))
    first = ingest(rt_any, "aws").loaded[0]

    def no_fetch(*_a, **_k):
        raise AssertionError("an unchanged delivery must not be fetched")

    monkeypatch.setattr(ingest_module, "fetch", no_fetch)
    again = ingest(rt_any, "aws")
    assert again.loaded == [] and [u.id for u in again.unchanged] == [first.id]
    monkeypatch.undo()

    restated = fx.month_lines(scale=D(2))  # AWS restates the month: new execution, new amounts
    for old in (folder / "e" / "data").rglob("*.parquet"):
        old.unlink()
    fx.write_cur2(folder, "e", restated, run="exec-2")
    (second,) = ingest(rt_any, "aws").loaded
    assert totals(rt_any, "aws")[1:] == fx.expected(restated)  # replaced, not doubled
    with rt_any.sessions() as s:
        from app.control import Delivery

        assert s.get(Delivery, first.id).status == "replaced"
        assert s.get(Delivery, first.id).replaced_by == second.id


def test_closed_month_redelivered_later_replaces_only_that_month(rt, tmp_path):
    folder = tmp_path / "b"
    fx.write_cur2(folder, "e", fx.month_lines(2026, 9))
    fx.write_cur2(folder, "e", fx.month_lines(2026, 10))
    sources.add(rt, "aws", "aws", "cur2", str(folder / "e"))
    assert len(ingest(rt, "aws").loaded) == 2
    october = q(rt, "SELECT count(*), sum(BilledCost) FROM cost_and_usage WHERE BillingPeriodStart = '2026-10-01'")
    # A refund lands on September after it closed: AWS re-delivers September with a new execution.
    september = fx.month_lines(2026, 9)
    refund = dict(september[-2], identity_line_item_id="li-99", line_item_unblended_cost=D("-7.77"))
    fx.write_cur2(folder, "e", september + [refund], run="exec-9")
    result = ingest(rt, "aws")
    assert [d.billing_period_start.month for d in result.loaded] == [9]
    assert [d.billing_period_start.month for d in result.unchanged] == [10]
    assert q(rt, "SELECT count(*), sum(BilledCost) FROM cost_and_usage "
                 "WHERE BillingPeriodStart = '2026-10-01'") == october
    assert q(rt, "SELECT sum(BilledCost) FROM cost_and_usage WHERE BillingPeriodStart = '2026-09-01'")[0][0] == \
        fx.expected(september)[0] - D("7.77")


def test_manifest_naming_a_missing_file_fails_that_month_only(rt_any, s3, s3_endpoint, tmp_path):
    client, bucket = s3
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 9))
    october = fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 10))
    fx.upload(client, bucket, tmp_path, "x")
    sources.add(rt_any, "aws", "aws", "cur2", f"s3://{bucket}/x/e", {"endpoint_url": s3_endpoint})
    ingest(rt_any, "aws")
    before = totals(rt_any, "aws")
    # October is restated, but one of its parts never arrives.
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 10, scale=D(3)), run="exec-2")
    fx.upload(client, bucket, tmp_path, "x")
    client.delete_object(Bucket=bucket, Key="x/e/data/BILLING_PERIOD=2026-10/e-exec-2-00002.snappy.parquet")
    with pytest.raises(IngestError, match=r"e-Manifest.json: manifest lists 1 file\(s\) that are not there: "
                                          r".*e-exec-2-00002.snappy.parquet"):
        ingest(rt_any, "aws")
    assert totals(rt_any, "aws") == before
    assert october.files  # the previous October delivery is still the loaded one


def test_truncated_gzip_part_fails_cleanly(rt, tmp_path):
    delivered = fx.write_legacy(tmp_path, "cur", fx.month_lines() * 60)  # enough rows to truncate mid-file
    sources.add(rt, "aws", "aws", "cur", str(delivered.root))
    ingest(rt, "aws")
    before = totals(rt, "aws")
    fx.write_legacy(tmp_path, "cur", fx.month_lines(scale=D(2)) * 60, assembly="asm-2")
    part = delivered.root / "20261001-20261101" / "asm-2" / "cur-2.csv.gz"
    part.write_bytes(part.read_bytes()[:-500])
    with pytest.raises(IngestError, match=r"cur-2.csv.gz: cannot decompress: gzip data is truncated or corrupt"):
        ingest(rt, "aws")
    assert totals(rt, "aws") == before


def test_header_that_changes_between_months(rt, tmp_path):
    fx.write_legacy(tmp_path, "cur", fx.month_lines(2026, 9))
    fx.write_legacy(tmp_path, "cur", fx.month_lines(2026, 10, extra_tag=True))  # a tag activated in October
    sources.add(rt, "aws", "aws", "cur", str(tmp_path / "cur"))
    assert len(ingest(rt, "aws").loaded) == 2
    apps = dict(q(rt, "SELECT month(BillingPeriodStart), count(Tags['app']) FROM cost_and_usage GROUP BY 1"))
    assert apps == {9: 0, 10: 2}


def test_period_option_loads_one_month(rt, tmp_path):
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 9))
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 10))
    sources.add(rt, "aws", "aws", "cur2", str(tmp_path / "e"))
    from datetime import datetime, timezone

    result = ingest(rt, "aws", period=datetime(2026, 10, 1, tzinfo=timezone.utc))
    assert [d.billing_period_start.month for d in result.loaded] == [10]
    assert q(rt, "SELECT DISTINCT month(BillingPeriodStart) FROM cost_and_usage") == [(10,)]


def test_bad_value_names_file_row_and_column(rt, tmp_path):
    rows = fx.month_lines()
    rows[0]["line_item_unblended_cost"] = "12,5"
    delivered = fx.write_legacy(tmp_path, "cur", rows)
    sources.add(rt, "aws", "aws", "cur", str(delivered.root))
    with pytest.raises(IngestError, match=r"cur-1.csv.gz, row 1, column lineItem/UnblendedCost: "
                                          r"'12,5' is not a decimal number"):
        ingest(rt, "aws")


def test_not_a_cur_file_is_named(rt, tmp_path, samples):
    delivered = fx.write_cur2(tmp_path, "e", fx.month_lines())
    target = delivered.files[0]
    target.write_bytes((samples / "generated-focus-data-toolkit/focus-1.2/"
                        "focus_1_2_cost_and_usage_aws.typed.parquet").read_bytes())
    sources.add(rt, "aws", "aws", "cur2", str(delivered.root))
    with pytest.raises(IngestError, match=r"not a Cost and Usage Report: missing columns"):
        ingest(rt, "aws")


def test_aws_focus_export_fills_documented_gaps(rt, tmp_path, samples):
    """AWS's FOCUS export may leave InvoiceIssuerName and PublisherName null (AWS's conformance-gap page)."""
    import pyarrow.parquet as pq
    import pyarrow.compute as pc

    src = pq.read_table(samples / "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.typed.parquet")
    mask = pc.less(pa_index(src.num_rows), 50)
    col = src.schema.get_field_index("InvoiceIssuerName")
    src = src.set_column(col, "InvoiceIssuerName", pc.if_else(mask, None, src.column(col)))
    period = "BILLING_PERIOD=2026-05"
    (tmp_path / "f" / "data" / period).mkdir(parents=True)
    pq.write_table(src, tmp_path / "f" / "data" / period / "f-00001.snappy.parquet")
    (tmp_path / "f" / "metadata" / period).mkdir(parents=True)
    (tmp_path / "f" / "metadata" / period / "f-Manifest.json").write_text(
        '{"executionId": "e1", "dataFiles": ["f/data/BILLING_PERIOD=2026-05/f-00001.snappy.parquet"]}')
    sources.add(rt, "awsfocus", "aws", "focus", str(tmp_path / "f"))
    (d,) = ingest(rt, "awsfocus").loaded
    assert d.raw_rows == d.landed_rows == 200 and d.raw_billed_cost == d.landed_billed_cost
    assert any("InvoiceIssuerName is null on 50 rows" in n for n in d.tolerated)
    assert q(rt, "SELECT count(*) FROM cost_and_usage WHERE InvoiceIssuerName = ProviderName")[0][0] >= 50


def pa_index(n):
    import pyarrow as pa

    return pa.array(range(n))


def test_interrupted_download_resumes_without_fetching_finished_parts(rt, s3, s3_endpoint, tmp_path, monkeypatch):
    import connectors.storage as storage

    client, bucket = s3
    fx.write_cur2(tmp_path, "e", fx.month_lines())
    fx.upload(client, bucket, tmp_path, "x")
    sources.add(rt, "aws", "aws", "cur2", f"s3://{bucket}/x/e", {"endpoint_url": s3_endpoint})
    downloads = []
    real_client = storage._s3_client

    def counting_client(options, fail_on=None):
        c = real_client(options)
        original = c.download_file

        def download_file(b, key, dest, **kw):
            downloads.append(key)
            if fail_on and fail_on in key:
                raise ConnectionError("connection reset by peer")
            return original(b, key, dest, **kw)

        c.download_file = download_file
        return c

    monkeypatch.setattr(storage, "_s3_client", lambda o: counting_client(o, fail_on="00002"))
    with pytest.raises(ConnectionError):
        ingest(rt, "aws")
    assert sorted(k.rsplit("-", 1)[-1] for k in downloads) == ["00001.snappy.parquet", "00002.snappy.parquet"]
    downloads.clear()
    monkeypatch.setattr(storage, "_s3_client", counting_client)
    (d,) = ingest(rt, "aws").loaded
    assert [k.rsplit("-", 1)[-1] for k in downloads] == ["00002.snappy.parquet"]  # part 1 came from the cache
    assert (d.landed_billed_cost, d.landed_effective_cost) == fx.expected(fx.month_lines())
    with rt.sessions() as s:
        from app.control import Delivery
        from sqlalchemy import select

        failed = s.scalars(select(Delivery).where(Delivery.status == "failed")).all()
        assert [f.error for f in failed] == ["ConnectionError: connection reset by peer"]
        assert failed[0].billing_period_start.month == 10


def test_running_out_of_warehouse_memory_names_the_setting(rt, tmp_path):
    """Not bad input: the error says which setting to raise, and the month loaded before stays."""
    rows = fx.month_lines()
    fx.write_cur2(tmp_path / "x", "cur2-export", rows)
    sources.add(rt, "aws", "aws", "cur2", str(tmp_path / "x" / "cur2-export"))
    ingest(rt, "aws")
    before = totals(rt, "aws")
    fx.write_cur2(tmp_path / "x", "cur2-export", fx.month_lines(scale=D(2)), run="exec-2")  # a re-delivery
    rt.settings.warehouse_memory_limit = rt.warehouse.memory_limit = "1MB"
    with pytest.raises(IngestError, match=r"CLOUDTALLY_WAREHOUSE_MEMORY_LIMIT \(now 1MB\)"):
        ingest(rt, "aws")
    rt.warehouse.memory_limit = None
    assert totals(rt, "aws") == before
