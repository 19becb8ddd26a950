"""Azure Cost Management cost details (ActualCost, AmortizedCost exports) -> FOCUS, as DuckDB SQL over the files.

**Columns.** Header sets differ by agreement (EA PascalCase, MCA/CSP camelCase, pay-as-you-go), API version and
month. Every file's columns are matched to one canonical set through `COLUMNS`, an alias table compared without
case, spaces, `_` or `-` (`CostInBillingCurrency`, `costInBillingCurrency`, `Cost` and `PreTaxCost` are all
`cost`). A UTF-8 BOM is dropped by the reader. A file lacking a required column (date, cost, billing currency,
subscription) fails with an IngestError naming the file and listing what is missing and under which names it is
accepted; localized headers (German exports write `Abonnement-GUID (SubscriptionGuid)`) fail that way, with a hint.

**Values.** Money and quantities are read from the CSV text as DECIMAL(38,18), so Azure's float artefacts
(`2.3040000000000003`) keep every digit; Parquet DOUBLEs go through their shortest text form. Dates are
`MM/dd/yyyy` (EA, MCA), `yyyy-MM-dd` or ISO 8601; each row is one day, so ChargePeriod = [date, date + 1 day).
`Tags` is a JSON object, written with or without its braces (`"a": "b","c": "d"`), or `""` for none.
`AdditionalInfo` (JSON, same brace rule) becomes SkuPriceDetails when it parses, else null.

**Costs, per format.**

| format | BilledCost | EffectiveCost |
|---|---|---|
| `actual` (ActualCost export) | cost | cost (no amortization data: a commitment purchase keeps its cost) |
| `amortized` (AmortizedCost export) | 0 on commitment-covered usage and Unused rows, else cost | cost |
| `actual+amortized` (both exports) | the actual row's cost | the amortized row's cost |

`actual+amortized` joins the two datasets row by row: rows match on (date, subscription, resource id, meter,
ChargeType, PricingModel, commitment id, quantity, unit), the n-th row of a key in one file with the n-th of the
other (ordered by cost). A matched pair is ONE FOCUS row, described by the amortized row: BilledCost from actual,
EffectiveCost from amortized. A row only in actual (a reservation or savings plan purchase, a refund) keeps its
BilledCost with EffectiveCost 0 (amortized elsewhere). A row only in amortized (UnusedReservation,
UnusedSavingsPlan) has BilledCost 0 and its EffectiveCost. So Σ BilledCost = Σ actual cost and Σ EffectiveCost =
Σ amortized cost exactly, whatever matches; matched and unmatched counts are reported in the ledger.

**Other columns.**

| FOCUS | Azure |
|---|---|
| ProviderName | `Microsoft` |
| PublisherName | PublisherName (Marketplace publisher), else `Microsoft` |
| InvoiceIssuerName | partnerName (CSP), else `Microsoft` |
| BillingAccountId / Name | BillingAccountId, else billingProfileId (MCA), customerTenantId (CSP), SubscriptionId |
| SubAccountId / Name / Type | `/subscriptions/<SubscriptionId>` (as Azure's FocusCost writes it), SubscriptionName, `Subscription` |
| BillingPeriodStart / End | BillingPeriodStartDate / BillingPeriodEndDate + 1 day (Azure's end is inclusive); the date's month when absent |
| ChargeCategory | ChargeType: Usage, UnusedReservation, UnusedSavingsPlan -> Usage; Purchase -> Purchase; Refund -> Purchase with ChargeClass Correction; Tax; Credit; RoundingAdjustment and others -> Adjustment (reported); absent -> Usage |
| ChargeFrequency | Frequency: OneTime, Recurring, UsageBased |
| ChargeDescription | ProductName, else MeterName |
| PricingCategory | PricingModel: OnDemand -> Standard, Reservation/SavingsPlan -> Committed, Spot -> Dynamic |
| ListUnitPrice / ListCost | PayGPrice / paygCostInBillingCurrency, else PayGPrice x Quantity, else the row's cost |
| ContractedUnitPrice / ContractedCost | UnitPrice / UnitPrice x Quantity, else the row's cost |
| PricingQuantity / PricingUnit, ConsumedQuantity / ConsumedUnit | Quantity / UnitOfMeasure (Azure's unit text, e.g. `10 Hours`, not normalized) |
| PricingCurrency | pricingCurrency, else BillingCurrency; PricingCurrency* prices only when both currencies agree |
| ServiceName / Category / Subcategory | MeterCategory, through `SERVICES` (unknown: Other, reported) |
| SkuId / SkuPriceId / SkuMeter | ProductId, else PartNumber / MeterId / MeterName |
| ResourceId / Name / Type | ResourceId (lowercased: Azure's casing varies) / ResourceName, else the id's last segment / `<provider>/<type>` from the id |
| RegionId / RegionName / AvailabilityZone | ResourceLocation lowercased without spaces / Location, else the region's display name (`REGION_NAMES`), else ResourceLocation / AvailabilityZone |
| CommitmentDiscountId / Name | benefitId, else ReservationId / benefitName, else ReservationName (on Reservation/SavingsPlan rows) |
| CommitmentDiscountType / Category / Status | Reservation (Usage) or Savings Plan (Spend) / Used on covered usage, Unused on Unused* rows |
| Tags | Tags |

| x_ResourceGroupName / x_SkuMeterCategory / x_InvoiceSectionName | ResourceGroup / MeterCategory / InvoiceSectionName (the names Azure's FocusCost export gives them) |

Other Azure-only columns (MeterSubCategory, CostCenter, ...) have no warehouse column.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import duckdb

from app.focus import DECIMAL_SQL, Column
from app.warehouse import StagedFile, Totals
from connectors.base import IngestError, PeriodStats
from connectors.focus.mapping import ColumnPlan, FilePlan, diagnose, value_expr
from connectors.focus.reader import OpenedFile, quote_str

_DEC = DECIMAL_SQL
MAP_TYPE = "MAP(VARCHAR, VARCHAR)"

# canonical name -> (kind, accepted header names). Kinds: decimal, date, text, json.
COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "date": ("date", ("Date", "UsageDate", "UsageDateTime")),
    "cost": ("decimal", ("CostInBillingCurrency", "Cost", "PreTaxCost")),
    "billing_currency": ("text", ("BillingCurrencyCode", "BillingCurrency", "Currency")),
    "subscription_id": ("text", ("SubscriptionId", "SubscriptionGuid")),
    "subscription_name": ("text", ("SubscriptionName",)),
    "billing_account_id": ("text", ("BillingAccountId",)),
    "billing_account_name": ("text", ("BillingAccountName",)),
    "billing_profile_id": ("text", ("BillingProfileId",)),
    "billing_profile_name": ("text", ("BillingProfileName",)),
    "billing_period_start": ("date", ("BillingPeriodStartDate", "BillingPeriodStart")),
    "billing_period_end": ("date", ("BillingPeriodEndDate", "BillingPeriodEnd")),
    "invoice_id": ("text", ("InvoiceId",)),
    "invoice_section_name": ("text", ("InvoiceSectionName", "InvoiceSection")),
    "partner_name": ("text", ("PartnerName",)),
    "customer_tenant_id": ("text", ("CustomerTenantId",)),
    "customer_name": ("text", ("CustomerName",)),
    "resource_group": ("text", ("ResourceGroup", "ResourceGroupName")),
    "resource_id": ("text", ("ResourceId", "InstanceId", "InstanceName")),
    "resource_name": ("text", ("ResourceName",)),
    "resource_location": ("text", ("ResourceLocation",)),
    "location": ("text", ("Location",)),
    "availability_zone": ("text", ("AvailabilityZone",)),
    "meter_id": ("text", ("MeterId",)),
    "meter_name": ("text", ("MeterName",)),
    "meter_category": ("text", ("MeterCategory",)),
    "meter_subcategory": ("text", ("MeterSubCategory",)),
    "product_name": ("text", ("ProductName", "Product")),
    "product_id": ("text", ("ProductId",)),
    "part_number": ("text", ("PartNumber",)),
    "consumed_service": ("text", ("ConsumedService",)),
    "quantity": ("decimal", ("Quantity", "UsageQuantity")),
    "unit": ("text", ("UnitOfMeasure",)),
    "effective_price": ("decimal", ("EffectivePrice", "ResourceRate")),
    "unit_price": ("decimal", ("UnitPrice",)),
    "payg_price": ("decimal", ("PayGPrice", "MarketPrice")),
    "payg_cost": ("decimal", ("PaygCostInBillingCurrency",)),
    "pricing_currency": ("text", ("PricingCurrency", "PricingCurrencyCode")),
    "charge_type": ("text", ("ChargeType",)),
    "frequency": ("text", ("Frequency",)),
    "pricing_model": ("text", ("PricingModel",)),
    "reservation_id": ("text", ("ReservationId",)),
    "reservation_name": ("text", ("ReservationName",)),
    "benefit_id": ("text", ("BenefitId",)),
    "benefit_name": ("text", ("BenefitName",)),
    "publisher_name": ("text", ("PublisherName",)),
    "tags": ("json", ("Tags",)),
    "additional_info": ("json", ("AdditionalInfo",)),
}
REQUIRED = ("date", "cost", "billing_currency", "subscription_id")
_SQUASH = re.compile(r"[^a-z0-9]")


def squash(name: str) -> str:
    return _SQUASH.sub("", name.lower())


ALIASES: dict[str, str] = {squash(alias): canonical for canonical, (_, names) in COLUMNS.items() for alias in names}

# MeterCategory -> (ServiceCategory, ServiceSubcategory), FOCUS 1.2 pairs. ServiceName is the meter category.
# Azure region ids (ResourceLocation without spaces, lowercased) -> the display names Azure's own FOCUS export
# uses as RegionName, for cost-details exports whose header set has no Location column (EA).
REGION_NAMES: dict[str, str] = {
    "eastus": "East US", "eastus2": "East US 2", "centralus": "Central US", "northcentralus": "North Central US",
    "southcentralus": "South Central US", "westcentralus": "West Central US", "westus": "West US",
    "westus2": "West US 2", "westus3": "West US 3", "canadacentral": "Canada Central", "canadaeast": "Canada East",
    "brazilsouth": "Brazil South", "mexicocentral": "Mexico Central", "northeurope": "North Europe",
    "westeurope": "West Europe", "uksouth": "UK South", "ukwest": "UK West", "francecentral": "France Central",
    "francesouth": "France South", "germanywestcentral": "Germany West Central", "germanynorth": "Germany North",
    "switzerlandnorth": "Switzerland North", "switzerlandwest": "Switzerland West", "norwayeast": "Norway East",
    "norwaywest": "Norway West", "swedencentral": "Sweden Central", "polandcentral": "Poland Central",
    "italynorth": "Italy North", "spaincentral": "Spain Central", "eastasia": "East Asia",
    "southeastasia": "Southeast Asia", "japaneast": "Japan East", "japanwest": "Japan West",
    "koreacentral": "Korea Central", "koreasouth": "Korea South", "centralindia": "Central India",
    "southindia": "South India", "westindia": "West India", "australiaeast": "Australia East",
    "australiasoutheast": "Australia Southeast", "australiacentral": "Australia Central", "uaenorth": "UAE North",
    "uaecentral": "UAE Central", "qatarcentral": "Qatar Central", "israelcentral": "Israel Central",
    "southafricanorth": "South Africa North", "southafricawest": "South Africa West",
    "newzealandnorth": "New Zealand North",
}


SERVICES: dict[str, tuple[str, str]] = {
    "Virtual Machines": ("Compute", "Virtual Machines"),
    "Virtual Machines Licenses": ("Compute", "Virtual Machines"),
    "Azure Kubernetes Service": ("Compute", "Containers"),
    "Container Instances": ("Compute", "Containers"),
    "Container Registry": ("Compute", "Containers"),
    "Azure Container Apps": ("Compute", "Containers"),
    "Functions": ("Compute", "Serverless Compute"),
    "Cloud Services": ("Compute", "Other (Compute)"),
    "Batch": ("Compute", "Other (Compute)"),
    "Azure Virtual Desktop": ("Compute", "End User Computing"),
    "Windows Virtual Desktop": ("Compute", "End User Computing"),
    "Azure App Service": ("Web", "Application Platforms"),
    "Storage": ("Storage", "Storage Platforms"),
    "Backup": ("Storage", "Backup Storage"),
    "Azure NetApp Files": ("Storage", "File Storage"),
    "Bandwidth": ("Networking", "Network Connectivity"),
    "Virtual Network": ("Networking", "Network Infrastructure"),
    "Load Balancer": ("Networking", "Application Networking"),
    "Application Gateway": ("Networking", "Application Networking"),
    "VPN Gateway": ("Networking", "Network Connectivity"),
    "ExpressRoute": ("Networking", "Network Connectivity"),
    "NAT Gateway": ("Networking", "Network Routing"),
    "Traffic Manager": ("Networking", "Network Routing"),
    "Azure DNS": ("Networking", "Network Routing"),
    "Content Delivery Network": ("Networking", "Content Delivery"),
    "Azure Front Door Service": ("Networking", "Content Delivery"),
    "Azure Firewall": ("Networking", "Network Security"),
    "Azure Bastion": ("Networking", "Network Security"),
    "Network Watcher": ("Networking", "Other (Networking)"),
    "SQL Database": ("Databases", "Relational Databases"),
    "SQL Managed Instance": ("Databases", "Relational Databases"),
    "Azure Database for PostgreSQL": ("Databases", "Relational Databases"),
    "Azure Database for MySQL": ("Databases", "Relational Databases"),
    "Azure Database for MariaDB": ("Databases", "Relational Databases"),
    "Azure Cosmos DB": ("Databases", "NoSQL Databases"),
    "Redis Cache": ("Databases", "Caching"),
    "Azure Synapse Analytics": ("Analytics", "Analytics Platforms"),
    "Azure Databricks": ("Analytics", "Analytics Platforms"),
    "Azure Data Explorer": ("Analytics", "Analytics Platforms"),
    "Azure Data Factory v2": ("Analytics", "Data Processing"),
    "HDInsight": ("Analytics", "Data Processing"),
    "Stream Analytics": ("Analytics", "Streaming Analytics"),
    "Power BI Embedded": ("Analytics", "Business Intelligence"),
    "Azure Cognitive Search": ("Analytics", "Search"),
    "Event Hubs": ("Integration", "Messaging"),
    "Service Bus": ("Integration", "Messaging"),
    "Event Grid": ("Integration", "Messaging"),
    "Logic Apps": ("Integration", "Workflow Orchestration"),
    "API Management": ("Integration", "API Management"),
    "Log Analytics": ("Management and Governance", "Observability"),
    "Azure Monitor": ("Management and Governance", "Observability"),
    "Application Insights": ("Management and Governance", "Observability"),
    "Insight and Analytics": ("Management and Governance", "Observability"),
    "Automation": ("Management and Governance", "Other (Management and Governance)"),
    "Azure Site Recovery": ("Management and Governance", "Disaster Recovery"),
    "Azure Support": ("Management and Governance", "Support"),
    "Key Vault": ("Security", "Secret Management"),
    "Microsoft Defender for Cloud": ("Security", "Security Posture Management"),
    "Security Center": ("Security", "Security Posture Management"),
    "Microsoft Sentinel": ("Security", "Threat Detection and Response"),
    "Sentinel": ("Security", "Threat Detection and Response"),
    "Azure Active Directory": ("Identity", "Identity and Access Management"),
    "Microsoft Entra ID": ("Identity", "Identity and Access Management"),
    "Azure Active Directory B2C": ("Identity", "Identity and Access Management"),
    "Cognitive Services": ("AI and Machine Learning", "AI Platforms"),
    "Azure OpenAI": ("AI and Machine Learning", "Generative AI"),
    "Azure Machine Learning": ("AI and Machine Learning", "Machine Learning"),
    "Machine Learning Studio": ("AI and Machine Learning", "Machine Learning"),
    "Azure Bot Service": ("AI and Machine Learning", "Bots"),
    "IoT Hub": ("Internet of Things", "IoT Platforms"),
    "Azure DevOps": ("Developer Tools", "Developer Platforms"),
    "Visual Studio Subscription": ("Developer Tools", "Development Environments"),
    "Media Services": ("Media", "Media Streaming"),
    "Azure Arc": ("Multicloud", "Multicloud Integration"),
    "Azure Database Migration Service": ("Migration", "Data Migration"),
    "Azure Migrate": ("Migration", "Resource Migration"),
}
OTHER = ("Other", "Other (Other)")


@dataclass
class AzurePlan:
    """One cost-details file's columns, matched to the canonical set."""

    opened: OpenedFile
    file_plan: FilePlan  # canonical name -> ColumnPlan, for typed expressions and row-level diagnosis
    role: str  # actual | amortized
    notes: list[str] = field(default_factory=list)


