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
           "RegionId": "us-east-1", "RegionName": "US East (N. Virginia)", "SkuId": "SKU", "SkuPriceId": "SKU.1",
           "SkuMeter": "Compute Instance"}
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


# -- labelled waste fixtures ----------------------------------------------------------------------------------------
WASTE_END = date(2026, 7, 1)  # every provider's data ends here (exclusive)


def _days(n: int, end: date = WASTE_END, skip=()) -> list[date]:
    return [end - timedelta(days=i) for i in range(n, 0, -1) if (end - timedelta(days=i)) not in skip]


def waste_lines() -> tuple[list[dict], dict[str, str]]:
    """FOCUS lines with labelled waste: (rows, {ResourceId: the kind that must flag it}). Every other resource is a
    labelled negative, most of them one step on the wrong side of a threshold."""
    rows: list[dict] = []
    labels: dict[str, str] = {}
    net = dict(ServiceCategory="Networking", ServiceSubcategory="Network Connectivity",
               ServiceName="Amazon Virtual Private Cloud")
    ebs = dict(ServiceCategory="Storage", ServiceSubcategory="Block Storage", ServiceName="Amazon Elastic Block Store",
               PricingUnit="GB-Months", ResourceType="Volume")
    vm = dict(ServiceCategory="Compute", ServiceSubcategory="Virtual Machines", ResourceType="Virtual Machine")

    def add(rid: str, days: list[date], label: str | None = None, cost="2.4", **cols):
        for d in days:
            rows.append(line(d, ResourceId=rid, cost=cols.pop("_cost_once", cost), **cols))
        if label:
            labels[rid] = label

    # anchors: a prod VM in us-east-1a keeps volumes there attached
    add("i-prod-a", _days(20), None, cost="4.608", AvailabilityZone="us-east-1a", Tags='{"env":"prod"}', **vm)
    # idle public IPs
    idle_ip = "$0.005 per Elastic IP address not attached to a running instance per hour"
    add("eipalloc-idle", _days(20), "idle_public_ip", cost="0.12", SkuMeter="IP Address", ChargeDescription=idle_ip,
        **net)
    add("eipalloc-released", _days(18, WASTE_END - timedelta(days=2)), None, cost="0.12", SkuMeter="IP Address", ChargeDescription=idle_ip, **net)
    add("eipalloc-inuse", _days(20), None, cost="0.12", SkuMeter="IP Address",
        ChargeDescription="$0.005 per In-use public IPv4 address per hour", **net)
    gcp = dict(provider="Google Cloud", account="01AAAA-BBBBBB-CCCCCC", ServiceCategory="Networking",
               ServiceSubcategory="Network Connectivity", ServiceName="Compute Engine", RegionId="us-central1",
               SubAccountId="proj-1")
    add("//compute.googleapis.com/projects/proj-1/regions/us-central1/addresses/static-1", _days(20),
        "idle_public_ip", cost="0.24", ChargeDescription="Static Ip Charge", **gcp)
    add("//compute.googleapis.com/projects/proj-1/zones/us-central1-a/instances/vm-1", _days(20), None,
        cost="0.12", ChargeDescription="External IP Charge on a Standard VM", **gcp)
    # volumes: unattached (no VM in us-east-1c), attached, too new to judge
    add("vol-orphan", _days(20), "unattached_volume", cost="1.3", AvailabilityZone="us-east-1c",
        ChargeDescription="$0.08 per GB-month of General Purpose (gp3) provisioned storage", **ebs)
    add("vol-attached", _days(20), None, cost="1.3", AvailabilityZone="us-east-1a",
        ChargeDescription="$0.08 per GB-month of General Purpose (gp3) provisioned storage", **ebs)
    add("vol-new", _days(13), None, cost="1.3", AvailabilityZone="us-east-1c",
        ChargeDescription="$0.08 per GB-month of General Purpose (gp3) provisioned storage", **ebs)
    add("vol-gp2", _days(20), "gp2_to_gp3", cost="3.3", AvailabilityZone="us-east-1a",
        ChargeDescription="$0.10 per GB-month of General Purpose SSD (gp2) provisioned storage", **ebs)
    # snapshots: 90 days old is old, 89 is not
    snap = dict(ServiceCategory="Storage", ServiceSubcategory="Block Storage", ServiceName="Amazon Elastic Block Store",
                PricingUnit="GB-Months", SkuMeter="Storage Snapshot", ChargeDescription="EBS snapshot data stored")
    add("snap-90d", _days(90), "old_snapshot", cost="0.5", **snap)
    add("snap-89d", _days(89), None, cost="0.5", **snap)
    # NAT gateways and load balancers: idle = hourly charges only (<= 1 GB processed) for 14 days
    nat = dict(ResourceType="NAT Gateway", SkuMeter="NAT Gateway", **net)
    for rid, gb, n, label in (("nat-idle", "0", 20, "idle_network"), ("nat-1gb", "1", 14, "idle_network"),
                              ("nat-busy", "5", 20, None), ("nat-13d", "0", 13, None)):
        add(rid, _days(n), label, cost="1.08", ChargeDescription="NAT gateway hour", **nat)
        if gb != "0":
            rows.append(line(_days(1)[0], ResourceId=rid, cost=Decimal(gb) * Decimal("0.045"), PricingUnit="GB",
                             PricingQuantity=Decimal(gb), ChargeDescription="NAT gateway data processed", **nat))
    az = dict(provider="Microsoft", account="az-billing", SubAccountId="sub-1", RegionId="eastus",
              ServiceCategory="Networking", ServiceSubcategory="Load Balancing", ServiceName="Load Balancer")
    add("/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb-idle", _days(20),
        "idle_network", cost="0.6", ResourceType="Load Balancer", ChargeDescription="Standard load balancer rule hour",
        **az)
    # non-production 24x7: daily quantities >= 80% of the busiest day; a weekday-only one; a prod one
    azvm = dict(provider="Microsoft", account="az-billing", SubAccountId="sub-1", RegionId="eastus",
                ServiceCategory="Compute", ServiceSubcategory="Virtual Machines", ServiceName="Virtual Machines",
                x_ResourceGroupName="rg")
    for rid, env, dip, label in (("vm-dev-always", "Dev", Decimal(1), "nonprod_schedule"),
                                 ("vm-staging-80", "staging", Decimal("0.8"), "nonprod_schedule"),
                                 ("vm-test-79", "test", Decimal("0.79"), None),
                                 ("vm-prod-always", "prod", Decimal(1), None)):
        for i, d in enumerate(_days(20)):
            q = Decimal(24) * (dip if i == 10 else 1)
            rows.append(line(d, ResourceId=f"/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Compute/"
                                           f"virtualMachines/{rid}", cost=q * Decimal("0.192"), PricingQuantity=q,
                             Tags=f'{{"Env":"{env}"}}', **azvm))
        if label:
            labels[f"/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{rid}"] = label
    weekdays = [d for d in _days(20) if d.weekday() < 5]
    add("/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-dev-weekdays",
        weekdays, None, cost="4.608", PricingQuantity=Decimal(24), Tags='{"env":"dev"}', **azvm)
    # hourly lines: a test VM billed every hour of 14 days, and one billed 12 hours a day
    for rid, hours_per_day, label in (("i-test-hourly", 24, "nonprod_schedule"), ("i-test-12h", 12, None)):
        for d in _days(14):
            for h in range(hours_per_day):
                start = datetime(d.year, d.month, d.day, h, tzinfo=timezone.utc)
                rows.append(line(d, start=start, hours=1, ResourceId=rid, cost="0.192", AvailabilityZone="us-east-1a",
                                 Tags='{"env":"test"}', **vm))
        if label:
            labels[rid] = label
    return rows, labels
