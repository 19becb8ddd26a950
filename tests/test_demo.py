"""The demo dataset (app/demo): deterministic files, exact ingest, FOCUS identities, promised contents.

The data goes through the real pipeline (connector -> warehouse), and the identities of
../shared/reference/focus.md section 4 are checked as SQL over the warehouse table. Money is Decimal throughout.
"""
from __future__ import annotations

import csv
import gzip
import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pyarrow.parquet as pq
import pytest

from app import demo
from app.ingest import ingest
from app.runtime import Runtime
from app.settings import Settings

SOURCES = ("demo-aws", "demo-azure", "demo-gcp")
LAST_MONTH_START = datetime.strptime(demo.LAST_MONTH, "%Y-%m").replace(tzinfo=timezone.utc)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The demo files, ingested once into a fresh data dir: (runtime, {source: folder}, {source: IngestResult})."""
    root = tmp_path_factory.mktemp("demo")
    exports = demo.write_exports(root / "exports")
    rt = Runtime(Settings(data_dir=root / "data"))
    rt.init()
    results = {name: ingest(rt, name, str(path)) for name, path in exports.items()}
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


def as_decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


# -- 1. files --------------------------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files(tmp_path):
    a = demo.write_exports(tmp_path / "a")
    b = demo.write_exports(tmp_path / "b")
    assert set(a) == set(b) == set(SOURCES)
    for name in SOURCES:
        files_a = sorted(p.relative_to(a[name]) for p in a[name].rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(b[name]) for p in b[name].rglob("*") if p.is_file())
        assert files_a == files_b
        assert [str(f) for f in files_a] == [
            f"billing_period={m}/part-0.{'parquet' if name == 'demo-gcp' else 'csv.gz'}"
            for m in ("2026-08", "2026-09", "2026-10")
        ]
        for f in files_a:
            assert (a[name] / f).read_bytes() == (b[name] / f).read_bytes(), f"{name}/{f} differs"


def test_rewriting_a_folder_replaces_its_files(tmp_path):
    first = demo.write_exports(tmp_path)
    stale = first["demo-aws"] / "billing_period=2026-07" / "part-0.csv.gz"
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    before = (first["demo-gcp"] / "billing_period=2026-10" / "part-0.parquet").read_bytes()
    again = demo.write_exports(tmp_path, seed=7)
    assert not stale.exists()
    assert (again["demo-gcp"] / "billing_period=2026-10" / "part-0.parquet").read_bytes() != before


def test_files_are_well_formed_focus_text(loaded):
    _, exports, _ = loaded
    for name in ("demo-aws", "demo-azure"):
        for path in sorted(exports[name].rglob("*.csv.gz")):
            rows = file_rows(path)
            assert list(rows[0]) == list(demo.COLUMNS)
            for row in rows:
                for col in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"):
                    assert TIMESTAMP.match(row[col]), (path, col, row[col])
                for col in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity"):
                    assert "E" not in row[col] and "e" not in row[col], (path, col, row[col])
    for path in sorted(exports["demo-gcp"].rglob("*.parquet")):
        schema = pq.read_schema(path)
        assert str(schema.field("BilledCost").type) == "decimal128(38, 18)"
        assert str(schema.field("ChargePeriodStart").type) == "timestamp[us, tz=UTC]"
        assert str(schema.field("BillingAccountId").type) == "string"
        assert str(schema.field("Tags").type) == "string"


# -- 2. ledger and independent totals -------------------------------------------------------------------------------
def test_every_delivery_reconciles(loaded):
    _, _, results = loaded
    for name, result in results.items():
        assert len(result.loaded) == 3, name
        assert not result.unchanged
        for d in result.loaded:
            assert d.status == "loaded"
            assert d.raw_rows == d.landed_rows > 0
            assert d.raw_billed_cost == d.landed_billed_cost
            assert d.raw_effective_cost == d.landed_effective_cost


def test_row_counts_and_size(loaded):
    rt, _, results = loaded
    counts = dict(query(rt, "SELECT x_SourceId, count(*) FROM cost_and_usage GROUP BY 1"))
    for name, result in results.items():
        assert counts[name] == sum(d.landed_rows for d in result.loaded)
    assert 20_000 <= sum(counts.values()) <= 60_000


def test_last_month_effective_cost_matches_the_files(loaded):
    rt, exports, _ = loaded
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with localcontext() as ctx:
        ctx.prec = 60  # exact: well above the digits of DECIMAL(38,18) sums
        for path in exports.values():
            (part,) = path.glob(f"billing_period={demo.LAST_MONTH}/part-0.*")
            for row in file_rows(part):
                expected[row["ProviderName"], row["BillingCurrency"]] += as_decimal(row["EffectiveCost"])
    landed = {
        (provider, currency): total
        for provider, currency, total in query(
            rt,
            "SELECT ProviderName, BillingCurrency, sum(EffectiveCost) FROM cost_and_usage "
            "WHERE BillingPeriodStart = ? GROUP BY 1, 2",
            [LAST_MONTH_START],
        )
    }
    assert landed == dict(expected)
    assert set(landed) == {("AWS", "USD"), ("Microsoft", "USD"), ("Microsoft", "EUR"), ("Google Cloud", "USD")}


# -- 3. FOCUS identities (focus.md section 4) -----------------------------------------------------------------------
def test_recurring_commitments_amortize_per_charge_period(loaded):
    rt, _, _ = loaded
    rows = query(rt, """
        SELECT p.CommitmentDiscountId, p.ChargePeriodStart, p.BilledCost,
               (SELECT sum(u.EffectiveCost) FROM cost_and_usage u
                 WHERE u.ChargeCategory = 'Usage' AND u.CommitmentDiscountId = p.CommitmentDiscountId
                   AND u.ChargePeriodStart >= p.ChargePeriodStart AND u.ChargePeriodEnd <= p.ChargePeriodEnd)
        FROM cost_and_usage p
        WHERE p.ChargeCategory = 'Purchase' AND p.ChargeFrequency = 'Recurring'""")
    assert len({r[0] for r in rows}) == 3  # savings plan, Azure reservation, GCP CUD
    for commitment, start, billed, amortized in rows:
        assert amortized == billed, (commitment, start)
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
    rows = query(rt, """
        SELECT CommitmentDiscountId, sum(EffectiveCost),
               sum(EffectiveCost) FILTER (WHERE CommitmentDiscountStatus = 'Used'),
               sum(EffectiveCost) FILTER (WHERE CommitmentDiscountStatus = 'Unused')
        FROM cost_and_usage WHERE ChargeCategory = 'Usage' AND CommitmentDiscountId IS NOT NULL GROUP BY 1""")
    assert len(rows) == 4
    for commitment, total, used, unused in rows:
        assert used is not None and unused is not None, commitment
        assert total == used + unused, commitment


def test_purchases_and_covered_usage(loaded):
    rt, _, _ = loaded
    # Purchases of commitments are amortized into Used/Unused rows, never counted twice.
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE ChargeCategory = 'Purchase'") > 0
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE ChargeCategory = 'Purchase' "
                      "AND (EffectiveCost <> 0 OR CommitmentDiscountId IS NULL OR ResourceId <> CommitmentDiscountId "
                      "OR PricingCategory <> 'Standard' OR ChargeFrequency = 'Usage-Based' "
                      "OR CommitmentDiscountStatus IS NOT NULL)") == 0
    # Used rows are fully covered: nothing billed, priced as Committed, the consuming resource named.
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE CommitmentDiscountStatus = 'Used'") > 0
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE CommitmentDiscountStatus = 'Used' "
                      "AND (BilledCost <> 0 OR PricingCategory <> 'Committed' OR ResourceId = CommitmentDiscountId "
                      "OR EffectiveCost <= 0 OR ConsumedQuantity IS NULL)") == 0
    # Unused rows: the commitment itself is the resource, nothing was consumed.
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE CommitmentDiscountStatus = 'Unused' "
                      "AND (ResourceId <> CommitmentDiscountId OR ConsumedQuantity IS NOT NULL "
                      "OR ConsumedUnit IS NOT NULL OR BilledCost <> 0 OR EffectiveCost <= 0)") == 0
    # Committed pricing appears exactly on commitment usage.
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE (PricingCategory = 'Committed') "
                      "<> (ChargeCategory = 'Usage' AND CommitmentDiscountId IS NOT NULL)") == 0


@pytest.mark.parametrize("unit_price, cost", [("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost")])
def test_cost_is_unit_price_times_quantity_exactly(loaded, unit_price, cost):
    rt, _, _ = loaded
    # Unit prices and quantities have at most 6 decimals, so DECIMAL(18,6) holds them without loss and their
    # product (DECIMAL(36,12)) is exact; the comparison is exact too, no DOUBLE anywhere.
    checked, bad = query(rt, f"""
        SELECT count(*),
               count(*) FILTER (WHERE CAST({unit_price} AS DECIMAL(18,6)) <> {unit_price}
                   OR CAST(PricingQuantity AS DECIMAL(18,6)) <> PricingQuantity
                   OR CAST({unit_price} AS DECIMAL(18,6)) * CAST(PricingQuantity AS DECIMAL(18,6)) <> {cost})
        FROM cost_and_usage
        WHERE {unit_price} IS NOT NULL AND PricingQuantity IS NOT NULL AND ChargeClass IS NULL""")[0]
    assert checked > 20_000 and bad == 0
    # Usage and Purchase rows always carry their prices.
    assert scalar(rt, f"SELECT count(*) FROM cost_and_usage WHERE ChargeCategory IN ('Usage', 'Purchase') "
                      f"AND ({unit_price} IS NULL OR PricingQuantity IS NULL OR PricingCategory IS NULL "
                      f"OR SkuId IS NULL OR SkuPriceId IS NULL)") == 0


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
    assert len(rows) == 12  # one per billing account (AWS, Google Cloud, two Azure) and month
    for *nulls, billed, effective, list_cost, contracted in rows:
        assert nulls == [None] * 7
        assert billed > 0 and billed == effective == list_cost == contracted


def test_nullability_pairs(loaded):
    rt, _, _ = loaded
    violations = {
        "status set without id": "CommitmentDiscountStatus IS NOT NULL AND CommitmentDiscountId IS NULL",
        "usage with id but no status": "ChargeCategory = 'Usage' AND CommitmentDiscountId IS NOT NULL "
                                       "AND CommitmentDiscountStatus IS NULL",
        "commitment columns apart": "(CommitmentDiscountId IS NULL) <> (CommitmentDiscountName IS NULL) "
                                    "OR (CommitmentDiscountId IS NULL) <> (CommitmentDiscountCategory IS NULL) "
                                    "OR (CommitmentDiscountId IS NULL) <> (CommitmentDiscountType IS NULL) "
                                    "OR (CommitmentDiscountId IS NULL) <> (CommitmentDiscountQuantity IS NULL)",
        "commitment quantity and unit": "(CommitmentDiscountQuantity IS NULL) <> (CommitmentDiscountUnit IS NULL)",
        "pricing quantity and unit": "(PricingUnit IS NULL) <> (PricingQuantity IS NULL)",
        "consumed quantity and unit": "(ConsumedQuantity IS NULL) <> (ConsumedUnit IS NULL)",
        "consumed outside usage": "ConsumedQuantity IS NOT NULL AND (ChargeCategory <> 'Usage' "
                                  "OR CommitmentDiscountStatus = 'Unused')",
        "usage without consumption": "ChargeCategory = 'Usage' AND ConsumedQuantity IS NULL "
                                     "AND CommitmentDiscountStatus IS DISTINCT FROM 'Unused'",
        "sub account type": "(SubAccountId IS NULL) <> (SubAccountType IS NULL)",
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
    assert scalar(rt, """
        SELECT count(*) FROM cost_and_usage
        WHERE NOT (ChargePeriodStart < ChargePeriodEnd AND BillingPeriodStart < BillingPeriodEnd
                   AND BillingPeriodStart = date_trunc('month', BillingPeriodStart)
                   AND BillingPeriodEnd = BillingPeriodStart + INTERVAL 1 MONTH
                   AND ChargePeriodStart >= BillingPeriodStart AND ChargePeriodStart < BillingPeriodEnd)""") == 0
    # Usage is daily; only purchases, credits and taxes span longer periods.
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage WHERE ChargeCategory = 'Usage' "
                      "AND ChargePeriodEnd - ChargePeriodStart <> INTERVAL 1 DAY") == 0


def test_accounts_invoices_and_currencies(loaded):
    rt, _, _ = loaded
    assert scalar(rt, "SELECT count(*) FROM cost_and_usage "
                      "WHERE ProviderName <> PublisherName OR ProviderName <> InvoiceIssuerName") == 0
    # One invoice per billing account and month, one currency per billing account.
    assert scalar(rt, "SELECT max(n) FROM (SELECT count(DISTINCT InvoiceId) n FROM cost_and_usage "
                      "GROUP BY BillingAccountId, BillingPeriodStart)") == 1
    assert scalar(rt, "SELECT max(n) FROM (SELECT count(DISTINCT BillingAccountId || BillingPeriodStart::VARCHAR) n "
                      "FROM cost_and_usage GROUP BY InvoiceId)") == 1
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
    assert {k for (k,) in query(rt, "SELECT DISTINCT unnest(map_keys(Tags)) FROM cost_and_usage")} == {
        "team", "env", "app"}
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
        "Savings Plan", "Reserved Instance", "Reservation", "Committed Use Discount"}
    refunds = query(rt, "SELECT ProviderName, BilledCost FROM cost_and_usage "
                        "WHERE ChargeCategory = 'Usage' AND BilledCost < 0")
    assert len(refunds) == 1 and refunds[0][0] == "AWS"
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
