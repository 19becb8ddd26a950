"""Azure Cost Management exports, managed through `azure-mgmt-costmanagement` 5.0.0 (api-version 2025-03-01).

What this module does, and nothing else:
  ensure_export      create or update one export definition, idempotently (read first, write only on a difference)
  run_export         ask the service to run an export now (`exports.execute`)
  execution_history  the export's runs, parsed into `RunStatus`; `run_due_or_failed` judges them
  month_total        the service's own total for a month (`query.usage`), per currency, as exact Decimals — a
                     cross-check for the totals the loaded files produce

Errors come out as `IngestError`s naming the scope and the export (403 says which role is missing, 404 whether the
scope or the export, 400 carries the service's message, 429 says how often it was tried).

Throttling: azure-core's `RetryPolicy` already retries a response that carries `Retry-After` (any method, any
status >= 400) and sleeps exactly the stated delay through `transport.sleep`; it reads `Retry-After`,
`retry-after-ms` and `x-ms-retry-after-ms`. Cost Management states its delay in its own headers
(`x-ms-ratelimit-microsoft.costmanagement-{qpu,entity,tenant,clienttype}-retry-after`, seconds), and azure-core
does not retry a POST (query, run) on a 429 without `Retry-After`. `ThrottleRetryPolicy` is azure-core's policy
with exactly those two additions, a bounded number of attempts, a cap on how long one stated delay may be, and an
injectable sleep (tests); no retry loop of our own.

Credentials: any `TokenCredential`; `DefaultAzureCredential()` when none is given. Nothing is stored. `base_url`
overrides the Resource Manager endpoint (sovereign clouds, tests). A bearer token is only ever sent over https,
except to a loopback address (127.0.0.1, ::1, localhost) — the local test server — where the request is sent with
azure-core's per-request `enforce_https=False` option.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlparse

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import RetryPolicy
from azure.core.rest import HttpRequest

from connectors.base import IngestError

API_VERSION = "2025-03-01"
DATASETS = ("ActualCost", "AmortizedCost", "FocusCost")
FORMATS = {"Csv": ("gzip", "none"), "Parquet": ("snappy", "none")}  # format -> compression modes it supports
TIMEFRAMES = ("MonthToDate", "TheLastMonth")
RECURRENCES = ("Daily", "Weekly", "Monthly")
OVERWRITE = ("OverwritePreviousReport", "CreateNewReport")
DEFAULT_FOCUS_VERSION = "1.0r2"
RUN_STATUSES = ("Queued", "InProgress", "Completed", "Failed", "Timeout", "NewDataNotAvailable", "DataNotAvailable")
_CM_RETRY_AFTER = re.compile(r"^x-ms-ratelimit-microsoft\.costmanagement-[a-z0-9.-]*retry-after$", re.I)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --------------------------------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class ExportSpec:
    """One Cost Management export, as CloudTally wants it to exist.

    scope: `/subscriptions/<id>`, `/subscriptions/<id>/resourceGroups/<rg>`,
      `/providers/Microsoft.Billing/billingAccounts/<id>` (EA or MCA) or
      `/providers/Microsoft.Billing/billingAccounts/<id>/billingProfiles/<id>` (MCA billing profile).
    dataset: ActualCost | AmortizedCost | FocusCost; `data_version` is the dataset version (FocusCost: "1.0",
      "1.0r2", "1.2-preview", "1.2"; defaults to 1.0r2 for FocusCost, the service's default otherwise).
    storage_account_id: the storage account's resource id; `container` and `root_folder_path` place the files.
    timeframe/recurrence: MonthToDate + Daily (the running month, re-delivered every day) or TheLastMonth +
      Monthly (the closed previous month); `monthly_close()` derives the second from the first.
    schedule_from/schedule_to: the recurrence period. `schedule_from=None` keeps what the service has, or starts
      at the next UTC midnight when the export is created; `schedule_to=None` sends no end.
    overwrite: OverwritePreviousReport (each run replaces the month's files) | CreateNewReport (each run keeps its
      own folder; CloudTally loads the newest manifest either way).
    identity/location: a system-assigned managed identity for the export (needed to write into a storage account
      behind a firewall); `location` is the region ARM keeps that identity in.
    """

    scope: str
    name: str
    storage_account_id: str
    container: str
    root_folder_path: str = "cloudtally"
    dataset: str = "FocusCost"
    data_version: str | None = None
    format: str = "Parquet"
    compression: str | None = None  # default: snappy for Parquet, gzip for Csv
    partition_data: bool = True
    overwrite: str = "OverwritePreviousReport"
    timeframe: str = "MonthToDate"
    recurrence: str = "Daily"
    schedule_from: datetime | None = None
    schedule_to: datetime | None = None
    active: bool = True
    columns: tuple[str, ...] | None = None
    identity: bool = False
    location: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        def pick(value: str, allowed: Iterable[str], what: str) -> str:
            for a in allowed:
                if value.lower() == a.lower():
                    return a
            raise ValueError(f"export {self.name!r}: {what} {value!r} is not one of {', '.join(allowed)}")

        if not self.scope.startswith("/") or self.scope.rstrip("/") == "":
            raise ValueError(f"export {self.name!r}: scope {self.scope!r} must be a resource id starting with '/'")
        if not self.name or "/" in self.name:
            raise ValueError(f"export name {self.name!r} must be non-empty and contain no '/'")
        object.__setattr__(self, "scope", self.scope.rstrip("/"))
        object.__setattr__(self, "dataset", pick(self.dataset, DATASETS, "dataset"))
        object.__setattr__(self, "format", pick(self.format, FORMATS, "format"))
        object.__setattr__(self, "overwrite", pick(self.overwrite, OVERWRITE, "data overwrite behaviour"))
        object.__setattr__(self, "timeframe", pick(self.timeframe, TIMEFRAMES, "timeframe"))
        object.__setattr__(self, "recurrence", pick(self.recurrence, RECURRENCES, "recurrence"))
        compression = self.compression or FORMATS[self.format][0]
        object.__setattr__(self, "compression", pick(compression, FORMATS[self.format], f"{self.format} compression"))
        if self.data_version is None and self.dataset == "FocusCost":
            object.__setattr__(self, "data_version", DEFAULT_FOCUS_VERSION)
        if "/providers/microsoft.storage/storageaccounts/" not in self.storage_account_id.lower():
            raise ValueError(f"export {self.name!r}: storage_account_id {self.storage_account_id!r} is not a storage "
                             "account resource id (/subscriptions/…/providers/Microsoft.Storage/storageAccounts/…)")
        if not self.container:
            raise ValueError(f"export {self.name!r}: a container is required")
        if self.identity and not self.location:
            raise ValueError(f"export {self.name!r}: a managed identity needs a location (e.g. 'centralus')")
        for attr in ("schedule_from", "schedule_to"):
            v = getattr(self, attr)
            if v is not None and v.tzinfo is None:
                object.__setattr__(self, attr, v.replace(tzinfo=timezone.utc))

    def monthly_close(self, name: str | None = None) -> "ExportSpec":
        """The companion export: the previous month, once a month, into the same destination."""
        return replace(self, name=name or f"{self.name}-close", timeframe="TheLastMonth", recurrence="Monthly")


def export_body(spec: ExportSpec, *, schedule_from: datetime | None = None) -> dict[str, Any]:
    """The REST body (`Export` resource) that `ensure_export` PUTs for this spec."""
    configuration: dict[str, Any] = {}
    if spec.data_version:
        configuration["dataVersion"] = spec.data_version
    if spec.columns:
        configuration["columns"] = list(spec.columns)
    data_set: dict[str, Any] = {"granularity": "Daily"}
    if configuration:
        data_set["configuration"] = configuration
    recurrence_period: dict[str, Any] = {}
    start = spec.schedule_from or schedule_from
    if start is not None:
        recurrence_period["from"] = _iso(start)
    if spec.schedule_to is not None:
        recurrence_period["to"] = _iso(spec.schedule_to)
    schedule: dict[str, Any] = {"status": "Active" if spec.active else "Inactive", "recurrence": spec.recurrence}
    if recurrence_period:
        schedule["recurrencePeriod"] = recurrence_period
    properties: dict[str, Any] = {
        "format": spec.format,
        "compressionMode": spec.compression,
        "partitionData": spec.partition_data,
        "dataOverwriteBehavior": spec.overwrite,
        "deliveryInfo": {"destination": {
            "type": "AzureBlob",
            "resourceId": spec.storage_account_id,
            "container": spec.container,
            "rootFolderPath": spec.root_folder_path,
        }},
        "definition": {"type": spec.dataset, "timeframe": spec.timeframe, "dataSet": data_set},
        "schedule": schedule,
    }
    if spec.description:
        properties["exportDescription"] = spec.description
    body: dict[str, Any] = {"properties": properties}
    if spec.identity:
        body["identity"] = {"type": "SystemAssigned"}
        body["location"] = spec.location
    return body


# ------------------------------------------------------------------------------------------- client and retries


class ThrottleRetryPolicy(RetryPolicy):
    """azure-core's RetryPolicy, plus Cost Management's throttling headers and bounded, injectable waits.

    max_attempts: requests in all (first try included). max_retry_after: a stated delay longer than this (seconds)
    is not waited out; the 429 is returned at once. sleep: called with the delay instead of `transport.sleep`."""

    def __init__(self, *, max_attempts: int = 4, max_retry_after: float = 300.0,
                 sleep: Callable[[float], None] | None = None, **kwargs: Any) -> None:
        retries = max(0, max_attempts - 1)
        kwargs.setdefault("retry_backoff_factor", 1.0)
        super().__init__(retry_total=retries, retry_status=retries, **kwargs)
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self._sleep_fn = sleep

    def get_retry_after(self, response) -> float | None:
        stated = super().get_retry_after(response)
        for name, value in response.http_response.headers.items():
            if _CM_RETRY_AFTER.match(name):
                try:
                    seconds = float(value)
                except ValueError:
                    continue
                stated = seconds if stated is None else max(stated, seconds)
        return stated

    def is_retry(self, settings, response) -> bool:
        if response.http_response.status_code == 429:
            # A 429 was not processed, so retrying any method (also POST) is safe — unless told to wait too long.
            stated = self.get_retry_after(response)
            return stated is None or stated <= self.max_retry_after
        return super().is_retry(settings, response)

    def sleep(self, settings, transport, response=None) -> None:
        delay = self.get_retry_after(response) if response is not None else None
        if delay is None:
            delay = self.get_backoff_time(settings)
        if delay > 0:
            (self._sleep_fn or transport.sleep)(delay)


def make_client(credential: Any = None, *, base_url: str | None = None, max_attempts: int = 4,
                max_retry_after: float = 300.0, sleep: Callable[[float], None] | None = None, **kwargs: Any):
    """A `CostManagementClient` (api-version 2025-03-01) with CloudTally's retry policy.

    credential: any TokenCredential; `DefaultAzureCredential()` when None. base_url: the Resource Manager endpoint
    (default: the public cloud's, https://management.azure.com). Plain http is accepted only for a loopback host."""
    from azure.mgmt.costmanagement import CostManagementClient

    if base_url:
        _check_base_url(base_url)
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    policy = ThrottleRetryPolicy(max_attempts=max_attempts, max_retry_after=max_retry_after, sleep=sleep)
    client = CostManagementClient(credential, base_url=base_url, api_version=API_VERSION, retry_policy=policy,
                                  **kwargs)
    client._cloudtally_attempts = max_attempts  # for error messages
    return client


def _check_base_url(base_url: str) -> None:
    u = urlparse(base_url)
    if u.scheme == "https":
        return
    if u.scheme == "http" and (u.hostname or "") in _LOOPBACK:
        return
    raise ValueError(f"base_url {base_url!r}: a bearer token is only sent over https (plain http only to a "
                     "loopback address, for tests)")


class _Session:
    """A client plus what every call needs: the per-request options and the names errors cite."""

    def __init__(self, client, credential, base_url, kwargs):
        self.client = client or make_client(credential, base_url=base_url, **kwargs)
        endpoint = str(getattr(self.client._config, "base_url", "") or "")
        self.endpoint = endpoint
        # azure-core refuses bearer tokens over http; allowed only for loopback (checked in make_client).
        self.opts: dict[str, Any] = {}
        if endpoint.startswith("http://"):
            _check_base_url(endpoint)
            self.opts["enforce_https"] = False
        self.attempts = getattr(self.client, "_cloudtally_attempts", None)


# --------------------------------------------------------------------------------------------------- exports


def ensure_export(spec: ExportSpec, credential: Any = None, client: Any = None, *, base_url: str | None = None,
                  now: datetime | None = None, **client_kwargs: Any) -> dict[str, Any]:
    """Create the export if absent, update it if it differs from `spec`, else leave it alone.

    Only the fields `spec` sets are compared (enum-like values and resource ids case-insensitively, times as
    instants); a field the service left out counts as its default (no compression, no partitioning). An update
    PUTs the whole spec with the existing eTag and keeps the existing recurrence start when `spec.schedule_from`
    is None; properties CloudTally does not manage (filters, a description set elsewhere) are not carried over.

    Returns {"action": "created" | "updated" | "unchanged", "scope", "export", "changes": {path: {"from", "to"}}}.
    """
    s = _Session(client, credential, base_url, client_kwargs)
    existing = _get_raw(s, spec)
    now = now or datetime.now(timezone.utc)
    if existing is None:
        start = datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=timezone.utc)
        body = export_body(spec, schedule_from=start)
        changes = {path: {"from": None, "to": v} for path, v in _leaves(body)}
        action = "created"
    else:
        kept_from = _dig(existing, "properties.schedule.recurrencePeriod.from")
        compared = export_body(spec)  # without a defaulted start: a kept start is no difference
        changes = {}
        for path, want in _leaves(compared):
            have = _dig(existing, path)
            if not _same(path, have, want):
                changes[path] = {"from": have, "to": want}
        if not changes:
            return {"action": "unchanged", "scope": spec.scope, "export": spec.name, "changes": {}}
        body = export_body(spec, schedule_from=_parse_time(kept_from) if kept_from else
                           datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=timezone.utc))
        if existing.get("eTag"):
            body["eTag"] = existing["eTag"]
        action = "updated"
    try:
        s.client.exports.create_or_update(spec.scope, spec.name, body, **s.opts)
    except Exception as exc:  # noqa: BLE001 - mapped to a message naming scope and export
        raise _explain(exc, s, spec.scope, spec.name, f"{'create' if action == 'created' else 'update'} export",
                       write=True) from exc
    return {"action": action, "scope": spec.scope, "export": spec.name, "changes": changes}


