"""Azure Cost Management export fixtures, laid out the way Azure delivers them.

`month_rows()` is one billing month of cost-details lines covering every case the mapping handles, each with its
cost in the ActualCost dataset and in the AmortizedCost dataset (None where the line is absent from that dataset:
a reservation purchase only in actual, unused reservation hours only in amortized). Writers render the rows under
the EA (PascalCase, `Cost`, MM/dd/yyyy), MCA (camelCase) or CSP (camelCase, partner columns, no billing account
id) header sets, as CSV (optionally gzip and/or with a BOM) or Parquet, in the partitioned layout with a
`manifest.json` or in the legacy one-file layout. Expected sums are computed here with Python Decimal from the
same rows, independently of DuckDB.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ENROLLMENT = "8611537"
SUB_A = "9ec51cfd-5ca7-4d76-8101-dd0a4abc5674"
SUB_B = "64e355d7-997c-491d-b0c1-8414dccfcf42"
RI_ID = "/providers/Microsoft.Capacity/reservationOrders/a965d46f/reservations/f39d1c73"
SP_ID = "/providers/Microsoft.BillingBenefits/savingsPlanOrders/802a9e8b/savingsPlans/09ff8291"

# canonical -> header name per header set (None: the set has no such column).
HEADERS: dict[str, dict[str, str | None]] = {
    "ea": {  # real EA export headers (microsoft/finops-toolkit EA_AmortizedCost_Small.csv)
        "billing_account_id": "BillingAccountId", "billing_account_name": "BillingAccountName",
        "billing_period_start": "BillingPeriodStartDate", "billing_period_end": "BillingPeriodEndDate",
        "billing_profile_id": "BillingProfileId", "subscription_id": "SubscriptionId",
        "subscription_name": "SubscriptionName", "date": "Date", "product_name": "Product",
        "part_number": "PartNumber", "meter_id": "MeterId", "meter_category": "MeterCategory",
        "meter_subcategory": "MeterSubCategory", "meter_name": "MeterName", "quantity": "Quantity",
        "effective_price": "EffectivePrice", "cost": "Cost", "unit_price": "UnitPrice",
        "billing_currency": "BillingCurrency", "resource_location": "ResourceLocation",
        "resource_id": "ResourceId", "resource_name": "ResourceName", "additional_info": "AdditionalInfo",
        "tags": "Tags", "invoice_section_name": "InvoiceSection", "unit": "UnitOfMeasure",
        "resource_group": "ResourceGroup", "reservation_id": "ReservationId", "reservation_name": "ReservationName",
        "publisher_name": "PublisherName", "charge_type": "ChargeType", "frequency": "Frequency",
        "payg_price": "PayGPrice", "pricing_model": "PricingModel", "benefit_id": "benefitId",
        "benefit_name": "benefitName",
    },
    "mca": {
        "billing_account_id": "billingAccountId", "billing_account_name": "billingAccountName",
        "billing_period_start": "billingPeriodStartDate", "billing_period_end": "billingPeriodEndDate",
        "billing_profile_id": "billingProfileId", "invoice_section_name": "invoiceSectionName",
        "invoice_id": "invoiceId", "subscription_id": "subscriptionId", "subscription_name": "subscriptionName",
        "date": "date", "product_name": "productName", "product_id": "productId", "meter_id": "meterId",
        "meter_name": "meterName", "meter_category": "meterCategory", "meter_subcategory": "meterSubCategory",
        "quantity": "quantity", "unit": "unitOfMeasure", "effective_price": "effectivePrice",
        "unit_price": "unitPrice", "payg_price": "PayGPrice", "cost": "costInBillingCurrency",
        "payg_cost": "paygCostInBillingCurrency", "billing_currency": "billingCurrency",
        "pricing_currency": "pricingCurrency", "resource_group": "resourceGroupName", "resource_id": "ResourceId",
        "resource_location": "resourceLocation", "location": "location", "charge_type": "chargeType",
        "frequency": "frequency", "pricing_model": "pricingModel", "reservation_id": "reservationId",
        "reservation_name": "reservationName", "benefit_id": "benefitId", "benefit_name": "benefitName",
        "publisher_name": "publisherName", "tags": "tags", "additional_info": "additionalInfo",
    },
    "csp": {  # camelCase, partner columns, no billing account id (opencost EnterpriseCamel header set)
        "billing_account_name": "billingAccountName", "partner_name": "partnerName",
        "customer_tenant_id": "customerTenantId", "customer_name": "customerName",
        "billing_period_start": "billingPeriodStartDate", "billing_period_end": "billingPeriodEndDate",
        "date": "date", "product_name": "ProductName", "product_id": "ProductId", "subscription_id": "SubscriptionId",
        "subscription_name": "subscriptionName", "meter_id": "meterId", "meter_name": "meterName",
        "meter_category": "meterCategory", "meter_subcategory": "meterSubCategory", "quantity": "quantity",
        "unit": "unitOfMeasure", "effective_price": "effectivePrice", "payg_price": "PayGPrice",
        "cost": "costInBillingCurrency", "billing_currency": "billingCurrency", "pricing_currency": "pricingCurrency",
        "resource_group": "resourceGroupName", "resource_id": "ResourceId", "resource_location": "resourceLocation",
        "charge_type": "chargeType", "frequency": "frequency", "pricing_model": "pricingModel",
        "reservation_id": "reservationId", "reservation_name": "reservationName", "publisher_name": "publisherName",
        "tags": "tags", "additional_info": "additionalInfo",
    },
}
# A real localized header line (opencost German.csv): Azure wrote it for a German-language export.
GERMAN_HEADER = ["Abonnement-GUID (SubscriptionGuid)", "Ressourcengruppe (ResourceGroup)",
                 "Ressourcenstandort (ResourceLocation)", "UsageDateTime (UsageDateTime)",
                 "Kategorie der Verbrauchseinheit (MeterCategory)", "MeterSubcategory (MeterSubcategory)",
                 "ID der Verbrauchseinheit (MeterId)", "Name der Verbrauchseinheit (MeterName)",
                 "Region der Verbrauchseinheit (MeterRegion)", "UsageQuantity (UsageQuantity)",
                 "Ressourcensatz (ResourceRate)", "PreTaxCost (PreTaxCost)", "Genutzter Dienst (ConsumedService)",
                 "ResourceType (ResourceType)", "InstanceId (InstanceId)", "Tags (Tags)", "OfferId (OfferId)",
                 "Zusätzliche Informationen (AdditionalInfo)", "Dienstinformation 1 (ServiceInfo1)",
                 "Dienstinformation 2 (ServiceInfo2)", "ServiceName", "ServiceTier", "Currency",
                 "Maßeinheit (UnitOfMeasure)"]
GERMAN_ROW = [SUB_A, "rg", "US East", "2026-10-02", "Load Balancer", "Standard", "27827eb0", "LB Rules", "", "3",
              "0.025", "0.075", "Microsoft.Network", "Microsoft.Network/loadBalancers", "/subscriptions/x", "", "",
              "", "", "", "Load Balancer", "Std Load Balancer", "USD", "100 Hours"]


def _rid(sub: str, rg: str, provider: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{name}"


def month_rows(year: int = 2026, month: int = 10, scale: D = D(1)) -> list[dict]:
    """One month of lines: canonical values plus `actual` / `amortized` costs (None = absent from that dataset)."""
    start = date(year, month, 1)
    end = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1))
    base = {"billing_account_id": ENROLLMENT, "billing_account_name": "Trey Research", "billing_profile_id": ENROLLMENT,
            "billing_period_start": start, "billing_period_end": end, "billing_currency": "USD",
            "pricing_currency": "USD", "subscription_id": SUB_A, "subscription_name": "Trey Corporate",
            "invoice_section_name": "ACM", "publisher_name": "Microsoft", "frequency": "UsageBased",
            "charge_type": "Usage", "pricing_model": "OnDemand", "partner_name": "Contoso Partner",
            "customer_tenant_id": "11111111-1111-1111-1111-123456789012", "customer_name": "Trey"}
    vm = {"meter_category": "Virtual Machines", "meter_subcategory": "Dv2/DSv2 Series", "meter_name": "D2 v2/DS2 v2",
          "meter_id": "14fc9a21-4919-4cb1-b495-5666966556bc", "product_name": "Virtual Machines Dv2 Series - D2 v2",
          "product_id": "DZH318Z0BQ4L", "part_number": "997-03401", "unit": "1 Hour", "resource_location": "EastUS",
          "location": "US East", "resource_group": "APP-RG",
          "resource_id": _rid(SUB_A, "APP-RG", "Microsoft.Compute", "virtualMachines/vm-1"), "resource_name": "vm-1",
          "additional_info": '{"ServiceType":"Standard_DS2_v2","VCPUs":2}'}
    d = lambda day: date(year, month, day)  # noqa: E731
    rows = [
        # On-demand VM: a float artefact in the cost; tags with braces.
        dict(base, **vm, date=d(5), quantity=D("24"), effective_price=D("0.096"), unit_price=D("0.096"),
             payg_price=D("0.096"), actual=D("2.3040000000000003"), amortized=D("2.3040000000000003"),
             tags='{"team": "payments", "env": "prod"}'),
        # Storage: tags WITHOUT braces, as some exports write them; AdditionalInfo without braces too.
        dict(base, meter_category="Storage", meter_subcategory="Standard SSD Managed Disks", meter_name="E2 Disks",
             meter_id="ba4ac43b-150e-431f-8e71-00d4e8f457d8", product_name="Standard SSD Managed Disks - E2",
             product_id="DZH318Z0BP04", part_number="AAF-76247", unit="1/Month", resource_location="EastUS",
             location="US East", resource_group="data-rg", subscription_id=SUB_B, subscription_name="R&D",
             resource_id=_rid(SUB_B, "data-rg", "Microsoft.Compute", "disks/disk-1"), resource_name="disk-1",
             date=d(6), quantity=D("0.033336"), effective_price=D("0.6"), unit_price=D("0.6"), payg_price=D("0.6"),
             actual=D("0.0200016"), amortized=D("0.0200016"), tags='"team": "data","costCenter": "42"',
             additional_info='"UsageType": "disks"'),
        # Reservation-covered VM hours: billed 0 in actual, the reservation's share in amortized.
        dict(base, **dict(vm, resource_id=_rid(SUB_A, "APP-RG", "Microsoft.Compute", "virtualMachines/vm-2"),
                          resource_name="vm-2"),
             date=d(7), quantity=D("8"), effective_price=D("0"), unit_price=D("0.146"), payg_price=D("0.146"),
             pricing_model="Reservation", reservation_id="f39d1c73", reservation_name="ProdDS2",
             benefit_id=RI_ID, benefit_name="ProdDS2", actual=D("0"), amortized=D("0.493152"),
             tags='{"team": "payments"}'),
        # The reservation's monthly purchase: only in actual.
        dict(base, meter_category="Virtual Machines", meter_name="Reservation-Base VM", product_name=
             "Reserved VM Instance, Standard_DS2_v2, US East, 1 Year", date=d(1), charge_type="Purchase",
             frequency="Recurring", pricing_model="Reservation", reservation_id="f39d1c73",
             reservation_name="ProdDS2", benefit_id=RI_ID, benefit_name="ProdDS2", quantity=D("1"), unit="1 Hour",
             actual=D("70.08"), amortized=None),
        # Unused reservation hours: only in amortized.
        dict(base, **vm, date=d(7), charge_type="UnusedReservation", pricing_model="Reservation", quantity=D("16"),
             reservation_id="f39d1c73", reservation_name="ProdDS2", benefit_id=RI_ID, benefit_name="ProdDS2",
             effective_price=D("0.061644"), actual=None, amortized=D("0.986304")),
        # Savings-plan-covered usage.
        dict(base, **dict(vm, meter_name="B2s", resource_id=_rid(SUB_A, "APP-RG", "Microsoft.Compute",
                                                                   "virtualMachines/vm-3"), resource_name="vm-3"),
             date=d(8), quantity=D("0.32085564"), effective_price=D("0.0187"), unit_price=D("0.0416"),
             payg_price=D("0.0416"), pricing_model="SavingsPlan", benefit_id=SP_ID, benefit_name="Compute SP",
             actual=D("0"), amortized=D("0.006000000468")),
        # Two lines with identical descriptive columns (same key): paired by order, not merged.
        dict(base, meter_category="Bandwidth", meter_name="Standard Data Transfer Out", unit="1 GB",
             meter_id="9995d93a-7d35-4d3f-9c69-7a7fea447ef4", product_name="Bandwidth - Data Transfer Out",
             resource_location="EastUS2", resource_group="APP-RG", resource_id=vm["resource_id"], date=d(9),
             quantity=D("0.00000008"), actual=D("0.0000000072922557592391990000"),
             amortized=D("0.0000000072922557592391990000")),
        dict(base, meter_category="Bandwidth", meter_name="Standard Data Transfer Out", unit="1 GB",
             meter_id="9995d93a-7d35-4d3f-9c69-7a7fea447ef4", product_name="Bandwidth - Data Transfer Out",
             resource_location="EastUS2", resource_group="APP-RG", resource_id=vm["resource_id"], date=d(9),
             quantity=D("0.00000008"), actual=D("0.0000000072922557592391990000"),
             amortized=D("0.0000000072922557592391990000")),
        # A Marketplace purchase, in both datasets.
        dict(base, meter_category="SaaS", meter_name="Contoso DB Pro", product_name="Contoso DB Pro - monthly",
             publisher_name="Contoso", date=d(2), charge_type="Purchase", frequency="Recurring", quantity=D("1"),
             unit="1/Month", actual=D("10.00"), amortized=D("10.00")),
        # A refund of an earlier reservation purchase: only in actual.
        dict(base, meter_category="Virtual Machines", meter_name="Reservation-Base VM", product_name=
             "Reserved VM Instance, Standard_DS1_v2, US East, 1 Year", date=d(3), charge_type="Refund",
             frequency="OneTime", pricing_model="Reservation", reservation_id="aa11", benefit_id=RI_ID + "x",
             actual=D("-5.25"), amortized=None),
    ]
    for r in rows:
        for k in ("actual", "amortized"):
            if r[k] is not None:
                r[k] = r[k] * scale
    return rows


def expected(rows: list[dict], fmt: str) -> tuple[D, D]:
    """(Σ BilledCost, Σ EffectiveCost) a delivery of this format must land, from the rows with Decimal (each row as
    the warehouse's DECIMAL(38,18) holds it)."""
    actual = sum((q18(r["actual"]) for r in rows if r["actual"] is not None), D(0))
    amortized = sum((q18(r["amortized"]) for r in rows if r["amortized"] is not None), D(0))
    if fmt == "actual":
        return actual, actual
    if fmt == "amortized":  # billed 0 where Azure's actual view bills 0: commitment-covered and unused lines
        covered = lambda r: r["charge_type"].startswith("Unused") or (  # noqa: E731
            r["charge_type"] == "Usage" and r["pricing_model"] in ("Reservation", "SavingsPlan"))
        billed = sum((q18(r["amortized"]) for r in rows if r["amortized"] is not None and not covered(r)), D(0))
        return billed, amortized
    return actual, amortized


def q18(value: D) -> D:
    """A value as DECIMAL(38,18) holds it."""
    return value.quantize(D("1e-18"), rounding=ROUND_HALF_UP)


# -- rendering ---------------------------------------------------------------------------------------------------
def _text(value, date_format: str) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return {"us": value.strftime("%m/%d/%Y"), "iso": value.strftime("%Y-%m-%d"),
                "iso-time": value.strftime("%Y-%m-%dT00:00:00.0000000Z")}[date_format]
    return str(value)


def table(rows: list[dict], dataset: str, headers: str = "ea", date_format: str = "us") -> tuple[list[str], list[list[str]]]:
    """Header and text rows of one dataset (actual | amortized) under one header set."""
    names = HEADERS[headers]
    header = list(names.values())
    out = []
    for r in rows:
        cost = r[dataset]
        if cost is None:
            continue
        values = dict(r, cost=cost)
        out.append([_text(values.get(canonical), date_format) for canonical in names])
    return header, out


def render(header: list[str], rows: list[list[str]], kind: str = "csv", bom: bool = False) -> bytes:
    """File bytes: kind csv | csv.gz | parquet (all text columns, as a Parquet export of CSV text would not be:
    Parquet exports type their columns; see `render_parquet`)."""
    if kind == "parquet":
        return render_parquet(header, rows)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([header, *rows])
    data = (("\ufeff" if bom else "") + buf.getvalue()).encode("utf-8")
    return gzip.compress(data, mtime=0) if kind == "csv.gz" else data


def render_parquet(header: list[str], rows: list[list[str]]) -> bytes:
    """Parquet as Azure writes it: money and quantities as DOUBLE, dates as text, the rest as text."""
    doubles = {"Cost", "CostInBillingCurrency", "costInBillingCurrency", "Quantity", "quantity", "EffectivePrice",
               "effectivePrice", "UnitPrice", "unitPrice", "PayGPrice", "paygCostInBillingCurrency"}
    cols = {}
    for i, name in enumerate(header):
        values = [r[i] or None for r in rows]
        if name in doubles:
            cols[name] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        else:
            cols[name] = pa.array(values, pa.string())
    sink = io.BytesIO()
    pq.write_table(pa.table(cols), sink, compression="snappy")
    return sink.getvalue()


@dataclass
class Delivered:
    root: Path  # the export folder (the source's location)
    run_id: str
    files: list[Path]
    manifest: Path | None


def range_folder(year: int, month: int) -> str:
    start = date(year, month, 1)
    end = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return f"{start:%Y%m%d}-{end:%Y%m%d}"


def write_export(container: Path, export: str, rows: list[dict], dataset: str = "actual", *, headers: str = "ea",
                 kind: str = "csv.gz", parts: int = 2, run_time: str = "202610061200", bom: bool = False,
                 date_format: str = "us", root: str = "exports", year: int = 2026, month: int = 10,
                 submitted: datetime | None = None, manifest: bool = True) -> Delivered:
    """A partitioned export run: <container>/<root>/<export>/<range>/<run_time>/<guid>/part_*.<kind> + manifest."""
    header, body = table(rows, dataset, headers, date_format)
    run_id = str(uuid.uuid4())
    rel_dir = f"{root}/{export}/{range_folder(year, month)}/{run_time}/{uuid.uuid4()}"
    folder = container / rel_dir
    folder.mkdir(parents=True)
    chunks = [body[i::parts] for i in range(parts)]
    files, blobs = [], []
    for i, chunk in enumerate(chunks):
        name = f"part_{i}_0001.{kind}"
        data = render(header, chunk, kind, bom)
        (folder / name).write_bytes(data)
        files.append(folder / name)
        blobs.append({"blobName": f"{rel_dir}/{name}", "byteCount": len(data), "dataRowCount": len(chunk)})
    doc = {
        "manifestVersion": "2024-04-01", "byteCount": sum(b["byteCount"] for b in blobs), "blobCount": len(blobs),
        "dataRowCount": len(body),
        "exportConfig": {"exportName": export, "resourceId": f"/providers/Microsoft.Billing/billingAccounts/"
                         f"{ENROLLMENT}/providers/Microsoft.CostManagement/exports/{export}",
                         "dataVersion": "2021-10-01", "apiVersion": "2023-07-01-preview",
                         "type": {"actual": "ActualCost", "amortized": "AmortizedCost", "focus": "FocusCost"}[dataset],
                         "timeFrame": "MonthToDate", "granularity": "Daily"},
        "deliveryConfig": {"partitionData": True, "dataOverwriteBehavior": "CreateNewReport",
                           "fileFormat": "Parquet" if kind == "parquet" else "Csv",
                           "compressionMode": "Gzip" if kind == "csv.gz" else "None",
                           "containerUri": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/"
                                           "storageAccounts/z", "rootFolderPath": root},
        "runInfo": {"executionType": "Scheduled",
                    "submittedTime": (submitted or datetime.strptime(run_time, "%Y%m%d%H%M").replace(
                        tzinfo=timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.1234567Z"),
                    "runId": run_id, "startDate": f"{year}-{month:02d}-01T00:00:00",
                    "endDate": f"{range_folder(year, month)[9:13]}-{range_folder(year, month)[13:15]}-"
                               f"{range_folder(year, month)[15:17]}T00:00:00"},
        "blobs": blobs,
    }
    path = None
    if manifest:
        path = folder / "manifest.json"
        path.write_text(json.dumps(doc, indent=2))
    return Delivered(container / root / export, run_id, files, path)


def write_focus_export(container: Path, export: str, rows: list[dict], version: str = "1.2",
                       run_time: str = "202610061200") -> Delivered:
    """A FocusCost export run with Azure's x_ columns (a compact FOCUS rendering of the same lines)."""
    seconds = "" if version == "1.0" else ":00"
    header = ["BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
              "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
              "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName",
              "ListCost", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ResourceId",
              "ServiceCategory", "ServiceName", "SubAccountId", "Tags", "x_ResourceGroupName", "x_SkuMeterCategory",
              "x_BilledCostInUsd"]
    body = []
    for r in rows:
        if r["actual"] is None and r["amortized"] is None:
            continue
        day = r["date"]
        bp = r["billing_period_start"]
        nxt = (bp.replace(day=28) + timedelta(days=4)).replace(day=1)
        ts = lambda d: f"{d:%Y-%m-%d}T00:00{seconds}Z"  # noqa: E731
        category = {"Usage": "Usage", "UnusedReservation": "Usage", "Purchase": "Purchase",
                    "Refund": "Purchase"}[r["charge_type"]]
        billed = r["actual"] or D(0)
        effective = r["amortized"] or D(0)
        tags = r.get("tags") or ""
        if tags and not tags.startswith("{"):
            tags = "{" + tags + "}"
        body.append([str(billed), f"/providers/Microsoft.Billing/billingAccounts/{ENROLLMENT}", "Trey Research",
                     "USD", ts(nxt), ts(bp), category, "Correction" if r["charge_type"] == "Refund" else "",
                     r.get("product_name") or "", "Usage-Based" if category == "Usage" else "Recurring",
                     ts(day + timedelta(days=1)), ts(day), str(billed), str(effective), "Microsoft", str(billed),
                     str(r.get("quantity") or ""), r.get("unit") or "" if r.get("quantity") else "", "Microsoft",
                     r["publisher_name"], (r.get("resource_id") or "").lower(), "Compute", r["meter_category"],
                     f"/subscriptions/{r['subscription_id']}", tags, r.get("resource_group") or "",
                     r["meter_category"], str(billed)])
    rel_dir = f"exports/{export}/{range_folder(2026, 10)}/{run_time}/{uuid.uuid4()}"
    folder = container / rel_dir
    folder.mkdir(parents=True)
    data = render(header, body, "csv.gz")
    (folder / "part_0_0001.csv.gz").write_bytes(data)
    doc = {"exportConfig": {"type": "FocusCost", "dataVersion": version},
           "runInfo": {"runId": str(uuid.uuid4()), "startDate": "2026-10-01T00:00:00", "endDate": "2026-10-31T00:00:00",
                       "submittedTime": f"{run_time[:4]}-{run_time[4:6]}-{run_time[6:8]}T{run_time[8:10]}:"
                                        f"{run_time[10:12]}:00Z"},
           "blobs": [{"blobName": f"{rel_dir}/part_0_0001.csv.gz", "byteCount": len(data)}]}
    (folder / "manifest.json").write_text(json.dumps(doc))
    return Delivered(container / "exports" / export, doc["runInfo"]["runId"], [folder / "part_0_0001.csv.gz"],
                     folder / "manifest.json")


def write_legacy(container: Path, export: str, rows: list[dict], dataset: str = "actual", headers: str = "ea",
                 year: int = 2026, month: int = 10, kind: str = "csv") -> Path:
    """A non-partitioned run: <container>/<export>/<range>/<export>_<uuid>.csv, no manifest."""
    header, body = table(rows, dataset, headers)
    folder = container / export / range_folder(year, month)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{export}_{uuid.uuid4()}.{kind}"
    path.write_bytes(render(header, body, kind))
    return path


def upload(container_client, local_container: Path) -> None:
    """Put every file under a local container folder into an Azure container, same names."""
    for p in sorted(local_container.rglob("*")):
        if p.is_file():
            container_client.upload_blob(p.relative_to(local_container).as_posix(), p.read_bytes(), overwrite=True)
