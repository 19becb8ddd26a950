"""What the `cloudtally` command modules share: the two consoles (soft-wrapped), the runtime, the error exit,
the progress bar, KEY=VALUE options, amounts to the cent. Every command module (app.cli and the groups it
registers) takes them from here."""
from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

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


def month_option(option: str, value: str | None):
    """`--OPTION YYYY-MM` (or a day of the month) as the month's first instant in UTC; None when not given; exit 2
    naming the option when it is not a date."""
    from datetime import datetime, timezone

    from app.costs import QueryError, parse_date

    try:
        day = parse_date(option, value)
    except QueryError as exc:
        fail(f"--{option}: {exc.message}", 2)
    return datetime(day.year, day.month, 1, tzinfo=timezone.utc) if day else None


def parse_options(items: list[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--option {item!r} is not KEY=VALUE", 2)
        options[key] = value
    return options


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<40}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
        console=err, transient=False, disable=not err.is_terminal and os.environ.get("CLOUDTALLY_PROGRESS") != "1",
    )
