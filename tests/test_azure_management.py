"""Export management against a real local HTTP server emulating the Cost Management REST endpoints.

The SDK (azure-mgmt-costmanagement 5.0.0, api-version 2025-03-01) talks to http://127.0.0.1:<port> through its own
pipeline: requests transport, retry policy, bearer-token policy. azure-core refuses a bearer token over plain
http; the module sends `enforce_https=False` per request, and only for a loopback base_url (see management.py).
The credential is a fake TokenCredential; the server checks the token and the api-version on every request.
"""
from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from azure.core.credentials import AccessToken

from connectors.azure.export_definitions import ExportSpec, ensure_export, export_body
from connectors.azure.export_runs import (
    RunStatus,
    execution_history,
    month_total,
    parse_history,
    run_due_or_failed,
    run_export,
)
from connectors.azure.management import make_client
from connectors.base import IngestError

SCOPE = "/subscriptions/00000000-0000-0000-0000-0000000000aa"
STORAGE = ("/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/finops/providers/"
           "Microsoft.Storage/storageAccounts/ctexports")
TOKEN = "fake-token-123"
EXPORTS = re.compile(r"^(?P<scope>/.+?)/providers/Microsoft\.CostManagement/exports/(?P<name>[^/]+)"
                     r"(?P<tail>/run|/runHistory)?$", re.I)
QUERY = re.compile(r"^(?P<scope>/.+?)/providers/Microsoft\.CostManagement/query$", re.I)


class FakeCredential:
    """A TokenCredential that hands out a fixed token and counts the requests for one."""

    def __init__(self):
        self.calls = 0

    def get_token(self, *scopes, **kwargs):
        self.calls += 1
        assert scopes == ("https://management.azure.com/.default",)
        return AccessToken(TOKEN, int(time.time()) + 3600)


class CostManagementEmulator:
    """State and scripted faults for the handler. `script` entries are consumed first: (method, path regex,
    status, headers, body, times)."""

    def __init__(self):
        self.exports: dict[tuple[str, str], dict] = {}
        self.history: dict[tuple[str, str], list] = {}
        self.requests: list[dict] = []
        self.script: list[list] = []
        self.query_response = ""
        self.etag = 0
        self.lock = threading.Lock()

    def fail(self, method, path_re, status, body=None, headers=None, times=1):
        self.script.append([method, re.compile(path_re, re.I), status, headers or {}, body, times])

    def handle(self, h: BaseHTTPRequestHandler):
        u = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        rec = {"method": h.command, "path": u.path, "query": parse_qs(u.query), "headers": dict(h.headers),
               "body": json.loads(raw) if raw else None, "at": time.monotonic()}
        with self.lock:
            self.requests.append(rec)
            if h.headers.get("Authorization") != f"Bearer {TOKEN}":
                return 401, {}, {"error": {"code": "AuthenticationFailed", "message": "no or bad token"}}
            if rec["query"].get("api-version") != ["2025-03-01"]:
                return 400, {}, {"error": {"code": "InvalidApiVersion", "message": str(rec["query"])}}
            for entry in self.script:
                method, pattern, status, headers, body, times = entry
                if method == h.command and pattern.search(u.path) and times:
                    entry[5] = times - 1
                    return status, headers, body
            return self.route(h.command, u.path, rec["body"])

    def route(self, method, path, body):
        mx = EXPORTS.match(path)
        if mx:
            key = (mx["scope"].lower(), mx["name"])
            tail = (mx["tail"] or "").lower()
            if tail == "/run" and method == "POST":
                if key not in self.exports:
                    return 404, {}, {"error": {"code": "NotFound", "message": f"Export {key[1]} not found"}}
                self.history.setdefault(key, []).insert(0, {
                    "id": f"{mx['scope']}/providers/Microsoft.CostManagement/exports/{key[1]}/Run/run-new",
                    "name": "run-new", "properties": {"status": "Queued", "executionType": "OnDemand",
                                                      "submittedTime": "2026-03-15T10:00:00Z"}})
                return 200, {}, None
            if tail == "/runhistory" and method == "GET":
                return 200, {}, {"value": self.history.get(key, [])}
            if method == "GET":
                if key not in self.exports:
                    return 404, {}, {"error": {"code": "NotFound", "message": f"Export '{key[1]}' not found."}}
                return 200, {}, self.exports[key]
            if method == "PUT":
                existing = self.exports.get(key)
                if existing and body.get("eTag") != existing["eTag"]:
                    return 412, {}, {"error": {"code": "PreconditionFailed", "message": "eTag mismatch"}}
                self.etag += 1
                stored = json.loads(json.dumps(body))
                stored.update({"id": f"{mx['scope']}/providers/Microsoft.CostManagement/exports/{key[1]}",
                               "name": key[1], "type": "Microsoft.CostManagement/exports",
                               "eTag": f'"etag-{self.etag}"'})
                stored["properties"]["nextRunTimeEstimate"] = "2026-03-16T00:00:00Z"
                stored["properties"]["deliveryInfo"]["destination"]["resourceId"] = \
                    body["properties"]["deliveryInfo"]["destination"]["resourceId"].lower()  # ARM normalizes case
                self.exports[key] = stored
                return (200 if existing else 201), {}, stored
        if QUERY.match(path) and method == "POST":
            return 200, {}, self.query_response
        return 404, {}, {"error": {"code": "NoRoute", "message": f"{method} {path}"}}