def plan_file(opened: OpenedFile, role: str) -> AzurePlan:
    plans: dict[str, ColumnPlan] = {}
    for name, typ in opened.columns.items():
        canonical = ALIASES.get(squash(name))
        if canonical is None or canonical in plans:
            continue
        kind = COLUMNS[canonical][0]
        # Dates are parsed by `_date_sql`, not by the FOCUS checks (which know ISO 8601 only): kind "string" here.
        focus_kind = {"decimal": "decimal"}.get(kind, "string")
        column = Column(canonical, focus_kind, "M" if canonical in REQUIRED else "C", "azure",
                        canonical not in REQUIRED)
        plans[canonical] = ColumnPlan(column, name, typ)
    missing = [c for c in REQUIRED if c not in plans]
    if missing:
        wanted = "; ".join(f"{c} ({' / '.join(COLUMNS[c][1])})" for c in missing)
        hint = ""
        if any(re.search(r"\(\w+\)\s*$", n) for n in opened.columns):
            hint = (" — the headers look localized (e.g. 'Abonnement-GUID (SubscriptionGuid)'): create the export "
                    "with English column names")
        raise IngestError(f"not an Azure cost-details export: missing column{'s' if len(missing) > 1 else ''} "
                          f"{wanted}{hint}", file=opened.uri, row=0)
    return AzurePlan(opened, FilePlan(opened, plans), role, list(opened.notes))


