"""`cloudtally sources …` (registered in app.cli): add, list, test and remove the sources billing data is loaded
from; Azure sources' Cost Management exports. The sources themselves are app.sources."""
from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table

from app.cli_common import fail, out, parse_options, runtime

sources_app = typer.Typer(help="Configure where billing data comes from.", no_args_is_help=True)


@sources_app.command("add")
def sources_add(
    name: str = typer.Argument(..., help="Source name (letters, digits, - and _)."),
    provider: str = typer.Option(..., "--provider", help="aws, azure, gcp or focus."),
    fmt: str = typer.Option(..., "--format", help="aws: cur (legacy CUR), cur2 (Data Exports CUR 2.0), focus "
                            "(AWS FOCUS export); azure: actual, amortized, actual+amortized (Cost Management cost "
                            "details exports), focus (FocusCost export); gcp: bigquery (the BigQuery billing export table), "
                            "export (its rows saved as Parquet/JSON lines/CSV files); focus: focus."),
    location: str = typer.Option(..., "--location", help="s3://bucket/prefix/<report-or-export-name>, "
                                 "azure://account/container/<root>/<export-name>, bq://project.dataset.table, or "
                                 "that tree (those files) in a local folder."),
    option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE. AWS: endpoint_url, region. Azure: "
                                     "endpoint_url, connection_string_env, amortized_location; for --manage-export "
                                     "scope, storage_account_id, export_format, focus_version, management_url. "
                                     "GCP: billing_project, lookback_days, list_prices=catalog (docs/gcp.md). "
                                     "Never secrets."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="Cron expression (UTC) for scheduled ingests "
                                           "by `cloudtally serve`: minute hour day month day-of-week (0/7 = Sunday), "
                                           "or 6 fields with leading seconds."),
    manage_export: bool = typer.Option(False, "--manage-export", help="Azure: create the Cost Management export "
                                       "that writes to --location (or update it to CloudTally's settings: daily, "
                                       "month to date, partitioned); needs Cost Management Contributor."),
    run_export: bool = typer.Option(False, "--run-export", help="Azure, with --manage-export: start a run now "
                                    "instead of waiting for the schedule."),
) -> None:
    """Add a source. Credentials come from the environment or the cloud SDK's chain, never from CloudTally."""
    from app import sources as sources_mod
    from connectors.base import IngestError

    options = parse_options(option)
    rt = runtime()
    try:
        sources_mod.validate(name, provider, fmt, location, options, schedule)
        if sources_mod.get(rt, name) is not None:
            raise sources_mod.SourceError(f"a source named {name!r} exists already")
    except sources_mod.SourceError as exc:
        fail(str(exc), 2)
    if (manage_export or run_export) and provider != "azure":
        fail("--manage-export and --run-export are for Azure sources", 2)
    if run_export and not manage_export:
        fail("--run-export needs --manage-export", 2)
    if manage_export:
        from app import azure_exports

        try:
            results = azure_exports.ensure(fmt, location, options, run=run_export)
        except (IngestError, ValueError) as exc:
            fail(str(exc))
        for r in results:
            ran = "; a run was started" if r["ran"] else ""
            out.print(f"export {r['export']} at {r['scope']}: {r['action']}"
                      f"{' (' + ', '.join(sorted(r['changes'])) + ')' if r['action'] == 'updated' else ''}{ran}",
                      soft_wrap=True)
    try:
        sources_mod.add(rt, name, provider, fmt, location, options, schedule)
    except sources_mod.SourceError as exc:
        fail(str(exc), 2)
    out.print(f"source {name} added: {provider}/{fmt} at {location}. Load it with `cloudtally ingest {name}`.")