@pytest.fixture()
def cm():
    emulator = CostManagementEmulator()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            status, headers, body = emulator.handle(self)
            payload = body if isinstance(body, str) else ("" if body is None else json.dumps(body))
            data = payload.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    emulator.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield emulator
    server.shutdown()
    server.server_close()


def spec(**kw) -> ExportSpec:
    base = dict(scope=SCOPE, name="cloudtally-focus", storage_account_id=STORAGE, container="exports",
                root_folder_path="cost", dataset="FocusCost", data_version="1.2-preview", format="Parquet",
                schedule_from=datetime(2026, 3, 16, tzinfo=timezone.utc))
    base.update(kw)
    return ExportSpec(**base)


def client(cm, **kw):
    kw.setdefault("sleep", lambda s: None)
    return make_client(FakeCredential(), base_url=cm.url, **kw)


def puts(cm):
    return [r for r in cm.requests if r["method"] == "PUT"]


# ----------------------------------------------------------------------------------------------- ensure_export


def test_create_when_absent_sends_the_full_definition(cm):
    result = ensure_export(spec(), client=client(cm))
    assert result["action"] == "created"
    assert [r["method"] for r in cm.requests] == ["GET", "PUT"]
    put = puts(cm)[0]
    assert put["path"] == f"{SCOPE}/providers/Microsoft.CostManagement/exports/cloudtally-focus"
    assert put["headers"]["Authorization"] == f"Bearer {TOKEN}"
    p = put["body"]["properties"]
    assert p["definition"] == {"type": "FocusCost", "timeframe": "MonthToDate",
                               "dataSet": {"granularity": "Daily", "configuration": {"dataVersion": "1.2-preview"}}}
    assert p["format"] == "Parquet" and p["compressionMode"] == "snappy"
    assert p["partitionData"] is True
    assert p["dataOverwriteBehavior"] == "OverwritePreviousReport"
    assert p["deliveryInfo"]["destination"] == {"type": "AzureBlob", "resourceId": STORAGE, "container": "exports",
                                                "rootFolderPath": "cost"}
    assert p["schedule"] == {"status": "Active", "recurrence": "Daily",
                             "recurrencePeriod": {"from": "2026-03-16T00:00:00Z"}}
    assert "eTag" not in put["body"]
    assert result["changes"]["properties.definition.type"] == {"from": None, "to": "FocusCost"}


def test_monthly_close_and_csv_defaults():
    s = spec(dataset="actualcost", data_version=None, format="csv", overwrite="createnewreport")
    assert (s.dataset, s.format, s.compression, s.overwrite, s.data_version) == (
        "ActualCost", "Csv", "gzip", "CreateNewReport", None)
    close = s.monthly_close()
    assert (close.name, close.timeframe, close.recurrence) == ("cloudtally-focus-close", "TheLastMonth", "Monthly")
    body = export_body(close)
    assert body["properties"]["definition"]["timeframe"] == "TheLastMonth"
    assert body["properties"]["definition"]["dataSet"] == {"granularity": "Daily"}
    assert ExportSpec(scope=SCOPE, name="f", storage_account_id=STORAGE, container="c").data_version == "1.0r2"
    with pytest.raises(ValueError, match="Parquet compression 'gzip'"):
        spec(compression="gzip")
    with pytest.raises(ValueError, match="dataset 'Usage2'"):
        spec(dataset="Usage2")
    with pytest.raises(ValueError, match="storage account resource id"):
        spec(storage_account_id="ctexports")


