"""FOCUS connector: billing files already in FOCUS (CSV, gzip CSV, Parquet) from a local path or S3.

All three clouds export FOCUS natively (AWS Data Exports' FOCUS table, Azure Cost Management's FocusCost export,
GCP's FOCUS BigQuery view), so this connector is the quickest way in for any of them.
"""
from __future__ import annotations

from typing import Mapping

import duckdb

from connectors.base import Candidate, FileReport, Inspection, LocalFile
from connectors.focus.mapping import diagnose, plan_columns, raw_stats, staged_select
from connectors.focus.reader import is_data_file, open_file
from connectors.storage import list_files


class FocusConnector:
    provider = "focus"
    formats = ("focus",)

    def discover(self, location: str, options: Mapping[str, str], fmt: str = "focus") -> list[Candidate]:
        """All data files under the location form one candidate; its rows say which billing periods it states."""
        files = list_files(location, options, is_data_file)
        return [Candidate(tuple(files), label=location)] if files else []

    def inspect(self, con: duckdb.DuckDBPyConnection, files: list[LocalFile], fmt: str = "focus") -> Inspection:
        plans, reports = {}, []
        for file in files:
            plan = plan_columns(open_file(con, file))
            periods = raw_stats(con, plan)
            plans[file.uri] = plan
            reports.append(FileReport(file, periods, plan.notes))
        return Inspection(reports, [staged_select(p) for p in plans.values()],
                          lambda uri, exc: diagnose(con, plans[uri], exc))
