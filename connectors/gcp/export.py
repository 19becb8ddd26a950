"""GCP billing export rows -> FOCUS rows, as DuckDB SQL over a file (Parquet, JSONL or CSV).

The same mapping serves both formats of the connector: BigQuery pulls are cached as Parquet files holding the
export's own nested columns (`service` STRUCT, `credits` ARRAY<STRUCT>, ...), and local exports come as `bq extract`
Parquet / newline-delimited JSON, or as CSV with flattened dotted names (`service.description`, what koku-nise
writes, where arrays are JSON text or Python reprs). Each file is first *normalized*: every export field is found
by its dotted name, its struct path or its underscore name, typed (money as exact DECIMAL, FLOAT values converted
through their shortest text form), and the arrays become typed lists. The mapping then runs on that relation.
See connectors/gcp/__init__.py for the column mapping table and the credit treatment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

import duckdb

from app.focus import DECIMAL_SQL
from app.warehouse import StagedFile, Totals
from connectors.base import IngestError, LocalFile, PeriodStats
from connectors.focus.reader import OpenedFile, first_line, open_file, quote_ident, quote_str
from connectors.gcp.services import GCP_SERVICES, OTHER, values_sql

DEC = DECIMAL_SQL
PROVIDER = "Google Cloud"
KV_TYPE = "STRUCT(key VARCHAR, value VARCHAR)[]"
CREDIT_TYPE = f"STRUCT(name VARCHAR, amount {DEC}, full_name VARCHAR, id VARCHAR, type VARCHAR)[]"
KV_JSON = '[{"key": "VARCHAR", "value": "VARCHAR"}]'
CREDIT_JSON = '[{"name": "VARCHAR", "amount": "VARCHAR", "full_name": "VARCHAR", "id": "VARCHAR", "type": "VARCHAR"}]'
CUD_TYPES = ("COMMITTED_USAGE_DISCOUNT", "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE")
# Credits that lower the price of the line they sit on: netted into that line (see the module docstring of
# connectors/gcp). Every other credit type (PROMOTION, unknown types) becomes its own FOCUS Credit row.
NETTED_TYPES = CUD_TYPES + ("SUSTAINED_USAGE_DISCOUNT", "DISCOUNT", "FREE_TIER", "SUBSCRIPTION_BENEFIT",
                            "RESELLER_MARGIN")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet") + JSON_SUFFIXES

# export field (dotted) -> kind. Required ones must be present as columns and non-null on every row.
FIELDS: dict[str, str] = {
    "billing_account_id": "string",
    "service.id": "string",
    "service.description": "string",
    "sku.id": "string",
    "sku.description": "string",
    "usage_start_time": "datetime",
    "usage_end_time": "datetime",
    "project.id": "string",
    "project.name": "string",
    "location.location": "string",
    "location.region": "string",
    "location.zone": "string",
    "export_time": "datetime",
    "cost": "decimal",
    "cost_at_list": "decimal",
    "currency": "string",
    "currency_conversion_rate": "decimal",
    "usage.amount": "decimal",
    "usage.unit": "string",
    "usage.amount_in_pricing_units": "decimal",
    "usage.pricing_unit": "string",
    "invoice.month": "string",
    "cost_type": "string",
    "resource.name": "string",
    "resource.global_name": "string",
    "seller_name": "string",
    "labels": "kv",
    "project.labels": "kv",
    "system_labels": "kv",
    "credits": "credits",
}
REQUIRED = ("billing_account_id", "service.description", "usage_start_time", "usage_end_time", "cost", "currency",
            "invoice.month")

REGION_NAMES = {
    "africa-south1": "Johannesburg", "asia-east1": "Taiwan", "asia-east2": "Hong Kong", "asia-northeast1": "Tokyo",
    "asia-northeast2": "Osaka", "asia-northeast3": "Seoul", "asia-south1": "Mumbai", "asia-south2": "Delhi",
    "asia-southeast1": "Singapore", "asia-southeast2": "Jakarta", "australia-southeast1": "Sydney",
    "australia-southeast2": "Melbourne", "europe-central2": "Warsaw", "europe-north1": "Finland",
    "europe-southwest1": "Madrid", "europe-west1": "Belgium", "europe-west2": "London", "europe-west3": "Frankfurt",
    "europe-west4": "Netherlands", "europe-west6": "Zurich", "europe-west8": "Milan", "europe-west9": "Paris",
    "europe-west10": "Berlin", "europe-west12": "Turin", "me-central1": "Doha", "me-central2": "Dammam",
    "me-west1": "Tel Aviv", "northamerica-northeast1": "Montréal", "northamerica-northeast2": "Toronto",
    "southamerica-east1": "São Paulo", "southamerica-west1": "Santiago", "us-central1": "Iowa",
    "us-east1": "South Carolina", "us-east4": "Northern Virginia", "us-east5": "Columbus", "us-south1": "Dallas",
    "us-west1": "Oregon", "us-west2": "Los Angeles", "us-west3": "Salt Lake City", "us-west4": "Las Vegas",
    "us": "United States", "eu": "European Union", "asia": "Asia", "global": "Global",
}

# GCP unit words -> FOCUS Unit Format pieces.
SIZE_WORDS = {"byte": "B", "bytes": "B", "kibibyte": "KiB", "mebibyte": "MiB", "gibibyte": "GiB", "tebibyte": "TiB",
              "pebibyte": "PiB", "kilobyte": "KB", "megabyte": "MB", "gigabyte": "GB", "terabyte": "TB"}
TIME_WORDS = {"second": "Seconds", "seconds": "Seconds", "minute": "Minutes", "minutes": "Minutes", "hour": "Hours",
              "hours": "Hours", "day": "Days", "days": "Days", "month": "Months", "months": "Months",
              "year": "Years", "years": "Years"}


def is_data_file(name: str) -> bool:
    return name.lower().endswith(DATA_SUFFIXES)


def _case(expr: str, table: dict[str, str]) -> str:
    whens = " ".join(f"WHEN {quote_str(k)} THEN {quote_str(v)}" for k, v in table.items())
    return f"CASE {expr} {whens} END"


def focus_unit(expr: str) -> str:
    """SQL turning a GCP unit ("gibibyte month", "byte-seconds", "hour", "requests") into FOCUS Unit Format
    ("GiB-Months", "B-Seconds", "Hours", "requests"): data sizes become symbols, time words plural, and a size or
    count followed by a time is joined with "-". Other units (counts) pass unchanged."""
    low = f"lower(trim({expr}))"
    first = f"regexp_extract({low}, '^([a-z]+)[ -]([a-z]+)$', 1)"
    second = f"regexp_extract({low}, '^([a-z]+)[ -]([a-z]+)$', 2)"
    size_all, time_all = _case(low, SIZE_WORDS), _case(low, TIME_WORDS)
    size1, time2 = _case(first, SIZE_WORDS), _case(second, TIME_WORDS)
    return (f"CASE WHEN {expr} IS NULL THEN NULL WHEN {size_all} IS NOT NULL THEN {size_all} "
            f"WHEN {time_all} IS NOT NULL THEN {time_all} "
            f"WHEN {time2} IS NOT NULL THEN coalesce({size1}, upper({first}[1]) || {first}[2:]) || '-' || {time2} "
            f"ELSE {expr} END")


# -- opening and normalizing -------------------------------------------------------------------------------------
def open_export_file(con: duckdb.DuckDBPyConnection, file: LocalFile) -> OpenedFile:
    """Parquet and CSV through the shared reader; newline-delimited JSON (`bq extract` NEWLINE_DELIMITED_JSON)."""
    if not file.uri.lower().endswith(JSON_SUFFIXES):
        return open_file(con, file)
    if file.size == 0:
        raise IngestError("file is empty (0 bytes)", file=file.uri)
    relation = (f"read_json({quote_str(str(file.path))}, format = 'newline_delimited', records = true, "
                f"sample_size = -1)")
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        rows = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    except duckdb.Error as exc:
        raise IngestError(f"not readable newline-delimited JSON: {first_line(exc)}", file=file.uri) from exc
    if rows == 0:
        raise IngestError("file holds no rows", file=file.uri)
    return OpenedFile(file.uri, "json", relation, {n: t for n, t, *_ in described}, "row_number() OVER ()")


@dataclass
class FieldRef:
    name: str  # dotted export name
    kind: str
    sql: str  # raw reference in the file
    typ: str  # DuckDB type of the raw reference
    shown: str  # how the file names it (for error messages)


@dataclass
class ExportPlan:
    opened: OpenedFile
    fields: dict[str, FieldRef]
    notes: list[str] = field(default_factory=list)
    prices: bool = False  # join the warehouse's gcp_sku_prices table for list prices

    @property
    def uri(self) -> str:
        return self.opened.uri


def plan_file(con: duckdb.DuckDBPyConnection, opened: OpenedFile) -> ExportPlan:
    lower = {n.lower(): n for n in opened.columns}
    fields: dict[str, FieldRef] = {}
    for name, kind in FIELDS.items():
        ref = _resolve(con, opened, lower, name)
        if ref is not None:
            fields[name] = FieldRef(name, kind, *ref)
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        hint = ""
        if any(c in opened.columns for c in ("BilledCost", "ChargeCategory")):
            hint = " (this looks like a FOCUS file: add it with --provider focus)"
        raise IngestError(f"not a GCP billing export: missing column{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)}{hint}", file=opened.uri, row=0)
    return ExportPlan(opened, fields, list(opened.notes))


def _resolve(con, opened: OpenedFile, lower: dict[str, str], name: str) -> tuple[str, str, str] | None:
    """(sql, type, shown name) of an export field: a column named `a.b`, struct field a.b, or column `a_b`."""
    for candidate in (name, name.replace(".", "_")):
        col = lower.get(candidate.lower())
        if col is not None:
            return quote_ident(col), opened.columns[col], col
    if "." in name:
        parent, child = name.split(".", 1)
        col = lower.get(parent.lower())
        if col is not None and opened.columns[col].startswith("STRUCT"):
            sql = f"{quote_ident(col)}.{quote_ident(child)}"
            try:
                (typ,) = [t for _, t, *_ in con.execute(f"DESCRIBE SELECT {sql} FROM {opened.relation}").fetchall()]
            except duckdb.Error:
                return None
            return sql, typ, f"{col}.{child}"
    return None


def _py_to_json(text: str) -> str:
    """Text that is JSON, or a Python repr of a list of dicts (koku-nise), as JSON text."""
    fixed = (f"replace(replace(replace(replace({text}, '''', '\"'), 'None', 'null'), 'True', 'true'), "
             f"'False', 'false')")
    return (f"CASE WHEN {text} IS NULL OR trim({text}) = '' THEN '[]' WHEN json_valid({text}) THEN {text} "
            f"ELSE {fixed} END")


def _decimal(sql: str, typ: str) -> str:
    if typ in ("DOUBLE", "FLOAT"):
        return f"CAST(CAST({sql} AS VARCHAR) AS {DEC})"
    if typ == "VARCHAR":
        return f"CAST(NULLIF(NULLIF(trim({sql}), ''), 'None') AS {DEC})"
    return f"CAST({sql} AS {DEC})"


def _as_json_text(ref: FieldRef) -> str:
    return ref.sql if ref.typ == "VARCHAR" else f"CAST(to_json({ref.sql}) AS VARCHAR)"


def value_sql(ref: FieldRef) -> str:
    """SQL for the typed, normalized value of one export field."""
    sql, typ = ref.sql, ref.typ
    if ref.kind == "string":
        text = sql if typ == "VARCHAR" else f"CAST({sql} AS VARCHAR)"
        return f"NULLIF(NULLIF({text}, ''), 'None')"
    if ref.kind == "decimal":
        return _decimal(sql, typ)
    if ref.kind == "datetime":
        if typ == "VARCHAR":
            return f"CAST(NULLIF(trim({sql}), '') AS TIMESTAMPTZ)"
        return f"CAST({sql} AS TIMESTAMPTZ)"
    native = typ.endswith("[]") and typ.startswith("STRUCT") and "JSON" not in typ
    if ref.kind == "kv":
        if native and "key" in typ and "value" in typ:
            return (f"list_transform(coalesce({sql}, []), lambda e: {{'key': CAST(e.key AS VARCHAR), "
                    f"'value': CAST(e.value AS VARCHAR)}})")
        return f"CAST(json_transform({_py_to_json(_as_json_text(ref))}, '{KV_JSON}') AS {KV_TYPE})"
    # credits
    if native and "amount" in typ:
        inner = typ[len("STRUCT("):typ.rindex(")")]
        amount_type = "DOUBLE" if "amount DOUBLE" in inner or "amount FLOAT" in inner else (
            "VARCHAR" if "amount VARCHAR" in inner else "OTHER")
        parts = []
        for f in ("name", "full_name", "id", "type"):
            parts.append(f"'{f}': CAST(c.{f} AS VARCHAR)" if f" {f} " in f" {inner.replace(',', ' ')} "
                         or f'"{f}"' in inner else f"'{f}': CAST(NULL AS VARCHAR)")
        parts.insert(1, f"'amount': {_decimal('c.amount', amount_type)}")
        return f"list_transform(coalesce({sql}, []), lambda c: {{{', '.join(parts)}}})"
    as_text = f"json_transform({_py_to_json(_as_json_text(ref))}, '{CREDIT_JSON}')"
    return (f"list_transform({as_text}, lambda c: {{'name': c.name, 'amount': CAST(NULLIF(c.amount, '') AS {DEC}), "
            f"'full_name': c.full_name, 'id': c.id, 'type': c.type}})")


def _null(kind: str) -> str:
    return {"decimal": f"CAST(NULL AS {DEC})", "datetime": "CAST(NULL AS TIMESTAMPTZ)", "kv": f"CAST([] AS {KV_TYPE})",
            "credits": f"CAST([] AS {CREDIT_TYPE})"}.get(kind, "CAST(NULL AS VARCHAR)")


def alias(name: str) -> str:
    return name.replace(".", "_")


def normalized_sql(plan: ExportPlan, relation: str | None = None) -> str:
    cols = ", ".join(
        f"{value_sql(plan.fields[n]) if n in plan.fields else _null(k)} AS {alias(n)}" for n, k in FIELDS.items())
    return f"SELECT {cols} FROM {relation or plan.opened.relation}"


# -- raw figures -------------------------------------------------------------------------------------------------
CREDIT_SUM = "coalesce(list_sum(list_transform(credits, lambda c: c.amount)), 0)"


def raw_stats(con: duckdb.DuckDBPyConnection, plan: ExportPlan) -> list[PeriodStats]:
    """Per invoice month: rows, and sum(cost) + sum(credits.amount) (what GCP invoices), straight from the file.

    The two sums also go to the ledger's notes, with the credits by type."""
    norm = normalized_sql(plan)
    try:
        rows = con.execute(
            f"SELECT invoice_month, count(*), sum(cost), sum({CREDIT_SUM}), "
            f"list(DISTINCT service_description) FROM ({norm}) GROUP BY 1 ORDER BY 1").fetchall()
        by_type = con.execute(
            f"SELECT c.type, count(*), sum(c.amount) FROM (SELECT unnest(credits) AS c FROM ({norm})) "
            f"GROUP BY 1 ORDER BY 1").fetchall()
    except duckdb.Error as exc:
        raise diagnose(con, plan, exc) from exc
    out, services = [], set()
    for month, n, cost, credits, names in rows:
        if month is None or len(month) != 6 or not month.isdigit():
            raise diagnose(con, plan, None)
        start = datetime(int(month[:4]), int(month[4:]), 1, tzinfo=timezone.utc)
        end = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=timezone.utc)
        total = (cost or Decimal(0)) + (credits or Decimal(0))
        out.append(PeriodStats(start, end, Totals(n, total, total)))
        plan.notes.append(f"invoice month {month}: {n} rows, cost {cost}, credits {credits or 0}")
        services.update(s for s in names or [] if s)
    for ctype, n, amount in by_type:
        treat = "netted into its line" if ctype in NETTED_TYPES else "a separate Credit row"
        plan.notes.append(f"{n} credits of type {ctype or 'null'} ({amount}): {treat}")
    unknown = sorted(services - set(GCP_SERVICES))
    if unknown:
        plan.notes.append(f"services without a FOCUS category (filed under Other): {', '.join(unknown)}")
    if "cost_at_list" not in plan.fields:
        plan.notes.append("no cost_at_list column: ListCost from the catalog's list prices where cached, else cost")
    return out