# -- typed canonical columns -------------------------------------------------------------------------------------
def _date_sql(p: ColumnPlan) -> str:
    """MM/dd/yyyy (EA, MCA), yyyy-MM-dd and ISO 8601 text, or a typed date, as TIMESTAMPTZ (null if unreadable)."""
    if p.source_type != "VARCHAR":
        return f"TRY_CAST({p.ref} AS TIMESTAMPTZ)"
    v = f"trim({p.ref})"
    return (f"CASE WHEN {v} LIKE '%/%' THEN CAST(try_strptime(split_part({v}, ' ', 1), '%m/%d/%Y') AS TIMESTAMPTZ) "
            f"ELSE TRY_CAST({v} AS TIMESTAMPTZ) END")


def _object_text(ref: str) -> str:
    """A JSON object's text, its braces added when Azure left them out; NULL for '', '""' and '{}'."""
    t = f"trim({ref})"
    return (f"CASE WHEN {ref} IS NULL OR {t} IN ('', '\"\"', '{{}}') THEN NULL "
            f"WHEN starts_with({t}, '{{') THEN {t} ELSE '{{' || {t} || '}}' END")


def _tags_sql(p: ColumnPlan) -> str:
    if p.source_type.startswith("MAP"):
        return f"CAST({p.ref} AS {MAP_TYPE})"
    return f"CAST(json_transform({_object_text(p.ref)}, '\"{MAP_TYPE}\"') AS {MAP_TYPE})"


