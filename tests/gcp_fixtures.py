"""GCP billing export rows for tests, in the export's own nested shape, and writers for every form the connector
reads: newline-delimited JSON and Parquet as `bq extract` writes them, CSV with dotted names and Python-repr
arrays as koku-nise writes them, and BigQuery REST `f`/`v` rows for the fake BigQuery server.

The rows cover: a sustained-use credit, a resource-based CUD credit and its commitment fee, a promotion credit,
tax, a negative adjustment of a closed month, a spend-based CUD, and an invoice-month crossover (usage at
2026-10-31 23:00 billed in 202611, exported in the 2026-11-01 partition).
"""
from __future__ import annotations

import csv
import re
import json
from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path

ACCOUNT = "01A2B3-C4D5E6-F7A8B9"
CUD_ID = "projects/p-prod/regions/us-central1/commitments/cud-1"
TABLE = f"gcp_billing_export_resource_v1_{ACCOUNT.replace('-', '_')}"

# BigQuery schema of the detailed export (the fields the connector reads), as the REST API describes it.
KV = [{"name": "key", "type": "STRING"}, {"name": "value", "type": "STRING"}]
SCHEMA = [
    {"name": "billing_account_id", "type": "STRING"},
    {"name": "service", "type": "RECORD", "fields": [{"name": "id", "type": "STRING"},
                                                     {"name": "description", "type": "STRING"}]},
    {"name": "sku", "type": "RECORD", "fields": [{"name": "id", "type": "STRING"},
                                                 {"name": "description", "type": "STRING"}]},
    {"name": "usage_start_time", "type": "TIMESTAMP"},
    {"name": "usage_end_time", "type": "TIMESTAMP"},
    {"name": "project", "type": "RECORD", "fields": [
        {"name": "id", "type": "STRING"}, {"name": "number", "type": "STRING"}, {"name": "name", "type": "STRING"},
        {"name": "labels", "type": "RECORD", "mode": "REPEATED", "fields": KV}]},
    {"name": "labels", "type": "RECORD", "mode": "REPEATED", "fields": KV},
    {"name": "system_labels", "type": "RECORD", "mode": "REPEATED", "fields": KV},
    {"name": "location", "type": "RECORD", "fields": [
        {"name": "location", "type": "STRING"}, {"name": "country", "type": "STRING"},
        {"name": "region", "type": "STRING"}, {"name": "zone", "type": "STRING"}]},
    {"name": "resource", "type": "RECORD", "fields": [{"name": "name", "type": "STRING"},
                                                      {"name": "global_name", "type": "STRING"}]},
    {"name": "export_time", "type": "TIMESTAMP"},
    {"name": "cost", "type": "FLOAT"},
    {"name": "currency", "type": "STRING"},
    {"name": "currency_conversion_rate", "type": "FLOAT"},
    {"name": "usage", "type": "RECORD", "fields": [
        {"name": "amount", "type": "FLOAT"}, {"name": "unit", "type": "STRING"},
        {"name": "amount_in_pricing_units", "type": "FLOAT"}, {"name": "pricing_unit", "type": "STRING"}]},
    {"name": "credits", "type": "RECORD", "mode": "REPEATED", "fields": [
        {"name": "name", "type": "STRING"}, {"name": "amount", "type": "FLOAT"},
        {"name": "full_name", "type": "STRING"}, {"name": "id", "type": "STRING"}, {"name": "type", "type": "STRING"}]},
    {"name": "invoice", "type": "RECORD", "fields": [{"name": "month", "type": "STRING"}]},
    {"name": "cost_type", "type": "STRING"},
    {"name": "cost_at_list", "type": "FLOAT"},
]


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def line(day: str, hour: int = 0, *, cost: float, service=("6F81-5844-456A", "Compute Engine"),
         sku=("CP-COMPUTEENGINE-VMIMAGE-N1-STANDARD-1", "N1 Predefined Instance Core running in Americas"),
         project="p-prod", invoice: str | None = None, partition: str | None = None, credits=(), cost_type="regular",
         labels=(("team", "checkout"),), usage=(3600.0, "seconds", 1.0, "hour"), export_time: str | None = None,
         resource: str | None = "vm-1", cost_at_list: float | None = None, region="us-central1") -> dict:
    start = ts(f"{day}T{hour:02d}:00:00")
    end = datetime.fromtimestamp(start.timestamp() + 3600, timezone.utc)
    return {
        "billing_account_id": ACCOUNT,
        "service": {"id": service[0], "description": service[1]},
        "sku": {"id": sku[0], "description": sku[1]},
        "usage_start_time": start, "usage_end_time": end,
        "project": {"id": project, "number": "123456789", "name": project.replace("p-", "Project "),
                    "labels": [{"key": "env", "value": "prod"}, {"key": "team", "value": "platform"}]},
        "labels": [{"key": k, "value": v} for k, v in labels],
        "system_labels": [{"key": "compute.googleapis.com/machine_spec", "value": "n1-standard-1"}],
        "location": {"location": region, "country": "US", "region": region,
                     "zone": f"{region}-a" if region else None},
        "resource": {"name": resource, "global_name":
                     f"//compute.googleapis.com/projects/{project}/zones/{region}-a/instances/{resource}"}
        if resource else None,
        "export_time": ts(export_time or f"{day}T{hour:02d}:00:00").replace(hour=min(23, hour + 4)),
        "cost": cost, "currency": "USD", "currency_conversion_rate": 1.0,
        "usage": {"amount": usage[0], "unit": usage[1], "amount_in_pricing_units": usage[2],
                  "pricing_unit": usage[3]} if usage else None,
        "credits": [dict(zip(("name", "amount", "full_name", "id", "type"), c)) for c in credits],
        "invoice": {"month": invoice or day[:7].replace("-", "")},
        "cost_type": cost_type,
        "cost_at_list": cost_at_list,
        "_partition": partition or day,
    }


