"""Azure Monitor metrics of virtual machines (azure-mgmt-monitor): Percentage CPU (Maximum per 5 minutes),
Available Memory Bytes (Minimum per 5 minutes; memory in use = 1 - available / the size's memory) and Network Out
Total (Total per day), per VM resource id. Credentials: azure-identity's DefaultAzureCredential unless options
give a `credential` object (tests); `endpoint` points at another Resource Manager (sovereign clouds, tests)."""
from __future__ import annotations

from datetime import datetime

from optimizers.metrics import VM, Metrics

INTERVAL = "PT5M"


def _client(subscription: str, options: dict):
    from azure.mgmt.monitor import MonitorManagementClient

    credential = options.get("credential")
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    kwargs = {"base_url": options["endpoint"]} if options.get("endpoint") else {}
    return MonitorManagementClient(credential, subscription, **kwargs)


def _series(client, uri: str, timespan: str, names: str, aggregation: str, interval: str, field: str,
            plain_http: bool) -> dict[str, list[float]]:
    extra = {"enforce_https": False} if plain_http else {}
    result = client.metrics.list(uri, timespan=timespan, interval=interval, metricnames=names,
                                 aggregation=aggregation, **extra)
    out: dict[str, list[float]] = {}
    for metric in result.value:
        values = out.setdefault(metric.name.value, [])
        for ts in metric.timeseries or []:
            for point in ts.data or []:
                v = getattr(point, field)
                if v is not None:
                    values.append(float(v))
    return out


def fetch(vms: list[VM], start: datetime, end: datetime, options: dict | None = None) -> dict[str, Metrics]:
    from optimizers.rightsizing import SIZES

    options = options or {}
    plain_http = str(options.get("endpoint", "")).startswith("http://")
    timespan = f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}"
    clients: dict[str, object] = {}
    out: dict[str, Metrics] = {}
    for vm in vms:
        sub = vm.sub_account_id or vm.resource_id.split("/")[2]
        client = clients.get(sub) or clients.setdefault(sub, _client(sub, options))
        cpu = _series(client, vm.resource_id, timespan, "Percentage CPU", "Maximum", INTERVAL, "maximum", plain_http)
        mem = _series(client, vm.resource_id, timespan, "Available Memory Bytes", "Minimum", INTERVAL, "minimum",
                      plain_http)
        net = _series(client, vm.resource_id, timespan, "Network Out Total", "Total", "P1D", "total", plain_http)
        if not cpu.get("Percentage CPU"):
            continue
        total = SIZES.get(vm.instance_type or "", (0, 0, "0"))[1] * 2 ** 30
        used = [100 * (1 - a / total) for a in mem.get("Available Memory Bytes", [])] if total else []
        out[vm.resource_id] = Metrics(cpu=cpu["Percentage CPU"], memory=used,
                                      network_out_bytes_per_day=net.get("Network Out Total", []),
                                      source="Azure Monitor")
    return out