@sources_app.command("exports")
def sources_exports(
    name: str = typer.Argument(..., help="An Azure source added with --option scope=… storage_account_id=…."),
    run_if_due: bool = typer.Option(False, "--run-if-due", help="Start a run of each export that is due."),
    check_month: Optional[str] = typer.Option(None, "--check-month", help="YYYY-MM: compare the source's landed "
                                              "BilledCost with Cost Management's own ActualCost total (Query API)."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Azure: the source's Cost Management exports, their recent runs, whether a run is due or the last failed."""
    from app import azure_exports
    from app import sources as sources_mod
    from connectors.base import IngestError

    rt = runtime()
    source = sources_mod.get(rt, name)
    if source is None:
        fail(f"no source named {name!r}", 1)
    if source.provider != "azure":
        fail(f"source {name} is {source.provider}, not azure", 2)
    managed = source.location.startswith("azure://") and bool(source.options.get("storage_account_id"))
    if not managed and not check_month:
        fail(f"source {name} names no export to look at: it needs an azure:// location and --option scope=… "
             f"storage_account_id=… (a local copy can still be checked with --check-month)")
    try:
        statuses = (azure_exports.status(source.format, source.location, source.options, run_if_due=run_if_due)
                    if managed else [])
        checks = (azure_exports.check_month(rt, name, source.options, check_month) if check_month else [])
    except (IngestError, ValueError) as exc:
        fail(str(exc))
    view = {
        "exports": [{"export": st.spec.name, "scope": st.spec.scope, "dataset": st.spec.dataset,
                     "due": st.verdict.due, "failed": st.verdict.failed, "message": st.verdict.message,
                     "runs": [{"run": r.run_id, "status": r.status, "type": r.execution_type,
                               "submitted": r.submitted_time.isoformat() if r.submitted_time else None,
                               "finished": r.processing_end_time.isoformat() if r.processing_end_time else None,
                               "error": r.error_message} for r in st.history[:10]]} for st in statuses],
        "month_check": [{"currency": c.currency, "service_total": _dec(c.service_total),
                         "landed_total": _dec(c.landed_total), "difference": str(c.difference)} for c in checks],
    }
    if output == "json":
        print(json.dumps(view, indent=2))
        return
    for e in view["exports"]:
        table = Table(title=f"export {e['export']} ({e['dataset']}) at {e['scope']}: {e['message']}")
        for col in ("run", "status", "type", "submitted", "finished", "error"):
            table.add_column(col)
        for r in e["runs"]:
            table.add_row(*(str(r[c] or "") for c in ("run", "status", "type", "submitted", "finished", "error")))
        out.print(table)
    if checks:
        table = Table(title=f"{check_month}: landed BilledCost vs Cost Management's ActualCost total")
        for col in ("currency", "Cost Management", "landed", "difference"):
            table.add_column(col, justify="right")
        for c in view["month_check"]:
            table.add_row(c["currency"], c["service_total"] or "", c["landed_total"] or "", c["difference"])
        out.print(table)
    if any(e["failed"] for e in view["exports"]):
        raise typer.Exit(1)


def _dec(value) -> str | None:
    return None if value is None else str(value)


@sources_app.command("list")
def sources_list(output: str = typer.Option("table", "--output", help="table or json.")) -> None:
    """List the configured sources."""
    from app import sources as sources_mod

    rows = [sources_mod.view(s) for s in sources_mod.list_all(runtime())]
    if output == "json":
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Sources")
    for col in ("name", "provider", "format", "location", "schedule"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["provider"], r["format"], r["location"], r["schedule"] or "")
    out.print(table)


@sources_app.command("remove")
def sources_remove(
    name: str = typer.Argument(..., help="Source to remove."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Remove a source, its ledger and its rows in the warehouse."""
    from app import sources as sources_mod

    rt = runtime()
    if sources_mod.get(rt, name) is None:
        fail(f"no source named {name!r}", 1)
    if not yes and not typer.confirm(f"Delete source {name} and all its cost rows?"):
        fail("not removed", 1)
    deleted = sources_mod.remove(rt, name)
    out.print(f"removed source {name} and {deleted} cost rows")


@sources_app.command("test")
def sources_test(
    name: str = typer.Argument(..., help="Source to try."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Run the source's discovery only and report what an ingest would load (nothing is loaded), or the error
    (exit 1): a wrong location, missing bucket or container, missing credentials or access."""
    from app import sources as sources_mod
    from app.retry import classify

    rt = runtime()
    if sources_mod.get(rt, name) is None:
        fail(f"no source named {name!r}", 1)
    try:
        report = sources_mod.test(rt, name)
    except Exception as exc:  # noqa: BLE001 - any discovery failure is the answer to "does it work?"
        kind = classify(exc)
        fail(f"source {name}: {exc}" + (" (transient: retry later)" if kind == "transient" else ""))
    if output == "json":
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{name}: {report['provider']}/{report['format']} at {report['location']}")
    for col in ("billing period", "files", "bytes", "would", "delivery"):
        table.add_column(col)
    for d in report["deliveries"]:
        table.add_row(d["billing_period"] or "-", str(d["files"]), str(d["bytes"] or ""), d["would"],
                      d["label"])
    out.print(table)
    if not report["deliveries"]:
        out.print("no deliveries found: an ingest would fail with 'no data files found'")