# -- the mapping -------------------------------------------------------------------------------------------------
PRICES_CTE = """prices AS (
    SELECT sku_id, lower(usage_unit_description) AS unit,
           arg_min(unit_price, tier_start) FILTER (WHERE unit_price > 0) AS list_usd
    FROM gcp_sku_prices WHERE currency = 'USD'
    GROUP BY ALL
),"""


def _ratio(amount: str, quantity: str) -> str:
    """A unit price: amount / quantity. DuckDB divides decimals in DOUBLE; the quotient is kept to 15 significant
    digits (what a double holds) through its text, so binary noise (0.21930000000000002) never reaches the
    DECIMAL column. Every cost stays exact; only this derived price is a rounded quotient."""
    return f"CAST(printf('%.15g', CAST({amount} AS DOUBLE) / CAST({quantity} AS DOUBLE)) AS {DEC})"


def mapping_sql(plan: ExportPlan) -> str:
    netted = ", ".join(quote_str(t) for t in NETTED_TYPES)
    cuds = ", ".join(quote_str(t) for t in CUD_TYPES)
    regions = ", ".join(f"({quote_str(k)}, {quote_str(v)})" for k, v in REGION_NAMES.items())
    price_join = ("LEFT JOIN prices p ON p.sku_id = n.sku_id AND p.unit = lower(n.usage_pricing_unit)"
                  if plan.prices else "")
    list_usd = "p.list_usd" if plan.prices else f"CAST(NULL AS {DEC})"
    tags = "list_concat(project_labels, system_labels, labels)"
    return f"""
WITH n AS ({normalized_sql(plan)}),
{PRICES_CTE if plan.prices else ''}
services (svc_name, svc_category, svc_subcategory) AS (VALUES {values_sql()}),
regions (region_id, region_name) AS (VALUES {regions}),
c AS (
    SELECT n.*,
        CAST(coalesce(list_sum(list_transform(list_filter(credits, lambda x: x.type IN ({netted})),
                                              lambda x: x.amount)), 0) AS {DEC}) AS netted,
        list_filter(credits, lambda x: x.type IS NULL OR x.type NOT IN ({netted})) AS separate,
        list_filter(credits, lambda x: x.type IN ({cuds}))[1] AS cud,
        CAST(strptime(invoice_month || '01', '%Y%m%d') AS TIMESTAMPTZ) AS bp_start,
        CASE WHEN cost_type = 'tax' THEN 'Tax'
             WHEN cost_type IN ('adjustment', 'rounding_error') THEN 'Adjustment'
             WHEN cost_type IS NULL OR cost_type = 'regular' THEN
                  CASE WHEN sku_description ILIKE 'Commitment%' THEN 'Purchase' ELSE 'Usage' END
             ELSE 'Adjustment' END AS line_category,
        CAST(CAST({list_usd} AS DECIMAL(38,12)) * CAST(coalesce(currency_conversion_rate, 1) AS DECIMAL(20,8)) AS {DEC})
            AS list_price
    FROM n {price_join}
),
rows AS (
    SELECT c.*, 'line' AS kind, CAST(NULL AS STRUCT(name VARCHAR, amount {DEC}, full_name VARCHAR, id VARCHAR,
           type VARCHAR)) AS credit FROM c
    UNION ALL BY NAME
    SELECT c.*, 'credit' AS kind, unnest(separate) AS credit FROM c WHERE len(separate) > 0
),
typed AS (
    SELECT r.*, CASE WHEN kind = 'credit' THEN 'Credit' ELSE line_category END AS category,
        CASE WHEN kind = 'line' AND line_category IN ('Usage', 'Purchase') THEN usage_amount_in_pricing_units
             END AS pricing_quantity
    FROM rows r
)
SELECT
    '{PROVIDER}' AS ProviderName,
    coalesce(seller_name, '{PROVIDER}') AS PublisherName,
    '{PROVIDER}' AS InvoiceIssuerName,
    billing_account_id AS BillingAccountId,
    'Billing Account' AS BillingAccountType,
    project_id AS SubAccountId,
    project_name AS SubAccountName,
    CASE WHEN project_id IS NOT NULL THEN 'Project' END AS SubAccountType,
    bp_start AS BillingPeriodStart,
    bp_start + INTERVAL 1 MONTH AS BillingPeriodEnd,
    usage_start_time AS ChargePeriodStart,
    usage_end_time AS ChargePeriodEnd,
    category AS ChargeCategory,
    CASE WHEN kind = 'line' AND cost_type = 'adjustment' AND usage_start_time < bp_start THEN 'Correction'
         END AS ChargeClass,
    CASE WHEN kind = 'credit' THEN coalesce(NULLIF(credit.full_name, ''), NULLIF(credit.name, ''), credit.id,
                                            credit.type)
         ELSE coalesce(sku_description, service_description) END AS ChargeDescription,
    CASE WHEN category = 'Purchase' THEN 'Recurring'
         WHEN category IN ('Usage', 'Credit') THEN 'Usage-Based' ELSE 'One-Time' END AS ChargeFrequency,
    CASE WHEN kind = 'credit' THEN credit.amount ELSE cost + netted END AS BilledCost,
    BilledCost AS EffectiveCost,
    CASE WHEN category IN ('Usage', 'Purchase')
         THEN coalesce(cost_at_list, CAST(CAST(list_price AS DECIMAL(38,12)) * CAST(pricing_quantity AS DECIMAL(38,8))
                                            AS {DEC}), cost) ELSE BilledCost END AS ListCost,
    CASE WHEN category IN ('Usage', 'Purchase') THEN cost ELSE BilledCost END AS ContractedCost,
    CASE WHEN category IN ('Usage', 'Purchase') AND pricing_quantity <> 0
         THEN {_ratio('cost', 'pricing_quantity')} END AS ContractedUnitPrice,
    CASE WHEN category IN ('Usage', 'Purchase') THEN coalesce(
         CASE WHEN pricing_quantity <> 0 THEN
              {_ratio('cost_at_list', 'pricing_quantity')} END,
         list_price, ContractedUnitPrice) END AS ListUnitPrice,
    CASE WHEN category NOT IN ('Usage', 'Purchase') THEN NULL
         WHEN category = 'Usage' AND cud IS NOT NULL THEN 'Committed'
         WHEN sku_description ILIKE '%spot%' OR sku_description ILIKE '%preemptible%' THEN 'Dynamic'
         ELSE 'Standard' END AS PricingCategory,
    pricing_quantity AS PricingQuantity,
    CASE WHEN pricing_quantity IS NOT NULL THEN {focus_unit('usage_pricing_unit')} END AS PricingUnit,
    currency AS BillingCurrency,
    CASE WHEN kind = 'line' AND category = 'Usage' THEN usage_amount END AS ConsumedQuantity,
    CASE WHEN kind = 'line' AND category = 'Usage' AND usage_amount IS NOT NULL
         THEN {focus_unit('usage_unit')} END AS ConsumedUnit,
    service_description AS ServiceName,
    coalesce(svc_category, '{OTHER[0]}') AS ServiceCategory,
    coalesce(svc_subcategory, '{OTHER[1]}') AS ServiceSubcategory,
    CASE WHEN category IN ('Usage', 'Purchase') THEN sku_id END AS SkuId,
    coalesce(resource_global_name, resource_name) AS ResourceId,
    resource_name AS ResourceName,
    CASE WHEN starts_with(resource_global_name, '//')
         THEN regexp_extract(resource_global_name, '^//([^/]+)/', 1) || '/'
              || regexp_extract(resource_global_name, '/([^/]+)/[^/]+$', 1) END AS ResourceType,
    location_region AS RegionId,
    CASE WHEN location_region IS NOT NULL THEN coalesce(region_name, location_region) END AS RegionName,
    location_zone AS AvailabilityZone,
    CASE WHEN category = 'Usage' AND kind = 'line' THEN coalesce(NULLIF(cud.id, ''), cud.name) END
        AS CommitmentDiscountId,
    CASE WHEN CommitmentDiscountId IS NOT NULL THEN coalesce(NULLIF(cud.full_name, ''), cud.name) END
        AS CommitmentDiscountName,
    CASE WHEN CommitmentDiscountId IS NULL THEN NULL
         WHEN cud.type = 'COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE' THEN 'Spend' ELSE 'Usage' END
        AS CommitmentDiscountCategory,
    CASE WHEN CommitmentDiscountId IS NULL THEN NULL
         WHEN cud.type = 'COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE' THEN 'Committed Use Discount (spend-based)'
         ELSE 'Committed Use Discount (resource-based)' END AS CommitmentDiscountType,
    CASE WHEN CommitmentDiscountId IS NOT NULL THEN 'Used' END AS CommitmentDiscountStatus,
    CASE WHEN len({tags}) = 0 THEN NULL ELSE map_from_entries(list_filter({tags},
         lambda e, i: e.key IS NOT NULL AND NOT list_contains(list_transform(({tags})[i + 1:], lambda y: y.key),
                                                              e.key))) END AS Tags
FROM typed t
LEFT JOIN services s ON s.svc_name = t.service_description
LEFT JOIN regions g ON g.region_id = t.location_region"""