def _col(plan: AzurePlan, name: str) -> str:
    """Typed SQL for a canonical column, or a typed NULL when the file lacks it."""
    kind = COLUMNS[name][0]
    p = plan.file_plan.columns.get(name)
    if p is None:
        return {"decimal": f"CAST(NULL AS {_DEC})", "date": "CAST(NULL AS TIMESTAMPTZ)",
                "json": f"CAST(NULL AS {MAP_TYPE})" if name == "tags" else "CAST(NULL AS VARCHAR)"}.get(
            kind, "CAST(NULL AS VARCHAR)")
    if kind == "date":
        return _date_sql(p)
    if name == "tags":
        return _tags_sql(p)
    if name == "additional_info":
        return f"CAST(TRY(json({_object_text(p.ref)})) AS VARCHAR)"
    return value_expr(p)


def extra_checks(plan: AzurePlan) -> list[tuple[ColumnPlan, str, str]]:
    """Row checks the FOCUS diagnosis does not know: Azure's date forms and brace-less tag objects."""
    out = []
    for name, p in plan.file_plan.columns.items():
        if COLUMNS[name][0] == "date":
            out.append((p, f"{p.ref} IS NOT NULL AND trim(CAST({p.ref} AS VARCHAR)) <> '' AND ({_date_sql(p)}) IS NULL",
                        "is not a date (MM/dd/yyyy, yyyy-MM-dd or ISO 8601)"))
        elif name == "tags" and p.source_type == "VARCHAR":
            out.append((p, f"{_object_text(p.ref)} IS NOT NULL AND TRY({_tags_sql(p)}) IS NULL",
                        "is not a JSON object of tags"))
    return out