def test_create_without_start_schedules_next_midnight(cm):
    ensure_export(spec(schedule_from=None), client=client(cm), now=datetime(2026, 3, 15, 17, 5, tzinfo=timezone.utc))
    assert puts(cm)[0]["body"]["properties"]["schedule"]["recurrencePeriod"] == {"from": "2026-03-16T00:00:00Z"}


def test_identical_definition_is_left_alone(cm):
    c = client(cm)
    ensure_export(spec(), client=c)
    cm.requests.clear()
    # Same definition, different casing in enum-like values and the storage id (the service lowercased it).
    result = ensure_export(spec(dataset="focuscost", format="parquet"), client=c)
    assert result == {"action": "unchanged", "scope": SCOPE, "export": "cloudtally-focus", "changes": {}}
    assert [r["method"] for r in cm.requests] == ["GET"]
    # Without a start date the existing one is kept: still no change.
    assert ensure_export(spec(schedule_from=None), client=c)["action"] == "unchanged"
    assert not puts(cm)


def test_different_definition_is_updated_with_etag(cm):
    c = client(cm)
    ensure_export(spec(), client=c)
    etag = cm.exports[(SCOPE.lower(), "cloudtally-focus")]["eTag"]
    cm.requests.clear()
    result = ensure_export(spec(data_version="1.0r2", root_folder_path="cost2", schedule_from=None), client=c)
    assert result["action"] == "updated"
    assert result["changes"] == {
        "properties.deliveryInfo.destination.rootFolderPath": {"from": "cost", "to": "cost2"},
        "properties.definition.dataSet.configuration.dataVersion": {"from": "1.2-preview", "to": "1.0r2"},
    }
    put = puts(cm)[0]["body"]
    assert put["eTag"] == etag
    assert put["properties"]["definition"]["dataSet"]["configuration"]["dataVersion"] == "1.0r2"
    # The existing recurrence start is kept.
    assert put["properties"]["schedule"]["recurrencePeriod"] == {"from": "2026-03-16T00:00:00Z"}
    assert ensure_export(spec(data_version="1.0r2", root_folder_path="cost2"), client=c)["action"] == "unchanged"


# ------------------------------------------------------------------------------------------- run and history


def test_run_export_posts_run(cm):
    c = client(cm)
    ensure_export(spec(), client=c)
    run_export(spec(), client=c)
    run = cm.requests[-1]
    assert (run["method"], run["path"]) == ("POST", f"{SCOPE}/providers/Microsoft.CostManagement/exports/"
                                                    "cloudtally-focus/run")
    history = execution_history(spec(), client=c)
    assert [(r.run_id, r.status, r.execution_type) for r in history] == [("run-new", "Queued", "OnDemand")]


def test_run_missing_export_says_export_not_found(cm):
    with pytest.raises(IngestError) as err:
        run_export(spec(name="nope"), client=client(cm))
    msg = str(err.value)
    assert "export 'nope' not found on " + SCOPE in msg and "404" in msg


HISTORY = {"value": [
    {"id": f"{SCOPE}/providers/Microsoft.CostManagement/exports/cloudtally-focus/Run/r1", "name": "r1",
     "properties": {"status": "Completed", "executionType": "Scheduled",
                    "submittedTime": "2026-03-14T01:00:00.1234567Z", "processingStartTime": "2026-03-14T01:01:00Z",
                    "processingEndTime": "2026-03-14T01:20:00Z", "startDate": "2026-03-01T00:00:00Z",
                    "endDate": "2026-03-13T00:00:00Z",
                    "fileName": "cost/cloudtally-focus/20260301-20260331/202603140100/abc/manifest.json",
                    "manifestFile": "cost/cloudtally-focus/20260301-20260331/202603140100/abc/manifest.json"}},
    {"id": f"{SCOPE}/providers/Microsoft.CostManagement/exports/cloudtally-focus/Run/r2", "name": "r2",
     "properties": {"status": "Failed", "executionType": "Scheduled", "submittedTime": "2026-03-15T01:00:00Z",
                    "processingStartTime": "2026-03-15T01:02:00Z", "processingEndTime": "2026-03-15T01:05:00Z",
                    "startDate": "2026-03-01T00:00:00Z", "endDate": "2026-03-14T00:00:00Z",
                    "error": {"code": "StorageAccessDenied",
                              "message": "The export could not write to storage account ctexports."}}},
]}


