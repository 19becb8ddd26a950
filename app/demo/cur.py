"""The demo's AWS part as AWS writes it: a CUR 2.0 Data Export (Parquet), read through the AWS connector.

`cur_lines()` restates the generator's AWS rows (the same accounts, resources, usage, prices and commitments) as
CUR 2.0 line items, daily granularity:

| demo charge | CUR line items |
|---|---|
| on-demand usage / spot | Usage (spot: pricing_term Spot, usage type `SpotUsage:...`) |
| usage covered by the Compute Savings Plan | SavingsPlanCoveredUsage (on-demand cost, SP effective cost) plus a SavingsPlanNegation of the same account, day, resource, usage type, operation and plan |
| the plan's daily fee | SavingsPlanRecurringFee, total commitment to date and used commitment (unused = their difference) |
| usage covered by the all-upfront RDS RI | DiscountedUsage: 0 unblended, reservation effective cost = amortized rate x hours |
| the RI upfront payment | Fee with the reservation ARN (one line, August) |
| the RI's unused hours | RIFee, one per month: 0 unblended, amortized and unused amortized upfront fee, unused quantity |
| credits, the refund | Credit, Refund |
| tax | Tax per usage account, product code and month: 6% of the positive net, in cents |

Requests are billed per request (rate = the demo's price per 1000/10000/1000000), so unit rates have up to 8
decimals; money is Decimal, written as DECIMAL(38,18). `write_export()` lays the lines out like Data Exports:
`<export>/data/BILLING_PERIOD=YYYY-MM/<export>-<executionId>-0000N.snappy.parquet` (two parts a month; some
negations sit in the other part than their covered line) and `<export>/metadata/BILLING_PERIOD=YYYY-MM/
<export>-Manifest.json`. The executionId is a hash of the month's parts, so the same data gives the same names.
"""
from __future__ import annotations

import base64
import calendar
import hashlib
import io
import json
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal as D

import pyarrow as pa
import pyarrow.parquet as pq

from app.demo.catalog import METERS, REGIONS, Provider

