"""Fixtures of the optimizer tests (issue 12): the demo dataset loaded once per module, and labelled FOCUS lines
written as CSV files and ingested through the real FOCUS path (`app.ingest.ingest`)."""
from __future__ import annotations

import csv
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from app import demo, sources
from app.ingest import ingest
from app.runtime import Runtime
from app.settings import Settings


def load_demo(root: Path, database_url: str | None = None) -> Runtime:
    """The demo files ingested through the real connectors, with the sample allocation rules applied."""
    from app.allocation import engine

    exports = demo.write_exports(root / "exports")
    rt = Runtime(Settings(data_dir=root / "data", database_url=database_url))
    rt.init()
    for name, path in exports.items():
        provider, fmt = demo.source_formats()[name]
        sources.add(rt, name, provider, fmt, str(path))
        ingest(rt, name)
    import yaml

    engine.apply(rt, yaml.safe_load(demo.RULES_FILE.read_text()), note="demo rules")
    return rt


@pytest.fixture(scope="module")
def demo_rt(tmp_path_factory):
    rt = load_demo(tmp_path_factory.mktemp("demo"))
    yield rt
    rt.close()


# -- labelled FOCUS lines ---------------------------------------------------------------------------------------------
COLUMNS = ["BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
           "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription",
           "ChargeFrequency", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice",
           "ContractedUnitPrice", "PricingCategory", "PricingQuantity", "PricingUnit", "ConsumedQuantity",
           "ConsumedUnit", "ProviderName", "PublisherName", "InvoiceIssuerName", "RegionId", "RegionName",
           "AvailabilityZone", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceSubcategory",
           "ServiceName", "SkuId", "SkuMeter", "SkuPriceId", "SkuPriceDetails", "SubAccountId", "SubAccountName",
           "CommitmentDiscountId", "CommitmentDiscountCategory", "CommitmentDiscountName",
           "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountQuantity",
           "CommitmentDiscountUnit", "Tags", "InvoiceId"]


def ts(d: date | datetime) -> str:
    if isinstance(d, datetime):
        return d.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{d:%Y-%m-%d}T00:00:00Z"


def line(day: date, provider: str = "AWS", hours: int = 24, start: datetime | None = None, **cols) -> dict:
    """One usage line of one day (or `hours` from `start`): cost columns default to EffectiveCost."""
    start = start or datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    end = start + timedelta(hours=hours)
    month = start.replace(day=1, hour=0)
    next_month = (month + timedelta(days=32)).replace(day=1)
    cost = Decimal(str(cols.pop("cost", "1")))
    row = {"BillingAccountId": cols.pop("account", "111111111111"), "BillingAccountName": "Fixture",
           "BillingCurrency": "USD", "BillingPeriodStart": ts(month), "BillingPeriodEnd": ts(next_month),
           "ChargePeriodStart": ts(start), "ChargePeriodEnd": ts(end), "ChargeCategory": "Usage",
           "ChargeFrequency": "Usage-Based", "BilledCost": cost, "EffectiveCost": cost, "ListCost": cost,
           "ContractedCost": cost, "PricingCategory": "Standard", "PricingQuantity": Decimal(hours),
           "PricingUnit": "Hours", "ProviderName": provider, "PublisherName": provider,
           "InvoiceIssuerName": provider, "ServiceCategory": "Compute", "ServiceName": "Amazon Elastic Compute Cloud",
           "ServiceSubcategory": "Virtual Machines", "SubAccountId": "222222222222", "SubAccountName": "fixture",
           "RegionId": "us-east-1", "RegionName": "US East (N. Virginia)", "SkuId": "SKU", "SkuPriceId": "SKU.1"}
    row.update(cols)
    return row


def write_focus(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS, extrasaction="raise")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else (format(r[k], "f") if isinstance(r[k], Decimal) else r[k]))
                        for k in COLUMNS})
    return path


def ingest_rows(rt: Runtime, folder: Path, rows: list[dict], source: str = "fixture") -> None:
    """Write `rows` as one FOCUS CSV per billing period and ingest them (replacing those periods)."""
    by_month: dict[str, list[dict]] = {}
    for r in rows:
        by_month.setdefault(r["BillingPeriodStart"][:7], []).append(r)
    for month, month_rows in sorted(by_month.items()):
        write_focus(folder / f"{source}-{month}.csv", month_rows)
    ingest(rt, source, str(folder))
