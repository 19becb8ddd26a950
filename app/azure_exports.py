"""Azure sources' Cost Management exports, seen from CloudTally: create or update them, run them, read their runs,
and cross-check a loaded month against the service's own total (Query API).

The SDK calls live in connectors/azure/export_definitions.py and export_runs.py, the retries and error messages in
connectors/azure/management.py; this module ties them to a configured source (its location and options) and to the
warehouse.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from app.runtime import Runtime
from app.warehouse import COST_TABLE
from connectors.azure import export_definitions, export_runs
from connectors.base import IngestError


def _kwargs(options: Mapping[str, str]) -> dict[str, Any]:
    url = (options.get("management_url") or "").strip()
    return {"base_url": url} if url else {}


def ensure(fmt: str, location: str, options: Mapping[str, str], *, run: bool = False,
           credential: Any = None) -> list[dict[str, Any]]:
    """Create or update the export(s) a source reads (see export_definitions.specs_for_source); with `run`, start a
    run of each now. Returns ensure_export's result per export, plus "ran": bool."""
    results = []
    for spec in export_definitions.specs_for_source(fmt, location, options):
        result = export_definitions.ensure_export(spec, credential, **_kwargs(options))
        if run:
            export_runs.run_export(spec, credential, **_kwargs(options))
        results.append(result | {"ran": run})
    return results


@dataclass
class ExportStatus:
    spec: export_definitions.ExportSpec
    verdict: export_runs.RunVerdict
    history: list[export_runs.RunStatus]


def status(fmt: str, location: str, options: Mapping[str, str], *, run_if_due: bool = False,
           now: datetime | None = None, credential: Any = None) -> list[ExportStatus]:
    """Each export's recent runs and whether a run is due or the last one failed; with `run_if_due`, start a run of
    each export that is due (its status is then read again)."""
    now = now or datetime.now(timezone.utc)
    out = []
    for spec in export_definitions.specs_for_source(fmt, location, options):
        history = export_runs.execution_history(spec, credential, **_kwargs(options))
        verdict = export_runs.run_due_or_failed(history, now, spec.timeframe)
        if run_if_due and verdict.due:
            export_runs.run_export(spec, credential, **_kwargs(options))
            history = export_runs.execution_history(spec, credential, **_kwargs(options))
            verdict = export_runs.run_due_or_failed(history, now, spec.timeframe)
        out.append(ExportStatus(spec, verdict, history))
    return out


@dataclass
class MonthCheck:
    currency: str
    service_total: Decimal | None  # the Query API's ActualCost total for the month at the scope
    landed_total: Decimal | None  # sum(BilledCost) of the source's rows for that billing period

    @property
    def difference(self) -> Decimal:
        return (self.landed_total or Decimal(0)) - (self.service_total or Decimal(0))


def check_month(rt: Runtime, source_name: str, options: Mapping[str, str], month: str, *,
                credential: Any = None) -> list[MonthCheck]:
    """The service's ActualCost total of `month` (YYYY-MM) at the source's scope beside the source's landed
    BilledCost for that billing period, per currency. The API sends doubles as JSON numbers: expect differences
    in the last digits, not cents. It also counts charges the export may not (e.g. a scope wider than the
    export's), so a difference is a question to look into, not proof of a wrong load."""
    scope = (options.get("scope") or "").strip()
    if not scope:
        raise IngestError("the month check needs --option scope=… on the source (the export's scope)")
    service = export_runs.month_total(scope, month, "ActualCost", credential, **_kwargs(options))
    start = datetime.strptime(month, "%Y-%m")
    with rt.warehouse.connect(read_only=True) as con:
        rows = con.execute(
            f"SELECT BillingCurrency, sum(BilledCost) FROM {COST_TABLE} WHERE x_SourceId = ? "
            f"AND BillingPeriodStart = ? GROUP BY 1 ORDER BY 1", [source_name, start.replace(tzinfo=timezone.utc)],
        ).fetchall()
    landed = {cur: total for cur, total in rows}
    return [MonthCheck(cur, service.get(cur), landed.get(cur)) for cur in sorted(set(service) | set(landed))]
