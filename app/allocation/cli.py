"""`cloudtally rules …` (registered in app.cli): apply a rule document, show it, list versions, diff two versions,
explain a line or a group, coverage. The engine is app.allocation.engine; these commands only parse and print."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from app.cli_common import err, fail, out, progress, runtime

rules_app = typer.Typer(help="Allocation rules: apply a rule file, inspect versions, diff, explain, coverage.",
                        no_args_is_help=True)


def _print_json(data) -> None:
    from app.allocation.engine import jsonable

    print(json.dumps(jsonable(data), indent=2))


@rules_app.command("apply")
def rules_apply(
    file: Path = typer.Argument(..., help="Rule document (YAML or JSON): dimensions, tag_aliases, rules."),
    note: Optional[str] = typer.Option(None, "--note", help="Why the rules changed; kept with the version."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Validate FILE and make it the active version, re-allocating the billing periods whose effective rules it
    changes (one DuckDB transaction). On any error the previous version stays active and nothing changes."""
    from app.allocation import engine as alloc
    from app.allocation.rules import RulesInvalid

    try:
        text = file.read_text()
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}", 2)
    rt = runtime()
    try:
        with progress() as bar:
            task = bar.add_task("validating", total=1.0)
            result = alloc.apply(rt, text, note=note,
                                 progress=lambda msg, frac: bar.update(task, description=msg, completed=frac))
    except RulesInvalid as exc:
        for problem in exc.problems:
            err.print(f"[bold red]error:[/] {file}: {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    from app.rollups import refresh_rt

    refresh_rt(rt)  # the daily rollups of the periods the new version re-allocated
    if output == "json":
        _print_json(result.to_json())
        return
    view = result.to_json()
    if result.created:
        out.print(f"version {result.version} active ({result.rule_count} rules); re-allocated "
                  f"{', '.join(p[:7] for p in view['reallocated_periods']) or 'no period'}; kept "
                  f"{', '.join(p[:7] for p in view['kept_periods']) or 'no period'}", highlight=False)
    else:
        out.print(f"unchanged: version {result.version} already holds this document", highlight=False)


@rules_app.command("show")
def rules_show(output: str = typer.Option("yaml", "--output", help="yaml or json.")) -> None:
    """Print the active rule document."""
    import yaml

    from app.allocation import engine as alloc

    version, doc = alloc.active_document(runtime())
    if output == "json":
        _print_json({"version": version, "document": doc.raw})
        return
    print(f"# version {version}" if version else "# no rules applied yet")
    print(yaml.safe_dump(doc.raw, sort_keys=False, allow_unicode=True), end="")


@rules_app.command("versions")
def rules_versions(output: str = typer.Option("table", "--output", help="table or json.")) -> None:
    """List the rule versions, newest first."""
    from app.allocation import engine as alloc

    rows = alloc.list_versions(runtime())
    if output == "json":
        _print_json(rows)
        return
    table = Table(title="Allocation rule versions")
    for col in ("version", "active", "created", "rules", "re-allocated", "note"):
        table.add_column(col)
    for v in rows:
        table.add_row(str(v["version"]), "yes" if v["active"] else "", v["created_at"][:19], str(v["rule_count"]),
                      ", ".join(p[:7] for p in v["reallocated_periods"]), v["note"] or "")
    out.print(table)


@rules_app.command("diff")
def rules_diff(
    v1: int = typer.Argument(..., help="Earlier version."),
    v2: int = typer.Argument(..., help="Later version."),
    by: str = typer.Option("team", "--by", help="team, cost_center or service."),
    metric: str = typer.Option("EffectiveCost", "--metric", help="BilledCost, EffectiveCost, ListCost, ContractedCost."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Totals per billing period, currency and team (or --by) under V1 and V2, and what moved."""
    from app.allocation import engine as alloc
    from app.costs import cents_str
    from app.focus import COST_METRICS

    if by not in alloc.DIFF_KEYS or metric not in COST_METRICS:
        fail("--by must be team, cost_center or service; --metric a FOCUS cost metric", 2)
    rt = runtime()
    with rt.warehouse.connect(read_only=True) as con:
        try:
            d = alloc.diff(rt, con, v1, v2, by, metric)
        except alloc.VersionNotFound as exc:
            fail(str(exc))
    if output == "json":
        _print_json(d)
        return
    table = Table(title=f"{metric} by {by}: version {v1} → {v2} (only what moved)")
    for col in ("billing period", "currency", by, f"v{v1}", f"v{v2}", "moved"):
        table.add_column(col, justify="right" if col.startswith("v") or col == "moved" else "left")
    for r in d["moved"]:
        table.add_row(r["billing_period"][:7], r["currency"], str(r[by]), cents_str(r["from"]), cents_str(r["to"]),
                      cents_str(r["moved"]))
    out.print(table)


@rules_app.command("explain")
def rules_explain(
    line_id: Optional[int] = typer.Option(None, "--line-id", help="One line (x_LineId)."),
    team: Optional[str] = typer.Option(None, "--team", help="Group: parts of this team."),
    service: Optional[str] = typer.Option(None, "--service", help="Group: parts of this service dimension value."),
    cost_center: Optional[str] = typer.Option(None, "--cost-center", help="Group: parts of this cost center."),
    day: Optional[str] = typer.Option(None, "--day", help="Group: charges of this day (YYYY-MM-DD)."),
) -> None:
    """Which rule and version claimed a line (or a group), which tests were true, and how a split was computed
    (JSON, as GET /v1/allocation/explain)."""
    from app.allocation import engine as alloc
    from app.costs import QueryError, parse_date

    try:
        d = parse_date("day", day)
    except QueryError as exc:
        fail(f"--day: {exc.message}", 2)
    filters = {k: v for k, v in (("team", team), ("service", service), ("cost_center", cost_center)) if v}
    if line_id is None and not filters and d is None:
        fail("give --line-id, or a group with --team/--service/--cost-center and/or --day", 2)
    rt = runtime()
    with rt.warehouse.connect(read_only=True) as con:
        try:
            data = (alloc.explain_line(rt, con, line_id) if line_id is not None
                    else alloc.explain_group(rt, con, filters, d))
        except LookupError as exc:
            fail(str(exc))
    _print_json(data)


@rules_app.command("coverage")
def rules_coverage(
    start: Optional[str] = typer.Option(None, help="First day (YYYY-MM-DD or YYYY-MM). Default: all data."),
    end: Optional[str] = typer.Option(None, help="Day after the window (exclusive)."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """% of EffectiveCost allocated by rules, per provider and month (allocated + unallocated = total)."""
    from app.allocation import engine as alloc
    from app.costs import QueryError, cents_str, parse_date

    try:
        s, e = parse_date("start", start), parse_date("end", end)
    except QueryError as exc:
        fail(f"--{exc.parameter}: {exc.message}", 2)
    rt = runtime()
    with rt.warehouse.connect(read_only=True) as con:
        rows = alloc.coverage(con, s, e)
    if output == "json":
        _print_json(rows)
        return
    table = Table(title="Allocation coverage (EffectiveCost)")
    for col in ("month", "provider", "currency", "total", "allocated", "unallocated", "coverage"):
        table.add_column(col, justify="left" if col in ("month", "provider", "currency") else "right")
    for r in rows:
        table.add_row(r["period"][:7], r["provider"], r["currency"], cents_str(r["total"]), cents_str(r["allocated"]),
                      cents_str(r["unallocated"]), f"{r['coverage_pct']}%" if r["coverage_pct"] else "-")
    out.print(table)
