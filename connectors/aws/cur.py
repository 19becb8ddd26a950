"""AWS Cost and Usage Reports (legacy CUR and CUR 2.0) -> FOCUS, as DuckDB SQL over the delivered files.

Both flavours go through one mapping. Each file is first *normalized*: its columns are matched to CUR 2.0's
snake_case names whatever the flavour (`lineItem/UnblendedCost`, `line_item_unblended_cost` and Athena's
`savings_plan_savings_plan_a_r_n` all match, by name with case, `/` and `_` ignored), typed (money as
DECIMAL(38,18)), and its tags gathered into one map. The delivery's normalized files are then mapped together,
because a covered usage line and its Savings Plan negation can sit in different parts.

| CUR line item type | FOCUS rows | BilledCost | EffectiveCost |
|---|---|---|---|
| Usage | Usage; Standard, or Dynamic for Spot | unblended | unblended |
| DiscountedUsage (RI) | Usage, Committed, Used | unblended | reservation effective cost |
| SavingsPlanCoveredUsage | Usage, Committed, Used | unblended + its negation (so 0) | SP effective cost |
| SavingsPlanNegation | netted into the covered usage line of the same account, hour, resource, usage type, operation and plan (the first such line in file order when several share them); a negation with no such line stays as an Adjustment row (reported) | unblended | 0 |
| RIFee, SavingsPlanRecurringFee | Purchase, Recurring; plus a Usage row, Committed, **Unused**, for the unused part | unblended; 0 | 0; unused amortized fee + unused recurring fee (RI), total commitment - used (SP) |
| SavingsPlanUpfrontFee, Fee with a reservation ARN | Purchase, One-Time | unblended | 0 |
| Fee (other) | Purchase, One-Time | unblended | unblended |
| Tax | Tax | unblended | unblended |
| Credit, *Discount (EDP, bundled, private rate, ...) | Credit | unblended | unblended |
| Refund, anything else | Adjustment | unblended | unblended |

Per delivery, sum(BilledCost) equals the files' sum of `line_item_unblended_cost`, and sum(EffectiveCost) equals
AWS's amortized cost (the CUR query library's formula), both computed straight from the files; the load fails
otherwise. Row counts differ by design (negations netted, Unused rows added) and are recorded, not compared.

Other columns: BillingAccountId = payer, SubAccountId = usage account (names from CUR 2.0), InvoiceId =
bill_invoice_id (empty until the bill is final), ChargePeriod = usage start/end, RegionId = product region code,
RegionName = product location, AvailabilityZone, ResourceId (the commitment ARN on Purchase and Unused rows),
SkuId = product SKU, SkuPriceId = pricing rate code, SkuMeter = product family, ListUnitPrice/ListCost = public
on-demand rate/cost, ContractedUnitPrice = unblended rate, PricingQuantity = usage amount in pricing unit,
ServiceName/Category/Subcategory from `services.py` by product code. ProviderName, PublisherName and
InvoiceIssuerName are "AWS" for AWS's own charges (Marketplace rows: PublisherName = the seller).
Tags: user tags without their `user:` prefix, AWS tags as `aws:<key>`, cost categories as `costCategory:<name>`.

Units: PricingUnit and ConsumedUnit are CUR's pricing unit in FOCUS Unit Format (`focus_unit`: Hrs -> Hours,
GB-Mo -> GB-Months, Lambda-GB-Second -> GB-Seconds). CommitmentDiscountQuantity/Unit: reservations in Hours
(usage amount; unused quantity on Unused rows; instances x term hours on the One-Time purchase), Savings Plans in
the billing currency (SP effective cost on covered usage, total commitment on the recurring fee, the rest on Unused).
Unused rows are priced in that quantity and unit at 0 (ListCost = ContractedCost = 0) and keep the fee line's SKU.

ResourceType: "<service>:<type>" as AWS's ARNs name it (`rds:db`, `ec2:instance` for `i-...`, `s3:bucket`), else
the product code. PricingCurrency* = the billing-currency figures (CUR prices in the billing currency).

AWS cannot fill (null): BillingAccountType, SubAccountType, ResourceName, CommitmentDiscountName (CUR carries no
names for commitments), CapacityReservation*, ChargeClass (CUR does not flag corrections of closed periods).
ConsumedUnit is the pricing unit.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import duckdb

from app.focus import DECIMAL_SQL, Column
from app.warehouse import StagedFile, Totals
from connectors.aws.services import OTHER, values_sql
from connectors.base import IngestError, PeriodStats
from connectors.focus.mapping import ColumnPlan, FilePlan, diagnose, value_expr
from connectors.focus.reader import OpenedFile, quote_ident, quote_str

# CUR 2.0 name -> kind. Legacy CUR columns match these by squashed name (see module docstring).
CUR_COLUMNS: dict[str, str] = {
    "identity_line_item_id": "string",
    "bill_bill_type": "string",
    "bill_billing_entity": "string",
    "bill_invoice_id": "string",
    "bill_payer_account_id": "string",
    "bill_payer_account_name": "string",
    "bill_billing_period_start_date": "datetime",
    "bill_billing_period_end_date": "datetime",
    "line_item_usage_account_id": "string",
    "line_item_usage_account_name": "string",
    "line_item_line_item_type": "string",
    "line_item_usage_start_date": "datetime",
    "line_item_usage_end_date": "datetime",
    "line_item_product_code": "string",
    "line_item_usage_type": "string",
    "line_item_operation": "string",
    "line_item_availability_zone": "string",
    "line_item_resource_id": "string",
    "line_item_usage_amount": "decimal",
    "line_item_currency_code": "string",
    "line_item_unblended_rate": "decimal",
    "line_item_unblended_cost": "decimal",
    "line_item_line_item_description": "string",
    "line_item_legal_entity": "string",
    "product_product_name": "string",
    "product_region_code": "string",
    "product_location": "string",
    "product_sku": "string",
    "product_product_family": "string",
    "pricing_public_on_demand_cost": "decimal",
    "pricing_public_on_demand_rate": "decimal",
    "pricing_term": "string",
    "pricing_unit": "string",
    "pricing_rate_code": "string",
    "reservation_reservation_a_r_n": "string",
    "reservation_effective_cost": "decimal",
    "reservation_unused_amortized_upfront_fee_for_billing_period": "decimal",
    "reservation_unused_recurring_fee": "decimal",
    "reservation_unused_quantity": "decimal",
    "reservation_start_time": "string",
    "reservation_end_time": "string",
    "savings_plan_savings_plan_a_r_n": "string",
    "savings_plan_savings_plan_effective_cost": "decimal",
    "savings_plan_total_commitment_to_date": "decimal",
    "savings_plan_used_commitment": "decimal",
}
REQUIRED = (
    "bill_payer_account_id", "bill_billing_period_start_date", "bill_billing_period_end_date",
    "line_item_line_item_type", "line_item_usage_start_date", "line_item_usage_end_date",
    "line_item_product_code", "line_item_currency_code", "line_item_unblended_cost",
)
# Older legacy CURs name the region code column product/region.
FALLBACKS = {"product_region_code": ("product_region",)}
_SQUASH = re.compile(r"[^a-z0-9]")
_TAG_COLUMN = re.compile(r"^(resourceTags/|resource_tags_)(.+)$", re.IGNORECASE)
_COST_CATEGORY_COLUMN = re.compile(r"^(costCategory/|cost_category_)(.+)$", re.IGNORECASE)
_DEC = DECIMAL_SQL
NISE_NONE = ("None",)
MAP_TYPE = "MAP(VARCHAR, VARCHAR)"


def squash(name: str) -> str:
    return _SQUASH.sub("", name.lower())


_BY_SQUASH = {squash(c): c for c in CUR_COLUMNS}


@dataclass
class CurPlan:
    """One file's CUR columns, matched, plus its tag and cost-category columns."""

    opened: OpenedFile
    file_plan: FilePlan  # canonical name -> ColumnPlan, for typed expressions and row-level diagnosis
    tag_columns: dict[str, str] = field(default_factory=dict)  # tag key -> column
    tag_maps: list[str] = field(default_factory=list)  # CUR 2.0 map columns: resource_tags, cost_category
    notes: list[str] = field(default_factory=list)


