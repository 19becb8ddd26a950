"""Azure Cost Management export definitions, managed through `azure-mgmt-costmanagement` 5.0.0 (api-version
2025-03-01): what CloudTally wants an export to be (`ExportSpec`), the REST body for it, and creating or updating it.

  ensure_export      create or update one export definition, idempotently (read first, write only on a difference)
  specs_for_source   the export definition(s) that write what a CloudTally Azure source reads

The client, retries and error messages are in connectors/azure/management.py; running an export and checking its
runs, in connectors/azure/export_runs.py.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping

from azure.core.exceptions import ResourceNotFoundError

from connectors.azure.management import _explain, _iso, _parse_time, _scope_missing, _service_error, _Session
from connectors.base import IngestError

DATASETS = ("ActualCost", "AmortizedCost", "FocusCost")
FORMATS = {"Csv": ("gzip", "none"), "Parquet": ("snappy", "none")}  # format -> compression modes it supports
TIMEFRAMES = ("MonthToDate", "TheLastMonth")
RECURRENCES = ("Daily", "Weekly", "Monthly")
OVERWRITE = ("OverwritePreviousReport", "CreateNewReport")
DEFAULT_FOCUS_VERSION = "1.0r2"


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