EXPORT_NAME = "demo-cur2"
BUCKET = "s3://acme-billing-exports/cur2"
LEGAL_ENTITY = "Amazon Web Services, Inc."
# demo meter -> (product code, usage type without the region prefix, operation, pricing unit, CUR units per demo unit)
CUR_METERS = {
    "aws.m6i": ("AmazonEC2", "BoxUsage:m6i.xlarge", "RunInstances", "Hrs", 1),
    "aws.c6i": ("AmazonEC2", "BoxUsage:c6i.2xlarge", "RunInstances", "Hrs", 1),
    "aws.c6i.spot": ("AmazonEC2", "SpotUsage:c6i.2xlarge", "RunInstances:SV001", "Hrs", 1),
    "aws.gp3": ("AmazonEC2", "EBS:VolumeUsage.gp3", "CreateVolume-Gp3", "GB-Mo", 1),
    "aws.s3": ("AmazonS3", "TimedStorage-ByteHrs", "StandardStorage", "GB-Mo", 1),
    "aws.s3.req": ("AmazonS3", "Requests-Tier1", "PutObject", "Requests", 1000),
    "aws.rds": ("AmazonRDS", "InstanceUsage:db.r6g.xl", "CreateDBInstance:0014", "Hrs", 1),
    "aws.rds.gp3": ("AmazonRDS", "RDS:GP3-Storage", "CreateDBInstance:0014", "GB-Mo", 1),
    "aws.lambda.req": ("AWSLambda", "Request", "Invoke", "Requests", 1000000),
    "aws.lambda.gb": ("AWSLambda", "Lambda-Provisioned-Concurrency", "Invoke", "GB-Hours", 1),
    "aws.eks": ("AmazonEKS", "AmazonEKS-Hours:perCluster", "CreateOperation", "Hrs", 1),
    "aws.cf.gb": ("AmazonCloudFront", "US-DataTransfer-Out-Bytes", "GET", "GB", 1),
    "aws.cf.req": ("AmazonCloudFront", "US-Requests-Tier2-HTTPS", "GET", "Requests", 10000),
    "aws.ddb.w": ("AmazonDynamoDB", "WriteRequestUnits", "PayPerRequestThroughput", "WriteRequestUnits", 1000000),
    "aws.ddb.r": ("AmazonDynamoDB", "ReadRequestUnits", "PayPerRequestThroughput", "ReadRequestUnits", 1000000),
    "aws.ddb.gb": ("AmazonDynamoDB", "TimedStorage-ByteHrs", "StandardStorage", "GB-Mo", 1),
    "aws.cw.in": ("AmazonCloudWatch", "DataProcessing-Bytes", "PutLogEvents", "GB", 1),
    "aws.cw.gb": ("AmazonCloudWatch", "TimedStorage-ByteHrs", "HourlyStorageMetering", "GB-Mo", 1),
    "aws.os": ("AmazonES", "ESInstance:r6g.large", "ESDomain", "Hrs", 1),
    "aws.os.gb": ("AmazonES", "ES:GP3-Storage", "ESDomain", "GB-Mo", 1),
    "aws.nat": ("AmazonEC2", "NatGateway-Hours", "NatGateway", "Hrs", 1),  # AWS bills NAT gateways under EC2
    "aws.nat.gb": ("AmazonEC2", "NatGateway-Bytes", "NatGateway", "GB", 1),
}
PRODUCT_NAMES = {"AmazonEC2": "Amazon Elastic Compute Cloud", "AmazonS3": "Amazon Simple Storage Service",
                 "AmazonRDS": "Amazon Relational Database Service", "AWSLambda": "AWS Lambda",
                 "AmazonEKS": "Amazon Elastic Kubernetes Service", "AmazonCloudFront": "Amazon CloudFront",
                 "AmazonDynamoDB": "Amazon DynamoDB", "AmazonCloudWatch": "AmazonCloudWatch",
                 "AmazonES": "Amazon OpenSearch Service", "ComputeSavingsPlans": "Savings Plans for AWS Compute usage"}
REGION_PREFIX = {"us-east-1": "", "us-west-2": "USW2-", "eu-west-1": "EU-"}
OFFER_1YR_ALL_UPFRONT = "6QCMYABX3D"

MONEY = pa.decimal128(38, 18)
TEXT, TIME, TAGS = pa.string(), pa.timestamp("ms", tz="UTC"), pa.map_(pa.string(), pa.string())
SCHEMA = pa.schema([(name, TEXT) for name in (
    "identity_line_item_id", "identity_time_interval", "bill_bill_type", "bill_billing_entity", "bill_invoice_id",
    "bill_invoicing_entity", "bill_payer_account_id", "bill_payer_account_name")] + [
    ("bill_billing_period_start_date", TIME), ("bill_billing_period_end_date", TIME)] + [
    (name, TEXT) for name in (
        "line_item_usage_account_id", "line_item_usage_account_name", "line_item_line_item_type",
        "line_item_product_code", "line_item_usage_type", "line_item_operation", "line_item_availability_zone",
        "line_item_resource_id", "line_item_currency_code", "line_item_line_item_description",
        "line_item_legal_entity")] + [
    ("line_item_usage_start_date", TIME), ("line_item_usage_end_date", TIME)] + [
    (name, MONEY) for name in ("line_item_usage_amount", "line_item_unblended_rate", "line_item_unblended_cost",
                               "pricing_public_on_demand_rate", "pricing_public_on_demand_cost")] + [
    (name, TEXT) for name in ("pricing_term", "pricing_unit", "pricing_rate_code", "product_sku",
                              "product_product_family", "product_region_code", "product_location",
                              "product_servicecode")] + [
    ("product", TAGS), ("reservation_reservation_a_r_n", TEXT), ("reservation_start_time", TEXT),
    ("reservation_end_time", TEXT)] + [
    (name, MONEY) for name in ("reservation_effective_cost", "reservation_amortized_upfront_fee_for_billing_period",
                               "reservation_unused_amortized_upfront_fee_for_billing_period",
                               "reservation_unused_recurring_fee", "reservation_unused_quantity")] + [
    ("savings_plan_savings_plan_a_r_n", TEXT)] + [
    (name, MONEY) for name in ("savings_plan_savings_plan_rate", "savings_plan_savings_plan_effective_cost",
                               "savings_plan_total_commitment_to_date", "savings_plan_used_commitment")] + [
    ("resource_tags", TAGS)])


