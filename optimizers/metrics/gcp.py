"""Cloud Monitoring metrics of Compute Engine instances, through the Monitoring API v3 REST endpoint
(projects.timeSeries.list) with google-auth's authorized session: CPU utilization (the maximum per 5 minutes of
compute.googleapis.com/instance/cpu/utilization, a 0..1 ratio, reported as %) and bytes sent per day
(instance/network/sent_bytes_count, summed per day), and memory in use where the Ops Agent runs
(agent.googleapis.com/memory/percent_used, state "used", the maximum per 5 minutes, already in %; instances
without the agent have no such series, and rightsizing then says memory was not measured). Instances are matched by
project (the SubAccountId) and instance name: the agent's series name only the instance id, which the CPU series
(they carry both) or the series' system metadata label `name` translate. Credentials: Application Default Credentials unless options give `credentials` (tests); `endpoint`
points elsewhere (tests: a local HTTP server)."""
from __future__ import annotations

from datetime import datetime

from optimizers.metrics import VM, Metrics

ENDPOINT = "https://monitoring.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/monitoring.read"


def _session(options: dict):
    from google.auth.transport.requests import AuthorizedSession

    credentials = options.get("credentials")
    if credentials is None:
        import google.auth

        credentials, _ = google.auth.default(scopes=[SCOPE])
    return AuthorizedSession(credentials)


def _list(session, endpoint: str, project: str, metric: str, start: datetime, end: datetime, seconds: int,
          aligner: str, extra: str = "", names: dict[str, str] | None = None) -> dict[str, list[float]]:
    """{instance name (else id): values oldest first}. `names` collects instance id -> name where a series carries
    both, and translates ids of series that carry only the id."""
    names = {} if names is None else names
    params = {"filter": f'metric.type = "{metric}" AND resource.type = "gce_instance"' + (f" AND {extra}" if extra
                                                                                             else ""),
              "interval.startTime": f"{start:%Y-%m-%dT%H:%M:%SZ}", "interval.endTime": f"{end:%Y-%m-%dT%H:%M:%SZ}",
              "aggregation.alignmentPeriod": f"{seconds}s", "aggregation.perSeriesAligner": aligner,
              "view": "FULL", "pageSize": "100000"}
    out: dict[str, list[float]] = {}
    while True:
        r = session.get(f"{endpoint.rstrip('/')}/v3/projects/{project}/timeSeries", params=params, timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"Cloud Monitoring {metric} for project {project}: HTTP {r.status_code}: "
                               f"{r.text[:300]}")
        body = r.json()
        for ts in body.get("timeSeries", []):
            iid = ts.get("resource", {}).get("labels", {}).get("instance_id")
            name = (ts.get("metric", {}).get("labels", {}).get("instance_name")
                    or ts.get("metadata", {}).get("systemLabels", {}).get("name"))
            if name and iid:
                names[iid] = name
            name = name or names.get(iid) or iid
            values = out.setdefault(name, [])
            points = sorted(ts.get("points", []), key=lambda p: p["interval"]["endTime"])  # newest first on the wire
            for p in points:
                v = p.get("value", {})
                values.append(float(v["doubleValue"]) if "doubleValue" in v else float(v.get("int64Value", 0)))
        token = body.get("nextPageToken")
        if not token:
            return out
        params["pageToken"] = token


def fetch(vms: list[VM], start: datetime, end: datetime, options: dict | None = None) -> dict[str, Metrics]:
    options = options or {}
    endpoint = options.get("endpoint") or ENDPOINT
    session = _session(options)
    out: dict[str, Metrics] = {}
    projects: dict[str, list[VM]] = {}
    for vm in vms:
        project = vm.sub_account_id or vm.resource_id.split("/projects/", 1)[-1].split("/", 1)[0]
        projects.setdefault(project, []).append(vm)
    for project, group in projects.items():
        names: dict[str, str] = {}
        cpu = _list(session, endpoint, project, "compute.googleapis.com/instance/cpu/utilization", start, end, 300,
                    "ALIGN_MAX", names=names)
        net = _list(session, endpoint, project, "compute.googleapis.com/instance/network/sent_bytes_count", start,
                    end, 86400, "ALIGN_SUM", names=names)
        mem = _list(session, endpoint, project, "agent.googleapis.com/memory/percent_used", start, end, 300,
                    "ALIGN_MAX", extra='metric.labels.state = "used"', names=names)
        for vm in group:
            name = vm.resource_id.rstrip("/").rsplit("/", 1)[-1]
            if cpu.get(name):
                out[vm.resource_id] = Metrics(cpu=[100 * v for v in cpu[name]], memory=mem.get(name, []),
                                              network_out_bytes_per_day=net.get(name, []), source="Cloud Monitoring")
    return out
