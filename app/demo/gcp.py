"""The demo's Google Cloud part as Google writes it: Cloud Billing export rows (detailed usage cost), read through
the GCP connector's local file mode (`--provider gcp --format export`).

`export_rows()` restates the generator's GCP rows (the same billing account, projects, resources, SKUs, prices,
usage, CUD, promotion and tax) as rows of the detailed export table `gcp_billing_export_resource_v1_<ACCOUNT>`,
daily granularity:

| demo charge | export rows |
|---|---|
| usage (on-demand, spot) | cost_type `regular`: `cost` = the negotiated cost, `cost_at_list` = the list cost, `usage` in the service's own unit (seconds, byte-seconds, bytes, requests) and in pricing units, `price.effective_price` |
| usage covered by the CUD | the same usage row (cost = its on-demand cost) with a `COMMITTED_USAGE_DISCOUNT` credit of minus that cost: Google bills the covered usage through the commitment fee |
| the CUD's daily fee | a `Commitment v1: ...` SKU row of Compute Engine: cost = committed hours x the committed rate, every day |
| the CUD's unused part | nothing: the export has no unused rows, the fee line carries the whole commitment |
| the monthly promotional credit | `PROMOTION` credits on the month's BigQuery analysis rows of the project, in usage order, until the amount is used up (a credit never exceeds its line's cost) |
| tax | one cost_type `tax` row per invoice month (service "Invoice"): 5% of that month's cost + credits, in cents |
| tags, project, region/zone | `labels`, `project.id`/`name`/`number`/`ancestors`, `location`; VM rows also get `system_labels` (machine spec) |

Invoice months: every row is billed in the month of its usage, except Cloud Run usage of the last day of August and
September, exported late and billed in the next invoice month (the crossover the connector assigns by `invoice.month`;
the demo has no November invoice, so October's last day stays in October).

Money (`cost`, `cost_at_list`, `credits.amount`, `price.*`) is Decimal, written as NUMERIC is in Parquet
(DECIMAL(38,9), rounded half-even to 9 decimals): the export table itself stores FLOAT64, and the demo writes what a
`SELECT` casting it to NUMERIC would extract, so the files hold exact amounts. Usage quantities are FLOAT64, as in the
export. `export_files()` writes one Parquet file per invoice month, as an `EXPORT DATA ... AS SELECT * FROM <table>
WHERE invoice.month = '<YYYYMM>'` with a wildcard URI names it: `invoice_month=YYYYMM/000000000000.parquet`.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal as D

import pyarrow as pa
import pyarrow.parquet as pq

from app.demo.catalog import METERS, Provider

Q9 = D("0.000000001")
TABLE = "gcp_billing_export_resource_v1_{account}"
# service alias -> (service.id, service.description)
SERVICE_IDS = {
    "gce": ("6F81-5844-456A", "Compute Engine"), "gcs": ("95FF-2EF5-5EA1", "Cloud Storage"),
    "bq": ("24E6-581D-38E5", "BigQuery"), "run": ("152E-C115-5142", "Cloud Run"),
    "gke": ("CCD8-9BF1-090E", "Kubernetes Engine"), "cloudsql": ("9662-B51E-5089", "Cloud SQL"),
    "pubsub": ("A1E8-BE35-7EBC", "Cloud Pub/Sub"), "vertex": ("C7E2-9256-1C43", "Vertex AI"),
}
INVOICE_SERVICE = ("2062-016F-44A2", "Invoice")
# demo pricing unit -> (usage.unit, usage units per pricing unit, usage.pricing_unit, pricing units per demo unit)
UNITS = {
    "Hours": ("seconds", D(3600), "hour", D(1)),
    "GiB-Hours": ("byte-seconds", D(2**30 * 3600), "gibibyte hour", D(1)),
    "GiB-Months": ("byte-seconds", None, "gibibyte month", D(1)),  # bytes x the seconds of the month
    "TiB": ("bytes", D(2**40), "tebibyte", D(1)),
    "vCPU-Seconds": ("seconds", D(1), "second", D(1)),
    "10000 Requests": ("requests", D(1), "requests", D(10000)),  # Google prices requests one by one
    "1000000 Requests": ("requests", D(1), "requests", D(1000000)),
}
COUNTRIES = {"us": "US", "europe": "BE"}
CROSSOVER_METERS = ("gcp.run", "gcp.run.req")  # exported late on the last day of a month: next invoice month
MACHINE = {"gcp.n2.core": "n2-standard-8", "gcp.n2.ram": "n2-standard-8", "gcp.n2.spot": "n2-standard-8"}
ORGANIZATION = ("organizations/417093558211", "acme.example")


def _q9(value: D) -> D:
    return value.quantize(Q9, ROUND_HALF_EVEN)


def _hash_id(text: str) -> str:
    h = hashlib.sha256(text.encode()).hexdigest().upper()
    return f"{h[:4]}-{h[4:8]}-{h[8:12]}"


def _month(dt: datetime) -> str:
    return f"{dt:%Y%m}"


def _next_month(dt: datetime) -> datetime:
    return (dt.replace(day=1) + timedelta(days=32)).replace(day=1)


def table_name(p: Provider) -> str:
    return TABLE.format(account=p.accounts[0].id.replace("-", "_"))


class _Rows:
    """Builds export rows for one provider (one billing account) from the demo's FOCUS-shaped rows."""

    def __init__(self, p: Provider):
        self.p, self.acct = p, p.accounts[0]
        self.cud = next(c for c in p.commitments if c.type == "Committed Use Discount")

    def project(self, sub_id: str | None) -> dict | None:
        if sub_id is None:
            return None
        name = dict(self.acct.subs)[sub_id]
        number = str(random.Random(f"gcp-project:{sub_id}").randint(10**11, 10**12 - 1))
        return {"id": sub_id, "number": number, "name": name, "labels": [],
                "ancestry_numbers": f"/{ORGANIZATION[0].split('/')[1]}/{number}/",
                "ancestors": [{"resource_name": f"projects/{number}", "display_name": name},
                              {"resource_name": ORGANIZATION[0], "display_name": ORGANIZATION[1]}]}

    @staticmethod
    def location(region: str | None, zone: str | None) -> dict:
        country = COUNTRIES.get((region or "").split("-")[0])
        return {"location": zone or region, "country": country, "region": region, "zone": zone}

    def line(self, r: dict, service: tuple[str, str], sku: tuple[str, str], **cols) -> dict:
        start, end = r["ChargePeriodStart"], r["ChargePeriodEnd"]
        minutes = int(hashlib.sha256(f"{sku[0]}:{r.get('ResourceId')}:{start}".encode()).hexdigest()[:4], 16) % 180
        return {
            "billing_account_id": self.acct.id,
            "service": {"id": service[0], "description": service[1]},
            "sku": {"id": sku[0], "description": sku[1]},
            "usage_start_time": start, "usage_end_time": end,
            "project": self.project(r.get("SubAccountId")),
            "labels": [], "system_labels": [],
            "location": self.location(r.get("RegionId"), r.get("AvailabilityZone")),
            "tags": [],
            "export_time": end + timedelta(hours=3, minutes=minutes),
            "cost": None, "currency": self.acct.currency, "currency_conversion_rate": 1.0,
            "usage": None, "credits": [], "invoice": {"month": _month(r["BillingPeriodStart"])},
            "cost_type": "regular", "adjustment_info": None, "resource": None, "price": None, "cost_at_list": None,
            "transaction_type": "GOOGLE", "seller_name": None, **cols,
        }

    def usage(self, r: dict) -> dict:
        meter = r["_meter"]
        usage_unit, per_pricing, pricing_unit, factor = UNITS[r["PricingUnit"]]
        q = r["PricingQuantity"] * factor  # in Google's pricing units
        if per_pricing is None:  # GiB-months: bytes held x seconds of the month
            days = (_next_month(r["ChargePeriodStart"]) - r["ChargePeriodStart"].replace(day=1)).days
            per_pricing = D(2**30 * 86400 * days)
        cost = _q9(r["ContractedCost"])
        credits = []
        if r.get("CommitmentDiscountStatus") == "Used":
            credits.append({"name": "Committed Usage Discount: CPU", "amount": -cost,
                            "full_name": f"Committed use discount: N2 Cpu in Americas ({self.cud.name})",
                            "id": self.cud.id, "type": "COMMITTED_USAGE_DISCOUNT"})
        labels = [{"key": k, "value": v} for k, v in sorted(json.loads(r["Tags"]).items())] if r.get("Tags") else []
        system = []
        if meter in MACHINE:
            cores, memory = MACHINE[meter].rsplit("-", 1)[1], "32768"
            system = [{"key": "compute.googleapis.com/cores", "value": cores},
                      {"key": "compute.googleapis.com/machine_spec", "value": MACHINE[meter]},
                      {"key": "compute.googleapis.com/memory", "value": memory}]
        return self.line(
            r, SERVICE_IDS[METERS[meter][0]], (r["SkuId"], METERS[meter][4]),
            labels=labels, system_labels=system, cost=cost, cost_at_list=_q9(r["ListCost"]), credits=credits,
            usage={"amount": float(q * per_pricing), "unit": usage_unit, "amount_in_pricing_units": float(q),
                   "pricing_unit": pricing_unit},
            resource={"name": r["ResourceName"], "global_name": r["ResourceId"]},
            price={"effective_price": _q9(r["ContractedUnitPrice"] / factor), "tier_start_amount": D(0),
                   "unit": pricing_unit, "pricing_unit_quantity": D(1)},
            _meter=meter)

    def fee(self, r: dict) -> dict:
        c = self.cud
        hours = c.capacity  # vCPU hours committed per day
        cost = _q9(r["BilledCost"])
        return self.line(
            r, SERVICE_IDS["gce"], (_hash_id(f"Google Cloud:{c.sku}"), "Commitment v1: N2 Cpu in Americas for 1 Year"),
            cost=cost, cost_at_list=cost,
            usage={"amount": float(hours * 3600), "unit": "seconds", "amount_in_pricing_units": float(hours),
                   "pricing_unit": "hour"},
            resource={"name": c.name, "global_name": c.id},
            price={"effective_price": _q9(c.rate), "tier_start_amount": D(0), "unit": "hour",
                   "pricing_unit_quantity": D(1)})

    def tax(self, month_start: datetime, base: D) -> dict:
        amount = (base * self.acct.tax_rate).quantize(D("0.01"), ROUND_HALF_UP)
        end = _next_month(month_start)
        r = {"ChargePeriodStart": month_start, "ChargePeriodEnd": end, "BillingPeriodStart": month_start}
        row = self.line(r, INVOICE_SERVICE, (_hash_id(f"Google Cloud:tax:{self.acct.currency}"), "Tax"),
                        cost=amount, cost_type="tax", location={"location": None, "country": "US", "region": None,
                                                                "zone": None})
        row["export_time"] = end + timedelta(days=1, hours=4)
        return row