def normalized_sql(plan: AzurePlan) -> str:
    """The file as canonical columns, typed, with its billing period, `role` and `x_SourceFile`."""
    cols = ", ".join(f"{_col(plan, name)} AS {name}" for name in COLUMNS)
    info = plan.file_plan.columns.get("additional_info")
    bad_info = "false" if info is None else \
        f"({_object_text(info.ref)} IS NOT NULL AND TRY(json({_object_text(info.ref)})) IS NULL)"
    return f"""SELECT *,
        coalesce(billing_period_start, date_trunc('month', date)) AS bp_start,
        CASE WHEN billing_period_end IS NULL THEN date_trunc('month', date) + INTERVAL 1 MONTH
             WHEN day(billing_period_end) = 1 AND billing_period_end > billing_period_start THEN billing_period_end
             ELSE billing_period_end + INTERVAL 1 DAY END AS bp_end
    FROM (SELECT {cols}, {bad_info} AS bad_info, {quote_str(plan.role)} AS role,
                 {quote_str(plan.opened.uri)} AS x_SourceFile
          FROM {plan.opened.relation})"""


# Commitment-covered usage and unused commitment rows: billed 0 in Azure's actual view.
COMMITMENT_ROW = """(lower(coalesce(charge_type, '')) IN ('unusedreservation', 'unusedsavingsplan')
    OR (lower(coalesce(charge_type, 'usage')) = 'usage' AND lower(coalesce(pricing_model, '')) IN ('reservation', 'savingsplan')))"""