def plan_file(opened: OpenedFile) -> CurPlan:
    plans: dict[str, ColumnPlan] = {}
    tags, maps = {}, []
    for name, typ in opened.columns.items():
        if name.lower() in ("resource_tags", "cost_category"):
            maps.append(name)
            continue
        m = _TAG_COLUMN.match(name)
        if m:
            tags[_tag_key(m.group(2))] = name
            continue
        m = _COST_CATEGORY_COLUMN.match(name)
        if m:
            tags[f"costCategory:{m.group(2)}"] = name
            continue
        canonical = _BY_SQUASH.get(squash(name))
        if canonical is None:
            canonical = next((c for c, alts in FALLBACKS.items() if squash(name) in map(squash, alts)), None)
        if canonical is None or canonical in plans:
            continue
        kind = CUR_COLUMNS[canonical]
        column = Column(canonical, kind, "M" if canonical in REQUIRED else "C", "cur", canonical not in REQUIRED)
        # koku-nise writes Python's None into empty numeric cells; real CURs leave them empty.
        null_texts = NISE_NONE if kind == "decimal" and typ == "VARCHAR" else ()
        plans[canonical] = ColumnPlan(column, name, typ, null_texts)
    missing = [c for c in REQUIRED if c not in plans]
    if missing:
        raise IngestError(f"not a Cost and Usage Report: missing column{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)}", file=opened.uri)
    return CurPlan(opened, FilePlan(opened, plans), tags, maps, list(opened.notes))