def scenario() -> list[dict]:
    """Rows of October and November 2026 (see module docstring). Expected sums in `expected()`."""
    return [
        line("2026-10-05", 1, cost=10.0, cost_at_list=12.5, credits=[
            ("Sustained usage discount", -1.5, "Sustained Usage Discount", "SUD-1", "SUSTAINED_USAGE_DISCOUNT")]),
        line("2026-10-06", 2, cost=20.0, resource="vm-2", credits=[
            ("Committed use discount: CPU", -20.0, "Committed use discount: CPU in us-central1", CUD_ID,
             "COMMITTED_USAGE_DISCOUNT")]),
        line("2026-10-06", 0, cost=15.0, resource=None, usage=(1.0, "seconds", 1.0, "month"),
             sku=("CUD-FEE-1", "Commitment v1: Cpu in Americas for 1 Year")),
        line("2026-10-07", 3, cost=2.0, service=("95FF-2EF5-5EA1", "Cloud Storage"), resource="bucket-a",
             sku=("E5F0-6A5D-7BAD", "Standard Storage US Regional"),
             usage=(1073741824.0 * 3600, "byte-seconds", 0.0013689, "gibibyte month"),
             credits=[("FreeTrial", -0.4, "Free trial credit", "FreeTrial", "PROMOTION")]),
        line("2026-10-31", 0, cost=3.1, cost_type="tax", service=("TAX", "Invoice"), sku=("TAX-US", "Tax"),
             resource=None, usage=None, labels=(), region=None),
        line("2026-10-08", 0, cost=-5.0, cost_type="adjustment", invoice="202610", resource="vm-1",
             labels=(("team", "checkout"),)) | {"usage_start_time": ts("2026-09-20T00:00:00"),
                                              "usage_end_time": ts("2026-09-21T00:00:00")},
        line("2026-10-31", 23, cost=1.25, invoice="202611", partition="2026-11-01", export_time="2026-11-01T02:00:00"),
        line("2026-11-01", 4, cost=4.0, resource="vm-3", credits=[
            ("Spend-based CUD", -1.0, "Committed use discount - dollar based", "cud-spend-9",
             "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE")]),
    ]


def expected(rows: list[dict]) -> dict[str, D]:
    """sum(cost) + sum(credits.amount) per invoice month, in Decimal from the printed floats."""
    out: dict[str, D] = {}
    for r in rows:
        m = r["invoice"]["month"]
        out[m] = out.get(m, D(0)) + D(repr(r["cost"])) + sum((D(repr(c["amount"])) for c in r["credits"]), D(0))
    return out


