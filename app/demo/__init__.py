"""A seeded, realistic three-cloud FOCUS 1.2 dataset for `cloudtally demo` and the tests.

What the files contain (billing periods 2026-08, 2026-09 and 2026-10; daily charge periods):
- AWS (gzip CSV): one management account with six member accounts (12-digit IDs). Azure (gzip CSV): a USD
  billing profile with three subscriptions, and a EUR EA enrollment with one (subscription GUIDs). Google Cloud
  (Parquet): one billing account with four projects.
- 28 services (plus Tax lines) with their FOCUS ServiceCategory and ServiceSubcategory, regions and zones,
  resources with IDs, names and types, SKUs, price-list entries and SkuPriceDetails, list and negotiated unit
  prices, consumed quantities, Tags {team, env, app} for five teams (payments, data, platform, search, mobile;
  about one resource in ten is untagged), and a three-day BigQuery cost spike in September (a runaway query,
  for anomaly views).
- Commitment discounts: an AWS Compute Savings Plan (daily recurring fee), an all-upfront AWS RDS Reserved
  Instance (one One-Time purchase, amortized daily), a monthly-paid Azure VM reservation and a Google Cloud CUD
  (daily fee). Covered usage is `Committed` with BilledCost 0 and the amortized EffectiveCost; usage beyond the
  commitment is split off as `Standard`; what is left is an `Unused` row. Per commitment and charge period,
  Used + Unused EffectiveCost equals the fee billed for that period (for the RI: the upfront amount pro rata).
- Spot (`Dynamic`) VMs, monthly Credit rows, one refund (a negative Usage row), one Tax row per billing account
  and month, one InvoiceId per billing account and month.
All money is decimal.Decimal: unit prices and quantities have at most 6 decimals, so every ListCost and
ContractedCost is the exact product. The same seed gives byte-identical files.
"""
from __future__ import annotations

import csv
import gzip
import io
import random
import shutil
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from app.demo.catalog import providers
from app.demo.generator import Generator
from app.focus import BY_NAME, FOCUS_COLUMNS

FIRST_MONTH, LAST_MONTH = "2026-08", "2026-10"

# The FinOps Foundation validator's applicability criteria that this data satisfies (focus-validator.md 2.6).
VALIDATOR_CRITERIA: tuple[str, ...] = (
    "ACCOUNT_NAMING_SUPPORTED", "AVAILABILITY_ZONE_SUPPORTED", "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",
    "COMMITMENT_DISCOUNT_SUPPORTED", "MULTIPLE_BILLING_ACCOUNT_TYPES_SUPPORTED",
    "MULTIPLE_PRICING_CATEGORIES_SUPPORTED", "MULTIPLE_SUB_ACCOUNT_TYPES_SUPPORTED", "NEGOTIATED_PRICING_SUPPORTED",
    "PUBLIC_PRICE_LIST_SUPPORTED", "REGION_SUPPORTED", "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED", "SUB_ACCOUNT_SUPPORTED",
    "TAGGING_SUPPORTED", "UNIT_PRICING_SUPPORTED", "USAGE_MEASUREMENT_SUPPORTED",
)
COLUMNS = tuple(c.name for c in FOCUS_COLUMNS if c.since != "1.3" and not c.name.startswith("CapacityReservation"))


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, D):
        return format(value.normalize(), "f")
    return str(value)


def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([_text(row.get(c)) for c in COLUMNS] for row in rows)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buf.getvalue().encode())


def _write_parquet(path: Path, rows: list[dict]) -> None:
    types = {"decimal": pa.decimal128(38, 18), "datetime": pa.timestamp("us", tz="UTC")}
    pq.write_table(pa.table({c: pa.array([r.get(c) for r in rows], types.get(BY_NAME[c].kind, pa.string()))
                             for c in COLUMNS}), path, compression="zstd")


def write_exports(folder: Path, seed: int = 20261023) -> dict[str, Path]:
    """Write the dataset as FOCUS 1.2 files: {source name: its folder}, one file per billing period inside.

    Each source folder is replaced as a whole, so re-running into the same folder leaves exactly the new files."""
    out = {}
    for name, provider in providers().items():
        rows = Generator(provider, random.Random(f"{seed}:{name}")).rows()
        target = Path(folder) / name
        if target.exists():
            shutil.rmtree(target)
        for start in sorted({r["BillingPeriodStart"] for r in rows}):
            part = target / f"billing_period={start:%Y-%m}"
            part.mkdir(parents=True)
            month_rows = [r for r in rows if r["BillingPeriodStart"] == start]
            if provider.fmt == "csv":
                _write_csv(part / "part-0.csv.gz", month_rows)
            else:
                _write_parquet(part / "part-0.parquet", month_rows)
        out[name] = target
    return out