def _tag_key(raw: str) -> str:
    """resourceTags/user:team -> team, resourceTags/aws:createdBy -> aws:createdBy (Athena: user_team, aws_...)."""
    for prefix in ("user:", "user_"):
        if raw.startswith(prefix):
            return raw[len(prefix):]
    if raw.startswith("aws_"):
        return "aws:" + raw[4:]
    return raw


def _col(plan: CurPlan, name: str) -> str:
    """Typed SQL for a canonical column, or a typed NULL when the file lacks it."""
    cp = plan.file_plan.columns.get(name)
    if cp is None:
        return {"decimal": f"CAST(NULL AS {_DEC})", "datetime": "CAST(NULL AS TIMESTAMPTZ)"}.get(
            CUR_COLUMNS[name], "CAST(NULL AS VARCHAR)")
    return value_expr(cp)


def _tags_sql(plan: CurPlan) -> str:
    parts = []
    if plan.tag_columns:
        entries = ", ".join(
            f"{{'key': {quote_str(k)}, 'value': CAST({quote_ident(c)} AS VARCHAR)}}"
            for k, c in sorted(plan.tag_columns.items())
        )
        parts.append(f"map_from_entries(list_filter([{entries}], lambda e: coalesce(e.value, '') <> ''))")
    for name in plan.tag_maps:
        typ = plan.opened.columns[name]
        raw = quote_ident(name)
        as_map = f"CAST(json_transform({raw}, '\"{MAP_TYPE}\"') AS {MAP_TYPE})" if typ == "VARCHAR" \
            else f"CAST({raw} AS {MAP_TYPE})"
        rename = ("lambda e: {'key': 'costCategory:' || e.key, 'value': e.value}" if name.lower() == "cost_category"
                  else "lambda e: {'key': CASE WHEN starts_with(e.key, 'user:') OR starts_with(e.key, 'user_') "
                       "THEN e.key[6:] WHEN starts_with(e.key, 'aws_') THEN 'aws:' || e.key[5:] ELSE e.key END, "
                       "'value': e.value}")
        parts.append(f"map_from_entries(list_transform(list_filter(map_entries(coalesce({as_map}, MAP {{}})), "
                     f"lambda e: coalesce(e.value, '') <> ''), {rename}))")
    if not parts:
        return f"CAST(NULL AS {MAP_TYPE})"
    merged = parts[0] if len(parts) == 1 else f"map_concat({', '.join(parts)})"
    return f"CASE WHEN cardinality({merged}) = 0 THEN NULL ELSE {merged} END"


def normalized_sql(plan: CurPlan, extra: str = "") -> str:
    """The file as CUR 2.0 columns, typed, with `tags` and `x_SourceFile` (and `extra` select items)."""
    cols = ", ".join(f"{_col(plan, name)} AS {name}" for name in CUR_COLUMNS)
    return (f"SELECT {cols}, {_tags_sql(plan)} AS tags, {quote_str(plan.opened.uri)} AS x_SourceFile{extra} "
            f"FROM {plan.opened.relation}")


