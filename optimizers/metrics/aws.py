"""CloudWatch metrics of EC2 instances (boto3 GetMetricData), per region of the bill's instances."""
from __future__ import annotations

from datetime import datetime

from optimizers.metrics import VM, Metrics, instance_id

PERIOD = 300  # 5-minute maxima, as Compute Optimizer reads them


def client(region: str | None, options: dict):
    import boto3

    kwargs = {"region_name": region or options.get("region") or "us-east-1"}
    if options.get("endpoint_url"):
        kwargs["endpoint_url"] = options["endpoint_url"]
    return boto3.client("cloudwatch", **kwargs)


def _query(qid: str, namespace: str, metric: str, iid: str, stat: str, period: int) -> dict:
    return {"Id": qid, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": metric,
                   "Dimensions": [{"Name": "InstanceId", "Value": iid}]},
        "Period": period, "Stat": stat}}


def fetch(vms: list[VM], start: datetime, end: datetime, options: dict | None = None) -> dict[str, Metrics]:
    options = options or {}
    out: dict[str, Metrics] = {}
    by_region: dict[str | None, list[VM]] = {}
    for vm in vms:
        by_region.setdefault(vm.region, []).append(vm)
    for region, group in by_region.items():
        cw = client(region, options)
        for i in range(0, len(group), 160):  # GetMetricData takes up to 500 queries: 3 per instance
            chunk = group[i:i + 160]
            queries = []
            for n, vm in enumerate(chunk):
                iid = instance_id(vm.resource_id)
                period = int(options.get("period", PERIOD))
                queries += [_query(f"cpu{n}", "AWS/EC2", "CPUUtilization", iid, "Maximum", period),
                            _query(f"net{n}", "AWS/EC2", "NetworkOut", iid, "Sum", 86400),
                            _query(f"mem{n}", "CWAgent", "mem_used_percent", iid, "Maximum", period)]
            values: dict[str, list[tuple[datetime, float]]] = {}
            for page in cw.get_paginator("get_metric_data").paginate(
                    MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"):
                for r in page["MetricDataResults"]:
                    values.setdefault(r["Id"], []).extend(zip(r["Timestamps"], r["Values"]))
            for n, vm in enumerate(chunk):
                cpu = [v for _, v in sorted(values.get(f"cpu{n}", []))]
                if not cpu:
                    continue
                out[vm.resource_id] = Metrics(
                    cpu=cpu, memory=[v for _, v in sorted(values.get(f"mem{n}", []))],
                    network_out_bytes_per_day=[v for _, v in sorted(values.get(f"net{n}", []))],
                    source="CloudWatch")
    return out


def put_metrics(series: dict[str, list[tuple[datetime, float]]], region: str, options: dict,
                metric: str = "CPUUtilization", namespace: str = "AWS/EC2", unit: str = "Percent") -> None:
    """Write data points of one metric per instance (the demo's and the tests' way to give moto's CloudWatch a
    history; a real CloudWatch has its own)."""
    cw = client(region, options)
    for rid, points in series.items():
        iid = instance_id(rid)
        for i in range(0, len(points), 1000):
            cw.put_metric_data(Namespace=namespace, MetricData=[
                {"MetricName": metric, "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                 "Timestamp": t, "Value": v, "Unit": unit} for t, v in points[i:i + 1000]])
