"""AWS connector: legacy CUR (`cur`), CUR 2.0 Data Exports (`cur2`) and AWS's FOCUS export (`focus`).

Location: the folder of ONE report or export — `s3://bucket/prefix/<report-or-export-name>` (read with boto3;
option `endpoint_url` for S3-compatible stores, `region`), or the same tree synced to a local folder. Discovery
(one delivery per billing period, named by its manifest) is in `discovery.py`; the CUR-to-FOCUS mapping in
`cur.py`; AWS's FOCUS export goes through the FOCUS connector's mapping, with AWS's published conformance gaps
(null InvoiceIssuerName / PublisherName) filled from ProviderName and reported.

Permissions the credentials need: s3:ListBucket on the bucket (prefix-restricted is fine) and s3:GetObject on
the report's objects.
"""
from __future__ import annotations

from typing import Mapping

import duckdb

from connectors.aws import cur
from connectors.aws.discovery import discover as discover_deliveries
from connectors.base import Candidate, FileReport, IngestError, Inspection, LocalFile
from connectors.focus.mapping import diagnose, plan_columns, raw_stats, staged_select
from connectors.focus.reader import open_file

FORMATS = ("cur", "cur2", "focus")
# AWS FOCUS export conformance gaps (AWS's "FOCUS 1.2 with AWS columns conformance gaps" page).
FOCUS_FILLS = {"InvoiceIssuerName": "ProviderName", "PublisherName": "ProviderName"}


class AwsConnector:
    provider = "aws"
    formats = FORMATS

    def discover(self, location: str, options: Mapping[str, str], fmt: str) -> list[Candidate]:
        _check_format(fmt)
        return discover_deliveries(location, options, fmt)

    def inspect(self, con: duckdb.DuckDBPyConnection, files: list[LocalFile], fmt: str) -> Inspection:
        _check_format(fmt)
        if fmt == "focus":
            return self._inspect_focus(con, files)
        plans, reports = [], []
        for file in files:
            plan = cur.plan_file(open_file(con, file))
            reports.append(FileReport(file, cur.raw_stats(con, plan), plan.notes))
            plans.append(plan)
        notes = cur.unmapped_notes(con, plans)
        for r in reports:
            r.tolerated.extend(notes)
        by_uri = {p.opened.uri: p for p in plans}

        def explain(_uri: str, exc: Exception) -> IngestError:
            # The staged SELECT reads every file: find the first file with a bad value.
            for plan in plans:
                err = diagnose(con, plan.file_plan, None)
                if err.row is not None:
                    return err
            return IngestError(str(exc).splitlines()[0], file=", ".join(by_uri))

        return Inspection(reports, [cur.delivery_select(plans)], explain, rows_reconcile=False)

    def _inspect_focus(self, con, files):
        plans, reports = {}, []
        for file in files:
            plan = plan_columns(open_file(con, file), fills=FOCUS_FILLS)
            reports.append(FileReport(file, raw_stats(con, plan), plan.notes))
            plans[file.uri] = plan
        return Inspection(reports, [staged_select(p) for p in plans.values()],
                          lambda uri, exc: diagnose(con, plans[uri], exc))


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise IngestError(f"AWS format {fmt!r} is not one of {', '.join(FORMATS)}")
