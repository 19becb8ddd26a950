"""FOCUS export: the warehouse as a FOCUS 1.2 (or 1.3) Cost and Usage file plus its FOCUS metadata.

Typed Parquet by default (IDs as strings, periods as UTC timestamps, costs as DECIMAL(38,18), Tags and other
key-value columns as JSON text), which is what the FinOps Foundation's validator reads without type-inference
surprises. Mandatory columns are always written; other columns only where at least one exported row has a value
(an absent conditional column says "not supported by this data", an all-null one would claim the opposite), unless
`all_columns` asks for every column of the FOCUS version (for tools that expect the full column set).
Tag values are strings: the warehouse keeps tags as MAP(VARCHAR, VARCHAR), so a valueless tag that a source wrote
as JSON `true` is exported as the string "true".
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from app import __version__
from app.focus import BY_NAME, DECIMAL_SCALE, LINEAGE_COLUMNS, PROVIDER_COLUMNS, V12_COLUMNS, V13_COLUMNS
from app.warehouse import COST_TABLE

FORMATS = ("parquet", "csv")
_FOCUS_TYPE = {"string": "String", "decimal": "Decimal", "datetime": "Date/Time", "json": "JSON", "tags": "JSON"}


@dataclass
class ExportResult:
    data_file: Path
    metadata_file: Path
    rows: int
    columns: list[str]


def _select_expr(name: str, fmt: str) -> str:
    col = BY_NAME.get(name)
    ident = f'"{name}"'
    if col is not None and col.kind == "tags":
        return f"CAST(to_json({ident}) AS VARCHAR) AS {ident}"
    if fmt == "csv" and (name == "x_IngestedAt" or (col is not None and col.kind == "datetime")):
        return f"strftime({ident}, '%Y-%m-%dT%H:%M:%SZ') AS {ident}"
    return ident


def export_focus(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    fmt: str = "parquet",
    focus_version: str = "1.2",
    source: str | None = None,
    billing_period: datetime | None = None,
    all_columns: bool = False,
) -> ExportResult:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    names = V13_COLUMNS if focus_version == "1.3" else V12_COLUMNS
    where, params = ["TRUE"], []
    if source:
        where.append("x_SourceId = ?")
        params.append(source)
    if billing_period:
        where.append("BillingPeriodStart = ?")
        params.append(billing_period)
    where_sql = " AND ".join(where)
    non_null = ", ".join(f'count("{n}")' for n in names + PROVIDER_COLUMNS)
    counts = con.execute(f"SELECT count(*), {non_null} FROM {COST_TABLE} WHERE {where_sql}", params).fetchone()
    rows, per_column = counts[0], dict(zip(names + PROVIDER_COLUMNS, counts[1:]))
    keep = [n for n in names if all_columns or BY_NAME[n].mandatory or per_column[n] > 0]
    # Custom x_ columns: the provider columns that hold something (all with --all-columns), then lineage.
    lineage = [n for n in PROVIDER_COLUMNS if all_columns or per_column[n] > 0] + [n for n, _ in LINEAGE_COLUMNS]
    columns = keep + lineage
    out_dir.mkdir(parents=True, exist_ok=True)
    data_file = out_dir / f"focus_cost_and_usage.{fmt}"
    tmp = data_file.with_name(data_file.name + ".tmp")
    select = f"SELECT {', '.join(_select_expr(n, fmt) for n in columns)} FROM {COST_TABLE} WHERE {where_sql} " \
             f"ORDER BY BillingPeriodStart, ChargePeriodStart, x_SourceId, rowid"  # rowid: same data, same file
    options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER true"
    target = str(tmp).replace("'", "''")
    con.execute(f"COPY ({select}) TO '{target}' ({options})", params)
    tmp.replace(data_file)
    metadata_file = out_dir / "focus_metadata.json"
    metadata_file.write_text(json.dumps(_metadata(keep, lineage, focus_version), indent=2) + "\n")
    return ExportResult(data_file, metadata_file, rows, columns)


def _metadata(focus_columns: list[str], lineage: list[str], focus_version: str) -> dict:
    """FOCUS metadata (specification/metadata): data generator, schema and column definitions."""
    definitions = []
    for name in focus_columns:
        col = BY_NAME[name]
        d = {"ColumnName": name, "DataType": _FOCUS_TYPE[col.kind]}
        if col.kind == "decimal":
            d.update({"NumericPrecision": 38, "NumberScale": DECIMAL_SCALE})
        if col.kind in ("string", "json", "tags"):
            d["StringEncoding"] = "UTF-8"
        if name == "Tags":
            d["ProviderTagPrefixes"] = ["aws:", "microsoft:", "goog-", "oci:"]
        definitions.append(d)
    for name in lineage:
        definitions.append({"ColumnName": name, "DataType": "Date/Time" if name == "x_IngestedAt" else "String"})
    schema_id = hashlib.sha256(json.dumps([focus_version, definitions]).encode()).hexdigest()[:32]
    return {
        "DataGenerator": {"DataGenerator": "CloudTally"},
        "Schema": {
            "SchemaId": schema_id,
            "FocusVersion": focus_version,
            "CreationDate": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "DataGeneratorVersion": __version__,
            "ColumnDefinition": definitions,
        },
    }