def test_history_parsing_includes_failed_message(cm):
    c = client(cm)
    cm.history[(SCOPE.lower(), "cloudtally-focus")] = HISTORY["value"]
    runs = execution_history(spec(), client=c)
    assert [r.run_id for r in runs] == ["r2", "r1"]  # newest first
    failed, done = runs
    assert failed.status == "Failed" and failed.error_code == "StorageAccessDenied"
    assert failed.error_message == "The export could not write to storage account ctexports."
    assert done.submitted_time == datetime(2026, 3, 14, 1, 0, 0, 123456, tzinfo=timezone.utc)
    assert done.processing_end_time == datetime(2026, 3, 14, 1, 20, tzinfo=timezone.utc)
    assert done.start_date == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert done.manifest_file.endswith("/abc/manifest.json") and done.error_message is None
    assert cm.requests[-1]["path"].endswith("/exports/cloudtally-focus/runHistory")


def test_run_due_or_failed():
    runs = parse_history(HISTORY)
    now = datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc)
    v = run_due_or_failed(runs, now)
    assert v.due and v.failed
    assert "r2 failed" in v.message and "StorageAccessDenied: The export could not write" in v.message
    assert v.last.run_id == "r2"
    # The day before, r1 completed that day: nothing due, nothing failed yet.
    v = run_due_or_failed(runs[1:], datetime(2026, 3, 14, 23, 0, tzinfo=timezone.utc))
    assert not v.due and not v.failed and "already delivered today" in v.message
    # A later successful run clears the failure and the due flag.
    ok = RunStatus(run_id="r3", status="Completed", submitted_time=datetime(2026, 3, 15, 9, tzinfo=timezone.utc),
                     processing_end_time=datetime(2026, 3, 15, 9, 30, tzinfo=timezone.utc))
    v = run_due_or_failed(runs + [ok], now)
    assert not v.due and not v.failed
    # A queued run today: not due (already asked for), the earlier failure still reported.
    queued = RunStatus(run_id="r4", status="Queued", submitted_time=datetime(2026, 3, 15, 11, tzinfo=timezone.utc))
    v = run_due_or_failed(runs + [queued], now)
    assert not v.due and v.failed and "queued or in progress" in v.message
    assert run_due_or_failed([], now).due
    # Previous-month export: r1 covers March, so in April the March close is due, in March not.
    assert run_due_or_failed(runs, datetime(2026, 4, 2, tzinfo=timezone.utc), "TheLastMonth").due
    feb = RunStatus(run_id="c", status="Completed", start_date=datetime(2026, 2, 1, tzinfo=timezone.utc),
                      submitted_time=datetime(2026, 3, 1, 5, tzinfo=timezone.utc))
    assert not run_due_or_failed([feb], now, "TheLastMonth").due


# ------------------------------------------------------------------------------------------------- throttling


def test_429_retry_after_is_waited_out_then_succeeds(cm):
    cm.fail("GET", r"/exports/cloudtally-focus$", 429, {"error": {"code": "TooManyRequests", "message": "slow"}},
            headers={"Retry-After": "1"})
    c = make_client(FakeCredential(), base_url=cm.url)  # real sleep
    started = time.monotonic()
    result = ensure_export(spec(), client=c)
    elapsed = time.monotonic() - started
    assert result["action"] == "created"
    gets = [r for r in cm.requests if r["method"] == "GET"]
    assert len(gets) == 2
    assert gets[1]["at"] - gets[0]["at"] >= 0.95, "the client did not wait the stated Retry-After"
    assert elapsed < 5


def test_cost_management_retry_after_header_honoured_on_post(cm):
    # POST without Retry-After but with Cost Management's own header: azure-core alone would not retry a POST 429.
    cm.query_response = json.dumps({"properties": {"columns": [{"name": "totalCost", "type": "Number"},
                                                               {"name": "Currency", "type": "String"}],
                                                   "rows": [[1.5, "USD"]]}})
    cm.fail("POST", r"/query$", 429, {"error": {"code": "429", "message": "Too many requests"}},
            headers={"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after": "7"}, times=2)
    slept = []
    c = client(cm, sleep=slept.append)
    assert month_total(SCOPE, "2026-02", client=c) == {"USD": Decimal("1.5")}
    assert slept == [7.0, 7.0]
    assert len([r for r in cm.requests if r["path"].endswith("/query")]) == 3


def test_429_forever_gives_a_clear_error_after_bounded_attempts(cm):
    cm.fail("POST", r"/run$", 429, {"error": {"code": "TooManyRequests", "message": "slow"}},
            headers={"Retry-After": "2"}, times=100)
    slept = []
    c = client(cm, max_attempts=3, sleep=slept.append)
    with pytest.raises(IngestError) as err:
        run_export(spec(), client=c)
    msg = str(err.value)
    assert "throttled" in msg and "429 after 3 attempts" in msg and "cloudtally-focus" in msg and SCOPE in msg
    assert "Retry-After 2 s" in msg
    assert len([r for r in cm.requests if r["path"].endswith("/run")]) == 3
    assert slept == [2.0, 2.0]


