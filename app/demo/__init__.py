"""A seeded, realistic three-cloud dataset for `cloudtally demo` and the tests.

What the files contain (billing periods 2026-08, 2026-09 and 2026-10; daily charge periods):
- AWS: a CUR 2.0 Data Export (Parquet, two parts and a manifest per month, `app.demo.cur`), loaded as a
  configured `aws`/`cur2` source through the AWS connector: one management (payer) account with six member
  accounts (12-digit IDs). Azure: a partitioned Cost Management FocusCost export (version 1.2, gzip CSV, one run
  folder with a manifest per month, `<export>/<yyyyMMdd-yyyyMMdd>/<run time>/<guid>/`), loaded as an
  `azure`/`focus` source through the Azure connector: a USD billing profile with three subscriptions and a EUR
  EA enrollment with one (subscription GUIDs; a real export covers one scope, the demo puts both in one export to
  keep one Azure source). Google Cloud: Cloud Billing detailed export rows (Parquet with the export's nested
  columns, one file per invoice month, `invoice_month=YYYYMM/000000000000.parquet`, `app.demo.gcp`), loaded as a
  `gcp`/`export` source through the GCP connector: one billing account with four projects; Cloud Run usage of the
  last day of August and September is billed in the next invoice month.
- 28 services with their FOCUS ServiceCategory and ServiceSubcategory (AWS: CUR product codes, categorized by
  the connector), regions and zones, resources with IDs, SKUs and (AWS, Azure) price IDs, list and negotiated unit
  prices, consumed quantities, tags {team, env, app} for five teams (payments, data, platform, search, mobile;
  about one resource in ten is untagged; AWS: `resource_tags` user_team/user_env/user_app; GCP: labels, and
  Compute Engine's system labels on VM rows), and a three-day BigQuery cost spike in September (a runaway query,
  for anomaly views).
- Commitment discounts: an AWS Compute Savings Plan (daily recurring fee; covered usage and its negations), an
  all-upfront AWS RDS Reserved Instance (one Fee line, DiscountedUsage, a monthly RIFee with the unused part), a
  monthly-paid Azure VM reservation and a Google Cloud CUD (daily fee). Covered usage is `Committed` with
  BilledCost 0 and the amortized EffectiveCost; usage beyond the commitment stays `Standard`; what is left is an
  `Unused` row. Per commitment and charge period, Used + Unused EffectiveCost equals the fee billed for that
  period (for the RI: the upfront amount pro rata, per month). Google Cloud's export does not amortize: covered
  usage carries a COMMITTED_USAGE_DISCOUNT credit of minus its cost (EffectiveCost 0 once netted), the daily fee
  line keeps EffectiveCost = BilledCost, and there are no Unused rows (connectors/gcp).
- Spot (`Dynamic`) VMs, monthly credits (GCP: PROMOTION credits on BigQuery rows, Credit rows once loaded), one
  refund (AWS Refund line), tax (AWS: per usage account and product code; Azure and GCP: one Tax row per billing
  account and month), one invoice per billing account and month (GCP's export has no invoice number: InvoiceId
  stays empty).
All money is decimal.Decimal. The same seed gives byte-identical files. `rules.yaml` beside this module allocates
the dataset to teams and cost centers (one even split of commitment fees, one proportional split of invoice tax;
the sandbox account is left unallocated).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from app.demo import gcp
from app.demo.catalog import providers
from app.demo.cur import EXPORT_NAME, cur_lines, export_files
from app.demo.generator import Generator
from app.focus import FOCUS_COLUMNS

FIRST_MONTH, LAST_MONTH = "2026-08", "2026-10"
# Sample allocation rules for this dataset (README "Allocation rules"): `cloudtally demo` applies them.
RULES_FILE = Path(__file__).with_name("rules.yaml")
# Sample budgets for this dataset (README "Budgets, forecasts and chargeback"): `cloudtally demo` loads them.
BUDGETS_FILE = Path(__file__).with_name("budgets.csv")

# The FinOps Foundation validator's applicability criteria that this data satisfies (focus-validator.md 2.6).
# Not claimed since the AWS part is a CUR 2.0 export: CUR has no account types, so the AWS connector leaves
# BillingAccountType and SubAccountType null (connectors/aws/cur.py) and the dataset fails
# MULTIPLE_BILLING_ACCOUNT_TYPES_SUPPORTED (BillingAccountType-C-005-C) and MULTIPLE_SUB_ACCOUNT_TYPES_SUPPORTED
# (SubAccountType-C-005-C) on every AWS row.
# Not claimed since the GCP part is a Cloud Billing export read by the GCP connector (connectors/gcp/export.py), which
# leaves on every GCP row: BillingAccountName null (the export has no billing account name), so
# ACCOUNT_NAMING_SUPPORTED fails BillingAccountName-C-003-C; SkuMeter null while SkuId is set (SkuMeter-C-005-C,
# applicable under PUBLIC_PRICE_LIST_SUPPORTED or UNIT_PRICING_SUPPORTED) and PricingCurrencyEffectiveCost null
# (PricingCurrencyEffectiveCost-C-003-M, evaluated under PUBLIC_PRICE_LIST_SUPPORTED). Should the connector fill
# them, the three can be claimed again.
VALIDATOR_CRITERIA: tuple[str, ...] = (
    "AVAILABILITY_ZONE_SUPPORTED", "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",
    "COMMITMENT_DISCOUNT_SUPPORTED", "MULTIPLE_PRICING_CATEGORIES_SUPPORTED", "NEGOTIATED_PRICING_SUPPORTED",
    "REGION_SUPPORTED", "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED", "SUB_ACCOUNT_SUPPORTED", "TAGGING_SUPPORTED",
    "USAGE_MEASUREMENT_SUPPORTED",
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


def _csv_gz(rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_text(row.get(c)) for c in columns] for row in rows)
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buf.getvalue().encode())
    return raw.getvalue()


AZURE_EXPORT = "demo-focus"
AZURE_SCOPE = "/providers/Microsoft.Billing/billingAccounts/demo"


def _azure_focus_export(rows: list[dict], seed: int) -> dict[str, bytes]:
    """The rows as a partitioned FocusCost export: per billing month one run (submitted at 06:00 on the 2nd of the
    next month, as a month-to-date export's last run of a closed month) with one gzip CSV part and the manifest
    Azure writes after the data. Azure's own x_ columns: x_ResourceGroupName from the resource id."""
    columns = COLUMNS + ("x_ResourceGroupName",)
    files: dict[str, bytes] = {}
    for start in sorted({r["BillingPeriodStart"] for r in rows}):
        month_rows = [dict(r, x_ResourceGroupName=_resource_group(r.get("ResourceId"))) for r in rows
                      if r["BillingPeriodStart"] == start]
        end = next(r["BillingPeriodEnd"] for r in month_rows)  # exclusive: the 1st of the next month
        last_day = end - timedelta(days=1)
        submitted = end + timedelta(days=1, hours=6)
        run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cloudtally-demo:{seed}:{start:%Y-%m}"))
        run_dir = f"{AZURE_EXPORT}/{start:%Y%m%d}-{last_day:%Y%m%d}/{submitted:%Y%m%d%H%M}/{run_id}"
        part = _csv_gz(month_rows, columns)
        files[f"{run_dir}/part_0_0001.csv.gz"] = part
        manifest = {
            "manifestVersion": "2024-04-01", "byteCount": len(part), "blobCount": 1, "dataRowCount": len(month_rows),
            "exportConfig": {"exportName": AZURE_EXPORT, "type": "FocusCost", "dataVersion": "1.2",
                             "resourceId": f"{AZURE_SCOPE}/providers/Microsoft.CostManagement/exports/{AZURE_EXPORT}",
                             "timeFrame": "MonthToDate", "granularity": "Daily"},
            "deliveryConfig": {"partitionData": True, "dataOverwriteBehavior": "CreateNewReport",
                               "fileFormat": "Csv", "compressionMode": "gzip", "rootFolderPath": "demo-azure"},
            "runInfo": {"executionType": "Scheduled", "submittedTime": f"{submitted:%Y-%m-%dT%H:%M:%S}Z",
                        "runId": run_id, "startDate": f"{start:%Y-%m-%dT%H:%M:%S}",
                        "endDate": f"{last_day:%Y-%m-%dT%H:%M:%S}"},
            "blobs": [{"blobName": f"demo-azure/{run_dir}/part_0_0001.csv.gz", "byteCount": len(part),
                       "dataRowCount": len(month_rows)}],
        }
        files[f"{run_dir}/manifest.json"] = json.dumps(manifest, indent=2).encode()
    return files


def _resource_group(resource_id: str | None) -> str | None:
    if not resource_id or "/resourcegroups/" not in resource_id.lower():
        return None
    return resource_id[resource_id.lower().index("/resourcegroups/") + len("/resourcegroups/"):].split("/", 1)[0]


def source_formats() -> dict[str, tuple[str, str]]:
    """{source name: (provider, format)} as `app.sources` names them: every part is a configured source."""
    kinds = {"cur2": ("aws", "cur2"), "focuscost": ("azure", "focus"), "gcpexport": ("gcp", "export")}
    return {name: kinds[p.fmt] for name, p in providers().items()}


def _sync(root: Path, files: dict[str, bytes]) -> None:
    """Make `root` hold exactly `files`, rewriting only what changed: an unchanged export keeps its files'
    modification times, which the AWS and Azure connectors' delivery identities include (so a re-run reloads
    nothing; the GCP connector identifies a delivery by its files' content)."""
    if root.exists():
        for path in root.rglob("*"):
            if path.is_file() and path.relative_to(root).as_posix() not in files:
                path.unlink()
    for rel, content in sorted(files.items()):
        path = root / rel
        if path.is_file() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for path in sorted(root.rglob("*"), reverse=True):  # folders left empty
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def write_exports(folder: Path, seed: int = 20261023) -> dict[str, Path]:
    """Write the dataset: {source name: its location}, each an export folder inside `<folder>/<source name>`:
    `demo-aws/demo-cur2`, `demo-azure/demo-focus` and `demo-gcp/gcp_billing_export_resource_v1_<account>`. Synced:
    re-running into the same folder leaves exactly the new files and touches no unchanged one."""
    out = {}
    for name, provider in providers().items():
        rows = Generator(provider, random.Random(f"{seed}:{name}")).rows()
        target = Path(folder) / name
        if provider.fmt == "cur2":
            sub = EXPORT_NAME
            files = {f"{sub}/{rel}": data for rel, data in export_files(cur_lines(rows, provider)).items()}
        elif provider.fmt == "focuscost":
            sub, files = AZURE_EXPORT, _azure_focus_export(rows, seed)  # paths start with the export's name
        else:
            sub = gcp.table_name(provider)
            files = {f"{sub}/{rel}": data for rel, data in gcp.export_files(gcp.export_rows(rows, provider)).items()}
        _sync(target, files)
        out[name] = target / sub
    return out