def run_export(spec: ExportSpec, credential: Any = None, client: Any = None, *, base_url: str | None = None,
               **client_kwargs: Any) -> None:
    """Ask the service to run the export now (`exports.execute`). The run shows up in `execution_history`."""
    s = _Session(client, credential, base_url, client_kwargs)
    try:
        s.client.exports.execute(spec.scope, spec.name, **s.opts)
    except Exception as exc:  # noqa: BLE001
        raise _explain(exc, s, spec.scope, spec.name, "run export", write=True) from exc


@dataclass(frozen=True)
class RunStatus:
    """One export run as the service reports it. Times are UTC; `start_date`/`end_date` are the data's period."""

    run_id: str
    status: str
    execution_type: str | None = None
    submitted_time: datetime | None = None
    processing_start_time: datetime | None = None
    processing_end_time: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    file_name: str | None = None
    manifest_file: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def when(self) -> datetime | None:
        return self.processing_end_time or self.processing_start_time or self.submitted_time


def execution_history(spec: ExportSpec, credential: Any = None, client: Any = None, *, base_url: str | None = None,
                      **client_kwargs: Any) -> list[RunStatus]:
    """The export's recent runs (the service keeps a bounded history), newest first."""
    s = _Session(client, credential, base_url, client_kwargs)
    try:
        raw = s.client.exports.get_execution_history(
            spec.scope, spec.name, cls=lambda pipeline_response, _d, _h: pipeline_response.http_response.json(),
            **s.opts)
    except Exception as exc:  # noqa: BLE001
        raise _explain(exc, s, spec.scope, spec.name, "read the run history of export", write=False) from exc
    return parse_history(raw)


