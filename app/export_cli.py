"""`cloudtally export …` (registered in app.cli): the warehouse as a FOCUS file (app.export) or a FOCUS Parquet
lake (app.lake), and the DDL that registers that lake in a query engine."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from app.cli_common import fail, month_option, out, parse_options, progress, runtime

export_app = typer.Typer(help="Write warehouse data out in open formats.", no_args_is_help=True)


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
    from app.export import FORMATS, export_focus as run_export

    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    if focus_version not in ("1.2", "1.3"):
        fail("--focus-version must be 1.2 or 1.3", 2)
    start = month_option("billing-period", billing_period)
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
    options = parse_options(option)
    rt = runtime()
    try:
        with progress() as bar, rt.warehouse.connect(read_only=True) as con:
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

