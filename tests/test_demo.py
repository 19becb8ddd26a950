"""The demo dataset (app/demo): deterministic files, exact ingest, FOCUS identities, promised contents.

The data goes through the real pipeline (AWS: a CUR 2.0 export through the AWS connector; Azure: a FocusCost export
through the Azure connector; GCP: Cloud Billing export rows through the GCP connector's local file mode ->
warehouse), and the identities of ../shared/reference/focus.md section 4 are checked as SQL over the warehouse
table. Money is Decimal throughout.
"""
from __future__ import annotations

import csv
import gzip
import json
import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app import demo, sources
from app.ingest import ingest
from app.runtime import Runtime
from app.settings import Settings
from connectors.aws.services import AWS_SERVICES

SOURCES = ("demo-aws", "demo-azure", "demo-gcp")
MONTHS = (demo.FIRST_MONTH, "2026-09", demo.LAST_MONTH)
LAST_MONTH_START = datetime.strptime(demo.LAST_MONTH, "%Y-%m").replace(tzinfo=timezone.utc)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
CUR_FILE = re.compile(r"^data/BILLING_PERIOD=(\d{4}-\d{2})/demo-cur2-([0-9a-f-]{36})-0000[12]\.snappy\.parquet$")
GCP_TABLE = "gcp_billing_export_resource_v1_01A7C4_9E3B52_D8F061"
AZURE_FILE = re.compile(r"^(\d{6})01-\d{8}/\d{12}/[0-9a-f-]{36}/(manifest\.json|part_0_0001\.csv\.gz)$")
LINE_TYPES = {"Usage", "SavingsPlanCoveredUsage", "SavingsPlanNegation", "SavingsPlanRecurringFee", "DiscountedUsage",
              "RIFee", "Fee", "Tax", "Credit", "Refund"}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The demo files, ingested once into a fresh data dir: (runtime, {source: folder}, {source: IngestResult})."""
    root = tmp_path_factory.mktemp("demo")
    exports = demo.write_exports(root / "exports")
    rt = Runtime(Settings(data_dir=root / "data"))
    rt.init()
    results = {}
    for name, path in exports.items():
        provider, fmt = demo.source_formats()[name]
        sources.add(rt, name, provider, fmt, str(path))  # as `cloudtally demo` does: a configured source
        results[name] = ingest(rt, name)
    yield rt, exports, results
    rt.close()


def query(rt, sql: str, params=None) -> list[tuple]:
    with rt.warehouse.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def scalar(rt, sql: str, params=None):
    return query(rt, sql, params)[0][0]


def file_rows(path) -> list[dict]:
    """Rows of one generated file, read without the warehouse: CSV text, or Parquet values."""
    if path.name.endswith(".csv.gz"):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    return pq.read_table(path).to_pylist()


def cur_lines(export, month: str = "*") -> list[dict]:
    """The CUR 2.0 lines of the AWS export (one month or all), each tagged with its part file's name."""
    return [line | {"_part": p.name} for p in sorted(export.glob(f"data/BILLING_PERIOD={month}/*.parquet"))
            for line in pq.read_table(p).to_pylist()]


def amortized(line: dict) -> Decimal:
    """AWS's amortized cost of a CUR line (the CUR query library's formula, as connectors/aws/cur.py states it)."""
    t, z = line["line_item_line_item_type"], lambda k: line[k] or Decimal(0)
    if t == "SavingsPlanCoveredUsage":
        return z("savings_plan_savings_plan_effective_cost")
    if t == "SavingsPlanRecurringFee":
        return z("savings_plan_total_commitment_to_date") - z("savings_plan_used_commitment")
    if t in ("SavingsPlanNegation", "SavingsPlanUpfrontFee") or (t == "Fee" and line["reservation_reservation_a_r_n"]):
        return Decimal(0)
    if t == "DiscountedUsage":
        return z("reservation_effective_cost")
    if t == "RIFee":
        return z("reservation_unused_amortized_upfront_fee_for_billing_period") + z("reservation_unused_recurring_fee")
    return line["line_item_unblended_cost"]


def as_decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def export_files(folder) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# -- 1. files --------------------------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files(tmp_path):
    a = demo.write_exports(tmp_path / "a")
    b = demo.write_exports(tmp_path / "b")
    assert set(a) == set(b) == set(SOURCES) == set(demo.source_formats())
    assert a["demo-aws"] == tmp_path / "a" / "demo-aws" / "demo-cur2"
    for name in SOURCES:
        files_a, files_b = export_files(a[name]), export_files(b[name])
        assert files_a == files_b
        if name == "demo-aws":  # two parts and a manifest per billing month, Data Exports layout
            data = [f for f in files_a if f.startswith("data/")]
            assert [CUR_FILE.match(f).group(1) for f in data] == [m for m in MONTHS for _ in (1, 2)]
            assert [f for f in files_a if not f.startswith("data/")] == [
                f"metadata/BILLING_PERIOD={m}/demo-cur2-Manifest.json" for m in MONTHS]
        elif name == "demo-azure":  # a partitioned FocusCost export: per month a run folder, a part and a manifest
            assert [AZURE_FILE.match(f).groups() for f in files_a] == [
                (m.replace("-", ""), kind) for m in MONTHS for kind in ("manifest.json", "part_0_0001.csv.gz")]
        else:  # billing export rows, one Parquet file per invoice month, in a folder named after the export table
            assert a[name] == tmp_path / "a" / "demo-gcp" / GCP_TABLE
            assert files_a == [f"invoice_month={m.replace('-', '')}/000000000000.parquet" for m in MONTHS]
        for f in files_a:
            assert (a[name] / f).read_bytes() == (b[name] / f).read_bytes(), f"{name}/{f} differs"