def parse_history(raw: Mapping[str, Any]) -> list[RunStatus]:
    """`ExportExecutionListResult` JSON -> RunStatus list, newest first (by submitted time)."""
    runs = []
    for item in (raw or {}).get("value") or []:
        p = item.get("properties") or {}
        error = p.get("error") or {}
        run_id = item.get("name") or (item.get("id") or "").rstrip("/").rsplit("/", 1)[-1]
        runs.append(RunStatus(
            run_id=run_id,
            status=_canonical(p.get("status"), RUN_STATUSES) or "Unknown",
            execution_type=p.get("executionType"),
            submitted_time=_parse_time(p.get("submittedTime")),
            processing_start_time=_parse_time(p.get("processingStartTime")),
            processing_end_time=_parse_time(p.get("processingEndTime")),
            start_date=_parse_time(p.get("startDate")),
            end_date=_parse_time(p.get("endDate")),
            file_name=p.get("fileName"),
            manifest_file=p.get("manifestFile"),
            error_code=error.get("code"),
            error_message=error.get("message"),
        ))
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    runs.sort(key=lambda r: r.submitted_time or r.when or epoch, reverse=True)
    return runs


@dataclass(frozen=True)
class RunVerdict:
    due: bool  # no run has delivered what this export should have delivered by now: trigger one
    failed: bool  # the newest finished run failed or timed out
    message: str
    last: RunStatus | None = None  # newest run, whatever its status


