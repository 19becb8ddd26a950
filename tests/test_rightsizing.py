"""Rightsizing (issue 12, item 5): the rules at their edges; AWS CloudWatch through moto's server; Azure Monitor and
Cloud Monitoring at the HTTP boundary (a real local HTTP server answering in the APIs' recorded shapes); an end to
end run from bill lines and CloudWatch metrics to priced recommendations."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from optimizers import rightsizing
from optimizers.metrics import VM, Metrics
from optimizers.metrics import aws as cw
from tests.optimizer_fixtures import demo_rt, ingest_rows, line  # noqa: F401 - fixtures

CFG = dict(rightsizing.DEFAULTS)
END = datetime(2026, 7, 1, tzinfo=timezone.utc)


def vm(itype="m6i.2xlarge"):
    return {"type": itype}


def flat(value, n=4032, spike=None):
    """n samples at `value`, every 202nd at `spike` (just under 0.5%, spread evenly): P99.5 stays `value` in the
    window and in each half, while the peak is `spike`."""
    return [spike if spike is not None and i % 202 == 201 else value for i in range(n)]


# -- the rules ----------------------------------------------------------------------------------------------------------
def test_idle_edges():
    assert rightsizing.judge(vm(), Metrics(cpu=flat(4.99)), CFG)[0] == "rightsize_idle"
    assert rightsizing.judge(vm(), Metrics(cpu=flat(5.0)), CFG)[0] == "rightsize_downsize"  # not idle at 5%
    busy_net = Metrics(cpu=flat(2), network_out_bytes_per_day=[5.1e6] * 14)
    assert rightsizing.judge(vm(), busy_net, CFG)[0] == "rightsize_downsize"  # network keeps it from idle
    quiet_net = Metrics(cpu=flat(2), network_out_bytes_per_day=[4.9e6] * 14)
    assert rightsizing.judge(vm(), quiet_net, CFG)[0] == "rightsize_idle"


def test_downsize_edges():
    # m6i.2xlarge (8 vCPU) -> xlarge (4) when P99.5 x 1.2 x 8 / 4 <= 90, i.e. P99.5 <= 37.5
    kind, target, ev = rightsizing.judge(vm(), Metrics(cpu=flat(37.5, spike=95)), CFG)
    assert (kind, target) == ("rightsize_downsize", "m6i.xlarge") and ev["target_cpu"] == 90.0
    assert rightsizing.judge(vm(), Metrics(cpu=flat(37.6)), CFG) is None
    # 18.75% fits a large (2 vCPU): 18.75 x 1.2 x 4 = 90
    assert rightsizing.judge(vm(), Metrics(cpu=flat(18.75)), CFG)[1] == "m6i.large"
    # memory measured: 45% of 32 GiB x 1.2 does not fit 16 GiB (108%), so no downsize
    assert rightsizing.judge(vm(), Metrics(cpu=flat(30), memory=[45.0] * 10), CFG) is None
    assert rightsizing.judge(vm(), Metrics(cpu=flat(30), memory=[41.0] * 10), CFG)[1] == "m6i.xlarge"
    # the target is configurable: at 100% the edge moves to 41.67
    assert rightsizing.judge(vm(), Metrics(cpu=flat(41.6)), {**CFG, "cpu_target": 100})[1] == "m6i.xlarge"


def test_growth_is_carried_forward():
    # P99.5 30% in the first week, 36% in the second: 36 x 1.2 = 43.2 for the next week, and 43.2 x 1.2 x 2 > 90
    growing = [30.0] * 2016 + [36.0] * 2016
    assert rightsizing.judge(vm(), Metrics(cpu=growing), CFG) is None
    kind, target, ev = rightsizing.judge(vm(), Metrics(cpu=growing), {**CFG, "project_trend": False})
    assert target == "m6i.xlarge" and ev["trend"] == 1.0
    shrinking = [36.0] * 2016 + [30.0] * 2016  # a falling trend is not extrapolated: P99.5 = 36 fits
    assert rightsizing.judge(vm(), Metrics(cpu=shrinking), CFG)[1] == "m6i.xlarge"


def test_previous_generation():
    kind, target, _ = rightsizing.judge(vm("m4.xlarge"), Metrics(cpu=flat(70)), CFG)
    assert (kind, target) == ("rightsize_generation", "m6i.xlarge")
    assert rightsizing.judge(vm("m6i.xlarge"), Metrics(cpu=flat(70)), CFG) is None
    assert rightsizing.judge(vm("unknown.type"), Metrics(cpu=flat(70)), CFG) is None
    # Google Cloud: n1-standard (3.75 GB per vCPU, 0.0475 an hour) -> n2d-standard (4 GB, 0.042246): 11.06% less
    assert rightsizing.judge(vm("n1-standard-4"), Metrics(cpu=flat(70)), CFG)[:2] == \
        ("rightsize_generation", "n2d-standard-4")
    assert rightsizing.judge(vm("n2d-standard-4"), Metrics(cpu=flat(70)), CFG) is None
    # Azure: Dsv3 -> Dsv5 is the move, but both list at 0.192 in eastus: no saving, no recommendation
    assert rightsizing.next_generation("Standard_D4s_v3") == "Standard_D4s_v5"
    assert rightsizing.next_generation("Standard_E16s_v3") == "Standard_E16s_v5"
    assert rightsizing.judge(vm("Standard_D4s_v3"), Metrics(cpu=flat(70)), CFG) is None
    assert rightsizing.next_generation("Standard_D4s_v5") is None and rightsizing.next_generation("x") is None
    # a quiet n1 downsizes within its family first
    assert rightsizing.judge(vm("n1-standard-8"), Metrics(cpu=flat(10)), CFG)[1] == "n1-standard-2"


# -- AWS through moto -----------------------------------------------------------------------------------------------------
def hourly(values_by_hour, days=14, end=END):
    start = end - timedelta(days=days)
    return [(start + timedelta(hours=h), values_by_hour(h)) for h in range(days * 24)]


def test_cloudwatch_connector_against_moto(s3_endpoint):
    opts = {"endpoint_url": s3_endpoint, "period": 3600}
    rid = "arn:aws:ec2:us-east-1:111111111111:instance/i-0cw1"
    cw.put_metrics({rid: hourly(lambda h: float(h % 24))}, "us-east-1", opts)
    cw.put_metrics({rid: hourly(lambda h: 2e6)[::24]}, "us-east-1", opts, "NetworkOut", unit="Bytes")
    got = cw.fetch([VM(rid, "AWS", "us-east-1", "m6i.xlarge"), VM("i-0none", "AWS", "us-east-1", "m6i.xlarge")],
                   END - timedelta(days=14), END, opts)
    assert set(got) == {rid}  # an instance without metrics is left out
    m = got[rid]
    assert len(m.cpu) == 336 and max(m.cpu) == 23 and m.cpu[:3] == [0, 1, 2] and m.source == "CloudWatch"
    assert m.network_out_bytes_per_day == [2e6] * 14 and m.memory == []


def test_end_to_end_with_cloudwatch(rt, tmp_path, s3_endpoint):
    days = [END.date() - timedelta(days=i) for i in range(20, 0, -1)]
    details = lambda t: json.dumps({"InstanceType": t})  # noqa: E731
    fleet = {"i-0idle": ("m6i.2xlarge", "9.216", lambda h: 1.5),
             "i-0over": ("m6i.2xlarge", "9.216", lambda h: 30.0 if h % 24 < 12 else 10.0),
             "i-0busy": ("m6i.xlarge", "4.608", lambda h: 80.0),
             "i-0old": ("m4.xlarge", "4.8", lambda h: 70.0)}
    rows = []
    for iid, (itype, cost, _) in fleet.items():
        for d in days:
            cols = dict(ResourceId=f"arn:aws:ec2:us-east-1:222222222222:instance/{iid}", cost=cost,
                        SkuPriceDetails=details(itype), ResourceType="Virtual Machine")
            if iid == "i-0over" and d.day % 2:  # half of its days under a Savings Plan
                cols.update(CommitmentDiscountId="sp-1", CommitmentDiscountStatus="Used", PricingCategory="Committed",
                            CommitmentDiscountType="Savings Plan", CommitmentDiscountCategory="Spend",
                            BilledCost=Decimal(0))
            rows.append(line(d, **cols))
    ingest_rows(rt, tmp_path / "files", rows)
    opts = {"endpoint_url": s3_endpoint, "period": 3600}
    cw.put_metrics({f"arn:aws:ec2:us-east-1:222222222222:instance/{i}": hourly(f) for i, (_, _, f) in fleet.items()},
                   "us-east-1", opts)
    with rt.warehouse.connect(read_only=True) as con:
        assert rightsizing.find(con, {}) == []  # no metrics source named: billing data has no utilization
        found = {r.resource_id.rsplit("/", 1)[1]: r for r in rightsizing.find(con, {"metrics": ["aws:endpoint_url="
                                                                                     f"{s3_endpoint},period=3600"]})}
    assert set(found) == {"i-0idle", "i-0over", "i-0old"}
    idle, over, old = found["i-0idle"], found["i-0over"], found["i-0old"]
    assert idle.kind == "rightsize_idle" and idle.monthly_savings == (Decimal("9.216") * 14 * 730 / 336).quantize(
        Decimal("0.01"))
    # 30% x 1.2 x 8/4 = 72% fits the xlarge (half the price): half the observed cost, committed days included
    assert over.kind == "rightsize_downsize" and over.evidence["target_type"] == "m6i.xlarge" and over.under_commitment
    window = sum((r["EffectiveCost"] for r in rows if "i-0over" in r["ResourceId"]
                  and r["ChargePeriodStart"] >= "2026-06-17"), Decimal(0))
    assert Decimal(over.evidence["window_cost"]) == window
    assert over.monthly_savings == (window / 2 * 730 / 336).quantize(Decimal("0.01"))
    assert old.kind == "rightsize_generation" and old.evidence["target_type"] == "m6i.xlarge"
    assert old.monthly_savings == (Decimal("4.8") * 14 * (1 - Decimal("0.192") / Decimal("0.2")) * 730 / 336
                                   ).quantize(Decimal("0.01"))


# -- Azure Monitor and Cloud Monitoring at the HTTP boundary --------------------------------------------------------
class Recorder:
    """A real HTTP server on 127.0.0.1 answering GETs from `answer(path, query)`, recording each request."""

    def __init__(self, answer):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                outer.requests.append((url.path, query, self.headers.get("Authorization")))
                body = json.dumps(answer(url.path, query)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    made = []

    def make(answer):
        made.append(Recorder(answer))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_azure_monitor_connector(recorder):
    from azure.core.credentials import AccessToken, AccessTokenInfo

    class Token:
        def get_token(self, *scopes, **kw):
            return AccessToken("test-token", int(time.time()) + 3600)

        def get_token_info(self, *scopes, **kw):
            return AccessTokenInfo("test-token", int(time.time()) + 3600)

    def metric(name, unit, field, values, step):
        t0 = datetime(2026, 6, 17, tzinfo=timezone.utc)
        return {"id": f"x/providers/Microsoft.Insights/metrics/{name}", "type": "Microsoft.Insights/metrics",
                "name": {"value": name, "localizedValue": name}, "unit": unit, "timeseries": [{
                    "metadatavalues": [], "data": [{"timeStamp": f"{t0 + i * step:%Y-%m-%dT%H:%M:%SZ}", field: v}
                                                   for i, v in enumerate(values)]}]}

    def answer(path, q):  # the shape of Azure Monitor's metrics list (api-version 2024-02-01)
        name = q["metricnames"]
        series = {"Percentage CPU": ("Percent", "maximum", [3.0, 12.5, None, 40.0], timedelta(minutes=5)),
                  "Available Memory Bytes": ("Bytes", "minimum", [8 * 2 ** 30, 4 * 2 ** 30], timedelta(minutes=5)),
                  "Network Out Total": ("Bytes", "total", [1e9, 2e9], timedelta(days=1))}[name]
        return {"cost": 0, "timespan": q["timespan"], "interval": q["interval"], "namespace": "Microsoft.Compute/"
                "virtualMachines", "resourceregion": "eastus", "value": [metric(name, *series)]}

    server = recorder(answer)
    from optimizers.metrics import azure

    rid = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1"
    got = azure.fetch([VM(rid, "Microsoft", "eastus", "Standard_D4s_v5", "sub-1")], END - timedelta(days=14), END,
                      {"endpoint": server.url, "credential": Token()})
    m = got[rid]
    assert m.cpu == [3.0, 12.5, 40.0] and m.network_out_bytes_per_day == [1e9, 2e9] and m.source == "Azure Monitor"
    assert m.memory == [50.0, 75.0]  # 1 - available / 16 GiB
    paths = {q["metricnames"]: (p, q, auth) for p, q, auth in server.requests}
    path, q, auth = paths["Percentage CPU"]
    assert path == f"{rid}/providers/Microsoft.Insights/metrics" and auth == "Bearer test-token"
    assert q["aggregation"] == "Maximum" and q["interval"] == "PT5M" and q["api-version"]
    assert q["timespan"] == "2026-06-17T00:00:00Z/2026-07-01T00:00:00Z"
    assert paths["Network Out Total"][1]["interval"] == "P1D" and paths["Available Memory Bytes"][1]["aggregation"] \
        == "Minimum"


def test_cloud_monitoring_connector(recorder):
    from google.auth.credentials import AnonymousCredentials

    def point(end, key, v):
        return {"interval": {"startTime": end, "endTime": end}, "value": {key: v}}

    def answer(path, q):  # the shape of projects.timeSeries.list: newest points first, paged
        if "cpu/utilization" in q["filter"]:
            if "pageToken" not in q:
                return {"timeSeries": [{"metric": {"type": "compute.googleapis.com/instance/cpu/utilization",
                                                   "labels": {"instance_name": "vm-1"}},
                                        "resource": {"type": "gce_instance", "labels": {"instance_id": "1"}},
                                        "points": [point("2026-06-30T00:10:00Z", "doubleValue", 0.5),
                                                   point("2026-06-30T00:05:00Z", "doubleValue", 0.25)]}],
                        "nextPageToken": "p2"}
            return {"timeSeries": [{"metric": {"labels": {"instance_name": "vm-2"}},
                                    "resource": {"labels": {"instance_id": "2"}},
                                    "points": [point("2026-06-30T00:05:00Z", "doubleValue", 0.03)]}]}
        if "memory/percent_used" in q["filter"]:  # the Ops Agent's series name only the instance id
            return {"timeSeries": [
                {"metric": {"labels": {"state": "used"}}, "resource": {"labels": {"instance_id": "1"}},
                 "points": [point("2026-06-30T00:10:00Z", "doubleValue", 61.5),
                            point("2026-06-30T00:05:00Z", "doubleValue", 40.0)]},
                {"metric": {"labels": {"state": "used"}}, "resource": {"labels": {"instance_id": "22"}},
                 "metadata": {"systemLabels": {"name": "vm-2"}},
                 "points": [point("2026-06-30T00:05:00Z", "doubleValue", 12.0)]}]}
        return {"timeSeries": [{"metric": {"labels": {"instance_name": "vm-1"}}, "resource": {"labels": {}},
                                "points": [point("2026-06-30T00:00:00Z", "int64Value", "1048576")]}]}

    server = recorder(answer)
    from optimizers.metrics import gcp

    base = "//compute.googleapis.com/projects/p1/zones/us-central1-a/instances/"
    got = gcp.fetch([VM(base + "vm-1", "Google Cloud", "us-central1", "n2-standard-8", "p1"),
                     VM(base + "vm-2", "Google Cloud", "us-central1", "n2-standard-8", "p1"),
                     VM(base + "vm-3", "Google Cloud", "us-central1", "n2-standard-8", "p1")],
                    END - timedelta(days=14), END, {"endpoint": server.url, "credentials": AnonymousCredentials()})
    assert set(got) == {base + "vm-1", base + "vm-2"}
    assert got[base + "vm-1"].cpu == [25.0, 50.0] and got[base + "vm-1"].network_out_bytes_per_day == [1048576.0]
    assert got[base + "vm-2"].cpu == [3.0]
    # memory where the Ops Agent runs: vm-1 matched by its id through the CPU series, vm-2 by the series' system
    # metadata name; vm-3 has no CPU series, so no metrics at all
    assert got[base + "vm-1"].memory == [40.0, 61.5] and got[base + "vm-2"].memory == [12.0]
    [mem_q] = [q for p, q, _ in server.requests if "memory" in q["filter"]]
    assert mem_q["filter"] == ('metric.type = "agent.googleapis.com/memory/percent_used" AND resource.type = '
                               '"gce_instance" AND metric.labels.state = "used"')
    assert mem_q["aggregation.perSeriesAligner"] == "ALIGN_MAX" and mem_q["aggregation.alignmentPeriod"] == "300s"
    cpu_calls = [q for p, q, _ in server.requests if "cpu" in q["filter"]]
    assert len(cpu_calls) == 2 and cpu_calls[1]["pageToken"] == "p2"
    q = cpu_calls[0]
    assert server.requests[0][0] == "/v3/projects/p1/timeSeries"
    assert q["aggregation.perSeriesAligner"] == "ALIGN_MAX" and q["aggregation.alignmentPeriod"] == "300s"
    assert q["interval.startTime"] == "2026-06-17T00:00:00Z" and q["interval.endTime"] == "2026-07-01T00:00:00Z"


def test_demo_rightsizing_through_moto(demo_rt, s3_endpoint):
    """The demo's CPU history, served by moto's CloudWatch: its checkout-api VMs (10-30% CPU on m6i.xlarge) halve."""
    from optimizers import demo

    series, regions = demo.cpu_history(demo_rt)
    assert len(series) == 23 and all(len(p) == 336 for p in series.values())
    opts = {"endpoint_url": s3_endpoint, "period": 3600}
    for region, rids in regions.items():
        cw.put_metrics({r: series[r] for r in rids}, region, opts)
    with demo_rt.warehouse.connect(read_only=True) as con:
        found = rightsizing.find(con, {"metrics": {"AWS": opts}})
    assert {r.kind for r in found} == {"rightsize_downsize"} and len(found) == 12
    assert {r.evidence["target_type"] for r in found} == {"m6i.large"}
    for r in found:  # half the observed cost of each VM (the large lists at half the xlarge)
        assert r.monthly_savings == (Decimal(r.evidence["window_cost"]) / 2 * 730 / 336).quantize(Decimal("0.01"))