def _code(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest().upper()


def _resource_id(arn: str) -> str:
    """CUR names EC2 instances and volumes by ID and S3 buckets by name; other resources by ARN."""
    if ":instance/" in arn or ":volume/" in arn:
        return arn.rsplit("/", 1)[1]
    return arn.removeprefix("arn:aws:s3:::")


def _tags(focus_tags: str | None) -> list[tuple[str, str]]:
    return sorted((f"user_{k}", v) for k, v in json.loads(focus_tags).items() if v) if focus_tags else []


class _Lines:
    """Builds CUR lines for one provider (payer account) from the demo's FOCUS-shaped rows."""

    def __init__(self, p: Provider):
        self.p, self.acct = p, p.accounts[0]
        self.names = dict(self.acct.subs)
        self.sp = next(c for c in p.commitments if c.type == "Savings Plan")
        self.ri = next(c for c in p.commitments if c.type == "Reserved Instance")

    def line(self, r: dict, kind: str, code: str, account: str, start: datetime, end: datetime, **cols) -> dict:
        region = cols.pop("region", None)
        return {
            "identity_time_interval": f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}",
            "bill_bill_type": "Anniversary", "bill_billing_entity": "AWS", "bill_invoice_id": r["InvoiceId"],
            "bill_invoicing_entity": LEGAL_ENTITY, "bill_payer_account_id": self.acct.id,
            "bill_payer_account_name": self.acct.name, "bill_billing_period_start_date": r["BillingPeriodStart"],
            "bill_billing_period_end_date": r["BillingPeriodEnd"], "line_item_usage_account_id": account,
            "line_item_usage_account_name": self.names[account], "line_item_line_item_type": kind,
            "line_item_product_code": code, "line_item_currency_code": "USD", "line_item_legal_entity": LEGAL_ENTITY,
            "line_item_usage_start_date": start, "line_item_usage_end_date": end, "product_servicecode": code,
            "product_region_code": region, "product_location": REGIONS.get(region),
            "product": [("product_name", PRODUCT_NAMES[code]), ("servicecode", code)], "resource_tags": [], **cols,
        }

    def usage(self, r: dict, kind: str | None = None) -> list[dict]:
        meter = r["_meter"]
        code, usage_type, operation, unit, factor = CUR_METERS[meter]
        region = None if code == "AmazonCloudFront" else r["RegionId"]
        amount, rate = r["PricingQuantity"] * factor, r["ContractedUnitPrice"] / factor
        od_rate, cost = r["ListUnitPrice"] / factor, r["ContractedCost"]
        cid = r.get("CommitmentDiscountId")
        kind = kind or ("SavingsPlanCoveredUsage" if cid == self.sp.id else "DiscountedUsage" if cid == self.ri.id
                        else "Usage")
        cols = dict(region=region, line_item_usage_type=REGION_PREFIX.get(region, "") + usage_type,
                    line_item_operation=operation, line_item_availability_zone=r["AvailabilityZone"],
                    line_item_resource_id=_resource_id(r["ResourceId"]),
                    line_item_line_item_description=METERS[meter][4], line_item_usage_amount=amount,
                    line_item_unblended_rate=rate, line_item_unblended_cost=cost,
                    pricing_public_on_demand_rate=od_rate, pricing_public_on_demand_cost=r["ListCost"],
                    pricing_term="Spot" if meter.endswith(".spot") else "OnDemand", pricing_unit=unit,
                    pricing_rate_code=r["SkuPriceId"] + ".6YS6EN2CT7", product_sku=r["SkuId"],
                    product_product_family=r["SkuMeter"], resource_tags=_tags(r.get("Tags")))
        start, end, account = r["ChargePeriodStart"], r["ChargePeriodEnd"], r["SubAccountId"]
        if kind == "DiscountedUsage":
            cols.update(line_item_unblended_rate=D(0), line_item_unblended_cost=D(0), pricing_term="Reserved",
                        pricing_rate_code=f"{r['SkuId']}.{OFFER_1YR_ALL_UPFRONT}.6YS6EN2CT7",
                        reservation_reservation_a_r_n=cid, reservation_effective_cost=r["EffectiveCost"],
                        line_item_line_item_description=f"{METERS[meter][4]}, reserved (1 year, All Upfront)")
        if kind == "Refund":
            cols.update(line_item_line_item_description=r["ChargeDescription"])
        if kind != "SavingsPlanCoveredUsage":
            return [self.line(r, kind, code, account, start, end, **cols)]
        cols.update(savings_plan_savings_plan_a_r_n=cid, savings_plan_savings_plan_effective_cost=r["EffectiveCost"],
                    savings_plan_savings_plan_rate=self.sp.sp_rates[meter])
        negation = dict(cols, line_item_unblended_rate=-rate, line_item_unblended_cost=-cost,
                        pricing_public_on_demand_rate=None, pricing_public_on_demand_cost=None, resource_tags=[],
                        savings_plan_savings_plan_effective_cost=None, savings_plan_savings_plan_rate=None,
                        line_item_line_item_description=f"SavingsPlanNegation used by AccountId : {account} and "
                                                        f"UsageSku : {r['SkuId']}")
        return [self.line(r, kind, code, account, start, end, **cols),
                self.line(r, "SavingsPlanNegation", code, account, start, end, **negation)]

    def purchase(self, r: dict, used: D) -> dict:
        c = self.sp if r["CommitmentDiscountId"] == self.sp.id else self.ri
        start, end, account = r["ChargePeriodStart"], r["ChargePeriodEnd"], r["SubAccountId"]
        if c is self.sp:
            sku = _code(f"AWS:{c.sku}")[:16]
            return self.line(r, "SavingsPlanRecurringFee", "ComputeSavingsPlans", account, start, end,
                             line_item_usage_type="ComputeSP:1yrNoUpfront",
                             line_item_line_item_description=f"1 year No Upfront Compute Savings Plan with "
                                                             f"{r['ListUnitPrice']} USD hourly commitment",
                             line_item_usage_amount=r["PricingQuantity"], line_item_unblended_rate=r["ListUnitPrice"],
                             line_item_unblended_cost=r["BilledCost"], pricing_unit="Hrs", product_sku=sku,
                             pricing_rate_code=f"{sku}.{_code(c.id)[:10]}", product_product_family="Savings Plans",
                             savings_plan_savings_plan_a_r_n=c.id, savings_plan_total_commitment_to_date=r["BilledCost"],
                             savings_plan_used_commitment=used)
        sku = _code("AWS:aws.rds")[:16]  # the reserved instance type's SKU
        instances = c.capacity / 24
        return self.line(r, "Fee", "AmazonRDS", account, start, end, region=c.region,
                         line_item_usage_type="HeavyUsage:db.r6g.xl", line_item_operation="CreateDBInstance:0014",
                         line_item_line_item_description=f"Sign up charge for subscription: {_code(c.id)[:9]}, "
                                                         f"planId: {_code(c.sku)[:7]}",
                         line_item_usage_amount=instances, line_item_unblended_rate=r["BilledCost"] / instances,
                         line_item_unblended_cost=r["BilledCost"], pricing_unit="Quantity", pricing_term="Reserved",
                         product_sku=sku, pricing_rate_code=f"{sku}.{OFFER_1YR_ALL_UPFRONT}.2TG2D8R56U",
                         product_product_family="Database Instance", reservation_reservation_a_r_n=c.id,
                         reservation_start_time=f"{start:%Y-%m-%dT%H:%M:%S}.000Z",
                         reservation_end_time=f"{end:%Y-%m-%dT%H:%M:%S}.000Z")

    def ri_fee(self, r: dict, start: datetime, end: datetime, unused: D, unused_hours: D) -> dict:
        c, days = self.ri, calendar.monthrange(start.year, start.month)[1]
        sku = _code("AWS:aws.rds")[:16]
        return self.line(r, "RIFee", "AmazonRDS", self.acct.subs[c.sub][0], start, end, region=c.region,
                         line_item_usage_type="HeavyUsage:db.r6g.xl", line_item_operation="CreateDBInstance:0014",
                         line_item_line_item_description="USD 0.0 hourly fee per PostgreSQL, db.r6g.xlarge instance",
                         line_item_usage_amount=c.capacity * days, line_item_unblended_rate=D(0),
                         line_item_unblended_cost=D(0), pricing_unit="Hrs", pricing_term="Reserved", product_sku=sku,
                         pricing_rate_code=f"{sku}.{OFFER_1YR_ALL_UPFRONT}.6YS6EN2CT7",
                         product_product_family="Database Instance", reservation_reservation_a_r_n=c.id,
                         reservation_amortized_upfront_fee_for_billing_period=c.capacity * days * c.rate,
                         reservation_unused_amortized_upfront_fee_for_billing_period=unused,
                         reservation_unused_recurring_fee=D(0), reservation_unused_quantity=unused_hours)

    def other(self, r: dict, kind: str, code: str, account: str, amount: D, text: str) -> dict:
        return self.line(r, kind, code, account, r["BillingPeriodStart"], r["BillingPeriodEnd"],
                         line_item_unblended_cost=amount, line_item_line_item_description=text)