def run_due_or_failed(history: list[RunStatus], now: datetime, timeframe: str = "MonthToDate") -> RunVerdict:
    """Is a run due, and did the last one fail?

    MonthToDate: due unless a run completed (or reported NewDataNotAvailable) today (UTC) or one is queued / in
    progress since today. TheLastMonth: due unless a run completed for the whole previous month (its data period
    starts in that month and ends on its last day) or one is queued / in progress since the 1st. `failed` is about the
    newest finished run (Failed or Timeout), with its message."""
    now = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    today = now.astimezone(timezone.utc).date()
    runs = sorted(history, key=lambda r: r.submitted_time or r.when or datetime.min.replace(tzinfo=timezone.utc),
                  reverse=True)
    last = runs[0] if runs else None
    finished = [r for r in runs if r.status not in ("Queued", "InProgress")]
    newest_finished = finished[0] if finished else None
    failed = bool(newest_finished and newest_finished.status in ("Failed", "Timeout"))

    def day(t: datetime | None) -> date | None:
        return t.astimezone(timezone.utc).date() if t else None

    ok = ("Completed", "NewDataNotAvailable")
    if timeframe.lower() == "thelastmonth":
        first = today.replace(day=1)
        prev = (first - timedelta(days=1)).replace(day=1)
        prev_last = first - timedelta(days=1)
        # A run for the whole previous month: a month-to-date run of that month (ending earlier) does not count.
        done = any(r.status == "Completed" and r.start_date and day(r.start_date).replace(day=1) == prev
                   and (r.end_date is None or day(r.end_date) >= prev_last) for r in runs)
        running = any(r.status in ("Queued", "InProgress") and day(r.submitted_time) and
                      day(r.submitted_time) >= first for r in runs)
    else:
        done = any(r.status in ok and day(r.when) == today for r in runs)
        running = any(r.status in ("Queued", "InProgress") and day(r.submitted_time) == today for r in runs)
    due = not done and not running

    parts = []
    if failed:
        f = newest_finished
        parts.append(f"last run {f.run_id} {f.status.lower()}"
                     + (f" at {_iso(f.when)}" if f.when else "")
                     + (f": {f.error_code + ': ' if f.error_code else ''}{f.error_message}" if f.error_message
                        else " (no message from the service)"))
    if running:
        parts.append("a run is queued or in progress")
    elif done:
        parts.append("already delivered " + ("today" if timeframe.lower() != "thelastmonth" else "last month"))
    elif not runs:
        parts.append("no runs yet: a run is due")
    else:
        parts.append("a run is due")
    return RunVerdict(due=due, failed=failed, message="; ".join(parts), last=last)