# AWS's amortized cost of one line (the formula of the CUR query library), straight from the file's columns.
AMORTIZED = """CASE line_item_line_item_type
    WHEN 'SavingsPlanCoveredUsage' THEN coalesce(savings_plan_savings_plan_effective_cost, 0)
    WHEN 'SavingsPlanRecurringFee' THEN coalesce(savings_plan_total_commitment_to_date, 0)
                                        - coalesce(savings_plan_used_commitment, 0)
    WHEN 'SavingsPlanNegation' THEN 0
    WHEN 'SavingsPlanUpfrontFee' THEN 0
    WHEN 'DiscountedUsage' THEN coalesce(reservation_effective_cost, 0)
    WHEN 'RIFee' THEN coalesce(reservation_unused_amortized_upfront_fee_for_billing_period, 0)
                      + coalesce(reservation_unused_recurring_fee, 0)
    ELSE CASE WHEN line_item_line_item_type = 'Fee' AND coalesce(reservation_reservation_a_r_n, '') <> ''
              THEN 0 ELSE line_item_unblended_cost END
END"""


def raw_stats(con: duckdb.DuckDBPyConnection, plan: CurPlan) -> list[PeriodStats]:
    """Per billing period: line count, sum of unblended cost, sum of amortized cost, read from the file."""
    none_cells = " + ".join(
        f"CAST(coalesce({quote_ident(p.source)} = 'None', false) AS INTEGER)"
        for p in plan.file_plan.columns.values() if p.null_texts
    ) or "0"
    sql = (f"SELECT bill_billing_period_start_date, max(bill_billing_period_end_date), count(*), "
           f"sum(line_item_unblended_cost), sum({AMORTIZED}), sum(none_cells) "
           f"FROM ({normalized_sql(plan, f', {none_cells} AS none_cells')}) GROUP BY 1 ORDER BY 1")
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error as exc:
        raise diagnose(con, plan.file_plan, exc) from exc
    if any(start is None for start, *_ in rows):
        raise diagnose(con, plan.file_plan, None)
    nones = sum(r[5] or 0 for r in rows)
    if nones:
        plan.notes.append(f"{nones} numeric cells held the text None and were read as null (a koku-nise artefact; "
                          f"real CURs leave them empty)")
    return [PeriodStats(start, end, Totals(n, billed or 0, amortized or 0))
            for start, end, n, billed, amortized, _ in rows]


# The key that pairs a Savings Plan negation with its covered usage line: same usage account, hour, resource,
# usage type, operation and plan. Held as a 128-bit hash of those columns (two independent 64-bit hashes), so the
# netting table stays small and fixed-size however long the IDs and ARNs are; a collision would need ~2^64 keys.
_SP_PARTS = ("line_item_usage_account_id, line_item_usage_start_date, coalesce(line_item_resource_id, ''), "
             "coalesce(line_item_usage_type, ''), coalesce(line_item_operation, ''), "
             "coalesce(savings_plan_savings_plan_a_r_n, '')")
SP_KEY = f"((hash({_SP_PARTS})::UHUGEINT << 64) + hash({_SP_PARTS}, 'sp-key')::UHUGEINT)"


def focus_unit(expr: str) -> str:
    """SQL turning an AWS pricing unit into FOCUS Unit Format: Hrs -> Hours, GB-Mo -> GB-Months,
    Lambda-GB-Second -> GB-Seconds, ReadCapacityUnit-Hrs -> ReadCapacityUnit-Hours. Other units (GB, Requests,
    IOs, vCPU-Hours, ...) already conform and pass unchanged."""
    out = f"regexp_replace({expr}, '^Lambda-GB-Seconds?$', 'GB-Seconds')"
    out = f"regexp_replace({out}, '(^|-)(Hrs|Hr|Hour)$', '\\1Hours')"
    out = f"regexp_replace({out}, '(^|-)(Mo|Month)$', '\\1Months')"
    out = f"regexp_replace({out}, '(^|-)(Second)$', '\\1Seconds')"
    return out


# CommitmentDiscountQuantity in CommitmentDiscountUnit (focus.md 3.2): reservations count hours, Savings Plans
# count commitment spend in the billing currency. A reservation's One-Time purchase eligible over its whole term is
# the reserved instance count times the term's hours (from reservation_start_time/end_time; null without them).
COMMITMENT_QUANTITY = """CASE
    WHEN commitment IS NULL OR category NOT IN ('Usage', 'Purchase') THEN NULL
    WHEN commitment = reservation_reservation_a_r_n THEN CASE
        WHEN kind = 'unused' THEN reservation_unused_quantity
        WHEN line_item_line_item_type = 'Fee' THEN CAST(line_item_usage_amount * date_diff('hour',
             try_cast(reservation_start_time AS TIMESTAMPTZ), try_cast(reservation_end_time AS TIMESTAMPTZ)) AS {dec})
        ELSE line_item_usage_amount END
    WHEN kind = 'unused' THEN coalesce(savings_plan_total_commitment_to_date, 0) - coalesce(savings_plan_used_commitment, 0)
    WHEN line_item_line_item_type = 'SavingsPlanCoveredUsage' THEN savings_plan_savings_plan_effective_cost
    WHEN line_item_line_item_type = 'SavingsPlanRecurringFee' THEN savings_plan_total_commitment_to_date
    ELSE coalesce(savings_plan_total_commitment_to_date, line_item_unblended_cost) END"""