def cur_lines(rows: list[dict], p: Provider) -> list[dict]:
    """The provider's FOCUS-shaped demo rows as CUR 2.0 lines, in a fixed order (month, then as generated)."""
    b = _Lines(p)
    used: dict[datetime, D] = defaultdict(D)  # Savings Plan commitment used per day
    unused: dict[datetime, list] = {}  # RI, per month: [a row of the month, unused amortized fee, unused hours]
    for r in rows:
        unused.setdefault(r["BillingPeriodStart"], [r, D(0), D(0)])
        if r.get("CommitmentDiscountStatus") == "Used" and r["CommitmentDiscountId"] == b.sp.id:
            used[r["ChargePeriodStart"]] += r["EffectiveCost"]
    lines = []
    for r in rows:
        category, status = r["ChargeCategory"], r.get("CommitmentDiscountStatus")
        if category == "Usage" and status == "Unused":
            if r["CommitmentDiscountId"] == b.ri.id:
                month = unused[r["BillingPeriodStart"]]
                month[1] += r["EffectiveCost"]
                month[2] += r["PricingQuantity"]
            continue  # the Savings Plan's unused part is total commitment - used commitment on its fee line
        if category == "Usage":
            lines += b.usage(r, "Refund" if r["BilledCost"] < 0 else None)
        elif category == "Purchase":
            lines.append(b.purchase(r, used[r["ChargePeriodStart"]]))
        elif category == "Credit":
            code = next(c for c, n in PRODUCT_NAMES.items() if n == r["ServiceName"])
            lines.append(b.other(r, "Credit", code, r["SubAccountId"], r["BilledCost"], r["ChargeDescription"]))
    for r, amount, hours in unused.values():
        lines.append(b.ri_fee(r, r["BillingPeriodStart"], r["BillingPeriodEnd"], amount, hours))
    lines.sort(key=lambda line: line["bill_billing_period_start_date"])  # stable: keeps the generated order
    return _with_tax(b, lines)