# ------------------------------------------------------------------------------------------------- month total


def month_total(scope: str, month: str | date, dataset: str = "ActualCost", credential: Any = None,
                client: Any = None, *, cost_column: str = "PreTaxCost", base_url: str | None = None,
                **client_kwargs: Any) -> dict[str, Decimal]:
    """The service's total cost for one calendar month at `scope`, per currency: {"USD": Decimal(...)}.

    A `query.usage` with a custom period (first day 00:00:00 to last day 23:59:59 UTC, both inclusive), no
    granularity, `Sum` of `cost_column` ("PreTaxCost" for EA and pay-as-you-go; "Cost" works for MCA). The service
    adds a currency column to every row; rows are summed per currency here, in Decimal.

    dataset: ActualCost (compare with BilledCost) or AmortizedCost (EffectiveCost); FocusCost is not a query type.

    Precision: the API sends JSON numbers, serialized from doubles (typically up to 15-17 significant digits,
    e.g. 1234.56789012345). They are parsed from the raw response text straight into Decimal, so exactly the
    digits the service sent are kept — nothing is lost through a float here, but digits the service rounded away
    are not recovered; compare with a tolerance of about 1e-8 relative, not for equality."""
    ds = _canonical(dataset, ("ActualCost", "AmortizedCost", "Usage"))
    if ds is None:
        raise ValueError(f"month_total: dataset {dataset!r} must be ActualCost or AmortizedCost (FocusCost is an "
                         "export type only: use ActualCost for BilledCost, AmortizedCost for EffectiveCost)")
    if isinstance(month, str):
        try:
            first = datetime.strptime(month, "%Y-%m").date()
        except ValueError:
            raise ValueError(f"month_total: month {month!r} is not YYYY-MM") from None
    else:
        first = month.replace(day=1)
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    last = nxt - timedelta(days=1)
    scope = scope.rstrip("/")
    body = {
        "type": ds,
        "timeframe": "Custom",
        "timePeriod": {"from": f"{first.isoformat()}T00:00:00Z", "to": f"{last.isoformat()}T23:59:59Z"},
        "dataset": {"aggregation": {"totalCost": {"name": cost_column, "function": "Sum"}}},
    }
    s = _Session(client, credential, base_url, client_kwargs)
    label = f"{first:%Y-%m} {ds} total"
    try:
        text = s.client.query.usage(scope, body,
                                    cls=lambda pipeline_response, _d, _h: pipeline_response.http_response.text(),
                                    **s.opts)
        totals: dict[str, Decimal] = {}
        for page in range(100):
            doc = json.loads(text, parse_float=Decimal, parse_int=Decimal)
            _add_rows(doc, totals, scope)
            next_link = ((doc.get("properties") or {}).get("nextLink"))
            if not next_link:
                return totals
            response = s.client.send_request(HttpRequest("POST", next_link, json=body), **s.opts)
            if response.status_code != 200:
                raise HttpResponseError(response=response)
            text = response.text()
        raise IngestError(f"query on {scope}: more than 100 result pages for one month's total")
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _explain(exc, s, scope, None, f"query the {label} of", write=False) from exc