# ResourceType from the resource's own ID, as AWS names resource types in ARNs ("<service>:<type>"): ARNs give
# theirs, EC2 IDs their prefix, S3 buckets are buckets; any other ID falls back to the product code.
RESOURCE_TYPE = """CASE
    WHEN ResourceId IS NULL THEN NULL
    WHEN starts_with(ResourceId, 'arn:aws') AND split_part(ResourceId, ':', 3) = 's3' THEN 's3:bucket'
    WHEN starts_with(ResourceId, 'arn:aws')
         THEN split_part(ResourceId, ':', 3) || ':' || regexp_extract(split_part(ResourceId, ':', 6), '^[^/]+')
    WHEN regexp_matches(ResourceId, '^i-[0-9a-f]+$') THEN 'ec2:instance'
    WHEN regexp_matches(ResourceId, '^vol-[0-9a-f]+$') THEN 'ec2:volume'
    WHEN regexp_matches(ResourceId, '^snap-[0-9a-f]+$') THEN 'ec2:snapshot'
    WHEN regexp_matches(ResourceId, '^nat-[0-9a-f]+$') THEN 'ec2:natgateway'
    WHEN regexp_matches(ResourceId, '^eipalloc-[0-9a-f]+$') THEN 'ec2:elastic-ip'
    WHEN line_item_product_code = 'AmazonS3' THEN 's3:bucket'
    ELSE line_item_product_code END"""

COMMITMENT_UNIT = """CASE WHEN commitment IS NULL OR category NOT IN ('Usage', 'Purchase') THEN NULL
         WHEN commitment = reservation_reservation_a_r_n THEN 'Hours'
         ELSE line_item_currency_code END"""


SP_TYPES = "('SavingsPlanCoveredUsage', 'SavingsPlanNegation')"
# Multi-file scans of a delivery's same-shaped Parquet parts: one per core this process may use (_lines_sql).
SCANS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _lines_sql(plans: list[CurPlan]) -> str:
    """The delivery's normalized lines with line_no, a number unique to each line (file index, then the line's row
    in its file). Parquet parts with the same columns (a CUR 2.0 export's parts) are read by a few multi-file
    read_parquets, one per core, each taking every k-th part: a UNION ALL of one scan per part keeps every part's
    read buffers at once, outside what DuckDB can spill, and a single scan runs the whole INSERT on one thread,
    because the warehouse's INSERT numbers the lines with nextval(), which DuckDB does not run in parallel within
    one pipeline; each branch of a UNION ALL is its own pipeline (bench/RESULTS.md, issue 13)."""
    first = plans[0]
    one = (all(p.opened.kind == "parquet" and p.opened.columns == first.opened.columns for p in plans)
           and len({normalized_sql(p).replace(p.opened.relation, "").replace(quote_str(p.opened.uri), "")
                    for p in plans}) == 1)
    if len(plans) > 1 and one:
        k = min(len(plans), SCANS)
        scans = []
        for j in range(k):
            group = plans[j::k]  # the m-th file of scan j is part j + k*m: line_no stays the part's index
            paths = ", ".join(quote_str(re.fullmatch(r"read_parquet\('((?:[^']|'')*)', .*", p.opened.relation, re.S)
                                        .group(1).replace("''", "'")) for p in group)
            relation = f"read_parquet([{paths}], file_row_number = true, hive_partitioning = false)"
            uris = "[" + ", ".join(quote_str(p.opened.uri) for p in group) + "]"
            sql = normalized_sql(first, f", ({j} + {k} * CAST(file_index AS BIGINT)) * 1000000000000 "
                                        "+ file_row_number + 1 AS line_no")
            source = f"{uris}[CAST(file_index AS BIGINT) + 1] AS x_SourceFile"
            scans.append(sql.replace(first.opened.relation, relation)
                         .replace(f"{quote_str(first.opened.uri)} AS x_SourceFile", source))
        return " UNION ALL ".join(f"({sql})" for sql in scans)
    return " UNION ALL BY NAME ".join(
        f"({normalized_sql(p, f', {i} * 1000000000000 + CAST({p.opened.row_number} AS BIGINT) AS line_no')})"
        for i, p in enumerate(plans))