def test_rewriting_a_folder_replaces_its_files(tmp_path):
    first = demo.write_exports(tmp_path)
    aws_files = export_files(first["demo-aws"])
    mtimes = {f: (first["demo-aws"] / f).stat().st_mtime_ns for f in aws_files}
    azure_mtimes = {f: (first["demo-azure"] / f).stat().st_mtime_ns for f in export_files(first["demo-azure"])}
    gcp_mtimes = {f: (first["demo-gcp"] / f).stat().st_mtime_ns for f in export_files(first["demo-gcp"])}
    stale = [first["demo-azure"] / "20260701-20260731" / "202608020600" / "x" / "part_0_0001.csv.gz",
             first["demo-aws"] / "data" / "BILLING_PERIOD=2026-07" / "old-00001.snappy.parquet",
             first["demo-aws"].parent / "billing_period=2026-07" / "part-0.csv.gz",  # an older demo's FOCUS files
             first["demo-gcp"].parent / "billing_period=2026-10" / "part-0.parquet",
             first["demo-gcp"] / "invoice_month=202607" / "000000000000.parquet"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stale")
    october = f"invoice_month={demo.LAST_MONTH.replace('-', '')}/000000000000.parquet"
    before = (first["demo-gcp"] / october).read_bytes()
    same = demo.write_exports(tmp_path)
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in same["demo-aws"].parent.iterdir()) == ["demo-cur2"]
    assert sorted(p.name for p in same["demo-gcp"].parent.iterdir()) == [GCP_TABLE]
    # The AWS connector's delivery identity includes file times: an unchanged export is left untouched.
    assert {f: (same["demo-aws"] / f).stat().st_mtime_ns for f in export_files(same["demo-aws"])} == mtimes
    assert {f: (same["demo-azure"] / f).stat().st_mtime_ns for f in export_files(same["demo-azure"])} == azure_mtimes
    assert {f: (same["demo-gcp"] / f).stat().st_mtime_ns for f in export_files(same["demo-gcp"])} == gcp_mtimes
    again = demo.write_exports(tmp_path, seed=7)
    assert (again["demo-gcp"] / october).read_bytes() != before
    new_files = export_files(again["demo-aws"])
    assert len(new_files) == 9 and not set(new_files) & {f for f in aws_files if f.startswith("data/")}


def test_files_are_well_formed(loaded):
    _, exports, _ = loaded
    for path in sorted(exports["demo-azure"].rglob("*.csv.gz")):
        rows = file_rows(path)
        assert list(rows[0]) == list(demo.COLUMNS) + ["x_ResourceGroupName"]
        for row in rows:
            for col in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"):
                assert TIMESTAMP.match(row[col]), (path, col, row[col])
            for col in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity"):
                assert "E" not in row[col] and "e" not in row[col], (path, col, row[col])
    for path in sorted(exports["demo-gcp"].rglob("*.parquet")):  # the detailed export's nested columns
        schema = pq.read_schema(path)
        assert str(schema.field("cost").type) == str(schema.field("cost_at_list").type) == "decimal128(38, 9)"
        assert str(schema.field("credits").type.value_type.field("amount").type) == "decimal128(38, 9)"
        assert str(schema.field("usage_start_time").type) == str(schema.field("export_time").type) == \
            "timestamp[us, tz=UTC]"
        assert str(schema.field("labels").type) == "list<element: struct<key: string, value: string>>"
        for struct, fields in {"service": {"id", "description"}, "sku": {"id", "description"},
                               "project": {"id", "number", "name", "labels", "ancestry_numbers", "ancestors"},
                               "location": {"location", "country", "region", "zone"}, "invoice": {"month"},
                               "usage": {"amount", "unit", "amount_in_pricing_units", "pricing_unit"},
                               "resource": {"name", "global_name"}}.items():
            typ = schema.field(struct).type
            assert {typ.field(i).name for i in range(typ.num_fields)} == fields, struct


def test_aws_export_is_a_cur2_data_export(loaded):
    _, exports, _ = loaded
    export = exports["demo-aws"]
    for path in sorted(export.glob("data/*/*.parquet")):
        schema = pq.read_schema(path)
        for col in ("line_item_unblended_cost", "line_item_usage_amount", "savings_plan_used_commitment"):
            assert str(schema.field(col).type) == "decimal128(38, 18)"
        assert str(schema.field("line_item_usage_start_date").type) == "timestamp[ms, tz=UTC]"
        tags = schema.field("resource_tags").type
        assert pa.types.is_map(tags) and (str(tags.key_type), str(tags.item_type)) == ("string", "string")
    for month in MONTHS:
        manifest = json.loads((export / f"metadata/BILLING_PERIOD={month}/demo-cur2-Manifest.json").read_text())
        listed = [key.split("/demo-cur2/", 1)[1] for key in manifest["dataFiles"]]
        assert listed == [f for f in export_files(export) if f.startswith(f"data/BILLING_PERIOD={month}/")]
        assert {CUR_FILE.match(f).group(2) for f in listed} == {manifest["executionId"]}
    lines = cur_lines(export)
    assert {x["line_item_line_item_type"] for x in lines} == LINE_TYPES
    assert {x["line_item_product_code"] for x in lines} <= set(AWS_SERVICES)
    assert {k for x in lines for k, _ in x["resource_tags"]} == {"user_team", "user_env", "user_app"}
    assert len({x["identity_line_item_id"] for x in lines}) == len(lines)
    assert all(x["line_item_usage_type"].startswith("SpotUsage") and x["pricing_term"] == "Spot"
               for x in lines if "Spot" in (x["line_item_usage_type"] or "") + (x["pricing_term"] or ""))
    # Every negation matches exactly one covered line; some sit in the other part file.
    key = ("line_item_usage_account_id", "line_item_usage_start_date", "line_item_resource_id",
           "line_item_usage_type", "line_item_operation", "savings_plan_savings_plan_a_r_n")
    covered = {tuple(x[k] for k in key): x for x in lines if x["line_item_line_item_type"] == "SavingsPlanCoveredUsage"}
    negations = [x for x in lines if x["line_item_line_item_type"] == "SavingsPlanNegation"]
    assert len(negations) == len(covered) > 1000
    for n in negations:
        assert covered[tuple(n[k] for k in key)]["line_item_unblended_cost"] == -n["line_item_unblended_cost"]
    assert 0 < sum(covered[tuple(n[k] for k in key)]["_part"] != n["_part"] for n in negations) < len(negations)