def _add_rows(doc: Mapping[str, Any], totals: dict[str, Decimal], scope: str) -> None:
    props = doc.get("properties") or {}
    columns = [str(c.get("name") or "") for c in props.get("columns") or []]
    lower = [c.lower() for c in columns]
    try:
        ci = lower.index("totalcost")
    except ValueError:
        raise IngestError(f"query on {scope}: the response has no totalCost column (columns: {columns})") from None
    cur = next((lower.index(n) for n in ("currency", "billingcurrency", "billingcurrencycode") if n in lower), None)
    for row in props.get("rows") or []:
        value = row[ci]
        if value is None:
            continue
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
        currency = str(row[cur]) if cur is not None and row[cur] is not None else ""
        totals[currency] = totals.get(currency, Decimal(0)) + amount


# --------------------------------------------------------------------------------------------------- helpers


def _get_raw(s: _Session, spec: ExportSpec) -> dict[str, Any] | None:
    try:
        return s.client.exports.get(
            spec.scope, spec.name, cls=lambda pipeline_response, _d, _h: pipeline_response.http_response.json(),
            **s.opts)
    except ResourceNotFoundError as exc:
        code, _ = _service_error(exc)
        if code and _scope_missing(code):
            raise _explain(exc, s, spec.scope, spec.name, "read export", write=False) from exc
        return None
    except Exception as exc:  # noqa: BLE001
        raise _explain(exc, s, spec.scope, spec.name, "read export", write=False) from exc