# -- writers -----------------------------------------------------------------------------------------------------
def _plain(value):
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")  # bq extract's JSON timestamp form
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(_plain(r)) + "\n" for r in rows))
    return path


def arrow_schema():
    import pyarrow as pa

    def typ(f):
        if f["type"] == "RECORD":
            t = pa.struct([pa.field(x["name"], typ(x)) for x in f["fields"]])
        else:
            t = {"STRING": pa.string(), "FLOAT": pa.float64(), "TIMESTAMP": pa.timestamp("us", tz="UTC")}[f["type"]]
        return pa.list_(t) if f.get("mode") == "REPEATED" else t

    return pa.schema([pa.field(f["name"], typ(f)) for f in SCHEMA])


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    pq.write_table(pa.Table.from_pylist(clean, schema=arrow_schema()), path)
    return path


def write_nise_csv(path: Path, rows: list[dict]) -> Path:
    """Flattened dotted columns; labels as JSON, project labels and credits as Python reprs (as nise does)."""
    header = ["billing_account_id", "service.id", "service.description", "sku.id", "sku.description",
              "usage_start_time", "usage_end_time", "project.id", "project.name", "project.labels", "labels",
              "system_labels", "location.location", "location.country", "location.region", "location.zone",
              "export_time", "cost", "currency", "currency_conversion_rate", "usage.amount", "usage.unit",
              "usage.amount_in_pricing_units", "usage.pricing_unit", "credits", "invoice.month", "cost_type",
              "partition_date", "resource.name", "resource.global_name"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            u, res = r["usage"] or {}, r["resource"] or {}
            w.writerow([
                r["billing_account_id"], r["service"]["id"], r["service"]["description"], r["sku"]["id"],
                r["sku"]["description"], r["usage_start_time"].strftime("%Y-%m-%dT%H:%M:%S"),
                r["usage_end_time"].strftime("%Y-%m-%dT%H:%M:%S"), r["project"]["id"], r["project"]["name"],
                str(r["project"]["labels"]), json.dumps(r["labels"]), json.dumps(r["system_labels"]),
                r["location"]["location"] or "", r["location"]["country"], r["location"]["region"] or "",
                r["location"]["zone"] or "", r["export_time"].strftime("%Y-%m-%dT%H:%M:%S"), repr(r["cost"]),
                r["currency"], "1", u.get("amount", ""), u.get("unit", ""), u.get("amount_in_pricing_units", ""),
                u.get("pricing_unit", ""), str(r["credits"]), r["invoice"]["month"], r["cost_type"],
                r["_partition"], res.get("name", ""), res.get("global_name", "")])
    return path


# -- BigQuery REST rows ------------------------------------------------------------------------------------------
def rest_value(value, field: dict):
    """One value in BigQuery's REST row encoding ({"v": ...}; records as {"f": [...]}, arrays as [{"v": ...}])."""
    if field.get("mode") == "REPEATED":
        return [{"v": rest_value(v, {**field, "mode": "NULLABLE"})} for v in (value or [])]
    if value is None:
        return None
    if field["type"] == "RECORD":
        return {"f": [{"v": rest_value(value.get(f["name"]), f)} for f in field["fields"]]}
    if field["type"] == "TIMESTAMP":
        return str(int(value.timestamp() * 1_000_000))  # useInt64Timestamp
    return str(value) if not isinstance(value, str) else value


def rest_row(row: dict, schema: list[dict] = SCHEMA) -> dict:
    return {"f": [{"v": rest_value(row.get(f["name"]), f)} for f in schema]}


# -- a fake BigQuery REST server ---------------------------------------------------------------------------------
WATERMARK_SCHEMA = [{"name": "day", "type": "DATE"}, {"name": "invoice_month", "type": "STRING"},
                    {"name": "watermark", "type": "TIMESTAMP"}, {"name": "row_count", "type": "INTEGER"}]


class FakeBigQuery:
    """The BigQuery REST calls google-cloud-bigquery makes for `client.query(sql).to_arrow()`: jobs.insert,
    jobs.get, jobs.getQueryResults and tabledata.list, with results paged (`page_size` rows, pageToken).

    It understands the connector's two queries: the watermark aggregate (grouped by partition day and invoice
    month, from @since) and the pull of one partition day (@day). `rows` carry their partition day in `_partition`.
    Every request is logged in `requests`; `forbidden = True` answers 403 as BigQuery does."""

    def __init__(self, rows: list[dict], page_size: int = 2):
        import threading
        from http.server import ThreadingHTTPServer

        self.rows, self.page_size, self.forbidden = rows, page_size, False
        self.requests: list[tuple[str, str, dict | None]] = []
        self.jobs: dict[str, tuple[list[dict], list[dict]]] = {}
        self.queries: list[tuple[str, dict]] = []
        outer = self

        from http.server import BaseHTTPRequestHandler

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, doc: dict):
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                outer.requests.append(("POST", self.path, body))
                code, doc = outer.post(self.path, body)
                self._send(code, doc)

            def do_GET(self):
                outer.requests.append(("GET", self.path, None))
                code, doc = outer.get(self.path)
                self._send(code, doc)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # -- queries --------------------------------------------------------------------------------------------------
    def run(self, sql: str, params: dict) -> tuple[list[dict], list[dict]]:
        if "MAX(export_time)" in sql:
            since = params["since"]
            groups: dict[tuple[str, str], list[dict]] = {}
            for r in self.rows:
                if r["_partition"] >= since:
                    groups.setdefault((r["_partition"], r["invoice"]["month"]), []).append(r)
            out = [{"day": d, "invoice_month": m, "watermark": max(x["export_time"] for x in rs),
                    "row_count": len(rs)} for (d, m), rs in sorted(groups.items())]
            return WATERMARK_SCHEMA, out
        day = params["day"]
        return SCHEMA, [r for r in self.rows if r["_partition"] == day]

    def pulled_days(self) -> list[str]:
        return [p["day"] for sql, p in self.queries if "day" in p]

    def post(self, path: str, body: dict):
        m = re.match(r"^/bigquery/v2/projects/([^/]+)/jobs$", path.split("?")[0])
        if not m:
            return 404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}}
        config = body["configuration"]["query"]
        sql = config["query"]
        if self.forbidden:
            msg = (f"Access Denied: Table {sql.split('`')[1]}: User does not have permission to query table "
                   f"{sql.split('`')[1]}, or perhaps it does not exist.")
            return 403, {"error": {"code": 403, "message": msg, "status": "PERMISSION_DENIED",
                                   "errors": [{"message": msg, "domain": "global", "reason": "accessDenied"}]}}
        params = {p["name"]: p["parameterValue"]["value"] for p in config.get("queryParameters", [])}
        self.queries.append((sql, params))
        project, job_id = m.group(1), body["jobReference"]["jobId"]
        self.jobs[job_id] = self.run(sql, params)
        return 200, self.job(project, job_id, sql)

    def job(self, project: str, job_id: str, sql: str = "") -> dict:
        now = "1793000000000"
        return {"kind": "bigquery#job", "id": f"{project}:US.{job_id}",
                "jobReference": {"projectId": project, "jobId": job_id, "location": "US"},
                "configuration": {"jobType": "QUERY", "query": {
                    "query": sql, "destinationTable": {"projectId": project, "datasetId": "_anon",
                                                       "tableId": f"anon_{job_id}"}}},
                "status": {"state": "DONE"},
                "statistics": {"creationTime": now, "startTime": now, "endTime": now,
                               "query": {"statementType": "SELECT", "totalBytesProcessed": "0"}}}

    def page(self, job_id: str, query: dict) -> dict:
        schema, rows = self.jobs[job_id]
        start = int(query.get("pageToken", query.get("startIndex", ["0"]))[0])
        size = min(self.page_size, int(query.get("maxResults", [str(self.page_size)])[0]) or 0)
        doc = {"totalRows": str(len(rows)), "schema": {"fields": schema}}
        if size:  # maxResults=0 (the client's "is the job done?" call) returns no rows
            doc["rows"] = [rest_row(r, schema) for r in rows[start:start + size]]
            if start + size < len(rows):
                doc["pageToken"] = str(start + size)
        return doc

    def get(self, path: str):
        from urllib.parse import parse_qs, urlparse

        url = urlparse(path)
        query = parse_qs(url.query)
        if m := re.match(r"^/bigquery/v2/projects/([^/]+)/jobs/([^/]+)$", url.path):
            return 200, self.job(m.group(1), m.group(2))
        if m := re.match(r"^/bigquery/v2/projects/([^/]+)/queries/([^/]+)$", url.path):
            doc = self.page(m.group(2), query)
            doc.update(kind="bigquery#getQueryResultsResponse", jobComplete=True,
                       jobReference={"projectId": m.group(1), "jobId": m.group(2), "location": "US"})
            return 200, doc
        if m := re.match(r"^/bigquery/v2/projects/([^/]+)/datasets/_anon/tables/anon_([^/]+)/data$", url.path):
            return 200, self.page(m.group(2), query)
        if m := re.match(r"^/bigquery/v2/projects/([^/]+)/datasets/_anon/tables/anon_([^/]+)$", url.path):
            schema, rows = self.jobs[m.group(2)]
            return 200, {"schema": {"fields": schema}, "numRows": str(len(rows)), "tableReference": {
                "projectId": m.group(1), "datasetId": "_anon", "tableId": f"anon_{m.group(2)}"}}
        return 404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}}