def staged_select(plan: ExportPlan) -> StagedFile:
    return StagedFile(plan.uri, mapping_sql(plan))


# -- diagnostics -------------------------------------------------------------------------------------------------
def _checks(plan: ExportPlan) -> list[tuple[FieldRef, str, str]]:
    out = []
    for name, ref in plan.fields.items():
        if name in REQUIRED:
            blank = f" OR trim(CAST({ref.sql} AS VARCHAR)) = ''" if ref.kind in ("string", "decimal") else ""
            out.append((ref, f"({ref.sql} IS NULL{blank})", "must not be empty"))
        typed = value_sql(ref)
        if ref.kind == "decimal":
            out.append((ref, f"{ref.sql} IS NOT NULL AND TRY({typed}) IS NULL AND NULLIF(NULLIF(trim(CAST({ref.sql} "
                             f"AS VARCHAR)), ''), 'None') IS NOT NULL", "is not a decimal number"))
        elif ref.kind == "datetime":
            out.append((ref, f"{ref.sql} IS NOT NULL AND trim(CAST({ref.sql} AS VARCHAR)) <> '' AND TRY({typed}) "
                             f"IS NULL", "is not a date-time"))
        elif ref.kind in ("kv", "credits"):
            what = "an array of key/value pairs" if ref.kind == "kv" else "an array of credits"
            out.append((ref, f"{ref.sql} IS NOT NULL AND TRY({typed}) IS NULL", f"is not {what}"))
            if ref.kind == "credits":
                out.append((ref, f"TRY({typed}) IS NOT NULL AND list_bool_or(list_transform(TRY({typed}), "
                                 f"lambda c: c.amount IS NULL))", "has a credit without an amount"))
        if name == "invoice.month":
            out.append((ref, f"NOT regexp_full_match(CAST({ref.sql} AS VARCHAR), '[0-9]{{4}}(0[1-9]|1[0-2])')",
                        "is not a month as YYYYMM"))
    return out


