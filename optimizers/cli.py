"""`cloudtally recommend ...`: run the optimizers, list recommendations, their accuracy, commitment utilization.

Registered by app/cli.py as a subcommand group; everything heavy is imported inside the commands."""
from __future__ import annotations

import json
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from app.cli_common import cents_or_blank, err, fail, out, progress, runtime

recommend_app = typer.Typer(
    help="Recommendations: commitment purchases, waste, rightsizing; the ledger of what was predicted and what "
    "was realized; commitment utilization and coverage.", no_args_is_help=True)


class Fmt(str, Enum):
    table = "table"
    json = "json"


@recommend_app.command("refresh")
def refresh(
    lookback: int = typer.Option(30, "--lookback", min=7, max=60,
                                 help="Commitment lookback in days (7, 30 and 60 are all in the evidence)."),
    rates: Optional[Path] = typer.Option(None, "--rates", exists=True, dir_okay=False,
                                         help="Commitment rate table (YAML, as optimizers/rates.yaml); default "
                                         "CLOUDTALLY_COMMITMENT_RATES, else the built-in one."),
    downside: float = typer.Option(0.3, "--downside", min=0.0, max=0.95,
                                   help="Commitment purchases come in tranches sized for this fall in usage right "
                                   "after the purchase: each is (1 - downside) of the optimum (0: all at once)."),
    review_days: int = typer.Option(7, "--review-days", min=1, max=365,
                                    help="Days between commitment reviews: each review period has its own tranche."),
    only: list[str] = typer.Option([], "--only", help="Run only these optimizers: commitments, waste, "
                                   "rightsizing (repeatable)."),
    metrics: list[str] = typer.Option([], "--metrics", help="Judge the VMs of this cloud on its metrics "
                                      "(rightsizing), repeatable: aws, azure, gcp, with options after a colon, e.g. "
                                      "aws:endpoint_url=http://127.0.0.1:5000,period=3600. Default: "
                                      "CLOUDTALLY_RIGHTSIZING_METRICS (same items, separated by ;), else none."),
) -> None:
    """Run the optimizers over the warehouse, store new recommendations, update open ones, and check earlier ones
    against newer data (acted on: realized savings; expired)."""
    from optimizers import ledger, registry

    names = list(registry())
    for name in only:
        if name not in names:
            fail(f"--only {name!r}: not one of {', '.join(names)}", 2)
    rt = runtime()
    config: dict = {"lookback_days": lookback, "commitment_downside": format(Decimal(repr(downside)), "f"),
                    "commitment_review_days": review_days}
    if rates:
        config["rates"] = str(rates)
    if metrics:
        from optimizers.rightsizing import parse_metrics_option

        try:
            config["metrics"] = parse_metrics_option(metrics)
        except ValueError as exc:
            fail(str(exc), 2)
    chosen = only or names
    with progress() as bar:
        task = bar.add_task("running optimizers", total=len(chosen) + 1)

        def step(name: str) -> None:
            bar.update(task, description=f"optimizer: {name}", advance=1)

        try:
            summary = ledger.refresh(rt, config, only=only or None, step=step)
        except (ValueError, OSError) as exc:
            fail(str(exc))
        bar.update(task, description="recommendations stored", completed=len(chosen) + 1)
    out.print(f"found {summary['found']}: {summary['new']} new, {summary['updated']} updated, "
                  f"{summary['acted_on']} acted on, {summary['expired']} expired, "
                  f"{summary['remeasured']} re-measured", highlight=False)
    for t in summary["open_monthly_savings"]:
        out.print(f"open recommendations save {t['monthly_savings']} {t['currency']} a month", highlight=False)
    for e in summary["errors"]:
        err.print(f"[bold red]error:[/] optimizer {e['optimizer']}: {e['error']}", highlight=False,
                      soft_wrap=True)
    if summary["errors"]:
        raise typer.Exit(1)