def _service_error(exc: Exception) -> tuple[str | None, str | None]:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            doc = json.loads(response.text() or "{}")
            err = doc.get("error", doc) if isinstance(doc, dict) else {}
            if isinstance(err, dict) and (err.get("code") or err.get("message")):
                return err.get("code"), err.get("message")
        except (ValueError, TypeError, AttributeError):
            pass
    error = getattr(exc, "error", None)
    if error is not None and (getattr(error, "code", None) or getattr(error, "message", None)):
        return getattr(error, "code", None), getattr(error, "message", None)
    return None, getattr(exc, "reason", None) or None


def _scope_missing(code: str) -> bool:
    c = code.lower()
    return any(k in c for k in ("subscriptionnotfound", "billingaccountnotfound", "billingprofilenotfound",
                                "resourcegroupnotfound", "invalidsubscription", "scopenotfound",
                                "invalidscope", "invalidbilling"))


def _explain(exc: Exception, s: _Session, scope: str, export: str | None, action: str, *, write: bool) -> IngestError:
    """An SDK exception -> IngestError naming the action, the export and the scope."""
    what = f"{action} {export!r} on {scope}" if export else f"{action} {scope}"
    if isinstance(exc, IngestError):
        return exc
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)) and getattr(exc, "response", None) is None:
        return IngestError(f"Azure Cost Management: could not {what}: cannot reach {s.endpoint or 'the endpoint'}: "
                           f"{exc}")
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return IngestError(f"Azure Cost Management: could not {what}: no Azure token ({exc}). Sign in (az login), "
                           "or set a service principal or managed identity for DefaultAzureCredential")
    code, message = _service_error(exc)
    said = f" (service says: {code + ': ' if code else ''}{message})" if message or code else ""
    if status == 401:
        return IngestError(f"Azure Cost Management: could not {what}: the token was rejected (HTTP 401){said}")
    if status == 403:
        role = ("Cost Management Contributor" if write
                else "Cost Management Reader (or Cost Management Contributor)")
        return IngestError(f"Azure Cost Management: could not {what}: permission denied (HTTP 403) — the identity "
                           f"needs {role} on {scope}{said}")
    if status == 404:
        if code and _scope_missing(code) or not export or action.startswith("create"):
            return IngestError(f"Azure Cost Management: could not {what}: scope {scope} not found (HTTP 404); "
                               f"check the subscription / billing account id{said}")
        return IngestError(f"Azure Cost Management: could not {what}: export {export!r} not found on {scope} "
                           f"(HTTP 404){said}")
    if status == 400:
        return IngestError(f"Azure Cost Management rejected the request to {what} (HTTP 400): "
                           f"{code + ': ' if code else ''}{message or exc}")
    if status == 429:
        stated = _stated_delay(exc)
        tries = f"{s.attempts} attempts" if s.attempts else "its retries"
        if stated is not None and s.attempts and isinstance(s.client._config.retry_policy, ThrottleRetryPolicy) \
                and stated > s.client._config.retry_policy.max_retry_after:
            return IngestError(f"Azure Cost Management throttled the request to {what} (HTTP 429) and asked to wait "
                               f"{stated:g} s, longer than the {s.client._config.retry_policy.max_retry_after:g} s "
                               "CloudTally waits; try again later")
        return IngestError(f"Azure Cost Management throttled the request to {what}: still HTTP 429 after {tries}"
                           + (f" (last Retry-After {stated:g} s)" if stated is not None else "")
                           + "; try again later")
    return IngestError(f"Azure Cost Management: could not {what}: HTTP {status}{said or ' ' + str(exc)}")