def export_rows(rows: list[dict], p: Provider) -> list[dict]:
    """The provider's FOCUS-shaped demo rows as billing export rows, ordered by invoice month, then as generated.
    Internal keys (`_meter`) start with an underscore and are not written."""
    b = _Rows(p)
    lines, promotions = [], []
    for r in rows:
        category, status = r["ChargeCategory"], r.get("CommitmentDiscountStatus")
        if category == "Usage" and status != "Unused":
            lines.append(b.usage(r))
        elif category == "Purchase":
            lines.append(b.fee(r))
        elif category == "Credit":
            promotions.append(r)
        # Unused CUD rows have no export row (the fee line is the commitment's cost); tax is recomputed below.
    last_month = max(r["BillingPeriodStart"] for r in rows)
    for line in lines:
        start = line["usage_start_time"]
        if line.get("_meter") in CROSSOVER_METERS and (start + timedelta(days=1)).day == 1 \
                and start.replace(day=1) < last_month:
            nxt = _next_month(start)
            line["invoice"] = {"month": _month(nxt)}
            line["export_time"] = nxt + timedelta(days=1, hours=2, minutes=line["export_time"].minute)
    by_month: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        by_month[line["invoice"]["month"]].append(line)
    for promo in promotions:
        _grant(by_month[_month(promo["BillingPeriodStart"])], promo)
    out = []
    for month, month_lines in sorted(by_month.items()):
        base = sum((x["cost"] + sum((c["amount"] for c in x["credits"]), D(0)) for x in month_lines), D(0))
        start = datetime.strptime(month, "%Y%m").replace(tzinfo=last_month.tzinfo)
        out += month_lines + [b.tax(start, base)]
    return out


