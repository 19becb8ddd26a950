"""The `cloudtally` command line (typer + rich). Exit codes: 0 success, 1 the operation failed, 2 usage error.

The core commands are here; command groups live beside their feature and are registered at the end."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from app import __version__
from app.cli_common import cents_or_blank, err, fail, month_option, out, parse_options, progress, runtime
from app.export_cli import export_app
from app.fx_cli import fx_app
from app.keys_cli import keys_app
from app.sources_cli import sources_app

app = typer.Typer(
    help="CloudTally: cloud billing exports normalized to FOCUS, exact to the cent.\n\n"
    "Settings come from CLOUDTALLY_* environment variables (see README); --data-dir overrides CLOUDTALLY_DATA_DIR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    """--version: handled while the options are parsed, so it needs no command."""
    if value:
        out.print(f"cloudtally {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data folder (default ./cloudtally-data)."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_print_version),
) -> None:
    if data_dir is not None:
        os.environ["CLOUDTALLY_DATA_DIR"] = str(data_dir)


@app.command()
def init() -> None:
    """Create (or upgrade) the warehouse and the control database."""
    rt = runtime()
    out.print(f"warehouse: {rt.settings.resolved_warehouse_path}")
    out.print(f"control database: {rt.engine.url.render_as_string(hide_password=True)}")


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
    from app.runs import run_source

    if fmt != "focus":
        fail(f"--format {fmt!r} is not supported by the quick path; configure the source with `sources add`", 2)
    if output not in ("table", "json"):
        fail("--output must be table or json", 2)
    start = month_option("period", period)
    rt = runtime()
    if source is None and sources_mod.get(rt, target) is None:
        fail(f"no source named {target!r}; add one with `cloudtally sources add`, or load FOCUS files with "
             f"`cloudtally ingest PATH --source NAME`", 2)
    name, location = (source, target) if source else (target, None)
    options = parse_options(option)
    with progress() as bar:
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

    month = month_option("period", period)
    rt = runtime()
    periods = [month] if month else None
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
    currency: Optional[str] = typer.Option(None, help="Report in this currency (e.g. EUR), converting each row with "
                                           "the rate of its month (`cloudtally fx`); default: per billing currency."),
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
                        alloc.active_document(rt)[1].dimensions, currency=currency)
    except QueryError as exc:
        fail(f"--{exc.parameter.replace('_', '-')}: {exc.message}", 2)
    from app.currency import RateTable, describe_rates

    rates = RateTable.for_currency(rt, q.currency)
    with rt.warehouse.connect(read_only=True) as con:
        try:
            result = run_query(con, q, rates=rates)
        except QueryError as exc:  # a missing exchange rate
            fail(f"--{exc.parameter}: {exc.message}")
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
                f"{c['provider']} {c['period'][:7]} {c['currency']} {c['coverage_pct'] or '-'}%" for c in coverage),
                highlight=False)
        if result.conversion is not None:
            used = describe_rates(result.conversion["rates"])
            out.print(f"converted into {result.conversion['currency']}: {used or 'no rate needed'}", highlight=False)
        err.print("amounts rounded to the cent for display; --format json or csv gives them exactly")
        if result.truncated:
            err.print(f"[yellow]rows cut at --limit {echo.limit}; totals cover everything[/]")


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
    with progress() as bar:
        for name, path in exports.items():
            task = bar.add_task(name, total=1.0)
            provider, fmt = formats[name]
            try:
                report = (lambda msg, frac, t=task, n=name: bar.update(t, description=f"{n}: {msg}", completed=frac))
                if provider == "focus":  # the quick path: a FOCUS folder, its source created on first load
                    run_ingest(rt, name, str(path), progress=report)
                    continue
                source = sources.get(rt, name)
                if source is not None and (source.provider, source.format, source.location) != (provider, fmt,
                                                                                                str(path)):
                    sources.remove(rt, name)  # an older demo's source (FOCUS files, or another folder)
                    source = None
                if source is None:
                    sources.add(rt, name, provider, fmt, str(path))
                run_ingest(rt, name, progress=report)
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


app.add_typer(export_app, name="export")
app.add_typer(sources_app, name="sources")
app.add_typer(keys_app, name="keys")
app.add_typer(fx_app, name="fx")

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