@recommend_app.command("list")
def list_(
    status: str = typer.Option("open", "--status", help="open, acted_on, expired or any."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind (e.g. commitment_purchase)."),
    category: Optional[str] = typer.Option(None, "--category", help="commitment, waste or rightsizing."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Only this ProviderName."),
    team: Optional[str] = typer.Option(None, "--team", help="Only this team's."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many, biggest savings first."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", help="table or json (the API's shape)."),
) -> None:
    """Recommendations from the ledger, biggest predicted monthly savings first."""
    from optimizers import ledger

    if status not in ("open", "acted_on", "expired", "any"):
        fail("--status must be open, acted_on, expired or any", 2)
    rt = runtime()
    with rt.sessions() as session:
        total, rows = ledger.list_recommendations(session, team=team, status=None if status == "any" else status,
                                                  kind=kind, category=category, provider=provider, limit=limit)
    if fmt == Fmt.json:
        print(json.dumps({"recommendations": rows, "total": total}, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"Recommendations ({status}): {total}")
    for col, justify in (("kind", "left"), ("provider", "left"), ("action", "left"), ("team", "left"),
                         ("monthly savings", "right"), ("realized", "right"), ("id", "left")):
        table.add_column(col, justify=justify, no_wrap=col in ("id", "kind"))
    for r in rows:
        table.add_row(r["kind"], r["provider"], r["action"], r["team"] or "-",
                      f"{cents_or_blank(r['monthly_savings'])} {r['currency']}",
                      cents_or_blank(r["realized_monthly_savings"]) or "-", r["id"][:8])
    out.print(table)


@recommend_app.command("show")
def show(rec_id: str = typer.Argument(..., help="The recommendation's id (or its first 8 characters).")) -> None:
    """One recommendation as JSON: evidence, assumptions, inputs, outcome."""
    from sqlalchemy import select

    from optimizers import ledger

    rt = runtime()
    with rt.sessions() as session:
        rows = session.scalars(select(ledger.RecommendationRow).where(
            ledger.RecommendationRow.id.startswith(rec_id))).all()
        if len(rows) != 1:
            fail(f"{'no' if not rows else 'more than one'} recommendation matches {rec_id!r}")
        print(json.dumps(ledger.view(rows[0]), indent=2))


@recommend_app.command("accuracy")
def accuracy(
    team: Optional[str] = typer.Option(None, "--team", help="Only this team's recommendations."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", help="table or json."),
) -> None:
    """Realized vs predicted monthly savings of the recommendations acted on, per kind and currency."""
    from optimizers import ledger

    rt = runtime()
    with rt.sessions() as session:
        result = ledger.accuracy(session, team=team)
    if fmt == Fmt.json:
        print(json.dumps(result, indent=2))
        return
    from rich.table import Table

    table = Table(title="Recommendation accuracy (acted on: realized vs predicted monthly savings)")
    for col in ("kind", "currency", "open", "acted on", "expired", "predicted", "realized", "realized/predicted"):
        table.add_column(col, justify="left" if col in ("kind", "currency") else "right")
    for k in result["kinds"]:
        table.add_row(k["kind"], k["currency"], str(k["open"]), str(k["acted_on"]), str(k["expired"]),
                      cents_or_blank(k["predicted_monthly_savings"]),
                      cents_or_blank(k["realized_monthly_savings"]), k["realized_to_predicted"] or "-")
    out.print(table)


@recommend_app.command("commitments")
def commitments_(
    start: Optional[str] = typer.Option(None, "--start", help="First month, YYYY-MM (default: the latest month)."),
    end: Optional[str] = typer.Option(None, "--end", help="Month after the last, YYYY-MM (exclusive)."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Only this ProviderName."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", help="table or json (the API's shape)."),
) -> None:
    """Commitment utilization (used / (used + unused)), unused cost, the amortized fee and its identity gap per
    commitment and month; coverage and effective savings rate per provider and month."""
    import re
    from decimal import Decimal

    from app.costs import money_str
    from optimizers import commitment_utilization

    for name, value in (("--start", start), ("--end", end)):
        if value is not None and not re.match(r"^\d{4}-(0[1-9]|1[0-2])$", value):
            fail(f"{name} {value!r} is not YYYY-MM", 2)
    rt = runtime()
    with rt.warehouse.connect(read_only=True) as con:
        result = commitment_utilization.utilization(con, start, end, provider)
    text = lambda row: {k: (money_str(v) if isinstance(v, Decimal) else v) for k, v in row.items()}  # noqa: E731
    if fmt == Fmt.json:
        print(json.dumps({"start": result["start"], "end": result["end"],
                          "commitments": [text(r) for r in result["commitments"]],
                          "providers": [text(r) for r in result["providers"]]}, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"Commitments {result['start']} to {result['end']} (exclusive)")
    for col in ("month", "provider", "commitment", "utilization", "used", "unused", "amortized fee", "gap",
                "net savings"):
        table.add_column(col, justify="left" if col in ("month", "provider", "commitment") else "right")
    c = cents_or_blank
    for r in result["commitments"]:
        table.add_row(r["month"], r["provider"], r["name"] or r["commitment_id"][-40:], r["utilization"] or "-",
                      c(r["used_cost"]), c(r["unused_cost"]), c(r["amortized_fee"]) or "-",
                      c(r["identity_gap"]) or "-", c(r["net_savings"]) or "-")
    out.print(table)
    table = Table(title="Coverage of eligible usage and effective savings rate")
    for col in ("month", "provider", "currency", "coverage", "eligible", "commitment cost", "unused", "ESR"):
        table.add_column(col, justify="left" if col in ("month", "provider", "currency") else "right")
    for r in result["providers"]:
        table.add_row(r["month"], r["provider"], r["currency"], r["coverage"] or "-",
                      c(r["eligible_contracted_cost"]), c(r["commitment_cost"]), c(r["unused_cost"]),
                      r["effective_savings_rate"] or "-")
    out.print(table)