def _with_tax(b: _Lines, lines: list[dict]) -> list[dict]:
    """Append the Tax lines of each month (per usage account and product code) and number every line."""
    out = []
    months = defaultdict(list)
    for line in lines:
        months[line["bill_billing_period_start_date"]].append(line)
    for month_lines in months.values():
        base: dict[tuple, D] = defaultdict(D)
        for line in month_lines:
            base[line["line_item_usage_account_id"], line["line_item_product_code"]] += line["line_item_unblended_cost"]
        first = month_lines[0]
        ref = {"InvoiceId": first["bill_invoice_id"], "BillingPeriodStart": first["bill_billing_period_start_date"],
               "BillingPeriodEnd": first["bill_billing_period_end_date"]}
        for (account, code), net in sorted(base.items()):
            tax = (net * b.acct.tax_rate).quantize(D("0.01"), ROUND_HALF_UP)
            if tax > 0:
                month_lines.append(b.other(ref, "Tax", code, account, tax, f"Tax for product code {code}"))
        for i, line in enumerate(month_lines):
            digest = hashlib.sha256(f"{b.acct.id}:{first['bill_billing_period_start_date']:%Y-%m}:{i}".encode())
            line["identity_line_item_id"] = base64.b32encode(digest.digest()).decode().lower().rstrip("=")[:52]
        out += month_lines
    return out