def diagnose(con: duckdb.DuckDBPyConnection, plan: ExportPlan, exc: Exception | None) -> IngestError:
    """Find the first bad row and field of the file (reads it again, in order, single-threaded)."""
    checks = _checks(plan)
    labels = ", ".join(f"CASE WHEN {cond} THEN {i} END" for i, (_, cond, _) in enumerate(checks))
    sql = (f"SELECT __row, list_filter([{labels}], lambda x: x IS NOT NULL)[1] AS bad "
           f"FROM {plan.opened.ordered_relation()} WHERE bad IS NOT NULL ORDER BY __row LIMIT 1")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    try:
        con.execute("SET threads = 1")
        found = con.execute(sql).fetchone()
    except duckdb.Error as exc2:
        return IngestError(first_line(exc or exc2), file=plan.uri)
    finally:
        con.execute(f"SET threads = {int(threads)}")
    if found is None:
        return IngestError(first_line(exc) if exc else "unreadable value", file=plan.uri)
    row, index = found
    ref, _, msg = checks[int(index)]
    value = con.execute(f"SELECT CAST({ref.sql} AS VARCHAR) FROM {plan.opened.ordered_relation()} WHERE __row = ?",
                        [row]).fetchone()[0]
    shown = "" if value is None else f"{value[:80]!r} "
    return IngestError(f"{shown}{msg}", file=plan.uri, row=int(row), column=ref.shown)