def _stated_delay(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    best = None
    for name, value in response.headers.items():
        if name.lower() == "retry-after" or _CM_RETRY_AFTER.match(name):
            try:
                v = float(value)
            except ValueError:
                continue
            best = v if best is None else max(best, v)
    return best


def _leaves(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            out.extend(_leaves(v, f"{prefix}.{k}" if prefix else k))
        return out
    return [(prefix, obj)]


def _dig(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        match = next((k for k in obj if k.lower() == key.lower()), None)
        if match is None:
            return None
        obj = obj[match]
    return obj


_CASELESS = ("type", "timeframe", "format", "compressionmode", "dataoverwritebehavior", "status", "recurrence",
             "granularity", "resourceid", "dataversion", "location")
_DEFAULTS = {"compressionmode": "none", "partitiondata": False}


def _same(path: str, have: Any, want: Any) -> bool:
    key = path.rsplit(".", 1)[-1].lower()
    if have is None and key in _DEFAULTS:
        have = _DEFAULTS[key]
    if key in ("from", "to"):
        return have is not None and _parse_time(have) == _parse_time(want)
    if isinstance(want, str) and isinstance(have, str) and key in _CASELESS:
        return have.lower() == want.lower()
    return have == want


def _canonical(value: Any, allowed: Iterable[str]) -> str | None:
    if value is None:
        return None
    return next((a for a in allowed if a.lower() == str(value).lower()), str(value) if allowed is RUN_STATUSES
                else None)


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", text)
    if m:  # Python 3.11 accepts at most 6 fractional digits; .NET sends 7
        text = f"{m.group(1)}.{m.group(2)[:6]}{m.group(3)}"
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------- a source's exports

DATASET_OF_FORMAT = {"focus": "FocusCost", "actual": "ActualCost", "amortized": "AmortizedCost"}
MANAGEMENT_OPTIONS = ("scope", "storage_account_id", "export_format", "focus_version", "management_url")


def specs_for_source(fmt: str, location: str, options: Mapping[str, str]) -> list[ExportSpec]:
    """The Cost Management export(s) that write what a CloudTally Azure source reads.

    The source's location `azure://<account>/<container>/<root>/<export-name>` gives the container, root folder and
    export name; options give the rest: `scope` (where the export is defined), `storage_account_id` (the account's
    resource id; its name must be the location's account), `export_format` (Parquet, default, or Csv),
    `focus_version` (FocusCost dataset version, default 1.0r2). Format `actual+amortized` manages two exports: the
    ActualCost one at the location and the AmortizedCost one at option `amortized_location`. Each export runs daily
    with the month to date, partitioned, overwriting the previous run (the connector loads the newest run either
    way)."""
    from connectors.azure.discovery import amortized_location
    from connectors.storage import _split_azure

    scope = (options.get("scope") or "").strip()
    account_id = (options.get("storage_account_id") or "").strip()
    missing = [k for k, v in (("scope", scope), ("storage_account_id", account_id)) if not v]
    if missing:
        raise IngestError("managing the export needs " + " and ".join(f"--option {k}=…" for k in missing)
                          + " (scope: /subscriptions/<id> or /providers/Microsoft.Billing/billingAccounts/<id>; "
                            "storage_account_id: /subscriptions/<id>/resourceGroups/<rg>/providers/"
                            "Microsoft.Storage/storageAccounts/<name>)")
    folders = [(location, "actual" if fmt == "actual+amortized" else fmt)]
    if fmt == "actual+amortized":
        folders.append((amortized_location(location, options), "amortized"))
    specs = []
    for where, kind in folders:
        if not where.startswith("azure://"):
            raise IngestError(f"managing the export needs an azure:// location (the export writes to Blob "
                              f"storage), not {where}")
        account, container, path = _split_azure(where)
        root, _, name = path.strip("/").rpartition("/")
        if not name:
            raise IngestError(f"{where}: the location must end with the export's name "
                              f"(azure://account/container/<root>/<export-name>)")
        if account_id.rstrip("/").rsplit("/", 1)[-1].lower() != account.lower():
            raise IngestError(f"storage_account_id {account_id} is not the account of the location ({account})")
        try:
            specs.append(ExportSpec(
                scope=scope, name=name, storage_account_id=account_id, container=container, root_folder_path=root,
                dataset=DATASET_OF_FORMAT[kind], format=options.get("export_format") or "Parquet",
                data_version=(options.get("focus_version") or None) if kind == "focus" else None,
                description="Managed by CloudTally: daily month-to-date cost export"))
        except ValueError as exc:
            raise IngestError(str(exc)) from exc
    return specs