def test_gcp_export_rows(loaded):
    """The GCP part as Google writes it: CUD credits offsetting covered usage, the daily commitment fee, promotions
    on BigQuery rows, one tax row per invoice month, labels, and usage billed in the next invoice month."""
    _, exports, _ = loaded
    rows = [r for p in sorted(exports["demo-gcp"].rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert {r["billing_account_id"] for r in rows} == {"01A7C4-9E3B52-D8F061"}
    assert {r["project"]["id"] for r in rows if r["project"]} == {
        "acme-data-prod", "acme-ml-prod", "acme-mobile-prod", "acme-search-dev"}
    assert {r["cost_type"] for r in rows} == {"regular", "tax"} and {r["currency"] for r in rows} == {"USD"}
    credit_types = {c["type"] for r in rows for c in r["credits"]}
    assert credit_types == {"COMMITTED_USAGE_DISCOUNT", "PROMOTION"}
    # Covered usage: billed at its on-demand cost, the CUD credit takes all of it back (the fee pays for it).
    covered = [r for r in rows if any(c["type"] == "COMMITTED_USAGE_DISCOUNT" for c in r["credits"])]
    assert len(covered) > 500 and all(
        len(r["credits"]) == 1 and r["cost"] > 0 and r["cost"] + r["credits"][0]["amount"] == 0
        and r["sku"]["description"].startswith("N2 Instance Core") for r in covered)
    fees = [r for r in rows if r["sku"]["description"].startswith("Commitment v1:")]
    assert len(fees) == 92 and len({r["usage_start_time"] for r in fees}) == 92
    assert all(r["usage_end_time"] - r["usage_start_time"] == timedelta(days=1) and r["cost"] > 0 for r in fees)
    assert {c["id"] for r in covered for c in r["credits"]} == {r["resource"]["global_name"] for r in fees}
    # Promotions: 200.00 a month on BigQuery analysis rows, never more than the row's cost.
    promotions: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        for c in r["credits"]:
            if c["type"] == "PROMOTION":
                assert r["service"]["description"] == "BigQuery" and r["cost"] + c["amount"] >= 0
                promotions[r["invoice"]["month"]] += c["amount"]
    assert promotions == {m.replace("-", ""): Decimal("-200") for m in MONTHS}
    # Tax: one row per invoice month, 5% of the month's cost + credits, in cents.
    for month in MONTHS:
        month_rows = [r for r in rows if r["invoice"]["month"] == month.replace("-", "")]
        (tax,) = [r for r in month_rows if r["cost_type"] == "tax"]
        base = sum(r["cost"] + sum((c["amount"] for c in r["credits"]), Decimal(0)) for r in month_rows
                   if r["cost_type"] != "tax")
        assert tax["cost"] == (base * Decimal("0.05")).quantize(Decimal("0.01"), ROUND_HALF_UP) > 0
    # Invoice-month crossover: usage of the last day of August and September billed on the next month's invoice.
    late = [r for r in rows if r["invoice"]["month"] != f"{r['usage_start_time']:%Y%m}" and r["cost_type"] != "tax"]
    assert {(f"{r['usage_start_time']:%Y-%m-%d}", r["invoice"]["month"]) for r in late} == {
        ("2026-08-31", "202609"), ("2026-09-30", "202610")}
    assert all(r["export_time"] > r["usage_end_time"] for r in rows)
    # Labels are the resources' team/env/app tags; VMs also carry Compute Engine's system labels.
    assert {lbl["key"] for r in rows for lbl in r["labels"]} == {"team", "env", "app"}
    assert {lbl["key"] for r in rows for lbl in r["system_labels"]} == {
        "compute.googleapis.com/cores", "compute.googleapis.com/machine_spec", "compute.googleapis.com/memory"}


# -- 2. ledger and independent totals -------------------------------------------------------------------------------
def test_every_delivery_reconciles(loaded):
    rt, _, results = loaded
    for name, result in results.items():
        assert len(result.loaded) == 3 and not result.unchanged, name
        for d in result.loaded:
            assert d.status == "loaded" and d.landed_rows > 0
            assert (d.raw_billed_cost, d.raw_effective_cost) == (d.landed_billed_cost, d.landed_effective_cost)
            # Row counts differ by design for CUR (negations are netted into their covered lines, Unused rows are
            # added) and for the GCP export (each PROMOTION credit becomes a Credit row of its own).
            assert (d.raw_rows == d.landed_rows) == (name == "demo-azure")
    counts = dict(query(rt, "SELECT x_SourceId, count(*) FROM cost_and_usage GROUP BY 1"))
    for name, result in results.items():
        assert counts[name] == sum(d.landed_rows for d in result.loaded)
    assert 20_000 <= sum(counts.values()) <= 60_000


def test_totals_match_the_files(loaded):
    """Per provider, currency and billing period, BilledCost and EffectiveCost equal the files' own sums read with
    pyarrow and Decimal: FOCUS columns (Azure), for CUR the unblended cost and AWS's amortized cost, for the GCP
    export sum(cost) + sum(credits.amount) per invoice month for both (connectors/gcp: every credit counted once,
    netted into its line or as a Credit row; no amortization of the commitment fee)."""
    rt, exports, _ = loaded
    expected: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    with localcontext() as ctx:
        ctx.prec = 60  # exact: well above the digits of DECIMAL(38,18) sums
        for line in cur_lines(exports["demo-aws"]):
            sums = expected["AWS", line["line_item_currency_code"], line["bill_billing_period_start_date"]]
            sums[0] += line["line_item_unblended_cost"]
            sums[1] += amortized(line)
        for part in sorted(exports["demo-azure"].rglob("part_0*")):
            for row in file_rows(part):
                start = datetime.strptime(row["BillingPeriodStart"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                sums = expected[row["ProviderName"], row["BillingCurrency"], start]
                sums[0] += as_decimal(row["BilledCost"])
                sums[1] += as_decimal(row["EffectiveCost"])
        for part in sorted(exports["demo-gcp"].rglob("*.parquet")):
            for row in file_rows(part):
                start = datetime.strptime(row["invoice"]["month"], "%Y%m").replace(tzinfo=timezone.utc)
                invoiced = row["cost"] + sum((c["amount"] for c in row["credits"]), Decimal(0))
                sums = expected["Google Cloud", row["currency"], start]
                sums[0] += invoiced
                sums[1] += invoiced
    landed = {(p, c, start): [billed, effective] for p, c, start, billed, effective in query(
        rt, "SELECT ProviderName, BillingCurrency, BillingPeriodStart, sum(BilledCost), sum(EffectiveCost) "
            "FROM cost_and_usage GROUP BY 1, 2, 3")}
    assert landed == dict(expected)
    assert {k[:2] for k in landed if k[2] == LAST_MONTH_START} == {
        ("AWS", "USD"), ("Microsoft", "USD"), ("Microsoft", "EUR"), ("Google Cloud", "USD")}


# -- 3. FOCUS identities (focus.md section 4) -----------------------------------------------------------------------
def test_recurring_commitments_amortize_per_charge_period(loaded):
    rt, _, _ = loaded
    rows = query(rt, """
        SELECT p.CommitmentDiscountId, p.ChargePeriodStart, p.BilledCost,
               (SELECT sum(u.EffectiveCost) FROM cost_and_usage u
                 WHERE u.ChargeCategory = 'Usage' AND u.CommitmentDiscountId = p.CommitmentDiscountId
                   AND u.ChargePeriodStart >= p.ChargePeriodStart AND u.ChargePeriodEnd <= p.ChargePeriodEnd)
        FROM cost_and_usage p
        WHERE p.ChargeCategory = 'Purchase' AND p.ChargeFrequency = 'Recurring'
          AND p.CommitmentDiscountId NOT IN (SELECT CommitmentDiscountId FROM cost_and_usage
                                             WHERE ChargeFrequency = 'One-Time' AND ChargeCategory = 'Purchase')""")
    # The savings plan and the Azure reservation. Not the GCP CUD: its fee line names no commitment (the export's fee
    # row has no CUD credit, so CommitmentDiscountId stays null) and Google does not amortize it (connectors/gcp);
    # test_gcp_commitment_fee_and_covered_usage checks it instead.
    assert len({r[0] for r in rows}) == 2
    for commitment, start, billed, amortized in rows:
        assert amortized == billed, (commitment, start)
    # The all-upfront RI also has recurring lines (CUR's monthly RIFee): nothing billed; the hours it reserves for
    # the month are exactly the hours used plus the hours left unused.
    ri_months = query(rt, """
        SELECT p.BilledCost, p.CommitmentDiscountQuantity,
               (SELECT sum(u.CommitmentDiscountQuantity) FROM cost_and_usage u
                 WHERE u.ChargeCategory = 'Usage' AND u.CommitmentDiscountId = p.CommitmentDiscountId
                   AND u.ChargePeriodStart >= p.ChargePeriodStart AND u.ChargePeriodEnd <= p.ChargePeriodEnd)
        FROM cost_and_usage p
        WHERE p.ChargeFrequency = 'Recurring' AND p.CommitmentDiscountType = 'Reserved Instance'""")
    assert len(ri_months) == 3
    assert all(billed == 0 and reserved == used_and_unused > 0 for billed, reserved, used_and_unused in ri_months)
    # Every Used/Unused row of a recurring commitment falls in one of its purchase periods.
    assert scalar(rt, """
        SELECT count(*) FROM cost_and_usage u
        WHERE u.ChargeCategory = 'Usage' AND u.CommitmentDiscountId IN (
            SELECT CommitmentDiscountId FROM cost_and_usage WHERE ChargeFrequency = 'Recurring')
          AND NOT EXISTS (SELECT 1 FROM cost_and_usage p
                          WHERE p.ChargeCategory = 'Purchase' AND p.CommitmentDiscountId = u.CommitmentDiscountId
                            AND u.ChargePeriodStart >= p.ChargePeriodStart AND u.ChargePeriodEnd <= p.ChargePeriodEnd)
    """) == 0


def test_upfront_commitment_amortizes_pro_rata(loaded):
    """The one-year RI's term does not close within the data, so check each day's share of the upfront amount:
    EffectiveCost(day) / BilledCost(purchase) = CommitmentDiscountQuantity(day) / quantity bought for the term."""
    rt, _, _ = loaded
    purchases = query(rt, """
        SELECT CommitmentDiscountId, BilledCost, EffectiveCost, CommitmentDiscountQuantity, ChargePeriodStart,
               ChargePeriodEnd
        FROM cost_and_usage WHERE ChargeCategory = 'Purchase' AND ChargeFrequency = 'One-Time'""")
    assert len(purchases) == 1
    commitment, billed, effective, term_quantity, start, end = purchases[0]
    assert billed > 0 and effective == 0 and end - start == timedelta(days=365)
    days = query(rt, """
        SELECT ChargePeriodStart, sum(EffectiveCost), sum(CommitmentDiscountQuantity),
               count(*) FILTER (WHERE CommitmentDiscountStatus = 'Unused')
        FROM cost_and_usage WHERE ChargeCategory = 'Usage' AND CommitmentDiscountId = ?
        GROUP BY 1 ORDER BY 1""", [commitment])
    last_day = scalar(rt, "SELECT max(ChargePeriodStart) FROM cost_and_usage")
    assert [d[0] for d in days] == [start + timedelta(days=i) for i in range((last_day - start).days + 1)]
    with localcontext() as ctx:
        ctx.prec = 100  # products of DECIMAL(38,18) values, computed exactly
        for day, amortized, quantity, _ in days:
            assert amortized * term_quantity == billed * quantity, day
    assert sum(d[3] for d in days) > 0  # some days leave part of the reservation unused


def test_used_plus_unused_is_all_commitment_usage(loaded):
    rt, _, _ = loaded
    # The GCP export has no unused rows (the fee line is the commitment's cost): see
    # test_gcp_commitment_fee_and_covered_usage.
    rows = query(rt, """
        SELECT CommitmentDiscountId, sum(EffectiveCost),
               sum(EffectiveCost) FILTER (WHERE CommitmentDiscountStatus = 'Used'),
               sum(EffectiveCost) FILTER (WHERE CommitmentDiscountStatus = 'Unused')
        FROM cost_and_usage WHERE ChargeCategory = 'Usage' AND CommitmentDiscountId IS NOT NULL
          AND ProviderName <> 'Google Cloud' GROUP BY 1""")
    assert len(rows) == 3
    for commitment, total, used, unused in rows:
        assert used is not None and unused is not None, commitment
        assert total == used + unused, commitment


def test_purchases_and_covered_usage(loaded):
    rt, _, _ = loaded
    # Purchases of commitments are amortized into Used/Unused rows, never counted twice. (AWS and Azure: the GCP
    # CUD fee is not amortized, see test_gcp_commitment_fee_and_covered_usage.)
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE ChargeCategory = 'Purchase'") > 0
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE ChargeCategory = 'Purchase' "
                      "AND ProviderName <> 'Google Cloud' "
                      "AND (EffectiveCost <> 0 OR CommitmentDiscountId IS NULL OR ResourceId <> CommitmentDiscountId "
                      "OR PricingCategory <> 'Standard' OR ChargeFrequency = 'Usage-Based' "
                      "OR CommitmentDiscountStatus IS NOT NULL)") == 0
    # Used rows are fully covered: nothing billed, priced as Committed, the consuming resource named; AWS and Azure
    # amortize the commitment into them (EffectiveCost > 0), GCP's covered usage costs 0 once its credit is netted.
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE CommitmentDiscountStatus = 'Used'") > 0
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE CommitmentDiscountStatus = 'Used' "
                      "AND (BilledCost <> 0 OR PricingCategory <> 'Committed' OR ResourceId = CommitmentDiscountId "
                      "OR EffectiveCost < 0 OR EffectiveCost = 0 AND ProviderName <> 'Google Cloud' "
                      "OR ConsumedQuantity IS NULL)") == 0
    # Unused rows: the commitment itself is the resource, nothing was consumed.
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE CommitmentDiscountStatus = 'Unused' "
                      "AND (ResourceId <> CommitmentDiscountId OR ConsumedQuantity IS NOT NULL "
                      "OR ConsumedUnit IS NOT NULL OR BilledCost <> 0 OR EffectiveCost <= 0)") == 0
    # Committed pricing appears exactly on commitment usage.
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE (PricingCategory = 'Committed') "
                      "<> (ChargeCategory = 'Usage' AND CommitmentDiscountId IS NOT NULL)") == 0


