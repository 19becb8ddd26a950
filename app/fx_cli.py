"""`cloudtally fx …` (registered in app.cli): the exchange rates finance reports with (app.currency), used by
`cloudtally costs --currency` and GET /v1/costs?currency=."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from app.cli_common import err, fail, out, runtime

fx_app = typer.Typer(help="Exchange rates for reporting in one currency: set, import (CSV), list, delete.",
                     no_args_is_help=True)


@fx_app.command("set")
def fx_set(
    month: str = typer.Argument(..., help="Month the rate applies to (YYYY-MM)."),
    currency: str = typer.Argument(..., help="Currency converted from (ISO 4217, e.g. USD)."),
    to_currency: str = typer.Argument(..., help="Currency converted into (e.g. EUR)."),
    rate: str = typer.Argument(..., help="One unit of CURRENCY in TO_CURRENCY: an exact decimal > 0."),
    source: str = typer.Option(None, "--source", help="Where the rate comes from, e.g. 'ECB month-end'."),
) -> None:
    """Set (or replace) one month's rate from CURRENCY into TO_CURRENCY."""
    from app import currency as fx

    try:
        checked = fx.check_rate(month, currency, to_currency, rate, source)
    except ValueError as exc:
        fail(str(exc), 2)
    rt = runtime()
    with rt.sessions() as session:
        fx.set_rates(session, [checked])
        session.commit()
    err.print(f"{checked.month}: 1 {checked.currency} = {fx.rate_str(checked.rate)} {checked.to_currency}",
              highlight=False)


@fx_app.command("import")
def fx_import(path: Path = typer.Argument(..., help="CSV with the header month,currency,to_currency,rate[,source].",
                                           exists=True, dir_okay=False)) -> None:
    """Set every rate of a CSV file (all or nothing: each problem names its row and column)."""
    from app import currency as fx

    try:
        rates = fx.parse_csv(path.read_text(encoding="utf-8"), str(path))
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text")
    except fx.RateError as exc:
        for p in exc.problems:
            err.print(f"[bold red]error:[/] {p['parameter']}: {p['detail']}", highlight=False)
        raise typer.Exit(1)
    rt = runtime()
    with rt.sessions() as session:
        fx.set_rates(session, rates)
        session.commit()
    err.print(f"{len(rates)} rate(s) set from {path}", highlight=False)


@fx_app.command("list")
def fx_list(
    to_currency: str = typer.Option(None, "--to", help="Only rates into this currency."),
    currency: str = typer.Option(None, "--from", help="Only rates from this currency."),
    fmt: str = typer.Option("table", "--format", help="table, csv (what `fx import` reads) or json."),
) -> None:
    """The rates, by target currency, source currency and month."""
    from app import currency as fx

    if fmt not in ("table", "csv", "json"):
        fail("--format must be table, csv or json", 2)
    rt = runtime()
    with rt.sessions() as session:
        rows = fx.list_rates(session, to_currency, currency)
    if fmt == "json":
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    elif fmt == "csv":
        print(fx.to_csv(rows), end="")
    else:
        table = Table(title="exchange rates: 1 currency = rate to_currency")
        for col in ("month", "currency", "to_currency", "rate", "source"):
            table.add_column(col, justify="right" if col == "rate" else "left")
        for r in rows:
            table.add_row(r.month, r.currency, r.to_currency, fx.rate_str(r.rate), r.source or "")
        out.print(table)


@fx_app.command("delete")
def fx_delete(
    month: str = typer.Argument(..., help="YYYY-MM"),
    currency: str = typer.Argument(..., help="Currency converted from."),
    to_currency: str = typer.Argument(..., help="Currency converted into."),
) -> None:
    """Delete one month's rate."""
    from app import currency as fx

    rt = runtime()
    with rt.sessions() as session:
        if not fx.delete_rate(session, month, currency, to_currency):
            fail(f"no rate from {currency.upper()} to {to_currency.upper()} for {month}")
        session.commit()
    err.print(f"deleted {currency.upper()} to {to_currency.upper()} for {month}", highlight=False)