def _grant(month_lines: list[dict], promo: dict) -> None:
    """Spread a promotional credit over the month's BigQuery analysis rows of its project, in usage order."""
    service = SERVICE_IDS["bq"][1]
    eligible = sorted((x for x in month_lines if x["service"]["description"] == service
                       and x["sku"]["description"] == METERS["gcp.bq"][4]
                       and (x["project"] or {}).get("id") == promo["SubAccountId"]),
                      key=lambda x: (x["usage_start_time"], x["resource"]["global_name"]))
    left = -promo["BilledCost"]
    promo_id = _hash_id(f"promotion:{promo['ChargeDescription']}").replace("-", "").lower()
    for x in eligible:
        if left <= 0:
            break
        amount = min(left, x["cost"] + sum((c["amount"] for c in x["credits"]), D(0)))
        if amount <= 0:
            continue
        x["credits"].append({"name": "Promotion", "amount": -amount, "full_name": promo["ChargeDescription"],
                             "id": f"promotions/{promo_id}", "type": "PROMOTION"})
        left -= amount
    if left:
        raise ValueError(f"promotion {promo['ChargeDescription']!r} exceeds the BigQuery cost of its month")


MONEY = pa.decimal128(38, 9)
TIME = pa.timestamp("us", tz="UTC")
TEXT = pa.string()
KV = pa.list_(pa.struct([("key", TEXT), ("value", TEXT)]))
SCHEMA = pa.schema([
    ("billing_account_id", TEXT),
    ("service", pa.struct([("id", TEXT), ("description", TEXT)])),
    ("sku", pa.struct([("id", TEXT), ("description", TEXT)])),
    ("usage_start_time", TIME),
    ("usage_end_time", TIME),
    ("project", pa.struct([("id", TEXT), ("number", TEXT), ("name", TEXT), ("labels", KV), ("ancestry_numbers", TEXT),
                           ("ancestors", pa.list_(pa.struct([("resource_name", TEXT), ("display_name", TEXT)])))])),
    ("labels", KV),
    ("system_labels", KV),
    ("location", pa.struct([("location", TEXT), ("country", TEXT), ("region", TEXT), ("zone", TEXT)])),
    ("tags", pa.list_(pa.struct([("key", TEXT), ("value", TEXT), ("inherited", pa.bool_()), ("namespace", TEXT)]))),
    ("export_time", TIME),
    ("cost", MONEY),
    ("currency", TEXT),
    ("currency_conversion_rate", pa.float64()),
    ("usage", pa.struct([("amount", pa.float64()), ("unit", TEXT), ("amount_in_pricing_units", pa.float64()),
                         ("pricing_unit", TEXT)])),
    ("credits", pa.list_(pa.struct([("name", TEXT), ("amount", MONEY), ("full_name", TEXT), ("id", TEXT),
                                    ("type", TEXT)]))),
    ("invoice", pa.struct([("month", TEXT)])),
    ("cost_type", TEXT),
    ("adjustment_info", pa.struct([("id", TEXT), ("description", TEXT), ("mode", TEXT), ("type", TEXT)])),
    ("resource", pa.struct([("name", TEXT), ("global_name", TEXT)])),
    ("price", pa.struct([("effective_price", MONEY), ("tier_start_amount", MONEY), ("unit", TEXT),
                         ("pricing_unit_quantity", MONEY)])),
    ("cost_at_list", MONEY),
    ("transaction_type", TEXT),
    ("seller_name", TEXT),
])


def _parquet(rows: list[dict]) -> bytes:
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in SCHEMA} for r in rows], schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy")
    return buf.getvalue()


def export_files(rows: list[dict]) -> dict[str, bytes]:
    """{path inside the export folder: content}: one Parquet file per invoice month."""
    months: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        months[r["invoice"]["month"]].append(r)
    return {f"invoice_month={m}/000000000000.parquet": _parquet(rs) for m, rs in sorted(months.items())}
