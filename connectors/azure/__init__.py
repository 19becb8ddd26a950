"""Azure connector: Cost Management exports — cost details (`actual`, `amortized`, `actual+amortized`) and
FocusCost (`focus`).

Location: the folder of ONE export — `azure://account/container/<root>/<export-name>` (read with
azure-storage-blob; credentials from the environment: AZURE_STORAGE_CONNECTION_STRING, or the variable option
`connection_string_env` names, else azure-identity's DefaultAzureCredential; option `endpoint_url` for another
blob endpoint such as Azurite), or the same tree copied to a local folder. Format `actual+amortized` also takes
option `amortized_location` (the AmortizedCost export's folder, or its name next to this one).

Discovery (one delivery per month: the newest complete run) is in `discovery.py`; the cost-details mapping, its
alias table and the actual/amortized join in `mapping.py`; FocusCost goes through the FOCUS connector's mapping
(Azure's `x_ResourceGroupName`, `x_SkuMeterCategory` and `x_InvoiceSectionName` are stored, its other `x_`
columns reported).

Permissions: Storage Blob Data Reader on the export's container (and a storage firewall that admits this
machine). Managing the exports themselves (export_definitions.py, export_runs.py) needs Cost Management Contributor
on the scope.
"""
from __future__ import annotations

from typing import Mapping

import duckdb

from connectors.azure import mapping
from connectors.azure.discovery import discover as discover_runs
from connectors.base import Candidate, FileReport, IngestError, Inspection, LocalFile
from connectors.focus.mapping import diagnose, plan_columns, raw_stats, staged_select
from connectors.focus.reader import open_file

FORMATS = ("actual", "amortized", "actual+amortized", "focus")


class AzureConnector:
    provider = "azure"
    formats = FORMATS

    def discover(self, location: str, options: Mapping[str, str], fmt: str) -> list[Candidate]:
        _check_format(fmt)
        return discover_runs(location, options, fmt)

    def inspect(self, con: duckdb.DuckDBPyConnection, files: list[LocalFile], fmt: str) -> Inspection:
        _check_format(fmt)
        if fmt == "focus":
            return self._inspect_focus(con, files)
        plans, reports = [], []
        for file in files:
            role = file.role or ("amortized" if fmt == "amortized" else "actual")
            plan = mapping.plan_file(open_file(con, file), role)
            reports.append(FileReport(file, mapping.raw_stats(con, plan, fmt), plan.notes))
            plans.append(plan)
        if fmt == "actual+amortized" and not {"actual", "amortized"} <= {p.role for p in plans}:
            raise IngestError("format actual+amortized needs files of both exports in one delivery",
                              file=", ".join(f.uri for f in files))
        notes = mapping.delivery_notes(con, plans, fmt)
        for r in reports:
            r.tolerated.extend(notes)

        def explain(_uri: str, exc: Exception) -> IngestError:
            # The staged SELECT reads every file: find the first file with a bad value.
            for plan in plans:
                err = diagnose(con, plan.file_plan, None, mapping.extra_checks(plan))
                if err.row is not None:
                    return err
            return IngestError(str(exc).splitlines()[0], file=", ".join(p.opened.uri for p in plans))

        return Inspection(reports, [mapping.delivery_select(plans, fmt)], explain, rows_reconcile=fmt != "actual+amortized")

    def _inspect_focus(self, con, files):
        plans, reports = {}, []
        for file in files:
            plan = plan_columns(open_file(con, file))
            reports.append(FileReport(file, raw_stats(con, plan), plan.notes))
            plans[file.uri] = plan
        return Inspection(reports, [staged_select(p) for p in plans.values()],
                          lambda uri, exc: diagnose(con, plans[uri], exc))


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise IngestError(f"Azure format {fmt!r} is not one of {', '.join(FORMATS)}")
