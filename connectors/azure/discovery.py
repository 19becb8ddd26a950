"""Finding Azure Cost Management export runs: one delivery per month, the month's newest complete run.

The location names ONE export: `azure://account/container/<root>/<export-name>`, or the same tree copied to a
local folder (`azcopy copy --recursive`). Two layouts live under it:

Partitioned exports (`partitionData: true`, every export created with API 2023-07-01-preview or later)::

    <export>/<yyyyMMdd-yyyyMMdd>/<run time yyyyMMddHHmm or run id>/[<guid>/]manifest.json
    <export>/<yyyyMMdd-yyyyMMdd>/<run time or run id>/[<guid>/]part_*.csv.gz | *.csv | *.parquet

Legacy, non-partitioned exports (older exports, koku-nise)::

    <export>/<yyyyMMdd-yyyyMMdd>/<export-name>_<uuid>.csv[.gz]

Rules:
- **A partitioned run is a delivery once its `manifest.json` exists** (Azure writes it after the data). Everything
  comes from the manifest, read tolerantly (keys compared without case): the month from `runInfo.startDate`
  (else the date-range folder), the delivery id from `runInfo.runId`, the files from `blobs[].blobName` (resolved
  under the location by their path's longest matching tail), the dataset from `exportConfig.type`. A listed blob
  that is absent, or whose size differs from the manifest's `byteCount`, makes the run a Candidate with a
  `problem`: that month fails with a clear error and its previous data stays. Data files in a run folder without a
  manifest are an unfinished run and are not read.
- **A legacy file is a delivery once it is complete**: larger than 0 bytes and last modified at least
  `settle_seconds` ago (option; default 0 for Azure Blob Storage, where a blob is listed only once its upload is
  committed, and 60 for a local folder, which a copy may still be writing). Its delivery id is the UUID in its
  name (as Koku does).
- **The newest run of a month replaces older runs**, partitioned or legacy alike: newest by the manifest's
  `runInfo.submittedTime`, else the file's last-modified time. A month-to-date export re-runs daily and each run
  restates the whole month, so the month is re-loaded whenever a newer run appears.
- **Identity** = the run id plus every listed file's path, size and ETag (mtime locally): an unchanged run is
  skipped before anything is downloaded; an overwritten file (`OverwritePreviousReport`) makes a new identity.
- A run whose date range spans several months (a custom export) is one candidate without a billing period: each
  month its rows state becomes its own delivery.
- Format `actual+amortized` reads two exports: the location (ActualCost) and option `amortized_location`
  (AmortizedCost; a full location, or the name of a sibling export folder under the same root). A month is a
  delivery only with a run of each; a month with only one of them fails with a clear error until the other arrives.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from connectors.base import Candidate, IngestError, RemoteFile
from connectors.focus.reader import is_data_file
from connectors.storage import is_remote, list_files, read_bytes

RANGE = re.compile(r"^(\d{8})-(\d{8})$")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The dataset each format reads (manifest exportConfig.type); Usage is the older name of ActualCost.
DATASETS = {"actual": ("actualcost", "usage"), "amortized": ("amortizedcost",), "focus": ("focuscost",)}


@dataclass
class Run:
    """One export run: its files, when it ran, and which month (or date range) it states."""

    start: datetime
    end: datetime  # inclusive last day, as Azure writes it
    run_id: str
    when: float
    files: list[RemoteFile]
    label: str
    dataset: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def key(self) -> datetime | tuple[datetime, datetime]:
        """The month it states, or its whole range when that spans months."""
        if (self.start.year, self.start.month) == (self.end.year, self.end.month):
            return self.start.replace(day=1)
        return (self.start, self.end)


def discover(location: str, options: Mapping[str, str], fmt: str) -> list[Candidate]:
    if fmt == "actual+amortized":
        return _joined(location, options)
    runs, pending = find_runs(location, options)
    out = []
    for key, run in sorted(newest(runs).items(), key=lambda kv: _sort_key(kv[0])):
        problems = list(run.problems) + _dataset_problem(run, fmt)
        out.append(_candidate(key, [(run, None)], problems))
    if not out and pending:
        raise IngestError(f"no complete export run yet: {'; '.join(pending[:3])}", file=location)
    return out


def _joined(location: str, options: Mapping[str, str]) -> list[Candidate]:
    other = amortized_location(location, options)
    actual, pending_a = find_runs(location, options)
    amortized, pending_m = find_runs(other, options)
    actual, amortized = newest(actual), newest(amortized)
    out = []
    for key in sorted(set(actual) | set(amortized), key=_sort_key):
        a, m = actual.get(key), amortized.get(key)
        problems = []
        if a is None or m is None:
            missing, where = ("ActualCost", location) if a is None else ("AmortizedCost", other)
            problems.append(f"{_key_text(key)}: no complete {missing} run under {where}; format actual+amortized "
                            f"needs both exports for the month")
        for run, fmt in ((a, "actual"), (m, "amortized")):
            if run is not None:
                problems += run.problems + _dataset_problem(run, fmt)
        out.append(_candidate(key, [(r, role) for r, role in ((a, "actual"), (m, "amortized")) if r], problems))
    if not out and (pending_a or pending_m):
        raise IngestError(f"no complete export run yet: {'; '.join((pending_a + pending_m)[:3])}", file=location)
    return out


def amortized_location(location: str, options: Mapping[str, str]) -> str:
    value = (options.get("amortized_location") or "").strip()
    if not value:
        raise IngestError("format actual+amortized needs --option amortized_location=<the AmortizedCost export's "
                          "folder, or its name next to this export>")
    if is_remote(value) or Path(value).expanduser().is_absolute():
        return value
    if is_remote(location):
        return location.rstrip("/").rsplit("/", 1)[0] + "/" + value.strip("/")
    return str(Path(location).expanduser().resolve().parent / value)


def _candidate(key, runs: list[tuple[Run, str | None]], problems: list[str]) -> Candidate:
    files, ids = [], []
    for run, role in runs:
        files += [RemoteFile(f.uri, f.size, f.version, f.modified, role) for f in run.files]
        ids.append(f"{role or ''}:{run.run_id}")
    h = hashlib.sha256(f"{'|'.join(ids)}|{_key_text(key)}".encode())
    for f in sorted(files, key=lambda f: f.uri):
        h.update(f"|{f.role}|{f.uri}|{f.size}|{f.version}".encode())
    label = " + ".join(run.label for run, _ in runs)
    period = key if isinstance(key, datetime) else None
    return Candidate(tuple(files), label, period, h.hexdigest(), "; ".join(problems) or None)


def _dataset_problem(run: Run, fmt: str) -> list[str]:
    if run.dataset and run.dataset.lower() not in DATASETS[fmt]:
        return [f"the export's dataset is {run.dataset}, but the source's format {fmt!r} reads "
                f"{' or '.join(DATASETS[fmt])}"]
    return []


def _sort_key(key) -> datetime:
    return key if isinstance(key, datetime) else key[0]


def _key_text(key) -> str:
    return f"{key:%Y-%m}" if isinstance(key, datetime) else f"{key[0]:%Y-%m-%d}..{key[1]:%Y-%m-%d}"


def newest(runs: list[Run]) -> dict:
    """The newest run of each month (or multi-month range)."""
    out: dict = {}
    for run in runs:
        best = out.get(run.key)
        if best is None or (run.when, run.label) > (best.when, best.label):
            out[run.key] = run
    return out


# -- finding runs ------------------------------------------------------------------------------------------------
def _relative(location: str, uri: str) -> str:
    root = location.rstrip("/") if is_remote(location) else str(Path(location).expanduser().resolve())
    return uri[len(root):].strip("/")


def find_runs(location: str, options: Mapping[str, str]) -> tuple[list[Run], list[str]]:
    """Every complete run under the location, and a description of what is there but not complete yet."""
    files = list_files(location, options, lambda _name: True)
    by_rel = {_relative(location, f.uri): f for f in files}
    settle = float(options.get("settle_seconds") or (0 if is_remote(location) else 60))
    runs, pending = [], []
    manifest_dirs = set()
    for rel, f in sorted(by_rel.items()):
        if rel.rsplit("/", 1)[-1].lower() == "manifest.json":
            manifest_dirs.add(rel.rsplit("/", 1)[0] if "/" in rel else "")
            runs.append(_manifest_run(location, rel, f, by_rel, options))
    run_folders = {"/".join(d.split("/")[:2]) for d in manifest_dirs}  # <date-range>/<run>
    now = time.time()
    unfinished = set()
    for rel, f in sorted(by_rel.items()):
        parts = rel.split("/")
        if not is_data_file(parts[-1]):
            continue
        folder = "/".join(parts[:-1])
        if len(parts) == 2 and RANGE.match(parts[0]):
            if not f.size:
                pending.append(f"{f.uri} is empty")
            elif f.modified is not None and now - f.modified < settle:
                pending.append(f"{f.uri} was written {now - f.modified:.0f}s ago (settle_seconds={settle:g})")
            else:
                runs.append(_legacy_run(parts[0], f))
        elif len(parts) > 2 and "/".join(parts[:2]) not in run_folders:
            unfinished.add(folder)
    pending += [f"{location.rstrip('/')}/{d} has data files but no manifest.json yet" for d in sorted(unfinished)]
    return runs, pending


def _range(folder: str) -> tuple[datetime, datetime] | None:
    m = RANGE.match(folder)
    if not m:
        return None
    try:
        return tuple(datetime.strptime(g, "%Y%m%d").replace(tzinfo=timezone.utc) for g in m.groups())
    except ValueError:
        return None


def _legacy_run(folder: str, f: RemoteFile) -> Run:
    start, end = _range(folder)
    name = f.uri.rsplit("/", 1)[-1]
    m = UUID.search(name)
    return Run(start, end, m.group(0) if m else name, f.modified or 0, [f], f.uri)


def _get(doc, *names):
    """A manifest value by key, compared without case (manifests change with the API version)."""
    if not isinstance(doc, dict):
        return None
    lower = {k.lower(): v for k, v in doc.items() if isinstance(k, str)}
    for name in names:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # .NET writes 7 fractional digits
    for candidate in (text, text[:10]):
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            try:
                parsed = datetime.strptime(candidate.split(" ")[0], "%m/%d/%Y")
            except ValueError:
                continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _manifest_run(location: str, rel: str, manifest: RemoteFile, by_rel: dict[str, RemoteFile], options) -> Run:
    try:
        doc = json.loads(read_bytes(manifest.uri, options).decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IngestError(f"manifest is not valid JSON: {exc}", file=manifest.uri) from exc
    if not isinstance(doc, dict):
        raise IngestError("manifest is not a JSON object", file=manifest.uri)
    run_info = _get(doc, "runInfo") or {}
    export = _get(doc, "exportConfig") or {}
    folder_range = _range(rel.split("/")[0])
    start = _parse_time(_get(run_info, "startDate")) or (folder_range[0] if folder_range else None)
    end = _parse_time(_get(run_info, "endDate")) or (folder_range[1] if folder_range else None)
    if start is None:
        raise IngestError("manifest has no runInfo.startDate and is not inside a yyyyMMdd-yyyyMMdd folder",
                          file=manifest.uri)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    end = (end or start).replace(hour=0, minute=0, second=0, microsecond=0)
    submitted = _parse_time(_get(run_info, "submittedTime"))
    run_id = str(_get(run_info, "runId") or _get(doc, "runId") or manifest.version or manifest.uri)
    manifest_dir = rel.rsplit("/", 1)[0] if "/" in rel else ""
    files, problems, missing = [], [], []
    blobs = _get(doc, "blobs") or []
    for blob in blobs if isinstance(blobs, list) else []:
        name = _get(blob, "blobName", "name") if isinstance(blob, dict) else blob
        if not isinstance(name, str) or not name.strip():
            continue
        found = _resolve(name, manifest_dir, by_rel)
        if found is None:
            missing.append(name)
            continue
        expected = _get(blob, "byteCount") if isinstance(blob, dict) else None
        if isinstance(expected, int) and expected > 0 and found.size is not None and found.size != expected:
            problems.append(f"{found.uri} has {found.size} bytes but the manifest says {expected} (still being "
                            f"written, or overwritten by a later run)")
        files.append(found)
    if missing:
        problems.insert(0, f"manifest lists {len(missing)} blob(s) that are not there: {', '.join(missing[:3])}")
    elif not files:
        problems.append("manifest lists no data files")
    when = submitted.timestamp() if submitted else (manifest.modified or 0)
    return Run(start, end, run_id, when, files, manifest.uri, _get(export, "type"), problems)


def _resolve(blob_name: str, manifest_dir: str, by_rel: dict[str, RemoteFile]) -> RemoteFile | None:
    """The listed file for a manifest's blob name: the longest tail of its path found under the location (blob
    names are container paths, the location may start anywhere below the container), else a file of that name
    next to the manifest."""
    parts = blob_name.strip("/").split("/")
    for i in range(len(parts) - 1):
        found = by_rel.get("/".join(parts[i:]))
        if found is not None:
            return found
    return by_rel.get(f"{manifest_dir}/{parts[-1]}" if manifest_dir else parts[-1])
