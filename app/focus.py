"""The FOCUS column catalogue: every column the warehouse stores, its kind, its level and since when it exists.

One list drives the warehouse DDL check, the file-header validation of the connectors, the cost query's
whitelist of group-by/filter columns and the FOCUS export. Source: FOCUS 1.2 Cost and Usage (57 columns), plus
the 1.3 additions stored as nullable columns (see ../shared/reference/focus.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["string", "decimal", "datetime", "json", "tags"]
Level = Literal["M", "C", "R"]

# One numeric type for every FOCUS Decimal column. 18 decimal places hold every digit the public exports carry
# (they go up to 15), and 20 integer digits leave room for any bill's sum. Never DOUBLE.
DECIMAL_SQL = "DECIMAL(38,18)"
DECIMAL_SCALE = 18

SQL_TYPE: dict[Kind, str] = {
    "string": "VARCHAR",
    "decimal": DECIMAL_SQL,
    "datetime": "TIMESTAMPTZ",
    "json": "VARCHAR",  # a JSON object serialized as text, as FOCUS defines it
    "tags": "MAP(VARCHAR, VARCHAR)",
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    level: Level
    since: str  # FOCUS version that introduced it
    nullable: bool = True

    @property
    def sql_type(self) -> str:
        return SQL_TYPE[self.kind]

    @property
    def mandatory(self) -> bool:
        return self.level == "M"


def _c(name: str, kind: Kind = "string", level: Level = "C", since: str = "1.0", nullable: bool = True) -> Column:
    return Column(name, kind, level, since, nullable)


# In the order of the FOCUS 1.2 Cost and Usage dataset as the providers' exports write it.
FOCUS_COLUMNS: tuple[Column, ...] = (
    _c("ProviderName", level="M", nullable=False),
    _c("PublisherName", level="M", nullable=False),
    _c("InvoiceIssuerName", level="M", nullable=False),
    _c("InvoiceId", level="R", since="1.2"),
    _c("BillingAccountId", level="M", nullable=False),
    _c("BillingAccountName", level="M"),
    _c("BillingAccountType", since="1.2"),
    _c("SubAccountId"),
    _c("SubAccountName"),
    _c("SubAccountType", since="1.2"),
    _c("BillingPeriodStart", "datetime", "M", nullable=False),
    _c("BillingPeriodEnd", "datetime", "M", nullable=False),
    _c("ChargePeriodStart", "datetime", "M", nullable=False),
    _c("ChargePeriodEnd", "datetime", "M", nullable=False),
    _c("ChargeCategory", level="M", nullable=False),
    _c("ChargeClass", level="M"),
    _c("ChargeDescription", level="M"),
    _c("ChargeFrequency", level="R"),
    _c("BilledCost", "decimal", "M", nullable=False),
    _c("EffectiveCost", "decimal", "M", nullable=False),
    _c("ListCost", "decimal", "M"),  # non-null by spec; real exports break it (tolerated and reported)
    _c("ContractedCost", "decimal", "M"),  # idem
    _c("ListUnitPrice", "decimal"),
    _c("ContractedUnitPrice", "decimal"),
    _c("PricingCategory"),
    _c("PricingQuantity", "decimal", "M"),
    _c("PricingUnit", level="M"),
    _c("PricingCurrency", since="1.2"),
    _c("PricingCurrencyContractedUnitPrice", "decimal", since="1.2"),
    _c("PricingCurrencyEffectiveCost", "decimal", since="1.2"),
    _c("PricingCurrencyListUnitPrice", "decimal", since="1.2"),
    _c("BillingCurrency", level="M", nullable=False),
    _c("ConsumedQuantity", "decimal"),
    _c("ConsumedUnit"),
    _c("ServiceName", level="M", nullable=False),
    _c("ServiceCategory", level="M", nullable=False),
    _c("ServiceSubcategory", level="R", since="1.1"),
    _c("SkuId"),
    _c("SkuMeter", since="1.1"),
    _c("SkuPriceId"),
    _c("SkuPriceDetails", "json", since="1.1"),
    _c("ResourceId"),
    _c("ResourceName"),
    _c("ResourceType"),
    _c("RegionId"),
    _c("RegionName"),
    _c("AvailabilityZone", level="R"),
    _c("CommitmentDiscountId"),
    _c("CommitmentDiscountName"),
    _c("CommitmentDiscountCategory"),
    _c("CommitmentDiscountType"),
    _c("CommitmentDiscountStatus"),
    _c("CommitmentDiscountQuantity", "decimal", since="1.1"),
    _c("CommitmentDiscountUnit", since="1.1"),
    _c("CapacityReservationId", since="1.1"),
    _c("CapacityReservationStatus", since="1.1"),
    _c("Tags", "tags"),
    # FOCUS 1.3 additions, nullable here whatever their level in 1.3.
    _c("ServiceProviderName", since="1.3"),
    _c("HostProviderName", since="1.3"),
    _c("ContractApplied", "json", since="1.3"),
    _c("AllocatedMethodId", since="1.3"),
    _c("AllocatedMethodDetails", "json", since="1.3"),
    _c("AllocatedResourceId", since="1.3"),
    _c("AllocatedResourceName", since="1.3"),
    _c("AllocatedTags", "tags", since="1.3"),
)

# Lineage columns CloudTally adds to every row (the `x_` prefix is FOCUS's rule for custom columns).
LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("x_SourceId", "VARCHAR"),
    ("x_DeliveryId", "VARCHAR"),
    ("x_IngestedAt", "TIMESTAMPTZ"),
    ("x_SourceFile", "VARCHAR"),
)

# Provider columns kept beside FOCUS (migrations/warehouse/0002): named as Azure's FocusCost export names them;
# connectors fill them where the provider has the concept, FOCUS files pass them through when present.
PROVIDER_COLUMNS: tuple[str, ...] = ("x_ResourceGroupName", "x_SkuMeterCategory", "x_InvoiceSectionName")

# The stable id of a cost line (migrations/warehouse/0004), which allocation parts refer to; never exported.
LINE_ID_COLUMN = "x_LineId"

BY_NAME: dict[str, Column] = {c.name: c for c in FOCUS_COLUMNS}
_BY_LOWER: dict[str, Column] = {c.name.lower(): c for c in FOCUS_COLUMNS}

MANDATORY = tuple(c.name for c in FOCUS_COLUMNS if c.mandatory)
V12_COLUMNS = tuple(c.name for c in FOCUS_COLUMNS if c.since != "1.3")
V13_COLUMNS = tuple(c.name for c in FOCUS_COLUMNS)
COST_METRICS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
# Columns a cost query may group or filter on: every FOCUS string column, the billing-period bounds and lineage.
DIMENSIONS = (tuple(c.name for c in FOCUS_COLUMNS if c.kind == "string") + ("x_SourceId", "x_DeliveryId")
              + PROVIDER_COLUMNS)

# Allowed values of FOCUS's enumerated columns (1.2). Case-only mismatches are normalized on ingest and reported.
ENUMS: dict[str, tuple[str, ...]] = {
    "ChargeCategory": ("Usage", "Purchase", "Tax", "Credit", "Adjustment"),
    "ChargeClass": ("Correction",),
    "ChargeFrequency": ("One-Time", "Recurring", "Usage-Based"),
    "PricingCategory": ("Standard", "Dynamic", "Committed", "Other"),
    "CommitmentDiscountStatus": ("Used", "Unused"),
    "CommitmentDiscountCategory": ("Spend", "Usage"),
    "CapacityReservationStatus": ("Used", "Unused"),
}


def lookup(name: str) -> Column | None:
    """The catalogue column for a name, matched exactly first, then case-insensitively."""
    return BY_NAME.get(name) or _BY_LOWER.get(name.lower())


def canonical_dimension(name: str) -> str | None:
    """The canonical spelling of a groupable column, or None when `name` is not one."""
    for dim in DIMENSIONS:
        if dim.lower() == name.lower():
            return dim
    return None


# FOCUS 1.2 ServiceCategory -> allowed ServiceSubcategory values (as the FinOps Foundation validator's 1.2 model
# lists them; later spec revisions renamed some). Provider mappings must only emit these pairs.
SERVICE_SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "AI and Machine Learning": (
        "AI Platforms", "Bots", "Generative AI", "Machine Learning", "Natural Language Processing",
        "Other (AI and Machine Learning)",
    ),
    "Analytics": (
        "Analytics Platforms", "Business Intelligence", "Data Processing", "Search", "Streaming Analytics",
        "Other (Analytics)",
    ),
    "Business Applications": ("Productivity and Collaboration", "Other (Business Applications)",),
    "Compute": (
        "Containers", "End User Computing", "Quantum Compute", "Serverless Compute", "Virtual Machines",
        "Other (Compute)",
    ),
    "Databases": (
        "Caching", "Data Warehouses", "Ledger Databases", "NoSQL Databases", "Relational Databases",
        "Time Series Databases", "Other (Databases)",
    ),
    "Developer Tools": (
        "Developer Platforms", "Continuous Integration and Deployment", "Development Environments",
        "Source Code Management", "Quality Assurance", "Other (Developer Tools)",
    ),
    "Identity": ("Identity and Access Management", "Other (Identity)",),
    "Integration": ("API Management", "Messaging", "Workflow Orchestration", "Other (Integration)",),
    "Internet of Things": ("IoT Analytics", "IoT Platforms", "Other (Internet of Things)",),
    "Management and Governance": (
        "Architecture", "Compliance", "Cost Management", "Data Governance", "Disaster Recovery",
        "Endpoint Management", "Observability", "Support", "Other (Management and Governance)",
    ),
    "Media": ("Content Creation", "Gaming", "Media Streaming", "Mixed Reality", "Other (Media)",),
    "Migration": ("Data Migration", "Resource Migration", "Other (Migration)",),
    "Mobile": ("Other (Mobile)",),
    "Multicloud": ("Multicloud Integration", "Other (Multicloud)",),
    "Networking": (
        "Application Networking", "Content Delivery", "Network Connectivity", "Network Infrastructure",
        "Network Routing", "Network Security", "Other (Networking)",
    ),
    "Security": (
        "Secret Management", "Security Posture Management", "Threat Detection and Response", "Other (Security)",
    ),
    "Storage": (
        "Backup Storage", "Block Storage", "File Storage", "Object Storage", "Storage Platforms", "Other (Storage)",
    ),
    "Web": ("Application Platforms", "Other (Web)",),
    "Other": ("Other (Other)",),
}
