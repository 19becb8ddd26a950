"""Checking Azure Cost Management export runs, through `azure-mgmt-costmanagement` 5.0.0 (api-version 2025-03-01):
start a run, read the run history and status, and turn them into run checks.

  run_export         ask the service to run an export now (`exports.execute`)
  execution_history  the export's runs, parsed into `RunStatus`; `run_due_or_failed` judges them
  month_total        the service's own total for a month (`query.usage`), per currency, as exact Decimals — a
                     cross-check for the totals the loaded files produce

The client, retries and error messages are in connectors/azure/management.py; the export definitions themselves,
in connectors/azure/export_definitions.py.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable, Mapping

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from connectors.azure.export_definitions import ExportSpec
from connectors.azure.management import _explain, _iso, _parse_time, _Session
from connectors.base import IngestError

RUN_STATUSES = ("Queued", "InProgress", "Completed", "Failed", "Timeout", "NewDataNotAvailable", "DataNotAvailable")


# ------------------------------------------------------------------------------------------------------ runs


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


def _canonical(value: Any, allowed: Iterable[str]) -> str | None:
    if value is None:
        return None
    return next((a for a in allowed if a.lower() == str(value).lower()), str(value) if allowed is RUN_STATUSES
                else None)
