"""Fixtures of the ITFM tests (issue 10): FOCUS lines with known amounts written as CSV and ingested through the real
FOCUS path, allocated by team tags, so every expected figure is computed here independently of the warehouse."""
from __future__ import annotations

import csv
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from app.allocation import engine
from app.ingest import ingest

COLUMNS = ["BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd",
           "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription",
           "ChargeFrequency", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingCategory",
           "PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit", "ProviderName", "PublisherName",
           "InvoiceIssuerName", "RegionId", "RegionName", "ResourceId", "ServiceCategory", "ServiceSubcategory",
           "ServiceName", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags", "InvoiceId"]

RULES = {"rules": [
    {"name": "shared-fees", "when": {"column": "ChargeCategory", "equals": "Purchase"},
     "set": {"cost_center": "CC-SHARED"}, "split": {"percent": [{"set": {"team": "alpha"}, "percent": 60},
                                                                {"set": {"team": "beta"}, "percent": 40}]}},
    {"name": "team-tag", "when": {"tag": "team", "exists": True},
     "set": {"team": {"tag": "team", "lower": True},
             "cost_center": {"tag": "team", "lower": True, "map": {"alpha": "CC-1", "beta": "CC-2"}}}},
]}


def ts(d: date) -> str:
    return f"{d:%Y-%m-%d}T00:00:00Z"


def line(day: date, cost, team: str | None = None, *, billed=None, currency: str = "USD", provider: str = "AWS",
         category: str = "Usage", frequency: str = "Usage-Based", service: str = "Amazon Elastic Compute Cloud",
         service_category: str = "Compute", account: str = "222222222222", resource: str | None = None) -> dict:
    month = day.replace(day=1)
    nxt = (month + timedelta(days=32)).replace(day=1)
    cost = Decimal(str(cost))
    billed = cost if billed is None else Decimal(str(billed))
    return {"BillingAccountId": "111111111111", "BillingAccountName": "Fixture", "BillingCurrency": currency,
            "BillingPeriodStart": ts(month), "BillingPeriodEnd": ts(nxt), "ChargePeriodStart": ts(day),
            "ChargePeriodEnd": ts(day + timedelta(days=1)), "ChargeCategory": category,
            "ChargeFrequency": frequency, "BilledCost": billed, "EffectiveCost": cost, "ListCost": cost,
            "ContractedCost": cost, "PricingCategory": "Standard", "PricingQuantity": Decimal(1),
            "PricingUnit": "Hours", "ProviderName": provider, "PublisherName": provider, "InvoiceIssuerName": provider,
            "RegionId": "us-east-1", "RegionName": "US East", "ResourceId": resource or f"r-{team or 'none'}",
            "ServiceCategory": service_category, "ServiceSubcategory": "Virtual Machines", "ServiceName": service,
            "SkuId": "SKU", "SkuPriceId": "SKU.1", "SubAccountId": account, "SubAccountName": "fixture",
            "Tags": f'{{"team": "{team}"}}' if team else "{}", "InvoiceId": f"INV-{month:%Y%m}"}


def write_focus(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else (format(r[k], "f") if isinstance(r[k], Decimal) else r[k]))
                        for k in COLUMNS})
    return path


def ingest_rows(rt, folder: Path, rows: list[dict], source: str = "fixture", rules: dict | None = RULES) -> None:
    """One FOCUS CSV per billing period, ingested (replacing those periods), then allocated by `rules`."""
    by_month: dict[str, list[dict]] = {}
    for r in rows:
        by_month.setdefault(r["BillingPeriodStart"][:7], []).append(r)
    folder.mkdir(parents=True, exist_ok=True)
    for month, month_rows in sorted(by_month.items()):
        write_focus(folder / f"{source}-{month}.csv", month_rows)
    ingest(rt, source, str(folder))
    if rules is not None:
        engine.apply(rt, rules)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def alpha_cost(d: date) -> Decimal:
    """Team alpha's daily usage: a weekly pattern with cents and a slow growth."""
    return Decimal("40.123") + Decimal("3.5") * (d.weekday() % 7) + Decimal("0.07") * (d.toordinal() % 50)


def standard_rows(first: date = date(2026, 7, 1), last: date = date(2026, 10, 20)) -> list[dict]:
    """alpha and beta usage every day, a shared monthly fee (Purchase/Recurring) on the 1st split 60/40, tax on the
    1st (beta), an untagged sandbox line (unallocated) and a EUR line (alpha) that USD budgets never count."""
    rows = []
    for d in days(first, last):
        rows.append(line(d, alpha_cost(d), "alpha"))
        rows.append(line(d, Decimal("20.5") + Decimal("0.25") * (d.day % 3), "beta", service="Amazon S3",
                         service_category="Storage"))
        rows.append(line(d, "1.10", None, account="999999999999", resource="sandbox"))
        rows.append(line(d, "2.00", "alpha", currency="EUR"))
        if d.day == 1:
            rows.append(line(d, "300.00", None, billed="0", category="Purchase", frequency="Recurring",
                             service="AWS Support (Business)", service_category="Management and Governance",
                             resource="support"))
            rows.append(line(d, "15.75", "beta", category="Tax", frequency="One-Time", service="Tax",
                             service_category="Other"))
    return rows