def delivery_select(plans: list[CurPlan]) -> StagedFile:
    """One SELECT over all files of a delivery producing warehouse columns (including x_SourceFile)."""
    union = _lines_sql(plans)
    # Parquet parts are re-read for each use of `n` (column pruning keeps the netting scan narrow); CSV is parsed
    # once and held (spilling past memory_limit). Netting joins the wide line stream to a narrow per-key summary,
    # so memory grows with the number of Savings Plan keys, never with the width of the rows (bench/cur2_bench.py).
    materialized = "NOT MATERIALIZED" if all(p.opened.kind == "parquet" for p in plans) else "MATERIALIZED"
    keyed = f"SELECT *, CASE WHEN line_item_line_item_type IN {SP_TYPES} THEN {SP_KEY} END AS sp_key FROM ({union})"
    sql = f"""
WITH n AS {materialized} (
    {keyed}
),
-- Per Savings Plan key: the negations' sum, and the one covered line that takes it (the first in file order, so
-- exactly one line nets however many share the key). Fixed-size aggregate states, so the table can spill.
sp AS (
    SELECT sp_key,
           sum(line_item_unblended_cost) FILTER (WHERE line_item_line_item_type = 'SavingsPlanNegation') AS negated,
           min(line_no) FILTER (WHERE line_item_line_item_type = 'SavingsPlanCoveredUsage') AS taker
    FROM n WHERE sp_key IS NOT NULL GROUP BY sp_key
),
parts AS (
    SELECT n.* EXCLUDE (line_no),
           CASE WHEN line_item_line_item_type = 'SavingsPlanNegation' THEN 'negation' ELSE 'line' END AS kind,
           line_item_unblended_cost
           + CASE WHEN line_item_line_item_type = 'SavingsPlanCoveredUsage' AND sp.taker = n.line_no
                  THEN coalesce(sp.negated, 0) ELSE 0 END AS billed
    FROM n LEFT JOIN sp ON n.sp_key = sp.sp_key
    WHERE NOT (line_item_line_item_type = 'SavingsPlanNegation' AND sp.taker IS NOT NULL)
    UNION ALL BY NAME
    SELECT n.* EXCLUDE (line_no), 'unused' AS kind, CAST(0 AS {_DEC}) AS billed FROM n
    WHERE (line_item_line_item_type = 'SavingsPlanRecurringFee'
           AND coalesce(savings_plan_total_commitment_to_date, 0) - coalesce(savings_plan_used_commitment, 0) <> 0)
       OR (line_item_line_item_type = 'RIFee'
           AND coalesce(reservation_unused_amortized_upfront_fee_for_billing_period, 0)
               + coalesce(reservation_unused_recurring_fee, 0) <> 0)
),
services (code, service_name, service_category, service_subcategory) AS (VALUES {values_sql()}),
typed AS (
    SELECT p.*, s.service_name, s.service_category, s.service_subcategory,
        CASE WHEN kind = 'unused' THEN 'Usage'
             WHEN kind = 'negation' THEN 'Adjustment'
             WHEN line_item_line_item_type IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage') THEN 'Usage'
             WHEN line_item_line_item_type IN ('RIFee', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee', 'Fee')
                  THEN 'Purchase'
             WHEN line_item_line_item_type = 'Tax' THEN 'Tax'
             WHEN line_item_line_item_type = 'Credit' OR line_item_line_item_type LIKE '%Discount' THEN 'Credit'
             ELSE 'Adjustment' END AS category,
        CASE WHEN coalesce(reservation_reservation_a_r_n, '') <> '' AND line_item_line_item_type
                  IN ('DiscountedUsage', 'RIFee', 'Fee') THEN reservation_reservation_a_r_n
             WHEN coalesce(savings_plan_savings_plan_a_r_n, '') <> '' AND line_item_line_item_type
                  IN ('SavingsPlanCoveredUsage', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee',
                      'SavingsPlanNegation') THEN savings_plan_savings_plan_a_r_n END AS commitment
    FROM parts p LEFT JOIN services s ON p.line_item_product_code = s.code
)
SELECT
    'AWS' AS ProviderName,
    CASE WHEN bill_billing_entity = 'AWS Marketplace' THEN coalesce(line_item_legal_entity, 'AWS Marketplace')
         ELSE 'AWS' END AS PublisherName,
    'AWS' AS InvoiceIssuerName,
    bill_invoice_id AS InvoiceId,
    bill_payer_account_id AS BillingAccountId,
    bill_payer_account_name AS BillingAccountName,
    line_item_usage_account_id AS SubAccountId,
    line_item_usage_account_name AS SubAccountName,
    bill_billing_period_start_date AS BillingPeriodStart,
    bill_billing_period_end_date AS BillingPeriodEnd,
    line_item_usage_start_date AS ChargePeriodStart,
    line_item_usage_end_date AS ChargePeriodEnd,
    category AS ChargeCategory,
    CASE WHEN kind = 'unused' THEN 'Unused ' || CASE WHEN line_item_line_item_type = 'RIFee'
              THEN 'Reserved Instance ' ELSE 'Savings Plan ' END || commitment
         ELSE line_item_line_item_description END AS ChargeDescription,
    CASE WHEN category = 'Usage' THEN 'Usage-Based'
         WHEN line_item_line_item_type IN ('RIFee', 'SavingsPlanRecurringFee') THEN 'Recurring'
         ELSE 'One-Time' END AS ChargeFrequency,
    billed AS BilledCost,
    CASE WHEN kind = 'unused' AND line_item_line_item_type = 'RIFee'
              THEN coalesce(reservation_unused_amortized_upfront_fee_for_billing_period, 0)
                   + coalesce(reservation_unused_recurring_fee, 0)
         WHEN kind = 'unused' THEN coalesce(savings_plan_total_commitment_to_date, 0)
                                   - coalesce(savings_plan_used_commitment, 0)
         WHEN kind = 'negation' THEN 0
         WHEN line_item_line_item_type IN ('RIFee', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee') THEN 0
         ELSE {AMORTIZED} END AS EffectiveCost,
    CASE WHEN kind = 'unused' THEN 0
         WHEN category = 'Usage' THEN coalesce(pricing_public_on_demand_cost, line_item_unblended_cost)
         WHEN category = 'Purchase' THEN line_item_unblended_cost
         ELSE billed END AS ListCost,
    CASE WHEN kind = 'unused' THEN 0
         WHEN line_item_line_item_type = 'DiscountedUsage'
              THEN coalesce(pricing_public_on_demand_cost, line_item_unblended_cost)
         WHEN category IN ('Usage', 'Purchase') THEN line_item_unblended_cost
         ELSE billed END AS ContractedCost,
    CASE WHEN kind = 'unused' THEN 0 WHEN category IN ('Usage', 'Purchase') THEN
         coalesce(pricing_public_on_demand_rate, line_item_unblended_rate) END AS ListUnitPrice,
    CASE WHEN kind = 'unused' THEN 0 WHEN category IN ('Usage', 'Purchase') THEN
         CASE WHEN line_item_line_item_type = 'DiscountedUsage'
              THEN coalesce(pricing_public_on_demand_rate, line_item_unblended_rate)
              ELSE line_item_unblended_rate END END AS ContractedUnitPrice,
    CASE WHEN kind IN ('unused', 'negation') THEN 'Committed'
         WHEN category <> 'Usage' AND category <> 'Purchase' THEN NULL
         WHEN line_item_line_item_type IN ('DiscountedUsage', 'SavingsPlanCoveredUsage') THEN 'Committed'
         WHEN pricing_term = 'Spot' OR line_item_usage_type LIKE '%SpotUsage%' THEN 'Dynamic'
         ELSE 'Standard' END AS PricingCategory,
    CASE WHEN kind = 'unused' THEN {COMMITMENT_QUANTITY.format(dec=_DEC)}
         WHEN category IN ('Usage', 'Purchase') AND pricing_unit IS NOT NULL
         THEN line_item_usage_amount END AS PricingQuantity,
    CASE WHEN kind = 'unused' THEN {COMMITMENT_UNIT}
         WHEN category IN ('Usage', 'Purchase') AND line_item_usage_amount IS NOT NULL
         THEN {focus_unit('pricing_unit')} END AS PricingUnit,
    line_item_currency_code AS BillingCurrency,
    line_item_currency_code AS PricingCurrency,
    ListUnitPrice AS PricingCurrencyListUnitPrice,
    ContractedUnitPrice AS PricingCurrencyContractedUnitPrice,
    EffectiveCost AS PricingCurrencyEffectiveCost,
    CASE WHEN kind = 'line' AND category = 'Usage' THEN line_item_usage_amount END AS ConsumedQuantity,
    CASE WHEN kind = 'line' AND category = 'Usage' AND line_item_usage_amount IS NOT NULL
         THEN {focus_unit('pricing_unit')} END AS ConsumedUnit,
    coalesce(service_name, product_product_name, line_item_product_code) AS ServiceName,
    coalesce(service_category, '{OTHER[0]}') AS ServiceCategory,
    coalesce(service_subcategory, '{OTHER[1]}') AS ServiceSubcategory,
    CASE WHEN category IN ('Usage', 'Purchase') AND kind <> 'negation' THEN product_sku END AS SkuId,
    CASE WHEN category IN ('Usage', 'Purchase') AND kind <> 'negation' THEN product_product_family END AS SkuMeter,
    CASE WHEN category IN ('Usage', 'Purchase') AND kind <> 'negation' THEN pricing_rate_code END AS SkuPriceId,
    CASE WHEN kind = 'unused' OR category = 'Purchase' THEN coalesce(commitment, line_item_resource_id)
         ELSE line_item_resource_id END AS ResourceId,
    {RESOURCE_TYPE} AS ResourceType,
    product_region_code AS RegionId,
    product_location AS RegionName,
    line_item_availability_zone AS AvailabilityZone,
    commitment AS CommitmentDiscountId,
    CASE WHEN commitment IS NULL THEN NULL
         WHEN commitment = reservation_reservation_a_r_n THEN 'Usage' ELSE 'Spend' END AS CommitmentDiscountCategory,
    CASE WHEN commitment IS NULL THEN NULL
         WHEN commitment = reservation_reservation_a_r_n THEN 'Reserved Instance'
         ELSE 'Savings Plan' END AS CommitmentDiscountType,
    CASE WHEN kind = 'unused' THEN 'Unused'
         WHEN commitment IS NOT NULL AND category = 'Usage' THEN 'Used' END AS CommitmentDiscountStatus,
    {COMMITMENT_QUANTITY.format(dec=_DEC)} AS CommitmentDiscountQuantity,
    CASE WHEN CommitmentDiscountQuantity IS NOT NULL THEN {COMMITMENT_UNIT} END AS CommitmentDiscountUnit,
    tags AS Tags,
    x_SourceFile
FROM typed"""
    return StagedFile(", ".join(p.opened.uri for p in plans), sql, provides_source_file=True)


