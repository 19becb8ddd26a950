"""The `cloudtally` command line (typer + rich). Exit codes: 0 success, 1 the operation failed, 2 usage error."""
from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from app import __version__

app = typer.Typer(
    help="CloudTally: cloud billing exports normalized to FOCUS, exact to the cent.\n\n"
    "Settings come from CLOUDTALLY_* environment variables (see README); --data-dir overrides CLOUDTALLY_DATA_DIR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
export_app = typer.Typer(help="Write warehouse data out in open formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # messages name files and rows: never hard-wrapped


def cents_or_blank(amount: str | None) -> str:
    from decimal import Decimal

    from app.costs import cents_str

    return "" if amount is None else cents_str(Decimal(amount))


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def runtime():
    from app.runtime import Runtime

    rt = Runtime.from_env()
    rt.init()
    return rt


@app.callback()
def main_options(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data folder (default ./cloudtally-data)."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        out.print(f"cloudtally {__version__}")
        raise typer.Exit(0)
    if data_dir is not None:
        os.environ["CLOUDTALLY_DATA_DIR"] = str(data_dir)


@app.command()
def init() -> None:
    """Create (or upgrade) the warehouse and the control database."""
    rt = runtime()
    out.print(f"warehouse: {rt.settings.resolved_warehouse_path}")
    out.print(f"control database: {rt.engine.url.render_as_string(hide_password=True)}")


def _parse_options(items: list[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--option {item!r} is not KEY=VALUE", 2)
        options[key] = value
    return options


@app.command()
def ingest(
    target: str = typer.Argument(
        ..., help="A configured source's name, or (with --source) a FOCUS file or folder, or s3://bucket/prefix."
    ),
    source: Optional[str] = typer.Option(
        None, "--source", "-s", help="Quick path: load FOCUS files at TARGET into this source (created on first use)."
    ),
    fmt: str = typer.Option("focus", "--format", help="Format of quick-path files. Today: focus."),
    period: Optional[str] = typer.Option(None, "--period", help="Only this billing period (YYYY-MM)."),
    option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE for the location, e.g. endpoint_url=…"),
    output: str = typer.Option("table", "--output", help="How to print the ledger rows: table or json."),
) -> None:
    """Load billing data: one delivery per billing period, reconciled to the raw files to the last decimal.

    Runs the same job as the scheduler (trigger cli): under the source's lock (exit 1, "already running", when
    another run holds it), with retries of transient errors, recorded in `cloudtally runs`."""
    from app import sources as sources_mod
    from app.costs import QueryError, parse_date
    from app.runs import run_source

    if fmt != "focus":
        fail(f"--format {fmt!r} is not supported by the quick path; configure the source with `sources add`", 2)
    if output not in ("table", "json"):
        fail("--output must be table or json", 2)
    try:
        month = parse_date("period", period)
    except QueryError as exc:
        fail(f"--period: {exc.message}", 2)
    start = datetime(month.year, month.month, 1, tzinfo=timezone.utc) if month else None
    rt = runtime()
    if source is None and sources_mod.get(rt, target) is None:
        fail(f"no source named {target!r}; add one with `cloudtally sources add`, or load FOCUS files with "
             f"`cloudtally ingest PATH --source NAME`", 2)
    name, location = (source, target) if source else (target, None)
    options = _parse_options(option)
    with _progress() as bar:
        task = bar.add_task("starting", total=1.0)
        run = run_source(rt, name, "cli", location=location, options=options, period=start,
                         progress=lambda msg, frac: bar.update(task, description=msg, completed=frac))
    if run.status == "skipped":
        fail(f"source {name}: {run.message} (another run holds its lock); nothing was loaded")
    if run.status == "failed":
        fail(run.error or run.message or "ingest failed")
    from app.control import Delivery
    from app.ledger import delivery_view

    views = []
    with rt.sessions() as session:
        for outcome in ("loaded", "unchanged"):
            for delivery_id in run.deliveries.get(outcome, []):
                d = session.get(Delivery, delivery_id)
                if d is not None:
                    views.append(delivery_view(d, name) | {"outcome": outcome})
    views.sort(key=lambda v: v["billing_period_start"] or "")
    if output == "json":
        print(json.dumps(views, indent=2))
        return
    print_deliveries(views)


sources_app = typer.Typer(help="Configure where billing data comes from.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")


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

    options = _parse_options(option)
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


@app.command()
def runs(
    source: Optional[str] = typer.Option(None, "--source", "-s", help="Only this source."),
    status: Optional[str] = typer.Option(None, "--status", help="running, succeeded, nothing_new, failed or "
                                         "skipped."),
    limit: int = typer.Option(20, "--limit", help="Newest first, at most this many."),
    output: str = typer.Option("table", "--output", help="table or json (the same as GET /v1/ingest-runs)."),
) -> None:
    """Ingest run history: scheduled, CLI and API runs, with outcome, deliveries, sums, duration and error."""
    from app.runs import STATUSES, list_runs

    if status is not None and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}", 2)
    rt = runtime()
    with rt.sessions() as session:
        rows = list_runs(session, source, status, limit)
    if output == "json":
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Ingest runs (newest first)")
    for col in ("started", "source", "trigger", "status", "tries", "loaded", "BilledCost", "took", "message"):
        table.add_column(col, justify="right" if col in ("tries", "loaded", "BilledCost", "took") else "left")
    for r in rows:
        took = f"{r['duration_ms'] / 1000:.1f}s" if r["duration_ms"] is not None else ""
        table.add_row(r["started_at"][:19], r["source"], r["trigger"], r["status"], str(r["attempts"]),
                      str(len(r["deliveries"]["loaded"])), cents_or_blank(r["landed"]["billed_cost"]), took,
                      r["error"] or r["message"] or "")
    out.print(table)


@app.command()
def quality(
    source: str = typer.Argument(..., help="Source to check."),
    period: Optional[str] = typer.Option(None, "--period", help="Only this billing period (YYYY-MM)."),
    output: str = typer.Option("table", "--output", help="table or json (the shape of GET /v1/data-quality)."),
) -> None:
    """Run the data-quality checks of a source now (freshness, completeness, duplicates, schema drift,
    restatements), store them and raise alert events for new failures. Exit 1 when a check failed."""
    from app import quality as quality_mod
    from app.costs import QueryError, parse_date

    try:
        month = parse_date("period", period)
    except QueryError as exc:
        fail(f"--period: {exc.message}", 2)
    rt = runtime()
    periods = [datetime(month.year, month.month, 1, tzinfo=timezone.utc)] if month else None
    try:
        checks = quality_mod.run_checks(rt, source, periods)
    except LookupError as exc:
        fail(str(exc))
    if output == "json":
        print(json.dumps(checks, indent=2))
    else:
        table = Table(title=f"Data quality: {source}")
        for col in ("period", "check", "status", "message"):
            table.add_column(col)
        for c in checks:
            colour = {"failed": "red", "passed": "green"}.get(c["status"], "yellow")
            table.add_row(c["billing_period"] or "-", c["check"], f"[{colour}]{c['status']}[/]", c["message"])
        out.print(table)
    if any(c["status"] == "failed" for c in checks):
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<40}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
        console=err, transient=False, disable=not err.is_terminal and os.environ.get("CLOUDTALLY_PROGRESS") != "1",
    )


def print_deliveries(views: list[dict]) -> None:
    """The ledger rows, compact: landed figures, and whether they equal the raw file's (= reconciled)."""
    table = Table(title="Deliveries (reconciled: raw file sums = landed sums, to the last decimal)")
    for col, justify in (("period", "left"), ("status", "left"), ("rows", "right"), ("BilledCost", "right"),
                         ("EffectiveCost", "right"), ("reconciled", "left"), ("id", "left")):
        table.add_column(col, justify=justify, no_wrap=col in ("period", "id"))
    for v in views:
        raw, landed = v["raw"], v["landed"]
        if landed["billed_cost"] is None:
            check = "-"
        else:
            same_money = raw["billed_cost"] == landed["billed_cost"] and raw["effective_cost"] == landed["effective_cost"]
            check = "yes" if same_money else "NO"
        rows = str(landed["rows"] if landed["rows"] is not None else raw["rows"] or "")
        if raw["rows"] is not None and landed["rows"] is not None and raw["rows"] != landed["rows"]:
            rows = f"{raw['rows']}→{landed['rows']}"
        table.add_row((v["billing_period_start"] or "-")[:7], v.get("outcome", v["status"]), rows,
                      cents_or_blank(landed["billed_cost"] or raw["billed_cost"]),
                      cents_or_blank(landed["effective_cost"] or raw["effective_cost"]), check, v["id"][:8])
    out.print(table)
    notes = sorted({n for v in views for n in v["tolerated"]})
    if notes:
        out.print("[bold]Tolerated in the input:[/]")
        for n in notes:
            out.print(f"  - {n}", highlight=False)
    for v in views:
        if v["error"]:
            out.print(f"[red]{(v['billing_period_start'] or '-')[:7]}: {v['error']}[/]", highlight=False)


@app.command()
def deliveries(
    source: Optional[str] = typer.Option(None, "--source", "-s", help="Only this source."),
    status: Optional[str] = typer.Option(None, "--status", help="running, loaded, replaced or failed."),
    limit: int = typer.Option(50, "--limit", help="Newest first, at most this many."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """List the delivery ledger: files, raw and landed counts and sums, status, errors."""
    from app.ledger import list_deliveries

    rt = runtime()
    with rt.sessions() as session:
        views = list_deliveries(session, source, status, None, limit)
    if output == "json":
        print(json.dumps(views, indent=2))
    else:
        print_deliveries(views)


@app.command()
def costs(
    start: Optional[str] = typer.Option(None, help="First day (YYYY-MM-DD or YYYY-MM). Default: latest month."),
    end: Optional[str] = typer.Option(None, help="Day after the window (exclusive)."),
    granularity: str = typer.Option("month", help="day or month."),
    group_by: list[str] = typer.Option([], "--group-by", "-g", help="FOCUS column, provider column "
                                       "(x_ResourceGroupName, x_SkuMeterCategory, x_InvoiceSectionName), "
                                       "tag:<key> or allocation dimension (team, service, cost_center, "
                                       "environment, custom); repeatable."),
    filter: list[str] = typer.Option([], "--filter", "-f", help="KEY=VALUE (allocation dimensions also KEY:VALUE); "
                                     "repeatable (same key: OR)."),
    metric: str = typer.Option("EffectiveCost", help="BilledCost, EffectiveCost, ListCost or ContractedCost."),
    limit: int = typer.Option(100_000, help="Maximum rows."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
) -> None:
    """Sum a cost metric by period and dimensions (the same query as GET /v1/costs); the table ends with the
    allocation coverage (% of EffectiveCost the rules allocate) per provider and month."""
    from app.costs import QueryError, cents_str, parse_query, run_query

    if fmt not in ("table", "csv", "json"):
        fail("--format must be table, csv or json", 2)
    from app.allocation import engine as alloc

    rt = runtime()
    try:
        q = parse_query(start, end, granularity, group_by, filter, metric, limit,
                        alloc.active_document(rt)[1].dimensions)
    except QueryError as exc:
        fail(f"--{exc.parameter.replace('_', '-')}: {exc.message}", 2)
    with rt.warehouse.connect(read_only=True) as con:
        result = run_query(con, q)
        coverage = alloc.coverage(con, result.query.start, result.query.end) if fmt == "table" else []
    if fmt == "json":
        print(json.dumps(result.to_json(), indent=2))
    elif fmt == "csv":
        sys.stdout.write(result.to_csv())
    else:
        echo = result.query
        table = Table(title=f"{echo.metric} {echo.start} → {echo.end} (end exclusive), by {echo.granularity}")
        for col in ("period", *echo.group_by, "cost", "currency"):
            table.add_column(col, justify="right" if col == "cost" else "left")
        for r in result.rows:
            table.add_row(r["period"], *[str(r[g]) if r[g] is not None else "—" for g in echo.group_by],
                          cents_str(r["cost"]), r["currency"])
        for t in result.totals:
            table.add_row("[bold]total", *["" for _ in echo.group_by], f"[bold]{cents_str(t['cost'])}", t["currency"])
        out.print(table)
        if coverage:
            out.print("allocation coverage (EffectiveCost allocated by rules): " + ", ".join(
                f"{c['provider']} {c['period'][:7]} {c['coverage_pct'] or '-'}%" for c in coverage), highlight=False)
        err.print("amounts rounded to the cent for display; --format json or csv gives them exactly")
        if result.truncated:
            err.print(f"[yellow]rows cut at --limit {echo.limit}; totals cover everything[/]")


@export_app.command("focus")
def export_focus(
    out_dir: Path = typer.Argument(..., help="Folder to write focus_cost_and_usage.<format> and focus_metadata.json."),
    fmt: str = typer.Option("parquet", "--format", help="parquet (typed; for the FOCUS validator) or csv."),
    focus_version: str = typer.Option("1.2", "--focus-version", help="1.2, or 1.3 to add the 1.3 columns."),
    source: Optional[str] = typer.Option(None, "--source", help="Only this source."),
    billing_period: Optional[str] = typer.Option(None, "--billing-period", help="Only this billing period (YYYY-MM)."),
    all_columns: bool = typer.Option(
        False, "--all-columns", help="Write every column of the FOCUS version, even those empty in this data."
    ),
) -> None:
    """Export the warehouse as a FOCUS Cost and Usage file, with FOCUS column names and metadata."""
    from app.costs import QueryError, parse_date
    from app.export import FORMATS, export_focus as run_export

    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    if focus_version not in ("1.2", "1.3"):
        fail("--focus-version must be 1.2 or 1.3", 2)
    try:
        period = parse_date("billing-period", billing_period)
    except QueryError as exc:
        fail(f"--{exc.parameter}: {exc.message}", 2)
    start = datetime(period.year, period.month, 1, tzinfo=timezone.utc) if period else None
    rt = runtime()
    with rt.warehouse.connect(read_only=True) as con:
        result = run_export(con, out_dir, fmt, focus_version, source, start, all_columns)
    out.print(f"wrote {result.rows} rows, {len(result.columns)} columns to {result.data_file}")
    out.print(f"metadata: {result.metadata_file}")


@export_app.command("lake")
def export_lake(
    location: str = typer.Argument(..., help="Local folder or s3://bucket/prefix of the lake."),
    option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE for an s3:// location: endpoint_url "
                                     "(S3-compatible stores), region. Credentials come from boto3's chain."),
    full: bool = typer.Option(False, "--full", help="Rewrite every partition, changed or not."),
    output: str = typer.Option("table", "--output", help="table or json (the partitions written, unchanged and "
                               "removed)."),
) -> None:
    """Write the warehouse as a FOCUS Parquet lake: Hive-partitioned provider=…/billing_period=YYYY-MM/, FOCUS
    names and types, one row per allocation part with the allocation as x_ columns, and a manifest
    (_cloudtally_lake.json: periods, rows, sums per currency, data versions). Incremental: only partitions whose
    data changed are rewritten, each swapped in atomically after its sums were read back and checked."""
    from decimal import Decimal

    from app.costs import cents_str
    from app.lake import LakeError, export_lake as run_export

    if output not in ("table", "json"):
        fail("--output must be table or json", 2)
    options = _parse_options(option)
    rt = runtime()
    try:
        with _progress() as bar, rt.warehouse.connect(read_only=True) as con:
            task = bar.add_task("lake", total=1.0)
            result = run_export(con, location, options, full=full,
                                progress=lambda msg, frac: bar.update(task, description=msg, completed=frac))
    except LakeError as exc:
        fail(str(exc))
    if output == "json":
        print(json.dumps({"location": location, "written": result.written, "unchanged": result.unchanged,
                          "removed": result.removed}, indent=2, default=str))
        return
    table = Table(title=f"Lake {location}")
    for col in ("provider", "period", "status", "currency", "lines", "EffectiveCost", "data version"):
        table.add_column(col, justify="right" if col in ("lines", "EffectiveCost") else "left")
    for status, parts in (("written", result.written), ("unchanged", result.unchanged), ("removed", result.removed)):
        for p in parts:
            for s in p["sums"]:
                table.add_row(p["provider"], p["billing_period"], status, s["currency"], f"{s['lines']:,}",
                              "" if s["EffectiveCost"] is None else cents_str(Decimal(s["EffectiveCost"])),
                              p["data_version"])
    out.print(table)
    out.print(f"{len(result.written)} written, {len(result.unchanged)} unchanged, {len(result.removed)} removed")


@export_app.command("lake-ddl")
def export_lake_ddl(
    dialect: str = typer.Argument(..., help="trino (Hive connector), athena, bigquery or spark."),
    location: str = typer.Argument(..., help="Where the lake is, as that engine names it (s3://…, gs://…)."),
    table: str = typer.Option("focus_cost", "--table", help="Table name (schema.table for Trino and BigQuery)."),
) -> None:
    """Print the DDL that registers a lake written by `export lake` as an external partitioned table."""
    from app.lake import DIALECTS, ddl

    if dialect not in DIALECTS:
        fail(f"DIALECT must be one of {', '.join(DIALECTS)}", 2)
    print(ddl(dialect, location, table), end="")


keys_app = typer.Typer(help="API keys: create (shown once), list, revoke. Roles: admin, finance, team:<name>.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="admin (everything, key management, rule writes), finance (all "
                             "costs, ledger, finance endpoints, closing months) or team:<name> (that team's "
                             "allocated costs only)."),
    name: str = typer.Option(..., "--name", help="Who or what uses the key."),
) -> None:
    """Create a key and print it: this is the only time it is shown (only its HMAC digest is stored)."""
    from app import access

    rt = runtime()
    try:
        view, key = access.create_key(rt, name, role)
    except access.KeyError_ as exc:
        fail(str(exc), 2)
    err.print(f"created key {view['prefix']} ({view['name']}, role {view['role']}, id {view['id']}); "
              "store it now, it is not shown again:", highlight=False)
    print(key)


@keys_app.command("list")
def keys_list(
    revoked: bool = typer.Option(True, "--revoked/--active-only", help="Include revoked keys."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Keys with their role, prefix and times (never the key itself)."""
    from app import access

    rt = runtime()
    with rt.sessions() as session:
        _, views = access.list_keys(session, limit=1_000_000, include_revoked=revoked)
    if output == "json":
        print(json.dumps(views, indent=2))
        return
    table = Table(title="API keys")
    for col in ("id", "name", "role", "prefix", "created_at", "last_used_at", "revoked_at"):
        table.add_column(col)
    for v in views:
        table.add_row(*(v[c] or "" for c in ("id", "name", "role", "prefix", "created_at", "last_used_at",
                                             "revoked_at")))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key: str = typer.Argument(..., help="The key's id or its ct_<prefix>.")) -> None:
    """Revoke a key: the next request made with it gets a 401."""
    from app import access

    rt = runtime()
    try:
        view = access.revoke_key(rt, key)
    except access.KeyError_ as exc:
        fail(str(exc))
    out.print(f"revoked {view['prefix']} ({view['name']}, role {view['role']}) at {view['revoked_at']}")


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 in a container)."),
    port: int = typer.Option(8000, help="TCP port."),
    scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler", help="Also run the ingest scheduler: each "
                                   "source with a --schedule is ingested on its cron (UTC), its jobs kept in the "
                                   "control database."),
    workers: int = typer.Option(1, min=1, max=64, help="API worker processes (uvicorn). One per CPU core serves "
                                "the most requests per second; each keeps its own DuckDB instance (memory limit "
                                "and read cache each) and the scheduler runs once, in the parent process."),
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs) and, unless --no-scheduler, the ingest scheduler in the same
    process. Several `serve` processes may share one control database: each scheduled run happens once."""
    import logging

    import uvicorn

    from app.api import create_app

    rt = runtime()
    if rt.settings.auth == "disabled":
        if not is_loopback(host):
            fail(f"refusing to serve on {host} with CLOUDTALLY_AUTH=disabled: the API would be open to anyone who can "
                 "reach it. Unset CLOUDTALLY_AUTH (keys: `cloudtally keys create`), or bind to 127.0.0.1.", 2)
        err.print("[yellow]CLOUDTALLY_AUTH=disabled: the API is open (no key needed) on this loopback address[/]")
    logging.basicConfig(level=rt.settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out.print(f"CloudTally API on http://{host}:{port} (docs: /docs)"
              + ("; scheduler on" if scheduler else "; scheduler off"))
    if workers == 1:
        uvicorn.run(create_app(rt, scheduler=scheduler), host=host, port=port,
                    log_level=rt.settings.log_level.lower())
        return
    # Several workers: uvicorn starts each from the factory (same environment, so the same data folder and
    # settings); this parent process supervises them and runs the scheduler, whose ingests reach the workers'
    # pinned readers like any other writer (app.warehouse).
    ingest_scheduler = None
    if scheduler:
        from app.scheduler import IngestScheduler

        ingest_scheduler = IngestScheduler(rt)
        ingest_scheduler.start()
    try:
        uvicorn.run("app.api:app_from_env", factory=True, workers=workers, host=host, port=port,
                    log_level=rt.settings.log_level.lower())
    finally:
        if ingest_scheduler is not None:
            ingest_scheduler.shutdown()


@app.command()
def demo(
    serve_api: bool = typer.Option(True, "--serve/--no-serve", help="Serve the API after loading."),
    host: str = typer.Option("127.0.0.1", help="Interface for the API."),
    port: int = typer.Option(8000, help="Port for the API."),
) -> None:
    """Generate a realistic 3-cloud dataset (seeded: AWS as a CUR 2.0 export, Azure as a FocusCost export, GCP as
    Cloud Billing export rows), ingest it through the real connectors, apply the sample allocation rules
    (app/demo/rules.yaml), print last month by provider and by team, then serve the API and the dashboard (its
    URL is printed)."""
    from app import demo as demo_data
    from app import sources
    from app.costs import cents_str, parse_query, run_query
    from app.ingest import ingest as run_ingest
    from connectors.base import IngestError

    rt = runtime()
    folder = rt.settings.data_dir / "demo-exports"
    out.print(f"writing demo exports (AWS CUR 2.0, Azure FocusCost, GCP billing export) to {folder}")
    exports = demo_data.write_exports(folder)
    formats = demo_data.source_formats()
    with _progress() as bar:
        for name, path in exports.items():
            task = bar.add_task(name, total=1.0)
            provider, fmt = formats[name]
            try:
                progress = (lambda msg, frac, t=task, n=name: bar.update(t, description=f"{n}: {msg}", completed=frac))
                if provider == "focus":  # the quick path: a FOCUS folder, its source created on first load
                    run_ingest(rt, name, str(path), progress=progress)
                    continue
                source = sources.get(rt, name)
                if source is not None and (source.provider, source.format, source.location) != (provider, fmt,
                                                                                                str(path)):
                    sources.remove(rt, name)  # an older demo's source (FOCUS files, or another folder)
                    source = None
                if source is None:
                    sources.add(rt, name, provider, fmt, str(path))
                run_ingest(rt, name, progress=progress)
            except (IngestError, sources.SourceError) as exc:
                fail(str(exc))
    from app.allocation import engine as allocation

    rules = demo_data.RULES_FILE
    from app.allocation.rules import RulesInvalid

    try:  # re-applying the same rules makes no new version; a changed file re-allocates what it changes
        applied = allocation.apply(rt, rules.read_text(), note=f"cloudtally demo ({rules.name})")
    except RulesInvalid as exc:
        fail(f"the demo allocation rules {rules}: {exc}")
    from app.rollups import refresh_rt

    refresh_rt(rt)
    out.print(f"allocation rules {rules.name}: version {applied.version} active "
              f"(`cloudtally rules show`, `cloudtally rules coverage`)", soft_wrap=True)
    from app.itfm.cli import demo_budgets

    demo_budgets(rt)  # sample budgets (app/demo/budgets.csv) and their status
    month = demo_data.LAST_MONTH
    with rt.warehouse.connect(read_only=True) as con:
        for dim in ("ProviderName", "team"):
            result = run_query(con, parse_query(start=month, group_by=[dim], metric="EffectiveCost"))
            table = Table(title=f"EffectiveCost {month} by {dim}")
            table.add_column(dim)
            table.add_column("cost", justify="right")
            table.add_column("currency")
            for r in result.rows:
                table.add_row(r[dim] or "(none)", cents_str(r["cost"]), r["currency"])
            for t in result.totals:
                table.add_row("[bold]total", f"[bold]{cents_str(t['cost'])}", t["currency"])
            out.print(table)
    from optimizers.demo import recommend as demo_recommendations

    demo_recommendations(rt, out)  # commitments, waste, rightsizing (CloudWatch metrics served by moto): issue 12
    if serve_api:
        import uvicorn

        from app.api import create_app
        from app.dashboard import url as dashboard_url

        out.print(f"dashboard: {dashboard_url(host, port)}", highlight=False, soft_wrap=True)
        out.print(f"API on http://{host}:{port}  (try /v1/costs?group_by=ServiceName, docs at /docs)")
        # The demo's own server runs without keys (CLOUDTALLY_AUTH=disabled for this process only).
        os.environ["CLOUDTALLY_AUTH"] = "disabled"
        rt.settings.auth = "disabled"
        out.print("[yellow]demo mode: authentication is disabled (CLOUDTALLY_AUTH=disabled); the API is open to "
                  f"anyone who can reach {host}:{port}. `cloudtally serve` requires API keys.[/]")
        uvicorn.run(create_app(rt), host=host, port=port, log_level="warning")


from optimizers.cli import recommend_app  # noqa: E402 - `cloudtally recommend ...` (issue 12)

app.add_typer(recommend_app, name="recommend")

from app.itfm.cli import budgets_app, finance_app, forecast_app  # noqa: E402 - ITFM (issue 10)

app.add_typer(budgets_app, name="budgets")
app.add_typer(forecast_app, name="forecast")
app.add_typer(finance_app, name="finance")

from app.alerts.cli import alerts_app  # noqa: E402 - alerts (issue 11)
from app.allocation.cli import rules_app  # noqa: E402 - allocation rules (issue 7)

app.add_typer(alerts_app, name="alerts")
app.add_typer(rules_app, name="rules")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