# -- a fake Cloud Billing Catalog REST server --------------------------------------------------------------------
CATALOG_SERVICES = [
    {"name": "services/6F81-5844-456A", "serviceId": "6F81-5844-456A", "displayName": "Compute Engine",
     "businessEntityName": "businessEntities/GCP"},
    {"name": "services/95FF-2EF5-5EA1", "serviceId": "95FF-2EF5-5EA1", "displayName": "Cloud Storage",
     "businessEntityName": "businessEntities/GCP"},
    {"name": "services/A1E8-BE35-7EBC", "serviceId": "A1E8-BE35-7EBC", "displayName": "Cloud Run",
     "businessEntityName": "businessEntities/GCP"},
]


def catalog_sku(service_id: str, sku_id: str, description: str, unit: str, unit_description: str,
                tiers: list[tuple[float, int, int]]) -> dict:
    return {
        "name": f"services/{service_id}/skus/{sku_id}", "skuId": sku_id, "description": description,
        "category": {"serviceDisplayName": "x", "resourceFamily": "Compute", "resourceGroup": "G",
                     "usageType": "OnDemand"},
        "serviceRegions": ["us-central1"],
        "pricingInfo": [{"effectiveTime": "2026-11-01T00:00:00Z", "summary": "", "currencyConversionRate": 1,
                         "pricingExpression": {
                             "usageUnit": unit, "usageUnitDescription": unit_description, "baseUnit": "s",
                             "baseUnitDescription": "second", "baseUnitConversionFactor": 3600, "displayQuantity": 1,
                             "tieredRates": [{"startUsageAmount": start,
                                              "unitPrice": {"currencyCode": "USD", "units": str(units),
                                                            "nanos": nanos}} for start, units, nanos in tiers]}}],
        "serviceProviderName": "Google",
    }