def test_gcp_commitment_fee_and_covered_usage(loaded):
    """Google bills the CUD as a daily fee and takes the covered usage's cost back with a credit: the fee line is a
    Recurring Purchase with EffectiveCost = BilledCost (no amortization, connectors/gcp), covered usage is Committed
    and costs 0 after its credit, and each day the fee equals what the generator's commitment cost (capacity x rate)."""
    rt, _, _ = loaded
    commitment = next(c for c in demo.providers()["demo-gcp"].commitments)
    fees = query(rt, "SELECT ChargePeriodStart, BilledCost, EffectiveCost, ChargeFrequency, CommitmentDiscountId, "
                     "ResourceId, PricingCategory FROM cost_and_usage WHERE ProviderName = 'Google Cloud' "
                     "AND ChargeCategory = 'Purchase' ORDER BY 1")
    assert len(fees) == 92
    for _, billed, effective, frequency, cid, resource, pricing in fees:
        assert billed == effective == commitment.capacity * commitment.rate
        assert (frequency, cid, resource, pricing) == ("Recurring", None, commitment.id, "Standard")
    used = query(rt, "SELECT count(*), sum(BilledCost), sum(EffectiveCost), sum(ContractedCost), "
                     "count(DISTINCT CommitmentDiscountId), min(CommitmentDiscountId), "
                     "count(*) FILTER (WHERE PricingCategory <> 'Committed') FROM cost_and_usage "
                     "WHERE ProviderName = 'Google Cloud' AND CommitmentDiscountStatus IS NOT NULL")[0]
    assert used[0] > 500 and used[1] == used[2] == 0 and used[3] > 0 and used[4:] == (1, commitment.id, 0)
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE ProviderName = 'Google Cloud' "
                      "AND CommitmentDiscountStatus = 'Unused'") == 0