def _part(line: dict, days: int) -> int:
    """Part 1 holds days 1-15, part 2 the rest and the monthly lines; negations of days 13-15 and of the last day
    sit in the other part than their covered line."""
    day = line["line_item_usage_start_date"].day
    span = line["line_item_usage_end_date"] - line["line_item_usage_start_date"]
    part = 1 if day <= 15 and span <= timedelta(days=1) else 2
    if line["line_item_line_item_type"] == "SavingsPlanNegation" and (13 <= day <= 15 or day == days):
        part = 3 - part
    return part


def _parquet(lines: list[dict]) -> bytes:
    table = pa.table({f.name: pa.array([line.get(f.name) for line in lines], f.type) for f in SCHEMA}, schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    return buf.getvalue()


def export_files(lines: list[dict], name: str = EXPORT_NAME) -> dict[str, bytes]:
    """{path inside the export folder: content}: per billing month, its Parquet parts and its manifest."""
    files: dict[str, bytes] = {}
    months = defaultdict(list)
    for line in lines:
        months[line["bill_billing_period_start_date"]].append(line)
    for start, month_lines in sorted(months.items()):
        days = calendar.monthrange(start.year, start.month)[1]
        parts = [_parquet([x for x in month_lines if _part(x, days) == i]) for i in (1, 2)]
        run = str(uuid.UUID(bytes=hashlib.sha256(b"".join(parts)).digest()[:16], version=4))
        period = f"BILLING_PERIOD={start:%Y-%m}"
        names = [f"data/{period}/{name}-{run}-{i:05d}.snappy.parquet" for i in (1, 2)]
        files.update(zip(names, parts))
        end = month_lines[0]["bill_billing_period_end_date"]
        files[f"metadata/{period}/{name}-Manifest.json"] = json.dumps({
            "executionId": run, "exportName": name, "exportArn": f"arn:aws:bcm-data-exports:us-east-1:"
                                                                 f"{month_lines[0]['bill_payer_account_id']}:export/{name}",
            "billingPeriod": {"start": f"{start:%Y-%m-%dT%H:%M:%S.000Z}", "end": f"{end:%Y-%m-%dT%H:%M:%S.000Z}"},
            "dataFiles": [f"{BUCKET}/{name}/{n}" for n in names],
        }, indent=1).encode()
    return files
