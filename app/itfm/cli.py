"""CLI of ITFM: `cloudtally budgets …`, `cloudtally forecast …` and `cloudtally finance …` (registered in app.cli)."""
from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from app.cli_common import err, fail, out, progress, runtime

budgets_app = typer.Typer(help="Budgets: import/export CSV, list, status (actual, EAC, variance, crossing date).",
                          no_args_is_help=True)
forecast_app = typer.Typer(help="Forecasts per scope with 80%/95% intervals, and their measured accuracy "
                           "(rolling-origin backtests).", no_args_is_help=True)
finance_app = typer.Typer(help="Finance hand-offs: chargeback/showback statements, TBM totals, the flat ITFM export.",
                          no_args_is_help=True)


def _as_of(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--as-of {value!r} is not a date (YYYY-MM-DD)", 2)


def _cents(v: str | None) -> str:
    from decimal import ROUND_HALF_UP, Decimal

    return "" if v is None else str(Decimal(v).quantize(Decimal("0.01"), ROUND_HALF_UP))


@budgets_app.command("import")
def budgets_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV: budget, team, service, cost_center, "
                                "provider, account, period_type, fiscal_year_start, currency, metric, version, period, "
                                "amount, convert_currencies (budget, currency, period, amount required)."),
    replace: bool = typer.Option(False, "--replace", help="Also delete amounts of the named budgets the file does "
                                 "not list."),
) -> None:
    """Create or update budgets from a CSV (what `budgets export` writes). All or nothing; errors name row and
    column."""
    from app.itfm import budgets

    rt = runtime()
    with rt.sessions() as session:
        try:
            done = budgets.import_csv(session, file.read_text(encoding="utf-8"), replace)
        except budgets.BudgetError as exc:
            for p in exc.problems:
                err.print(f"[bold red]error:[/] {file}, {p['parameter']}: {p['detail']}", highlight=False)
            raise typer.Exit(1)
    out.print(f"{done['budgets_created']} budget(s) created, {done['budgets_updated']} updated, "
              f"{done['amounts']} amount(s)")


@budgets_app.command("export")
def budgets_export(output: Optional[Path] = typer.Option(None, "-o", "--output", help="File (default stdout).")):
    """Every budget amount as CSV (one row per budget, version and period)."""
    from app.itfm import budgets

    rt = runtime()
    with rt.sessions() as session:
        text = budgets.export_csv(session)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@budgets_app.command("list")
def budgets_list(output: str = typer.Option("table", "--output", help="table or json.")) -> None:
    """Budgets with their scope, period kind and amounts."""
    from app.itfm import budgets

    rt = runtime()
    with rt.sessions() as session:
        views = [budgets.budget_view(b) for b in budgets.list_budgets(session)[1]]
    if output == "json":
        out.print_json(json.dumps(views))
        return
    t = Table(title="Budgets")
    for c in ("name", "scope", "period", "currency", "metric", "amounts"):
        t.add_column(c)
    for v in views:
        scope = ", ".join(f"{k}={x}" for k, x in v["scope"].items() if x) or "(all)"
        t.add_row(v["name"], scope, v["period_type"], v["currency"], v["metric"], str(len(v["amounts"])))
    out.print(t)


def print_statuses(rows: list[dict], title: str = "Budget status") -> None:
    from app.currency import describe_rates
    from app.itfm import budgets

    t = Table(title=title)
    for c in ("budget", "period", "cur", "budget amt", "actual", "EAC", "variance", "var %", "burn/day", "crosses"):
        t.add_column(c, justify="right" if c not in ("budget", "period", "cur") else "left")
    for s in rows:
        var = "" if s["variance"] is None else (("[red]" if not s["favorable"] else "[green]") + _cents(s["variance"]))
        t.add_row(s["name"], s["period"], s["currency"], _cents(s["budget"]), _cents(s["actual"]),
                  _cents(s["eac"]) or "n/a", var, s["variance_pct"] or "", _cents(s["burn_rate"]),
                  s["projected_crossing_date"] or "-")
    out.print(t)
    for s in rows:
        if s["forecast_note"]:
            out.print(f"{s['name']} {s['period']}: no forecast: {s['forecast_note']}", highlight=False)
        if s.get("conversion"):
            out.print(f"{s['name']} {s['period']}: converted into {s['currency']} with "
                      f"{describe_rates(s['conversion'])}", highlight=False)
        if s.get("not_counted"):
            out.print(f"{s['name']} {s['period']}: not counted: {budgets.describe_not_counted(s['not_counted'], cents=True)}",
                      highlight=False)


