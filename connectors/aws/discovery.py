"""Finding AWS deliveries: one per billing period, named by the period's latest manifest.

Two layouts, under a location that names ONE report/export (s3://bucket/prefix/<name>, or the same tree synced
to a local folder):

Legacy CUR (format `cur`)::

    <name>/<yyyymmdd-yyyymmdd>/<name>-Manifest.json            the period's current manifest
    <name>/<yyyymmdd-yyyymmdd>/<assemblyId>/<name>-N.csv.gz    "create new report version" parts
    <name>/<yyyymmdd-yyyymmdd>/<name>-N.csv.gz                  "overwrite" parts

Data Exports, CUR 2.0 and FOCUS tables (formats `cur2`, `focus`)::

    <name>/metadata/BILLING_PERIOD=YYYY-MM/[...]/<name>-Manifest.json
    <name>/data/BILLING_PERIOD=YYYY-MM/[...]/<part>.parquet | .csv.gz

Only a manifest makes a delivery (AWS writes it after the data). A manifest lists its files (`reportKeys` in
legacy CUR; `dataFiles` or `reportKeys` in Data Exports, as bucket keys or s3:// URLs — the field name of Data
Exports manifests is not confirmed by AWS's public documentation, so both are read). The delivery's identity is
the manifest's assemblyId / executionId plus each listed file's size and ETag (mtime locally), so a rewritten
part makes a new delivery and an unchanged manifest is skipped without downloading anything.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Mapping

from connectors.base import Candidate, IngestError, RemoteFile
from connectors.storage import is_remote, join, list_files, read_bytes

LEGACY_PERIOD = re.compile(r"^(\d{8})-(\d{8})$")
EXPORT_PERIOD = re.compile(r"^BILLING_PERIOD=(\d{4})-(\d{2})$")


def _relative(location: str, uri: str) -> list[str]:
    root = location.rstrip("/")
    if not is_remote(location):
        from pathlib import Path

        root = str(Path(location).expanduser().resolve())
    return uri[len(root):].strip("/").split("/")


def discover(location: str, options: Mapping[str, str], fmt: str) -> list[Candidate]:
    files = list_files(location, options, lambda _name: True)
    by_rel = {"/".join(_relative(location, f.uri)): f for f in files}
    if fmt == "cur":
        return _legacy(location, options, by_rel)
    return _data_exports(location, options, by_rel)


def _manifest(uri: str, options: Mapping[str, str]) -> dict:
    try:
        doc = json.loads(read_bytes(uri, options))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IngestError(f"manifest is not valid JSON: {exc}", file=uri) from exc
    if not isinstance(doc, dict):
        raise IngestError("manifest is not a JSON object", file=uri)
    return doc


def _listed(doc: dict) -> list[str]:
    keys = doc.get("reportKeys") or doc.get("dataFiles") or []
    return [k if isinstance(k, str) else (k.get("key") or k.get("Key") or "") for k in keys]


def _candidate(location: str, manifest: RemoteFile, doc: dict, period: datetime, anchor: str,
               by_rel: dict[str, RemoteFile], delivery_id: str | None) -> Candidate:
    """Resolve the manifest's file list under `location` (from the `anchor` folder on) and build the identity."""
    files, missing = [], []
    for key in _listed(doc):
        parts = key.split("/")
        if anchor not in parts:
            missing.append(key)
            continue
        last = len(parts) - 1 - parts[::-1].index(anchor)
        rel = "/".join(parts[last:])
        found = by_rel.get(rel)
        (files.append(found) if found else missing.append(join(location, rel)))
    label = manifest.uri
    h = hashlib.sha256(f"{delivery_id}|{period:%Y-%m}".encode())
    for f in sorted(files, key=lambda f: f.uri):
        h.update(f"|{f.uri}|{f.size}|{f.version}".encode())
    problem = None
    if missing:
        problem = f"manifest lists {len(missing)} file(s) that are not there: {', '.join(missing[:3])}"
    elif not files:
        problem = "manifest lists no data files"
    return Candidate(tuple(files), label, period, h.hexdigest(), problem)


def _legacy(location: str, options, by_rel: dict[str, RemoteFile]) -> list[Candidate]:
    out = []
    for rel, f in sorted(by_rel.items()):
        parts = rel.split("/")
        if len(parts) != 2 or not parts[1].endswith("-Manifest.json") or not LEGACY_PERIOD.match(parts[0]):
            continue  # copies of the manifest inside assemblyId folders are history; the period's one is current
        start = datetime.strptime(parts[0][:8], "%Y%m%d").replace(tzinfo=timezone.utc)
        doc = _manifest(f.uri, options)
        out.append(_candidate(location, f, doc, start, parts[0], by_rel, doc.get("assemblyId")))
    return sorted(out, key=lambda c: c.billing_period)


def _data_exports(location: str, options, by_rel: dict[str, RemoteFile]) -> list[Candidate]:
    newest: dict[datetime, tuple[RemoteFile, str]] = {}
    for rel, f in by_rel.items():
        parts = rel.split("/")
        if len(parts) < 3 or parts[0] != "metadata" or not parts[-1].endswith("Manifest.json"):
            continue
        m = EXPORT_PERIOD.match(parts[1])
        if not m:
            continue
        start = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=timezone.utc)
        if start not in newest or (f.modified or 0, f.uri) > (newest[start][0].modified or 0, newest[start][0].uri):
            newest[start] = (f, parts[1])
    out = []
    for start, (f, _folder) in sorted(newest.items()):
        doc = _manifest(f.uri, options)
        # Data files live under data/BILLING_PERIOD=...: resolve each listed key from the "data" folder on.
        out.append(_candidate(location, f, doc, start, "data", by_rel,
                              doc.get("executionId") or doc.get("assemblyId") or f.version))
    return out
