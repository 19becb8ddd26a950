"""Pulling the Cloud Billing export from BigQuery, incrementally by partition day, into a local Parquet cache.

The export tables are ingestion-time partitioned and GCP keeps writing into past days: late usage, corrections and
the rows of the previous invoice month that are exported after it ended. So the puller keeps, per partition day
and invoice month, the watermark `max(export_time)` and the row count it pulled (a JSON state file in the cache),
and on each run:

1. asks BigQuery for the current watermarks of the days inside the scan window (one small aggregate query):
   the last `lookback_days` days (default 10) and, until the previous invoice month *closes*, every day since that
   month's first day. The previous invoice month closes at the end of day `invoice_close_day` (default 5) of the
   current month: GCP issues the invoice in the first days of the month, and later corrections arrive as adjustment
   rows of a later invoice month rather than as rows of the closed one. On the first run (no state) the window
   starts `initial_months` (default 1) whole months back;
2. re-pulls only the days whose watermark or row count moved (or that are new), with `SELECT * ... WHERE
   DATE(_PARTITIONTIME) = @day`, fetched as Arrow (`to_arrow`, no row-by-row Python objects; without the BigQuery
   Storage API) and written as one Parquet file per (invoice month, day): `<cache>/invoice_month=YYYYMM/
   day=YYYY-MM-DD.parquet`;
3. returns one candidate delivery per cached invoice month, made of ALL that month's day files, identified by a
   hash of their watermarks and row counts. The invoice month is the unit the warehouse replaces, so a re-pulled
   day replaces its month instead of adding to it, and a month whose days did not move is skipped before loading.

Options: `lookback_days` (10), `invoice_close_day` (5), `initial_months` (1), `billing_project` (the project that
runs the query jobs; default the table's project), `partition_column` (default `_PARTITIONTIME`; a view must
expose the partition time as a column, e.g. `SELECT _PARTITIONTIME AS partition_time, *`, and name it here),
`cache_dir` (default `<CLOUDTALLY_DATA_DIR>/gcp-cache/<project.dataset.table>`), `api_endpoint` (another
BigQuery endpoint, for tests), `auth=none` (anonymous: no credentials, for a local test endpoint only). Otherwise
credentials come from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata
server), never from CloudTally's database.

Permissions: roles/bigquery.dataViewer on the export dataset (or table) and roles/bigquery.jobUser on the billing
project.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

from connectors.base import Candidate, IngestError, RemoteFile

LOCATION = re.compile(r"^bq://([A-Za-z0-9_.:-]+)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_$-]+)$")
ROLES = "roles/bigquery.dataViewer on the dataset (or table) and roles/bigquery.jobUser on the project running the jobs"
STATE_FILE = "watermarks.json"


def today() -> date:
    return datetime.now(timezone.utc).date()


def parse_location(location: str) -> tuple[str, str, str]:
    m = LOCATION.match(location)
    if not m:
        raise IngestError("not a BigQuery table (expected bq://project.dataset.table)", file=location)
    return m.group(1), m.group(2), m.group(3)


def cache_dir(location: str, options: Mapping[str, str]) -> Path:
    if options.get("cache_dir"):
        return Path(options["cache_dir"]).expanduser()
    from app.settings import get_settings

    project, dataset, table = parse_location(location)
    return get_settings().data_dir / "gcp-cache" / f"{project}.{dataset}.{table}"


def make_client(project: str, options: Mapping[str, str]):
    from google.cloud import bigquery

    kwargs = {"project": options.get("billing_project") or project}
    if options.get("api_endpoint"):
        kwargs["client_options"] = {"api_endpoint": options["api_endpoint"]}
    if options.get("auth") == "none":
        from google.auth.credentials import AnonymousCredentials

        kwargs["credentials"] = AnonymousCredentials()
    try:
        return bigquery.Client(**kwargs)
    except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and friends
        raise IngestError(f"cannot create a BigQuery client: {exc} (credentials come from Application Default "
                          f"Credentials: GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`)")


def _int(options: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(options.get(name, default))
    except ValueError as exc:
        raise IngestError(f"option {name} must be a whole number, not {options.get(name)!r}") from exc
    if value < 0:
        raise IngestError(f"option {name} must not be negative")
    return value


def _month_start(d: date, back: int = 0) -> date:
    y, m = d.year, d.month - back
    while m < 1:
        y, m = y - 1, m + 12
    return date(y, m, 1)


def scan_start(now: date, options: Mapping[str, str], first_run: bool) -> date:
    """The first partition day whose watermark is checked (see the module docstring)."""
    since = now - timedelta(days=_int(options, "lookback_days", 10))
    if now.day <= _int(options, "invoice_close_day", 5):
        since = min(since, _month_start(now, 1))
    if first_run:
        since = min(since, _month_start(now, _int(options, "initial_months", 1)))
    return since


class Puller:
    def __init__(self, location: str, options: Mapping[str, str]):
        self.location, self.options = location, options
        self.project, self.dataset, self.table = parse_location(location)
        self.fqtn = f"`{self.project}.{self.dataset}.{self.table}`"
        self.partition = options.get("partition_column") or "_PARTITIONTIME"
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.partition):
            raise IngestError(f"option partition_column {self.partition!r} is not a column name")
        self.cache = cache_dir(location, options)
        self.client = make_client(self.project, options)

    # -- BigQuery -------------------------------------------------------------------------------------------------
    def _query(self, sql: str, params: list):
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        try:
            job = self.client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
            return job.to_arrow(create_bqstorage_client=False)
        except gexc.Forbidden as exc:
            raise IngestError(f"BigQuery refused access (403): {_message(exc)}. The credentials need {ROLES} "
                              f"({self.client.project})", file=self.location) from exc
        except gexc.NotFound as exc:
            raise IngestError(f"BigQuery table or project not found (404): {_message(exc)}",
                              file=self.location) from exc
        except gexc.GoogleAPICallError as exc:
            raise IngestError(f"BigQuery query failed: {_message(exc)}", file=self.location) from exc

    def watermarks(self, since: date) -> dict[str, dict]:
        from google.cloud import bigquery

        sql = (f"SELECT DATE({self.partition}) AS day, invoice.month AS invoice_month, "
               f"MAX(export_time) AS watermark, COUNT(*) AS row_count FROM {self.fqtn} "
               f"WHERE DATE({self.partition}) >= @since GROUP BY day, invoice_month")
        table = self._query(sql, [bigquery.ScalarQueryParameter("since", "DATE", since)])
        out = {}
        for r in table.to_pylist():  # one row per (day, invoice month): a few dozen
            key = f"{r['day']:%Y-%m-%d}|{r['invoice_month']}"
            wm = r["watermark"]
            out[key] = {"watermark": wm.isoformat() if wm is not None else None, "rows": int(r["row_count"])}
        return out

    def pull_day(self, day: str) -> dict[str, Path]:
        """All rows of one partition day, as one Parquet file per invoice month."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        from google.cloud import bigquery

        sql = f"SELECT * FROM {self.fqtn} WHERE DATE({self.partition}) = @day"
        table = self._query(sql, [bigquery.ScalarQueryParameter("day", "DATE", date.fromisoformat(day))])
        if "invoice" in table.column_names:
            months = pc.struct_field(table.column("invoice"), "month")
        else:
            raise IngestError(f"partition {day} has no invoice column (is this a billing export table?)",
                              file=self.location)
        written = {}
        for month in sorted(m for m in pc.unique(months).to_pylist() if m):
            part = table.filter(pc.equal(months, month))
            folder = self.cache / f"invoice_month={month}"
            folder.mkdir(parents=True, exist_ok=True)
            dest = folder / f"day={day}.parquet"
            partial = dest.with_suffix(".parquet.partial")
            pq.write_table(part, partial)
            os.replace(partial, dest)
            written[month] = dest
        return written

    # -- state ----------------------------------------------------------------------------------------------------
    def load_state(self) -> dict[str, dict]:
        path = self.cache / STATE_FILE
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text()).get("days", {})
        except ValueError as exc:
            raise IngestError(f"watermark state is not valid JSON ({exc}); delete it to pull the window again",
                              file=str(path)) from exc

    def save_state(self, state: dict[str, dict]) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        path = self.cache / STATE_FILE
        tmp = path.with_suffix(".partial")
        tmp.write_text(json.dumps({"table": self.location, "days": dict(sorted(state.items()))}, indent=1))
        os.replace(tmp, path)

    # -- the run --------------------------------------------------------------------------------------------------
    def run(self) -> tuple[list[str], dict[str, dict]]:
        """Re-pull the days whose watermark moved; returns (days pulled, the state after the run)."""
        state = self.load_state()
        since = scan_start(today(), self.options, first_run=not state)
        current = self.watermarks(since)
        in_window = {k: v for k, v in state.items() if k.split("|")[0] >= f"{since:%Y-%m-%d}"}
        changed = sorted({k.split("|")[0] for k, v in current.items() if state.get(k) != v}
                         | {k.split("|")[0] for k in in_window if k not in current})
        for day in changed:
            written = self.pull_day(day)
            for key in [k for k in state if k.startswith(f"{day}|")]:
                month = key.split("|")[1]
                if month not in written:  # the day no longer holds rows of that month
                    (self.cache / f"invoice_month={month}" / f"day={day}.parquet").unlink(missing_ok=True)
                    del state[key]
            for month in written:
                key = f"{day}|{month}"
                state[key] = current.get(key, {"watermark": None, "rows": None})
            self.save_state(state)
        if not changed and not (self.cache / STATE_FILE).exists():
            self.save_state(state)
        return changed, state