def cost_exprs(fmt: str, role: str) -> tuple[str, str]:
    """(BilledCost, EffectiveCost) of one row of a file, straight from its cost column."""
    if fmt == "actual":
        return "cost", "cost"
    if fmt == "amortized":
        return f"CASE WHEN {COMMITMENT_ROW} THEN CAST(0 AS {_DEC}) ELSE cost END", "cost"
    # actual+amortized: billed comes from the actual file only, effective from the amortized file only.
    zero = f"CAST(0 AS {_DEC})"
    return ("cost", zero) if role == "actual" else (zero, "cost")


def raw_stats(con: duckdb.DuckDBPyConnection, plan: AzurePlan, fmt: str) -> list[PeriodStats]:
    """Per billing period: rows, Σ BilledCost, Σ EffectiveCost, read from the file."""
    billed, effective = cost_exprs(fmt, plan.role)
    sql = (f"SELECT bp_start, max(bp_end), count(*), sum({billed}), sum({effective}), count(*) FILTER (WHERE bad_info) "
           f"FROM ({normalized_sql(plan)}) GROUP BY 1 ORDER BY 1")
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error as exc:
        raise diagnose(con, plan.file_plan, exc, extra_checks(plan)) from exc
    if any(start is None for start, *_ in rows):
        raise diagnose(con, plan.file_plan, None, extra_checks(plan))
    bad_info = sum(r[5] for r in rows)
    if bad_info:
        plan.notes.append(f"AdditionalInfo is not a JSON object on {bad_info} rows; SkuPriceDetails left null there")
    return [PeriodStats(start, end, Totals(n, b or 0, e or 0)) for start, end, n, b, e, _ in rows]


# -- FOCUS rows --------------------------------------------------------------------------------------------------
MATCH_KEY = """concat_ws('|', CAST(date AS VARCHAR), lower(subscription_id), lower(coalesce(resource_id, '')),
    lower(coalesce(meter_id, '')), lower(coalesce(charge_type, '')), lower(coalesce(pricing_model, '')),
    lower(coalesce(benefit_id, reservation_id, '')), coalesce(CAST(quantity AS VARCHAR), ''), coalesce(unit, ''))"""


def _union(plans: list[AzurePlan]) -> str:
    return " UNION ALL BY NAME ".join(f"({normalized_sql(p)})" for p in plans)


def costed_sql(plans: list[AzurePlan], fmt: str) -> str:
    """The delivery's rows as canonical columns plus `billed`, `effective` and `side` (actual|amortized|both)."""
    if fmt != "actual+amortized":
        billed, effective = cost_exprs(fmt, "")
        return f"SELECT *, {billed} AS billed, {effective} AS effective, 'one' AS side FROM ({_union(plans)})"
    actual = [p for p in plans if p.role == "actual"]
    amortized = [p for p in plans if p.role == "amortized"]
    cols = ", ".join(f"CASE WHEN m.k IS NOT NULL THEN m.{c} ELSE a.{c} END AS {c}"
                     for c in (*COLUMNS, "bp_start", "bp_end", "x_SourceFile"))
    return f"""
WITH a AS (SELECT *, {MATCH_KEY} AS k, row_number() OVER (PARTITION BY {MATCH_KEY} ORDER BY cost, x_SourceFile)
                  AS n FROM ({_union(actual)})),
     m AS (SELECT *, {MATCH_KEY} AS k, row_number() OVER (PARTITION BY {MATCH_KEY} ORDER BY cost, x_SourceFile)
                  AS n FROM ({_union(amortized)}))
SELECT {cols},
    coalesce(a.cost, CAST(0 AS {_DEC})) AS billed,
    coalesce(m.cost, CAST(0 AS {_DEC})) AS effective,
    CASE WHEN m.k IS NULL THEN 'actual' WHEN a.k IS NULL THEN 'amortized' ELSE 'both' END AS side
FROM a FULL OUTER JOIN m ON a.k = m.k AND a.n = m.n"""


def _mul(price: str, quantity: str) -> str:
    # DECIMAL(38,18) x DECIMAL(38,18) would need scale 36; the quantity keeps 10 places for the product.
    return f"CAST({price} * CAST({quantity} AS DECIMAL(28,10)) AS {_DEC})"


def _services_values() -> str:
    return ", ".join(f"({quote_str(k)}, {quote_str(c)}, {quote_str(s)})" for k, (c, s) in SERVICES.items())