def unmapped_notes(con: duckdb.DuckDBPyConnection, plans: list[CurPlan]) -> list[str]:
    """What the mapping could not place exactly: unknown product codes and line item types, lone negations."""
    from connectors.aws.services import AWS_SERVICES

    union = " UNION ALL BY NAME ".join(f"({normalized_sql(p)})" for p in plans)
    codes, types, no_arn = con.execute(
        f"SELECT list(DISTINCT line_item_product_code), list(DISTINCT line_item_line_item_type), "
        f"count(*) FILTER (WHERE (line_item_line_item_type = 'SavingsPlanCoveredUsage' "
        f"AND coalesce(savings_plan_savings_plan_a_r_n, '') = '') OR (line_item_line_item_type = 'DiscountedUsage' "
        f"AND coalesce(reservation_reservation_a_r_n, '') = '')) FROM ({union})"
    ).fetchone()
    notes = []
    if no_arn:
        notes.append(f"{no_arn} commitment-covered usage lines name no Savings Plan / reservation ARN; they are "
                     f"Committed without a CommitmentDiscountId")
    unknown = sorted(c for c in codes or [] if c and c not in AWS_SERVICES)
    if unknown:
        notes.append(f"product codes without a FOCUS category (filed under Other): {', '.join(unknown)}")
    known = {"Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation", "RIFee",
             "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee", "Fee", "Tax", "Credit", "Refund"}
    odd = sorted(t for t in types or [] if t and t not in known and not t.endswith("Discount"))
    if odd:
        notes.append(f"line item types mapped to Adjustment: {', '.join(odd)}")
    return notes
