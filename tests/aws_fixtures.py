"""AWS export fixtures built the way AWS delivers them: CUR 2.0 / FOCUS Data Exports and legacy CUR layouts.

`month_lines()` returns one billing month covering every line item type the mapping handles, as CUR 2.0 rows of
exact decimals. Writers put them on disk (or in S3 through `upload`) in each layout, split into parts so that a
Savings Plan covered line and its negation sit in different files, as real CUR parts do. Expected sums are
computed here with Python Decimal from the same rows, independently of DuckDB.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

PAYER, ACCT_A, ACCT_B = "111111111111", "222222222222", "333333333333"
SP_ARN = f"arn:aws:savingsplans::{PAYER}:savingsplan/sp-1"
RI_ARN = f"arn:aws:ec2:us-east-1:{ACCT_A}:reserved-instances/ri-1"
DECIMALS = {"line_item_usage_amount", "line_item_unblended_rate", "line_item_unblended_cost",
            "pricing_public_on_demand_cost", "pricing_public_on_demand_rate", "reservation_effective_cost",
            "reservation_unused_amortized_upfront_fee_for_billing_period", "reservation_unused_recurring_fee",
            "reservation_unused_quantity", "savings_plan_savings_plan_effective_cost",
            "savings_plan_total_commitment_to_date", "savings_plan_used_commitment"}
TIMES = {"bill_billing_period_start_date", "bill_billing_period_end_date", "line_item_usage_start_date",
         "line_item_usage_end_date"}
# CUR 2.0 name -> legacy CUR CSV header.
LEGACY = {
    "identity_line_item_id": "identity/LineItemId", "bill_billing_entity": "bill/BillingEntity",
    "bill_invoice_id": "bill/InvoiceId", "bill_payer_account_id": "bill/PayerAccountId",
    "bill_billing_period_start_date": "bill/BillingPeriodStartDate",
    "bill_billing_period_end_date": "bill/BillingPeriodEndDate",
    "line_item_usage_account_id": "lineItem/UsageAccountId", "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_usage_start_date": "lineItem/UsageStartDate", "line_item_usage_end_date": "lineItem/UsageEndDate",
    "line_item_product_code": "lineItem/ProductCode", "line_item_usage_type": "lineItem/UsageType",
    "line_item_operation": "lineItem/Operation", "line_item_availability_zone": "lineItem/AvailabilityZone",
    "line_item_resource_id": "lineItem/ResourceId", "line_item_usage_amount": "lineItem/UsageAmount",
    "line_item_currency_code": "lineItem/CurrencyCode", "line_item_unblended_rate": "lineItem/UnblendedRate",
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "line_item_line_item_description": "lineItem/LineItemDescription",
    "product_product_name": "product/ProductName", "product_region_code": "product/regionCode",
    "product_location": "product/location", "product_sku": "product/sku", "product_product_family": "product/productFamily",
    "pricing_public_on_demand_cost": "pricing/publicOnDemandCost",
    "pricing_public_on_demand_rate": "pricing/publicOnDemandRate", "pricing_term": "pricing/term",
    "pricing_unit": "pricing/unit", "pricing_rate_code": "pricing/RateCode",
    "reservation_reservation_a_r_n": "reservation/ReservationARN",
    "reservation_effective_cost": "reservation/EffectiveCost",
    "reservation_unused_amortized_upfront_fee_for_billing_period":
        "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
    "reservation_unused_recurring_fee": "reservation/UnusedRecurringFee",
    "reservation_unused_quantity": "reservation/UnusedQuantity",
    "savings_plan_savings_plan_a_r_n": "savingsPlan/SavingsPlanARN",
    "savings_plan_savings_plan_effective_cost": "savingsPlan/SavingsPlanEffectiveCost",
    "savings_plan_total_commitment_to_date": "savingsPlan/TotalCommitmentToDate",
    "savings_plan_used_commitment": "savingsPlan/UsedCommitment",
}
COLUMNS = list(LEGACY)


def _month(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def month_lines(year: int = 2026, month: int = 10, scale: D = D(1), extra_tag: bool = False) -> list[dict]:
    """Every line item type once or twice; `scale` multiplies every amount (a restated month)."""
    start, end = _month(year, month)
    hour = start.replace(day=5)
    nxt = hour.replace(hour=1)
    base = {"bill_payer_account_id": PAYER, "bill_billing_entity": "AWS", "bill_invoice_id": None,
            "bill_billing_period_start_date": start, "bill_billing_period_end_date": end,
            "line_item_currency_code": "USD", "line_item_usage_start_date": hour, "line_item_usage_end_date": nxt}
    ec2 = {"line_item_product_code": "AmazonEC2", "product_product_name": "Amazon Elastic Compute Cloud",
           "product_region_code": "us-east-1", "product_location": "US East (N. Virginia)",
           "line_item_availability_zone": "us-east-1a", "product_product_family": "Compute Instance",
           "pricing_unit": "Hrs", "line_item_operation": "RunInstances"}
    s = scale

    def line(n, kind, **cols):
        row = {c: None for c in COLUMNS} | base | {"identity_line_item_id": f"li-{n}", "line_item_line_item_type": kind}
        row.update(cols)
        return row

    tags = {"user:team": "payments", "user:env": "prod"} | ({"user:app": "checkout"} if extra_tag else {})
    rows = [
        line(1, "Usage", **ec2, line_item_usage_account_id=ACCT_A, line_item_resource_id="i-1",
             line_item_usage_type="USE1-BoxUsage:m5.large", line_item_usage_amount=D(1),
             line_item_unblended_rate=D("0.096"), line_item_unblended_cost=D("0.096") * s,
             pricing_public_on_demand_rate=D("0.096"), pricing_public_on_demand_cost=D("0.096") * s,
             pricing_term="OnDemand", product_sku="SKU1", pricing_rate_code="SKU1.RATE", _tags=tags),
        line(2, "Usage", **ec2, line_item_usage_account_id=ACCT_B, line_item_resource_id="i-2",
             line_item_usage_type="USE1-SpotUsage:m5.large", line_item_usage_amount=D(1),
             line_item_unblended_rate=D("0.031"), line_item_unblended_cost=D("0.031") * s,
             pricing_public_on_demand_rate=D("0.096"), pricing_public_on_demand_cost=D("0.096") * s,
             pricing_term="Spot", product_sku="SKU2", _tags={"user:team": "data"}),
        # Savings Plan: covered usage (part 1) and its negation (part 2), a lone negation, the recurring fee.
        line(3, "SavingsPlanCoveredUsage", **ec2, line_item_usage_account_id=ACCT_A, line_item_resource_id="i-3",
             line_item_usage_type="USE1-BoxUsage:c5.xlarge", line_item_usage_amount=D(1),
             line_item_unblended_rate=D("0.17"), line_item_unblended_cost=D("0.17") * s,
             pricing_public_on_demand_cost=D("0.17") * s, pricing_public_on_demand_rate=D("0.17"),
             savings_plan_savings_plan_a_r_n=SP_ARN, savings_plan_savings_plan_effective_cost=D("0.1122") * s,
             _tags=tags),
        line(4, "SavingsPlanNegation", **ec2, line_item_usage_account_id=ACCT_A, line_item_resource_id="i-3",
             line_item_usage_type="USE1-BoxUsage:c5.xlarge", line_item_unblended_cost=D("-0.17") * s,
             savings_plan_savings_plan_a_r_n=SP_ARN),
        line(5, "SavingsPlanNegation", **ec2, line_item_usage_account_id=ACCT_B, line_item_resource_id="i-9",
             line_item_usage_type="USE1-BoxUsage:c5.large", line_item_unblended_cost=D("-0.05") * s,
             savings_plan_savings_plan_a_r_n=SP_ARN),
        line(6, "SavingsPlanRecurringFee", line_item_product_code="ComputeSavingsPlans",
             line_item_usage_account_id=PAYER, line_item_unblended_cost=D("10.00") * s,
             line_item_usage_amount=D(720), pricing_unit="Hrs", line_item_unblended_rate=D("0.0138888889"),
             savings_plan_savings_plan_a_r_n=SP_ARN, savings_plan_total_commitment_to_date=D("10.00") * s,
             savings_plan_used_commitment=D("9.25") * s),
        # Reserved Instance: covered usage, the monthly fee with unused parts, the upfront fee.
        line(7, "DiscountedUsage", **ec2, line_item_usage_account_id=ACCT_A, line_item_resource_id="i-4",
             line_item_usage_type="USE1-BoxUsage:r5.large", line_item_usage_amount=D(1),
             line_item_unblended_rate=D(0), line_item_unblended_cost=D(0), pricing_public_on_demand_rate=D("0.126"),
             pricing_public_on_demand_cost=D("0.126") * s, reservation_reservation_a_r_n=RI_ARN,
             reservation_effective_cost=D("0.0789") * s),
        line(8, "RIFee", **(ec2 | {"line_item_availability_zone": None}), line_item_usage_account_id=ACCT_A,
             line_item_usage_type="USE1-HeavyUsage:r5.large", line_item_usage_amount=D(744),
             line_item_unblended_rate=D("0.05"), line_item_unblended_cost=D("37.20") * s,
             reservation_reservation_a_r_n=RI_ARN, reservation_unused_amortized_upfront_fee_for_billing_period=
             D("1.25") * s, reservation_unused_recurring_fee=D("0.75") * s, reservation_unused_quantity=D(20)),
        line(9, "Fee", **(ec2 | {"line_item_availability_zone": None}), line_item_usage_account_id=ACCT_A,
             line_item_unblended_cost=D("500.00") * s, reservation_reservation_a_r_n=RI_ARN,
             line_item_line_item_description="Sign up charge for subscription: ri-1"),
        line(10, "Tax", line_item_product_code="AmazonEC2", line_item_usage_account_id=ACCT_A,
             line_item_unblended_cost=D("1.23") * s, line_item_line_item_description="Tax for product code AmazonEC2"),
        line(11, "Credit", line_item_product_code="AmazonEC2", line_item_usage_account_id=ACCT_B,
             line_item_unblended_cost=D("-2.00") * s, line_item_line_item_description="AWS Activate credit"),
        line(12, "EdpDiscount", line_item_product_code="AmazonS3", line_item_usage_account_id=ACCT_B,
             line_item_unblended_cost=D("-0.50") * s),
        line(13, "Refund", line_item_product_code="AWSNewService2026", line_item_usage_account_id=ACCT_B,
             line_item_unblended_cost=D("-1.00") * s),
        line(14, "Usage", line_item_product_code="AmazonS3", line_item_usage_account_id=ACCT_B,
             line_item_usage_type="TimedStorage-ByteHrs", line_item_usage_amount=D("100.5"), pricing_unit="GB-Mo",
             line_item_unblended_rate=D("0.023"), line_item_unblended_cost=D("2.3115") * s,
             pricing_public_on_demand_rate=D("0.023"), pricing_public_on_demand_cost=D("2.3115") * s,
             product_region_code="us-east-1", line_item_resource_id="bucket-a", _tags={"user:team": "data"}),
    ]
    return rows


def expected(rows: list[dict]) -> tuple[D, D]:
    """(sum of unblended, AWS amortized cost) computed in Python from the rows."""
    billed = sum((r["line_item_unblended_cost"] for r in rows), D(0))

    def amortized(r):
        t, z = r["line_item_line_item_type"], lambda k: r.get(k) or D(0)
        if t == "SavingsPlanCoveredUsage":
            return z("savings_plan_savings_plan_effective_cost")
        if t == "SavingsPlanRecurringFee":
            return z("savings_plan_total_commitment_to_date") - z("savings_plan_used_commitment")
        if t in ("SavingsPlanNegation", "SavingsPlanUpfrontFee"):
            return D(0)
        if t == "DiscountedUsage":
            return z("reservation_effective_cost")
        if t == "RIFee":
            return z("reservation_unused_amortized_upfront_fee_for_billing_period") + z("reservation_unused_recurring_fee")
        if t == "Fee" and r.get("reservation_reservation_a_r_n"):
            return D(0)
        return r["line_item_unblended_cost"]

    return billed, sum((amortized(r) for r in rows), D(0))


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    return format(v, "f") if isinstance(v, D) else str(v)


@dataclass
class Delivered:
    root: Path  # the report/export folder (the source's location when local)
    files: list[Path]
    manifest: Path


def _parts(rows: list[dict]) -> list[list[dict]]:
    """Two parts: the covered SP line in the first, its negation in the second."""
    first = [r for r in rows if r["identity_line_item_id"] in ("li-1", "li-2", "li-3", "li-6", "li-7", "li-8")]
    return [first, [r for r in rows if r not in first]]


def write_cur2(folder: Path, name: str, rows: list[dict], run: str = "exec-1", fmt: str = "parquet") -> Delivered:
    """Data Exports layout: <name>/data/BILLING_PERIOD=YYYY-MM/…, <name>/metadata/BILLING_PERIOD=YYYY-MM/…"""
    start = rows[0]["bill_billing_period_start_date"]
    period = f"BILLING_PERIOD={start:%Y-%m}"
    root = folder / name
    data = root / "data" / period
    data.mkdir(parents=True, exist_ok=True)
    files = []
    for i, part in enumerate(_parts(rows), 1):
        if fmt == "parquet":
            path = data / f"{name}-{run}-{i:05d}.snappy.parquet"
            cols = {}
            for c in COLUMNS:
                values = [r.get(c) for r in part]
                typ = pa.decimal128(38, 10) if c in DECIMALS else pa.timestamp("ms", tz="UTC") if c in TIMES \
                    else pa.string()
                cols[c] = pa.array(values, typ)
            cols["resource_tags"] = pa.array(
                [list((k.replace(":", "_"), v) for k, v in (r.get("_tags") or {}).items()) or None for r in part],
                pa.map_(pa.string(), pa.string()))
            pq.write_table(pa.table(cols), path)
        else:
            path = data / f"{name}-{run}-{i:05d}.csv.gz"
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(COLUMNS + ["resource_tags"])
            for r in part:
                tags = {k.replace(":", "_"): v for k, v in (r.get("_tags") or {}).items()}
                w.writerow([_text(r.get(c)) for c in COLUMNS] + [json.dumps(tags) if tags else ""])
            path.write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))
        files.append(path)
    meta = root / "metadata" / period
    meta.mkdir(parents=True, exist_ok=True)
    manifest = meta / f"{name}-Manifest.json"
    manifest.write_text(json.dumps({
        "executionId": run, "exportName": name,
        "billingPeriod": {"start": f"{start:%Y-%m-%dT%H:%M:%S.000Z}"},
        "dataFiles": [f"s3://bills/exports/{name}/data/{period}/{p.name}" for p in files],
    }))
    return Delivered(root, files, manifest)


def write_legacy(folder: Path, name: str, rows: list[dict], assembly: str | None = "asm-1") -> Delivered:
    """Legacy CUR: <name>/<yyyymmdd-yyyymmdd>/[<assemblyId>/]<name>-N.csv.gz, period manifest beside."""
    start = rows[0]["bill_billing_period_start_date"]
    end = rows[0]["bill_billing_period_end_date"]
    period = f"{start:%Y%m%d}-{end:%Y%m%d}"
    root = folder / name
    data = root / period / assembly if assembly else root / period
    data.mkdir(parents=True, exist_ok=True)
    tag_keys = sorted({k for r in rows for k in (r.get("_tags") or {})})
    header = [LEGACY[c] for c in COLUMNS] + [f"resourceTags/{k}" for k in tag_keys] + ["costCategory/Business Unit"]
    files = []
    for i, part in enumerate(_parts(rows), 1):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        for r in part:
            t = r.get("_tags") or {}
            w.writerow([_text(r.get(c)) for c in COLUMNS] + [t.get(k, "") for k in tag_keys]
                       + ["Retail" if t.get("user:team") == "payments" else ""])
        path = data / f"{name}-{i}.csv.gz"
        path.write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))
        files.append(path)
    keys = [f"prefix/{name}/{p.relative_to(root).as_posix()}" for p in files]
    doc = {"assemblyId": assembly or "overwrite-1", "reportName": name, "compression": "GZIP",
           "billingPeriod": {"start": f"{start:%Y%m%dT000000.000Z}", "end": f"{end:%Y%m%dT000000.000Z}"},
           "bucket": "bills", "reportKeys": keys}
    manifest = root / period / f"{name}-Manifest.json"
    manifest.write_text(json.dumps(doc))
    if assembly:
        (data / f"{name}-Manifest.json").write_text(json.dumps(doc))
    return Delivered(root, files, manifest)


def upload(client, bucket: str, folder: Path, prefix: str) -> None:
    """Put a local tree into S3 under prefix (as AWS would have written it)."""
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{p.relative_to(folder).as_posix()}", Body=p.read_bytes())