@pytest.mark.parametrize("unit_price, cost", [("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost")])
def test_cost_is_unit_price_times_quantity_exactly(loaded, unit_price, cost):
    rt, _, _ = loaded
    # Unit prices have at most 12 decimals (AWS prices DynamoDB per request unit: 0.00000025) and quantities at
    # most 6, so DECIMAL(20,12) and DECIMAL(18,6) hold them without loss and their product (DECIMAL(38,18)) is
    # exact; the comparison is exact too, no DOUBLE anywhere.
    # Not GCP: the billing export has no unit price the connector reads; it derives the unit prices as cost /
    # PricingQuantity in DOUBLE, kept to 15 significant digits (connectors/gcp/export.py `_ratio`), so unit price x
    # quantity meets the cost within half a unit in the 15th digit.
    checked, bad = query(rt, f"""
        SELECT count(*),
               count(*) FILTER (WHERE CAST({unit_price} AS DECIMAL(20,12)) <> {unit_price}
                   OR CAST(PricingQuantity AS DECIMAL(18,6)) <> PricingQuantity
                   OR CAST({unit_price} AS DECIMAL(20,12)) * CAST(PricingQuantity AS DECIMAL(18,6)) <> {cost})
        FROM cost_and_usage
        WHERE {unit_price} IS NOT NULL AND PricingQuantity IS NOT NULL AND ChargeClass IS NULL
          AND ProviderName <> 'Google Cloud'""")[0]
    assert checked > 15_000 and bad == 0
    gcp_checked, gcp_bad = query(rt, f"""
        SELECT count(*), count(*) FILTER (WHERE abs({unit_price} * PricingQuantity - {cost}) > abs({cost}) * 5e-15)
        FROM cost_and_usage WHERE ProviderName = 'Google Cloud' AND {unit_price} IS NOT NULL
          AND PricingQuantity <> 0""")[0]
    assert gcp_checked > 7_000 and gcp_bad == 0
    # Usage and Purchase rows always carry their prices (GCP: no SkuPriceId, the export has no price ID).
    assert scalar(rt, f"SELECT count(*) FROM cost_and_usage WHERE ChargeCategory IN ('Usage', 'Purchase') "
                      f"AND ({unit_price} IS NULL OR PricingQuantity IS NULL OR PricingCategory IS NULL "
                      f"OR SkuId IS NULL OR SkuPriceId IS NULL AND ProviderName <> 'Google Cloud')") == 0