@budgets_app.command("status")
def budgets_status(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Count actuals up to the day before (YYYY-MM-DD)."),
    period: Optional[str] = typer.Option(None, "--period", help="Period label (2026-10, FY2027-Q2, FY2027) or all."),
    output: str = typer.Option("table", "--output", help="table, json or csv."),
) -> None:
    """Each budget in its current period (or --period): budget, actual to date, EAC = actual + forecast, variance,
    burn rate and the projected crossing date."""
    from app.itfm import budgets

    rt = runtime()
    with rt.sessions() as session:
        _, found = budgets.list_budgets(session)
        with rt.warehouse.connect(read_only=True) as con:
            try:
                rows = [s.to_json() for s in budgets.statuses(con, found, _as_of(as_of), period,
                                                                 rates=budgets.rates_from(session))]
            except budgets.BudgetError as exc:
                fail(str(exc), 2)
    if output == "json":
        out.print_json(json.dumps(rows))
    elif output == "csv":
        sys.stdout.write(budgets.status_csv(rows))
    else:
        print_statuses(rows)


def _scope(team, service, cost_center, provider, account):
    from app.itfm.actuals import ScopeDims

    return ScopeDims(team, service, cost_center, provider, account)


@forecast_app.callback(invoke_without_command=True)
def forecast(
    ctx: typer.Context,
    team: Optional[str] = typer.Option(None, help="Allocation team."),
    service: Optional[str] = typer.Option(None, help="Allocation service, else FOCUS ServiceName."),
    cost_center: Optional[str] = typer.Option(None, "--cost-center", help="Allocation cost center."),
    provider: Optional[str] = typer.Option(None, help="ProviderName."),
    account: Optional[str] = typer.Option(None, help="SubAccountId."),
    currency: Optional[str] = typer.Option(None, help="Billing currency (default: each)."),
    horizon: int = typer.Option(90, "--horizon", help="Days to forecast (1-366)."),
    model: str = typer.Option("mstl", help="mstl (default), ets, snaive or arima (usage part)."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Forecast a scope's daily cost after the last day of data, with 80%/95% intervals and the scope's measured
    accuracy (a rolling-origin backtest of the same data). Fewer than 14 days of data: refused, exit 1."""
    if ctx.invoked_subcommand is not None:
        return
    from app.itfm.service import forecast_scope

    if not 1 <= horizon <= 366:
        fail("--horizon must be 1 to 366 days", 2)
    rt = runtime()
    with rt.sessions() as session, rt.warehouse.connect(read_only=True) as con:
        try:
            doc = forecast_scope(con, session, _scope(team, service, cost_center, provider, account), currency,
                                 horizon_days=horizon, model=model, daily=output == "json")
        except ValueError as exc:
            fail(str(exc), 2)
    if output == "json":
        out.print_json(json.dumps(doc))
    else:
        for f in doc["forecasts"]:
            t = Table(title=f"Forecast {f['currency']} {f['metric']} ({f['model']}), history {f['history']['start']} "
                            f"to {f['history']['end']}")
            t.add_column("month")
            t.add_column("forecast", justify="right")
            t.add_column("estimate (actual + forecast)", justify="right")
            for m in f["months"]:
                t.add_row(m["month"], _cents(m["forecast"]), _cents(m.get("estimate")))
            out.print(t)
            a = f["accuracy"]
            if a["available"]:
                m = a["metrics"]
                out.print(f"accuracy (backtest, {a['windows']} windows of {a['horizon_days']} days, step "
                          f"{a['step_days']}): month-total error median {m['month_ape_median']}% p90 "
                          f"{m['month_ape_p90']}%, daily MAPE {m['daily_mape']}%, WAPE {m['wape']}%, 80% interval "
                          f"coverage {m['coverage80']}%, MASE {m['mase']} (seasonal naive {m['mase_snaive']})",
                          highlight=False)
            else:
                out.print(a["reason"], highlight=False)
    for r in doc["refused"]:
        err.print(f"no forecast ({r['currency'] or 'any currency'}): {r['reason']}", highlight=False)
    if not doc["forecasts"]:
        raise typer.Exit(1)


@forecast_app.command("backtest")
def forecast_backtest(
    budgets_only: bool = typer.Option(True, "--budgets/--teams", help="Backtest every budget's scope (default) or "
                                      "every team."),
    model: str = typer.Option("mstl", help="mstl (default), ets, snaive or arima."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Run and store the rolling-origin backtest (h = 30, 6 windows) of every budget's scope or every team."""
    from app.itfm import backtest as bt
    from app.itfm import budgets
    from app.itfm.actuals import ScopeDims, daily_series
    from app.itfm.forecast import NotEnoughHistory

    rt = runtime()
    with rt.sessions() as session, rt.warehouse.connect(read_only=True) as con:
        if budgets_only:
            scopes = sorted({ScopeDims.of(b) for b in budgets.list_budgets(session)[1]}, key=lambda s: s.key())
        else:
            scopes = [ScopeDims(team=t) for (t,) in con.execute(
                "SELECT DISTINCT team FROM cost_allocation WHERE team IS NOT NULL ORDER BY 1").fetchall()]
        series = daily_series(con, scopes)
        with progress() as bar:
            task = bar.add_task("backtests", total=len(series))
            rows = []
            for (_, cur), s in sorted(series.items(), key=lambda kv: (kv[1].scope.key(), kv[0][1])):
                try:
                    rows.append(bt.view(bt.store(session, bt.backtest(s, model=model))))
                except NotEnoughHistory as exc:
                    err.print(f"{s.scope.key()} {cur}: {exc}", highlight=False)
                bar.advance(task)
    if output == "json":
        out.print_json(json.dumps(rows))
    else:
        print_accuracy(rows)


def print_accuracy(rows: list[dict]) -> None:
    t = Table(title="Forecast accuracy (rolling-origin backtest)")
    for c in ("scope", "cur", "data end", "month APE med", "p90", "daily MAPE", "WAPE", "cov80", "cov95", "MASE",
              "MASE snaive"):
        t.add_column(c)
    for r in rows:
        m = r["metrics"]
        t.add_row(r["scope_key"], r["currency"], r["data_end"], *(str(m.get(k)) for k in (
            "month_ape_median", "month_ape_p90", "daily_mape", "wape", "coverage80", "coverage95", "mase",
            "mase_snaive")))
    out.print(t)


@forecast_app.command("accuracy")
def forecast_accuracy(output: str = typer.Option("table", "--output", help="table or json.")) -> None:
    """The newest stored backtest of every scope."""
    from sqlalchemy import select

    from app.itfm import backtest as bt
    from app.itfm.models import ForecastBacktest

    rt = runtime()
    with rt.sessions() as session:
        newest: dict = {}
        for r in session.scalars(select(ForecastBacktest).order_by(ForecastBacktest.data_end)):
            newest[(r.scope_key, r.currency, r.metric)] = bt.view(r)
    rows = [newest[k] for k in sorted(newest)]
    if output == "json":
        out.print_json(json.dumps(rows))
    else:
        print_accuracy(rows)


@finance_app.command("chargeback")
def finance_chargeback(
    month: str = typer.Option(..., "--month", help="Billing month YYYY-MM."),
    by: str = typer.Option("team", "--by", help="team or cost_center."),
    mode: str = typer.Option("chargeback", "--mode", help="chargeback or showback."),
    currency: Optional[str] = typer.Option(None, "--currency", help="Report in this currency (e.g. EUR): each line "
                                           "converted with finance's rate for the month (`cloudtally fx`); default: "
                                           "one statement per billing currency."),
    fmt: str = typer.Option("table", "--format", help="table, json or csv."),
) -> None:
    """Statements per team or cost center: direct, shared (per split rule) and unallocated cost, reconciled to the
    month's warehouse total per currency (and, with --currency, converted into one)."""
    from app.costs import QueryError
    from app.currency import RateTable, describe_rates
    from app.itfm import statements

    rt = runtime()
    rates = RateTable.for_currency(rt, currency)
    with rt.warehouse.connect(read_only=True) as con:
        try:
            doc = statements.statements(con, month, by, mode, rates=rates)
        except QueryError as exc:
            fail(str(exc), 1 if exc.parameter == "currency" else 2)
    if fmt == "json":
        out.print_json(json.dumps(doc))
    elif fmt == "csv":
        sys.stdout.write(statements.statements_csv(doc))
    else:
        t = Table(title=f"{mode.capitalize()} {month} by {by} (EffectiveCost)")
        for c in ("group", "cur", "direct", "shared", "total"):
            t.add_column(c, justify="left" if c in ("group", "cur") else "right")
        for s in doc["statements"] + doc["unallocated"]:
            from decimal import Decimal

            shared = sum((Decimal(x["EffectiveCost"]) for x in s["shared"]), Decimal(0))
            t.add_row(s["group"], s["currency"], _cents(s["direct"]["EffectiveCost"]), _cents(str(shared)),
                      _cents(s["total"]["EffectiveCost"]))
        for r in doc["reconciliation"]:
            t.add_row("[bold]warehouse total", r["currency"], "", "", f"[bold]{_cents(r['EffectiveCost']['warehouse'])}")
        out.print(t)
        if "conversion" in doc:
            used = describe_rates(doc["conversion"]["rates"])
            out.print(f"converted into {doc['conversion']['currency']}: {used or 'no rate needed'}", highlight=False)


@finance_app.command("export")
def finance_export(
    month: str = typer.Option(..., "--month", help="Billing month YYYY-MM."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="File (default stdout)."),
    currency: Optional[str] = typer.Option(None, "--currency", help="Every amount in this currency (e.g. EUR), "
                                           "converted with finance's rate for the month (`cloudtally fx`)."),
) -> None:
    """The flat ITFM hand-off CSV of a month (cost rows reconciled to the warehouse, then budget rows)."""
    from app.costs import QueryError
    from app.currency import RateTable
    from app.itfm import statements

    rt = runtime()
    with rt.sessions() as session, rt.warehouse.connect(read_only=True) as con:
        rates = RateTable.load(session, currency) if currency else None
        try:
            text = statements.export_csv(statements.export_rows(con, month, statements.budget_export_rows(
                con, session, month), rates))
        except QueryError as exc:
            fail(str(exc), 1 if exc.parameter == "currency" else 2)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def demo_budgets(rt) -> None:
    """`cloudtally demo`: load app/demo/budgets.csv (merge) and print the budgets' status."""
    from app.demo import BUDGETS_FILE
    from app.itfm import budgets

    with rt.sessions() as session:
        budgets.import_csv(session, BUDGETS_FILE.read_text(encoding="utf-8"))
        _, found = budgets.list_budgets(session)
        with rt.warehouse.connect(read_only=True) as con:
            rows = [s.to_json() for s in budgets.statuses(con, found, rates=budgets.rates_from(session))]
    out.print(f"sample budgets {BUDGETS_FILE.name} loaded (`cloudtally budgets status`, /v1/budgets/status)")
    print_statuses(rows, "Budget status (current period; EAC = actual + forecast)")