def test_429_asking_too_long_a_wait_fails_at_once(cm):
    cm.fail("GET", r"/runHistory$", 429, {"error": {"code": "TooManyRequests", "message": "slow"}},
            headers={"Retry-After": "3600"}, times=100)
    slept = []
    with pytest.raises(IngestError, match="asked to wait 3600 s, longer than the 300 s"):
        execution_history(spec(), client=client(cm, sleep=slept.append))
    assert slept == [] and len(cm.requests) == 1


# ------------------------------------------------------------------------------------------------------ errors


def test_403_names_the_role_and_scope(cm):
    cm.fail("GET", r"/exports/", 403, {"error": {"code": "AuthorizationFailed", "message":
                                                 "The client 'abc' does not have authorization to perform action"}})
    with pytest.raises(IngestError) as err:
        ensure_export(spec(), client=client(cm))
    msg = str(err.value)
    assert f"needs Cost Management Reader (or Cost Management Contributor) on {SCOPE}" in msg
    assert "'cloudtally-focus'" in msg and "AuthorizationFailed" in msg
    cm.fail("PUT", r"/exports/", 403, {"error": {"code": "AuthorizationFailed", "message": "denied"}})
    with pytest.raises(IngestError, match=f"needs Cost Management Contributor on {re.escape(SCOPE)}"):
        ensure_export(spec(), client=client(cm))


def test_400_carries_the_service_message(cm):
    cm.fail("PUT", r"/exports/", 400, {"error": {"code": "BadRequest", "message":
                                                 "Invalid dataVersion '9.9' for FocusCost."}})
    with pytest.raises(IngestError) as err:
        ensure_export(spec(data_version="9.9"), client=client(cm))
    assert "rejected the request to create export 'cloudtally-focus' on " + SCOPE in str(err.value)
    assert "BadRequest: Invalid dataVersion '9.9' for FocusCost." in str(err.value)


def test_404_scope_not_found(cm):
    cm.fail("GET", r"/exports/", 404, {"error": {"code": "SubscriptionNotFound",
                                                 "message": "The subscription could not be found."}})
    with pytest.raises(IngestError, match=f"scope {re.escape(SCOPE)} not found"):
        ensure_export(spec(), client=client(cm))


def test_plain_http_refused_off_loopback():
    with pytest.raises(ValueError, match="only sent over https"):
        make_client(FakeCredential(), base_url="http://example.com")


# --------------------------------------------------------------------------------------------------- month_total


def test_month_total_exact_decimal_per_currency(cm):
    # Numbers written with more digits than a double holds: a float round trip would change them.
    cm.query_response = (
        '{"id":"x","name":"x","type":"Microsoft.CostManagement/query","properties":{"nextLink":null,'
        '"columns":[{"name":"totalCost","type":"Number"},{"name":"Currency","type":"String"}],'
        '"rows":[[12345.678901234567890123,"USD"],[0.100000000000000000001,"USD"],[99,"EUR"],'
        '[1e-12,"EUR"]]}}')
    totals = month_total(SCOPE, "2026-02", "AmortizedCost", client=client(cm))
    assert totals == {"USD": Decimal("12345.778901234567890123001"), "EUR": Decimal("99.000000000001")}
    body = [r for r in cm.requests if r["path"].endswith("/query")][0]["body"]
    assert body == {"type": "AmortizedCost", "timeframe": "Custom",
                    "timePeriod": {"from": "2026-02-01T00:00:00Z", "to": "2026-02-28T23:59:59Z"},
                    "dataset": {"aggregation": {"totalCost": {"name": "PreTaxCost", "function": "Sum"}}}}
    with pytest.raises(ValueError, match="FocusCost is an export type only"):
        month_total(SCOPE, "2026-02", "FocusCost", client=client(cm))


def test_default_credential_is_used_when_none_given(monkeypatch, cm):
    made = []

    class Default(FakeCredential):
        def __init__(self):
            super().__init__()
            made.append(self)

    import azure.identity
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", Default)
    assert ensure_export(spec(), base_url=cm.url, sleep=lambda s: None)["action"] == "created"
    assert len(made) == 1 and made[0].calls >= 1