def test_standard_and_dynamic_usage_is_billed_at_the_contracted_price(loaded):
    rt, _, _ = loaded
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE PricingCategory IN ('Standard', 'Dynamic') "
                      "AND ChargeCategory = 'Usage' AND NOT (BilledCost = ContractedCost "
                      "AND EffectiveCost = BilledCost AND ContractedCost <= ListCost OR BilledCost < 0)") == 0


def test_credit_rows(loaded):
    rt, _, _ = loaded
    rows = query(rt, "SELECT BilledCost, EffectiveCost, ListCost, ContractedCost, ListUnitPrice, ContractedUnitPrice, "
                     "PricingQuantity, PricingUnit FROM cost_and_usage WHERE ChargeCategory = 'Credit'")
    assert rows
    for billed, effective, list_cost, contracted, *nulls in rows:
        assert billed < 0 and billed == effective == list_cost == contracted
        assert nulls == [None, None, None, None]


def test_tax_rows(loaded):
    rt, _, _ = loaded
    rows = query(rt, "SELECT PricingQuantity, PricingUnit, ListUnitPrice, ContractedUnitPrice, PricingCategory, "
                     "SkuId, SkuPriceId, BilledCost, EffectiveCost, ListCost, ContractedCost "
                     "FROM cost_and_usage WHERE ChargeCategory = 'Tax'")
    # Azure and Google Cloud: one per billing account and month; AWS (CUR): per usage account and product code.
    per_source = dict(query(rt, "SELECT x_SourceId, count(*) FROM cost_and_usage WHERE ChargeCategory = 'Tax' "
                                "GROUP BY 1"))
    assert (per_source["demo-azure"], per_source["demo-gcp"]) == (6, 3)
    assert per_source["demo-aws"] > 12 and per_source["demo-aws"] == scalar(rt, """
        SELECT count(DISTINCT (SubAccountId, ChargeDescription, BillingPeriodStart)) FROM cost_and_usage
        WHERE x_SourceId = 'demo-aws' AND ChargeCategory = 'Tax'""")
    assert len(rows) == sum(per_source.values())
    for *nulls, billed, effective, list_cost, contracted in rows:
        assert nulls == [None] * 7
        assert billed > 0 and billed == effective == list_cost == contracted


def test_nullability_pairs(loaded):
    rt, _, _ = loaded
    violations = {
        "status set without id": "CommitmentDiscountStatus IS NOT NULL AND CommitmentDiscountId IS NULL",
        "usage with id but no status": "ChargeCategory = 'Usage' AND CommitmentDiscountId IS NOT NULL "
                                       "AND CommitmentDiscountStatus IS NULL",
        # CUR names no commitments: the AWS connector leaves CommitmentDiscountName null (connectors/aws/cur.py).
        "commitment columns apart": "(CommitmentDiscountId IS NULL) <> (CommitmentDiscountName IS NULL) "
                                    "AND ProviderName <> 'AWS' "
                                    "OR (CommitmentDiscountId IS NULL) <> (CommitmentDiscountCategory IS NULL) "
                                    "OR (CommitmentDiscountId IS NULL) <> (CommitmentDiscountType IS NULL) "
                                    "OR (CommitmentDiscountId IS NULL) <> (CommitmentDiscountQuantity IS NULL) "
                                    # The GCP export has no commitment quantity or unit (docs/gcp.md).
                                    "AND ProviderName <> 'Google Cloud'",
        "commitment quantity and unit": "(CommitmentDiscountQuantity IS NULL) <> (CommitmentDiscountUnit IS NULL)",
        "pricing quantity and unit": "(PricingUnit IS NULL) <> (PricingQuantity IS NULL)",
        "consumed quantity and unit": "(ConsumedQuantity IS NULL) <> (ConsumedUnit IS NULL)",
        "consumed outside usage": "ConsumedQuantity IS NOT NULL AND (ChargeCategory <> 'Usage' "
                                  "OR CommitmentDiscountStatus = 'Unused')",
        "usage without consumption": "ChargeCategory = 'Usage' AND ConsumedQuantity IS NULL "
                                     "AND CommitmentDiscountStatus IS DISTINCT FROM 'Unused'",
        # CUR has no account types: SubAccountType stays null on AWS rows (connectors/aws/cur.py).
        "sub account type": "(SubAccountId IS NULL) <> (SubAccountType IS NULL) AND ProviderName <> 'AWS'",
        "sku price details without price id": "SkuPriceDetails IS NOT NULL AND SkuPriceId IS NULL",
        "null mandatory cost": "ListCost IS NULL OR ContractedCost IS NULL OR ChargeFrequency IS NULL",
    }
    for name, condition in violations.items():
        assert scalar(rt, f"SELECT count(*) FROM cost_and_usage WHERE {condition}") == 0, name


def test_one_category_per_service_name(loaded):
    rt, _, _ = loaded
    rows = query(rt, "SELECT ServiceName, count(DISTINCT ServiceCategory), count(DISTINCT ServiceSubcategory) "
                     "FROM cost_and_usage GROUP BY 1")
    assert rows and all(categories == 1 and subcategories == 1 for _, categories, subcategories in rows)