def _message(exc) -> str:
    return getattr(exc, "message", None) or str(exc)


def month_candidates(location: str, cache: Path, state: dict[str, dict],
                     extra: tuple[RemoteFile, ...] = ()) -> list[Candidate]:
    """One candidate per cached invoice month: all its day files, identified by their watermarks."""
    by_month: dict[str, list[tuple[str, dict]]] = {}
    for key, value in state.items():
        day, month = key.split("|")
        by_month.setdefault(month, []).append((day, value))
    out = []
    for month, days in sorted(by_month.items()):
        files, h = [], hashlib.sha256(f"{location}|{month}".encode())
        for day, value in sorted(days):
            path = cache / f"invoice_month={month}" / f"day={day}.parquet"
            if not path.exists():
                continue
            files.append(RemoteFile(str(path), path.stat().st_size, value.get("watermark")))
            h.update(f"|{day}|{value.get('watermark')}|{value.get('rows')}".encode())
        for f in extra:
            h.update(f"|{f.uri}|{f.version}".encode())
        if files:
            start = datetime(int(month[:4]), int(month[4:]), 1, tzinfo=timezone.utc)
            out.append(Candidate(tuple(files) + extra, f"{location} invoice month {month}", start, h.hexdigest()))
    return out


def discover(location: str, options: Mapping[str, str]) -> list[Candidate]:
    puller = Puller(location, options)
    _changed, state = puller.run()
    extra: tuple[RemoteFile, ...] = ()
    if options.get("list_prices") == "catalog":
        from connectors.gcp.catalog import prices_file_for

        days = [RemoteFile(str(p)) for p in sorted(puller.cache.glob("invoice_month=*/day=*.parquet"))]
        prices = prices_file_for(days, options, puller.cache)
        extra = (prices,) if prices is not None else ()
    return month_candidates(location, puller.cache, state, extra)