def delivery_select(plans: list[AzurePlan], fmt: str) -> StagedFile:
    """One SELECT over the delivery's files producing warehouse columns (including x_SourceFile)."""
    sql = f"""
WITH c AS ({costed_sql(plans, fmt)}),
services (meter_category_key, service_category, service_subcategory) AS (VALUES {_services_values()}),
t AS (
    SELECT c.*, s.service_category, s.service_subcategory,
        lower(coalesce(charge_type, '')) AS ct,
        lower(coalesce(pricing_model, '')) AS pm,
        CASE WHEN lower(coalesce(charge_type, 'usage')) IN ('usage', 'unusedreservation', 'unusedsavingsplan')
                  THEN 'Usage'
             WHEN lower(charge_type) IN ('purchase', 'refund') THEN 'Purchase'
             WHEN lower(charge_type) = 'tax' THEN 'Tax'
             WHEN lower(charge_type) = 'credit' THEN 'Credit'
             ELSE 'Adjustment' END AS category,
        CASE WHEN lower(coalesce(pricing_model, '')) IN ('reservation', 'savingsplan')
                  OR lower(coalesce(charge_type, '')) IN ('unusedreservation', 'unusedsavingsplan')
             THEN NULLIF(coalesce(NULLIF(benefit_id, ''), reservation_id), '') END AS commitment,
        lower(coalesce(pricing_model, '')) = 'savingsplan' OR lower(coalesce(charge_type, '')) = 'unusedsavingsplan'
             OR lower(coalesce(benefit_id, '')) LIKE '%savingsplan%' AS is_savings_plan
    FROM c LEFT JOIN services s ON c.meter_category = s.meter_category_key
)
SELECT
    'Microsoft' AS ProviderName,
    coalesce(NULLIF(publisher_name, ''), 'Microsoft') AS PublisherName,
    coalesce(NULLIF(partner_name, ''), 'Microsoft') AS InvoiceIssuerName,
    invoice_id AS InvoiceId,
    coalesce(billing_account_id, billing_profile_id, customer_tenant_id, subscription_id) AS BillingAccountId,
    coalesce(billing_account_name, billing_profile_name, customer_name) AS BillingAccountName,
    CASE WHEN starts_with(lower(subscription_id), '/subscriptions/') THEN subscription_id
         ELSE '/subscriptions/' || subscription_id END AS SubAccountId,
    subscription_name AS SubAccountName,
    'Subscription' AS SubAccountType,
    bp_start AS BillingPeriodStart,
    bp_end AS BillingPeriodEnd,
    date AS ChargePeriodStart,
    date + INTERVAL 1 DAY AS ChargePeriodEnd,
    category AS ChargeCategory,
    CASE WHEN ct = 'refund' THEN 'Correction' END AS ChargeClass,
    coalesce(product_name, meter_name) AS ChargeDescription,
    CASE lower(coalesce(frequency, ''))
         WHEN 'onetime' THEN 'One-Time' WHEN 'recurring' THEN 'Recurring' WHEN 'usagebased' THEN 'Usage-Based'
         ELSE CASE category WHEN 'Usage' THEN 'Usage-Based' WHEN 'Purchase' THEN 'One-Time' END END
         AS ChargeFrequency,
    billed AS BilledCost,
    effective AS EffectiveCost,
    coalesce(payg_cost, {_mul('payg_price', 'quantity')}, cost) AS ListCost,
    coalesce({_mul('unit_price', 'quantity')}, cost) AS ContractedCost,
    payg_price AS ListUnitPrice,
    unit_price AS ContractedUnitPrice,
    CASE WHEN ct IN ('unusedreservation', 'unusedsavingsplan') OR pm IN ('reservation', 'savingsplan') THEN 'Committed'
         WHEN pm = 'spot' THEN 'Dynamic'
         WHEN pm = 'ondemand' OR (pm = '' AND category IN ('Usage', 'Purchase')) THEN 'Standard'
         WHEN pm <> '' THEN 'Other' END AS PricingCategory,
    CASE WHEN unit IS NOT NULL THEN quantity END AS PricingQuantity,
    CASE WHEN quantity IS NOT NULL THEN unit END AS PricingUnit,
    coalesce(pricing_currency, billing_currency) AS PricingCurrency,
    CASE WHEN coalesce(pricing_currency, billing_currency) = billing_currency THEN unit_price END
         AS PricingCurrencyContractedUnitPrice,
    CASE WHEN coalesce(pricing_currency, billing_currency) = billing_currency THEN effective END
         AS PricingCurrencyEffectiveCost,
    CASE WHEN coalesce(pricing_currency, billing_currency) = billing_currency THEN payg_price END
         AS PricingCurrencyListUnitPrice,
    billing_currency AS BillingCurrency,
    CASE WHEN category = 'Usage' AND ct NOT IN ('unusedreservation', 'unusedsavingsplan') AND unit IS NOT NULL
         THEN quantity END AS ConsumedQuantity,
    CASE WHEN category = 'Usage' AND ct NOT IN ('unusedreservation', 'unusedsavingsplan') AND quantity IS NOT NULL
         THEN unit END AS ConsumedUnit,
    coalesce(meter_category, consumed_service, product_name, 'Unknown') AS ServiceName,
    coalesce(service_category, '{OTHER[0]}') AS ServiceCategory,
    coalesce(service_subcategory, '{OTHER[1]}') AS ServiceSubcategory,
    coalesce(product_id, part_number) AS SkuId,
    meter_name AS SkuMeter,
    meter_id AS SkuPriceId,
    additional_info AS SkuPriceDetails,
    NULLIF(lower(resource_id), '') AS ResourceId,
    coalesce(resource_name, NULLIF(regexp_extract(resource_id, '[^/]+$'), '')) AS ResourceName,
    NULLIF(regexp_extract(lower(resource_id), '/providers/([^/]+/[^/]+)', 1), '') AS ResourceType,
    NULLIF(lower(replace(resource_location, ' ', '')), '') AS RegionId,
    coalesce(location, {_region_name()}, resource_location) AS RegionName,
    availability_zone AS AvailabilityZone,
    commitment AS CommitmentDiscountId,
    CASE WHEN commitment IS NOT NULL THEN coalesce(benefit_name, reservation_name) END AS CommitmentDiscountName,
    CASE WHEN commitment IS NULL THEN NULL WHEN is_savings_plan THEN 'Spend' ELSE 'Usage' END
         AS CommitmentDiscountCategory,
    CASE WHEN commitment IS NULL THEN NULL WHEN is_savings_plan THEN 'Savings Plan' ELSE 'Reservation' END
         AS CommitmentDiscountType,
    CASE WHEN commitment IS NULL THEN NULL
         WHEN ct IN ('unusedreservation', 'unusedsavingsplan') THEN 'Unused'
         WHEN category = 'Usage' THEN 'Used' END AS CommitmentDiscountStatus,
    CASE WHEN cardinality(tags) > 0 THEN tags END AS Tags,
    resource_group AS x_ResourceGroupName,
    meter_category AS x_SkuMeterCategory,
    invoice_section_name AS x_InvoiceSectionName,
    x_SourceFile
FROM t"""
    return StagedFile(", ".join(p.opened.uri for p in plans), sql, provides_source_file=True)