CATALOG_SKUS = {
    "6F81-5844-456A": [
        catalog_sku("6F81-5844-456A", "CP-COMPUTEENGINE-VMIMAGE-N1-STANDARD-1", "N1 Predefined Instance Core",
                    "h", "hour", [(0, 0, 47500000)]),
        catalog_sku("6F81-5844-456A", "CUD-FEE-1", "Commitment v1: Cpu in Americas for 1 Year", "mo", "month",
                    [(0, 15, 0)]),
    ],
    "95FF-2EF5-5EA1": [
        # A free tier, then the list price: the list price is the first non-zero tier.
        catalog_sku("95FF-2EF5-5EA1", "E5F0-6A5D-7BAD", "Standard Storage US Regional", "GiBy.mo",
                    "gibibyte month", [(0, 0, 0), (5, 0, 20000000)]),
    ],
}


class FakeCatalog:
    """`GET /v1/services` and `GET /v1/services/{id}/skus`, paged one item per page (nextPageToken)."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse

        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                url = urlparse(self.path)
                token = int(parse_qs(url.query).get("pageToken", ["0"])[0] or 0)
                if url.path == "/v1/services":
                    items, key = CATALOG_SERVICES, "services"
                elif m := re.match(r"^/v1/services/([^/]+)/skus$", url.path):
                    items, key = CATALOG_SKUS.get(m.group(1), []), "skus"
                else:
                    self.send_error(404)
                    return
                doc = {key: items[token:token + 1]}
                if token + 1 < len(items):
                    doc["nextPageToken"] = str(token + 1)
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