def test_periods_are_well_formed(loaded):
    rt, _, _ = loaded
    # Charges fall in their billing period, except GCP's invoice-month crossover: usage of the last day of a month
    # billed on the next month's invoice (the connector takes the billing period from invoice.month).
    assert scalar(rt, """
        SELECT count(*) FROM cost_and_usage
        WHERE NOT (ChargePeriodStart < ChargePeriodEnd AND BillingPeriodStart < BillingPeriodEnd
                   AND BillingPeriodStart = date_trunc('month', BillingPeriodStart)
                   AND BillingPeriodEnd = BillingPeriodStart + INTERVAL 1 MONTH
                   AND (ChargePeriodStart >= BillingPeriodStart OR ProviderName = 'Google Cloud'
                        AND ChargePeriodStart = BillingPeriodStart - INTERVAL 1 DAY)
                   AND ChargePeriodStart < BillingPeriodEnd)""") == 0
    crossover = query(rt, """
        SELECT DISTINCT ServiceName, CAST(ChargePeriodStart AS DATE), BillingPeriodStart FROM cost_and_usage
        WHERE ChargePeriodStart < BillingPeriodStart ORDER BY 2""")
    assert [(s, f"{d}", f"{b:%Y-%m}") for s, d, b in crossover] == [
        ("Cloud Run", "2026-08-31", "2026-09"), ("Cloud Run", "2026-09-30", "2026-10")]
    # Usage is daily; only purchases, credits and taxes span longer periods, and the unused part of the AWS RI,
    # which CUR reports once a month on its RIFee line.
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE ChargeCategory = 'Usage' "
                      "AND ChargePeriodEnd - ChargePeriodStart <> INTERVAL 1 DAY AND NOT (ProviderName = 'AWS' "
                      "AND CommitmentDiscountStatus = 'Unused' AND CommitmentDiscountType = 'Reserved Instance' "
                      "AND ChargePeriodStart = BillingPeriodStart AND ChargePeriodEnd = BillingPeriodEnd)") == 0


def test_accounts_invoices_and_currencies(loaded):
    rt, _, _ = loaded
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage "
                      "WHERE ProviderName <> PublisherName OR ProviderName <> InvoiceIssuerName") == 0
    # One invoice per billing account and month, one currency per billing account. The GCP billing export has no
    # invoice number (only invoice.month), so the GCP connector leaves InvoiceId empty rather than invent one.
    assert query(rt, "SELECT ProviderName, count(*) FILTER (WHERE InvoiceId IS NULL) = count(*) FROM cost_and_usage "
                     "GROUP BY 1 ORDER BY 1") == [("AWS", False), ("Google Cloud", True), ("Microsoft", False)]
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE InvoiceId IS NULL "
                      "AND ProviderName <> 'Google Cloud'") == 0
    assert scalar(rt, "SELECT max(n) FROM (SELECT count(DISTINCT InvoiceId) n FROM cost_and_usage "
                      "WHERE ProviderName <> 'Google Cloud' GROUP BY BillingAccountId, BillingPeriodStart)") == 1
    assert scalar(rt, "SELECT max(n) FROM (SELECT count(DISTINCT BillingAccountId || BillingPeriodStart::VARCHAR) n "
                      "FROM cost_and_usage WHERE InvoiceId IS NOT NULL GROUP BY InvoiceId)") == 1
    assert scalar(rt, "SELECT max(n) FROM (SELECT count(DISTINCT BillingCurrency) n FROM cost_and_usage "
                      "GROUP BY BillingAccountId)") == 1
    aws_accounts = [a for (a,) in query(rt, "SELECT DISTINCT SubAccountId FROM cost_and_usage "
                                            "WHERE ProviderName = 'AWS' AND SubAccountId IS NOT NULL")]
    assert len(aws_accounts) == 6 and all(re.fullmatch(r"\d{12}", a) for a in aws_accounts)
    guid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    azure_subs = [s for (s,) in query(rt, "SELECT DISTINCT SubAccountId FROM cost_and_usage "
                                          "WHERE ProviderName = 'Microsoft' AND SubAccountId IS NOT NULL")]
    assert len(azure_subs) == 4 and all(guid.fullmatch(s) for s in azure_subs)