def _region_name(region_id: str = "lower(replace(resource_location, ' ', ''))") -> str:
    whens = " ".join(f"WHEN {quote_str(k)} THEN {quote_str(v)}" for k, v in REGION_NAMES.items())
    return f"CASE {region_id} {whens} END"


def delivery_notes(con: duckdb.DuckDBPyConnection, plans: list[AzurePlan], fmt: str) -> list[str]:
    """What the mapping could not place exactly, and for actual+amortized how the two datasets matched."""
    rows = con.execute(
        f"SELECT side, count(*), list(DISTINCT meter_category) FILTER (WHERE meter_category IS NOT NULL), "
        f"list(DISTINCT charge_type) FILTER (WHERE charge_type IS NOT NULL) FROM ({costed_sql(plans, fmt)}) GROUP BY 1"
    ).fetchall()
    sides = {side: n for side, n, _, _ in rows}
    categories = {c for *_, cats, _ in rows for c in cats or []}
    charge_types = {t for *_, types in rows for t in types or []}
    notes = []
    if fmt == "actual+amortized":
        notes.append(f"actual and amortized rows matched: {sides.get('both', 0)}; only in actual (purchases, refunds: "
                     f"EffectiveCost 0): {sides.get('actual', 0)}; only in amortized (unused commitments: BilledCost "
                     f"0): {sides.get('amortized', 0)}")
    unknown = sorted(c for c in categories if c not in SERVICES)
    if unknown:
        notes.append(f"meter categories without a FOCUS service category (filed under Other): {', '.join(unknown)}")
    known = {"usage", "purchase", "refund", "tax", "credit", "unusedreservation", "unusedsavingsplan"}
    odd = sorted(t for t in charge_types if t.lower() not in known)
    if odd:
        notes.append(f"charge types mapped to Adjustment: {', '.join(odd)}")
    return notes
