"""GCP connector: the Cloud Billing export to BigQuery (`bigquery`), or its rows saved as files (`export`).

Formats and locations:
  bigquery  `bq://project.dataset.table` — the standard (`gcp_billing_export_v1_<account>`) or detailed
            (`gcp_billing_export_resource_v1_<account>`) export table, or a view over it. Pulled incrementally by
            partition day into a local Parquet cache (bigquery.py), then mapped like an export folder.
  export    a local folder (or file) of export rows: Parquet or newline-delimited JSON as `bq extract` writes them,
            or CSV with dotted column names (`service.description`) as koku-nise writes them. One delivery per
            invoice month found in the rows.

The mapping (export.py) is DuckDB SQL, one statement per file; money is DECIMAL(38,18) throughout (the export's
FLOAT values are converted through their shortest text form, as BigQuery prints them).

| GCP export | FOCUS |
|---|---|
| invoice.month (YYYYMM) | BillingPeriodStart = first day of that month, BillingPeriodEnd = first day of the next (never usage time) |
| usage_start_time / usage_end_time | ChargePeriodStart / ChargePeriodEnd |
| cost_type regular | ChargeCategory Usage (Purchase, ChargeFrequency Recurring, for `Commitment...` fee SKUs) |
| cost_type tax / adjustment / rounding_error | Tax / Adjustment / Adjustment (adjustment of usage before the invoice month: ChargeClass Correction) |
| cost + netted credits (below) | BilledCost = EffectiveCost |
| credits of type PROMOTION (and any unknown type) | their own row: ChargeCategory Credit, BilledCost = EffectiveCost = ListCost = ContractedCost = amount, ChargeDescription = credit full_name/name |
| cost | ContractedCost (Usage/Purchase); ContractedUnitPrice = cost / PricingQuantity |
| cost_at_list (detailed export) | ListCost; else catalog list price x PricingQuantity (see catalog.py), else cost |
| usage.amount_in_pricing_units / usage.pricing_unit | PricingQuantity / PricingUnit (FOCUS unit format: gibibyte month -> GiB-Months) |
| usage.amount / usage.unit | ConsumedQuantity / ConsumedUnit (byte-seconds -> B-Seconds) |
| credits of type COMMITTED_USAGE_DISCOUNT(_DOLLAR_BASE) | PricingCategory Committed; CommitmentDiscountId = credit id, Name = full_name, Category Usage (resource-based) / Spend (dollar-based), Status Used |
| sku.description containing Spot / Preemptible | PricingCategory Dynamic (else Standard) |
| billing_account_id | BillingAccountId (BillingAccountType "Billing Account") |
| project.id / project.name | SubAccountId / SubAccountName (SubAccountType "Project") |
| service.description | ServiceName; ServiceCategory/Subcategory from services.py |
| sku.id / sku.description | SkuId / ChargeDescription |
| location.region / location.zone | RegionId (RegionName from a table of region names) / AvailabilityZone |
| resource.global_name, resource.name (detailed export) | ResourceId (global name, else name), ResourceName; ResourceType = `<api>/<collection>` of the global name |
| project.labels, system_labels, labels | Tags: one map; a resource label overrides a project label of the same key; system labels keep their qualified keys |
| seller_name | PublisherName (else "Google Cloud"); ProviderName = InvoiceIssuerName = "Google Cloud" |
| currency, currency_conversion_rate | BillingCurrency; the rate converts the catalog's USD list prices |

Credits. GCP's `cost` is before credits; what GCP invoices is cost + sum(credits.amount) (amounts negative).
Credits that lower the price of the very line they sit on — committed use (both kinds), sustained use, DISCOUNT
(contract/spend-based), FREE_TIER, SUBSCRIPTION_BENEFIT, RESELLER_MARGIN — are netted into that line, because
FOCUS's BilledCost is "inclusive of all reduced rates and discounts" and a CUD-covered line is a Committed usage
line. Promotions (including free-trial credit) are money granted against the bill, not a price: FOCUS Credit rows.
Either way each credit is counted exactly once, so per invoice month sum(BilledCost) = sum(EffectiveCost) =
sum(cost) + sum(credits.amount), which the ledger checks against the same sums computed straight from the files.
Rows do not reconcile by count (Credit rows are added). GCP bills commitment fees monthly, so the fee lines keep
EffectiveCost = BilledCost and covered usage shows cost minus its CUD credit (no amortization across lines).
"""
from __future__ import annotations

from typing import Mapping

import duckdb

from connectors.base import Candidate, FileReport, IngestError, Inspection, LocalFile
from connectors.gcp import export
from connectors.storage import list_files

FORMATS = ("bigquery", "export")
PRICES_MARKER = "sku_prices"


class GcpConnector:
    provider = "gcp"
    formats = FORMATS

    def discover(self, location: str, options: Mapping[str, str], fmt: str) -> list[Candidate]:
        _check_format(fmt)
        if fmt == "bigquery":
            from connectors.gcp.bigquery import discover as discover_bigquery

            return discover_bigquery(location, options)
        if location.startswith("bq://"):
            raise IngestError("a bq:// location needs the format bigquery", file=location)
        files = list_files(location, options, export.is_data_file)
        if not files:
            return []
        candidates = [Candidate(tuple(files), label=location)]
        if options.get("list_prices") == "catalog":
            from connectors.gcp.catalog import prices_file_for

            prices = prices_file_for(files, options)
            if prices is not None:
                candidates = [Candidate(tuple(files) + (prices,), label=location)]
        return candidates

    def inspect(self, con: duckdb.DuckDBPyConnection, files: list[LocalFile], fmt: str) -> Inspection:
        _check_format(fmt)
        data = [f for f in files if PRICES_MARKER not in f.uri.rsplit("/", 1)[-1]]
        price_files = [f for f in files if f not in data]
        if price_files:
            from connectors.gcp.catalog import store_prices_file

            for f in price_files:
                store_prices_file(con, f.path)
        prices = _has_prices(con)
        plans, reports = {}, []
        for file in data:
            plan = export.plan_file(con, export.open_export_file(con, file))
            plan.prices = prices
            reports.append(FileReport(file, export.raw_stats(con, plan), plan.notes))
            plans[file.uri] = plan
        return Inspection(reports, [export.staged_select(p) for p in plans.values()],
                          lambda uri, exc: export.diagnose(con, plans[uri], exc), rows_reconcile=False)


def _has_prices(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'gcp_sku_prices'").fetchone()[0]
    return bool(found) and con.execute("SELECT count(*) > 0 FROM gcp_sku_prices").fetchone()[0]


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise IngestError(f"GCP format {fmt!r} is not one of {', '.join(FORMATS)}")
