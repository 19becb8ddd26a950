"""Opening FOCUS files: CSV (plain or gzip) and Parquet, as DuckDB relations with their column names and types.

Everything here fails with an IngestError naming the file (and row/column where the file has one).
"""
from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from dataclasses import dataclass, field

import duckdb

from connectors.base import IngestError, LocalFile

DATA_SUFFIXES = (".csv", ".csv.gz", ".gz", ".parquet", ".snappy.parquet")
NULL_LITERALS = ("NULL", "null")  # real exports write these for nulls (FinOps Foundation sample, spec examples)
SAMPLE_ROWS = 200


def is_data_file(name: str) -> bool:
    return name.lower().endswith(DATA_SUFFIXES)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class OpenedFile:
    """A raw file as a DuckDB relation: the FROM clause, its columns and their DuckDB types."""

    uri: str
    kind: str  # csv | parquet
    relation: str
    columns: dict[str, str]  # name -> DuckDB type, in file order
    row_number: str  # expression giving the 1-based data-row number, for diagnostics
    notes: list[str] = field(default_factory=list)
    rows: int | None = None  # the data-row count, when the format tells it without a scan (Parquet metadata)

    def ordered_relation(self) -> str:
        """The relation with a __row column, read in file order (slow; for diagnostics only)."""
        if self.kind == "parquet":
            return f"(SELECT file_row_number + 1 AS __row, * FROM {self.relation})"
        return f"(SELECT row_number() OVER () AS __row, * FROM {self.relation})"


def open_file(con: duckdb.DuckDBPyConnection, file: LocalFile) -> OpenedFile:
    if file.size == 0:
        raise IngestError("file is empty (0 bytes)", file=file.uri)
    with open(file.path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        return _open_parquet(con, file)
    name = file.uri.lower()
    if name.endswith(".parquet"):
        raise IngestError("named .parquet but is not a Parquet file", file=file.uri)
    return _open_csv(file, gzipped=magic[:2] == b"\x1f\x8b")


# -- CSV ---------------------------------------------------------------------------------------------------------
def _open_csv(file: LocalFile, gzipped: bool) -> OpenedFile:
    header, sample = _read_csv_head(file, gzipped)
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in seen:
            raise IngestError(
                f"duplicate column name {name!r} (columns {seen[name] + 1} and {i + 1})", file=file.uri, row=0
            )
        seen[name] = i
    if not sample:
        raise IngestError("file has a header but no data rows", file=file.uri)
    columns = {name: "VARCHAR" for name in header}
    col_spec = "{" + ", ".join(f"{quote_str(n)}: 'VARCHAR'" for n in header) + "}"
    nulls = "[" + ", ".join(quote_str(v) for v in ("", *NULL_LITERALS)) + "]"
    relation = (
        f"read_csv({quote_str(str(file.path))}, header = true, auto_detect = false, delim = ',', quote = '\"', "
        f"escape = '\"', columns = {col_spec}, nullstr = {nulls}, strict_mode = true, "
        f"compression = {quote_str('gzip' if gzipped else 'none')}, hive_partitioning = false)"
    )
    notes = []
    literal = sorted({v for row in sample for v in row if v in NULL_LITERALS})
    if literal:
        notes.append(f"nulls written as the literal {' / '.join(literal)} were read as null")
    return OpenedFile(file.uri, "csv", relation, columns, "row_number() OVER ()", notes)


def _read_csv_head(file: LocalFile, gzipped: bool) -> tuple[list[str], list[list[str]]]:
    """The header and the first rows, read with Python's csv module (BOM-tolerant), with delimiter checks."""
    try:
        raw = gzip.open(file.path, "rb") if gzipped else open(file.path, "rb")
        with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
            first = text.readline()
            rest = [line for _, line in zip(range(SAMPLE_ROWS), text)]
    except (EOFError, OSError, zlib.error) as exc:
        raise IngestError(f"cannot decompress: gzip data is truncated or corrupt ({exc})", file=file.uri) from exc
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=file.uri) from exc
    if not first.strip():
        raise IngestError("file has no header line", file=file.uri)
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    if best != "," and counts[best] > counts[","]:
        shown = {"\t": "tab"}.get(best, repr(best))
        raise IngestError(
            f"fields are separated by {shown}, not commas; FOCUS CSV files must be comma-separated",
            file=file.uri,
            row=0,
        )
    try:
        rows = list(csv.reader([first, *rest]))
    except csv.Error as exc:
        raise IngestError(f"malformed CSV near the start: {exc}", file=file.uri) from exc
    header = [h.strip() for h in rows[0]]
    if any(not h for h in header):
        raise IngestError(f"empty column name at position {header.index('') + 1}", file=file.uri, row=0)
    return header, [r for r in rows[1:] if r]


# -- Parquet -----------------------------------------------------------------------------------------------------
def _open_parquet(con: duckdb.DuckDBPyConnection, file: LocalFile) -> OpenedFile:
    # Folder names such as billing_period=2026-10 are layout, not data: no hive partition columns.
    relation = f"read_parquet({quote_str(str(file.path))}, file_row_number = true, hive_partitioning = false)"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        rows = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    except duckdb.Error as exc:
        raise IngestError(f"not a readable Parquet file: {first_line(exc)}", file=file.uri) from exc
    columns = {name: typ for name, typ, *_ in described if name != "file_row_number"}
    if rows == 0:
        raise IngestError("file has a schema but no data rows", file=file.uri)
    # Hide DuckDB's row-number column from the mapping; keep it for diagnostics.
    return OpenedFile(file.uri, "parquet", relation, columns, "file_row_number + 1", rows=rows)


def first_line(exc: Exception) -> str:
    """DuckDB's error text, condensed to one line: the message, or for CSV errors the line and the reason."""
    text = str(exc)
    if "GZIP" in text or "gzip" in text:
        return "cannot decompress: gzip data is truncated or corrupt"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    m = re.search(r"CSV Error on Line: (\d+)", text)
    if m:
        # DuckDB's layout: the error line, "Original Line: ...", the reason, then "Possible fixes:" and options.
        body = lines[1:lines.index("Possible fixes:")] if "Possible fixes:" in lines else lines[1:]
        reason = next((ln for ln in body if not ln.startswith("Original Line")), "")
        return f"CSV error on line {m.group(1)}: {reason}".rstrip(": ")
    return re.sub(r"^[A-Za-z ]+Error: ", "", lines[0])