# -- 4. what the demo promises ---------------------------------------------------------------------------------------
def test_dataset_contents(loaded):
    rt, _, _ = loaded
    assert {p for (p,) in query(rt, "SELECT DISTINCT ProviderName FROM cost_and_usage")} == {
        "AWS", "Microsoft", "Google Cloud"}
    assert scalar(rt, "SELECT count(DISTINCT ServiceName) FROM cost_and_usage") >= 18
    teams = {t for (t,) in query(rt, "SELECT DISTINCT Tags['team'] FROM cost_and_usage WHERE Tags['team'] IS NOT NULL")}
    assert teams == {"payments", "data", "platform", "search", "mobile"}
    # GCP's system labels join the tags with their qualified keys (connectors/gcp); everything else is team/env/app.
    assert {k for (k,) in query(rt, "SELECT DISTINCT unnest(map_keys(Tags)) FROM cost_and_usage")} == {
        "team", "env", "app", "compute.googleapis.com/cores", "compute.googleapis.com/machine_spec",
        "compute.googleapis.com/memory"}
    untagged, usage = query(rt, "SELECT count(*) FILTER (WHERE Tags IS NULL), count(*) FROM cost_and_usage WHERE "
                                "ChargeCategory = 'Usage' AND CommitmentDiscountStatus IS DISTINCT FROM 'Unused'")[0]
    assert 3 * usage < 100 * untagged < 30 * usage  # a realistic minority of resource rows is untagged
    categories = {c for (c,) in query(rt, "SELECT DISTINCT ChargeCategory FROM cost_and_usage")}
    assert {"Usage", "Purchase", "Credit", "Tax"} <= categories
    assert {s for (s,) in query(rt, "SELECT DISTINCT CommitmentDiscountStatus FROM cost_and_usage "
                                    "WHERE CommitmentDiscountStatus IS NOT NULL")} == {"Used", "Unused"}
    assert {c for (c,) in query(rt, "SELECT DISTINCT PricingCategory FROM cost_and_usage "
                                    "WHERE PricingCategory IS NOT NULL")} == {"Standard", "Committed", "Dynamic"}
    assert {c for (c,) in query(rt, "SELECT DISTINCT CommitmentDiscountType FROM cost_and_usage "
                                    "WHERE CommitmentDiscountType IS NOT NULL")} == {
        "Savings Plan", "Reserved Instance", "Reservation", "Committed Use Discount (resource-based)"}
    # The AWS refund is a CUR Refund line: an Adjustment (connectors/aws/cur.py), never negative usage.
    refunds = query(rt, "SELECT ProviderName, ChargeCategory FROM cost_and_usage WHERE BilledCost < 0 "
                        "AND ChargeCategory IN ('Usage', 'Adjustment')")
    assert refunds == [("AWS", "Adjustment")]
    periods = [p for (p,) in query(rt, "SELECT DISTINCT BillingPeriodStart FROM cost_and_usage ORDER BY 1")]
    assert [f"{p:%Y-%m}" for p in periods] == [demo.FIRST_MONTH, "2026-09", demo.LAST_MONTH]
    assert {c for (c,) in query(rt, "SELECT DISTINCT BillingCurrency FROM cost_and_usage")} == {"USD", "EUR"}
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE ListCost > ContractedCost "
                      "AND PricingCategory = 'Standard'") > 0  # negotiated discounts
    assert scalar(rt, "SELECT count(DISTINCT ResourceId) FROM cost_and_usage") > 150
    assert scalar(rt, "SELECT count(DISTINCT CAST(ChargePeriodStart AS DATE)) FROM cost_and_usage "
                      "WHERE ChargeCategory = 'Usage'") == 92


def test_validator_criteria_are_known():
    known = {
        "ACCOUNT_NAMING_SUPPORTED", "AVAILABILITY_ZONE_SUPPORTED", "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",
        "CAPACITY_RESERVATION_SUPPORTED", "COMMITMENT_DISCOUNT_SUPPORTED", "MULTIPLE_BILLING_ACCOUNT_TYPES_SUPPORTED",
        "MULTIPLE_PRICING_CATEGORIES_SUPPORTED", "MULTIPLE_SUB_ACCOUNT_TYPES_SUPPORTED", "NEGOTIATED_PRICING_SUPPORTED",
        "PRICING_BILLING_CURRENCY_DIFFERENCES_SUPPORTED", "PUBLIC_PRICE_LIST_SUPPORTED", "REGION_SUPPORTED",
        "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED", "SUB_ACCOUNT_SUPPORTED", "TAGGING_SUPPORTED", "UNIT_PRICING_SUPPORTED",
        "USAGE_MEASUREMENT_SUPPORTED", "VIRTUAL_CURRENCY_SUPPORTED",
    }
    assert set(demo.VALIDATOR_CRITERIA) <= known
    assert len(set(demo.VALIDATOR_CRITERIA)) == len(demo.VALIDATOR_CRITERIA)


# -- 5. allocation with the shipped sample rules ----------------------------------------------------------------
def test_sample_rules_allocate_every_line_exactly_once(loaded):
    """app/demo/rules.yaml over the demo data: every line's parts sum to the line for all four metrics, allocated +
    unallocated = total per day, provider and currency, and at least 95% of each month's EffectiveCost is allocated."""
    from app.allocation import engine

    rt, _, _ = loaded
    applied = engine.apply(rt, demo.RULES_FILE.read_text(), note="test")
    assert applied.rule_count == 8 and len(applied.reallocated) == 3
    metrics = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
    diff = " OR ".join(f"l.{m} IS DISTINCT FROM p.{m}" for m in metrics)
    assert scalar(rt, f"""
        WITH p AS (SELECT x_LineId, {', '.join(f'sum({m}) AS {m}' for m in metrics)}, count(*) FILTER (WHERE part = 1)
                   AS firsts FROM cost_allocation GROUP BY 1)
        SELECT count(*) FROM cost_and_usage l FULL JOIN p USING (x_LineId)
        WHERE p.x_LineId IS NULL OR l.x_LineId IS NULL OR p.firsts <> 1 OR {diff}""") == 0
    per_day = query(rt, """
        SELECT l.d, l.ProviderName, l.BillingCurrency, l.total, a.allocated, a.unallocated FROM
          (SELECT ChargePeriodStart::DATE d, ProviderName, BillingCurrency, sum(EffectiveCost) total
           FROM cost_and_usage GROUP BY ALL) l
        JOIN (SELECT ChargePeriodStart::DATE d, ProviderName, BillingCurrency,
                     coalesce(sum(EffectiveCost) FILTER (WHERE rule_name IS NOT NULL), 0) allocated,
                     coalesce(sum(EffectiveCost) FILTER (WHERE rule_name IS NULL), 0) unallocated
              FROM cost_allocation GROUP BY ALL) a USING (d, ProviderName, BillingCurrency)""")
    assert len(per_day) >= 3 * 90 and all(total == allocated + unallocated for *_, total, allocated, unallocated
                                          in per_day)
    monthly = query(rt, """
        SELECT BillingPeriodStart, ProviderName, BillingCurrency,
               sum(EffectiveCost) FILTER (WHERE rule_name IS NOT NULL) / sum(EffectiveCost)
        FROM cost_allocation GROUP BY ALL""")
    assert len(monthly) == 12 and all(share >= Decimal("0.95") for *_, share in monthly)
    # The even split gives each of the five teams the same share of the commitment fees; the proportional split
    # of invoice tax follows each team's usage, so its shares differ.
    even = query(rt, "SELECT DISTINCT share FROM cost_allocation WHERE rule_name = 'shared-commitments'")
    assert even == [(Decimal("0.2"),)]
    assert scalar(rt, "SELECT count(DISTINCT share) FROM cost_allocation WHERE rule_name = 'invoice-tax'") > 5
