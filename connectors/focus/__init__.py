"""FOCUS connector: billing files already in FOCUS (CSV, gzip CSV, Parquet) from a local path or S3.

All three clouds export FOCUS natively (AWS Data Exports' FOCUS table, Azure Cost Management's FocusCost export,
GCP's FOCUS BigQuery view), so this connector is the quickest way in for any of them.
"""
from __future__ import annotations

from typing import Mapping

import duckdb

from connectors.base import Candidate, InspectedFile, LocalFile
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

    def inspect(self, con: duckdb.DuckDBPyConnection, file: LocalFile, fmt: str = "focus") -> InspectedFile:
        plan = plan_columns(open_file(con, file))
        periods = raw_stats(con, plan)
        return InspectedFile(file, staged_select(plan), periods, plan.notes, lambda exc: diagnose(con, plan, exc))
