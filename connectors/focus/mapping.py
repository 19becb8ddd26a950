"""FOCUS file columns -> warehouse columns, as SQL. Also the raw reconciliation figures and row-level diagnostics.

Used by the FOCUS connector and by any provider whose export is already FOCUS (AWS FOCUS export, Azure FocusCost).
The happy path is two set-based scans: one computing raw counts and sums straight from the file, one inserting the
mapped rows. Only when a scan fails does `diagnose` read the file again, in order, to name the first bad row and
column.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

import duckdb

from app.focus import DECIMAL_SQL, ENUMS, MANDATORY, PROVIDER_COLUMNS, Column, lookup

_PROVIDER_BY_LOWER = {n.lower(): n for n in PROVIDER_COLUMNS}
from app.warehouse import LINE_COLUMN, StagedFile, Totals
from connectors.base import IngestError, PeriodStats
from connectors.focus.reader import OpenedFile, first_line, quote_ident, quote_str

TAGS_JSON_TYPE = "'\"MAP(VARCHAR, VARCHAR)\"'"
_INTEGER = re.compile(r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)$")
_NESTED = ("STRUCT", "MAP", "[]", "LIST", "UNION")
# Enumerations whose unknown values are an error, not a tolerance: the cost semantics hang on them.
STRICT_ENUMS = ("ChargeCategory",)


@dataclass
class ColumnPlan:
    column: Column
    source: str  # name in the file
    source_type: str  # DuckDB type in the file
    null_texts: tuple[str, ...] = ()  # extra text values that mean null in this column

    @property
    def ref(self) -> str:
        ref = quote_ident(self.source)
        for text in self.null_texts:
            ref = f"NULLIF({ref}, {quote_str(text)})"
        return ref


@dataclass
class FilePlan:
    opened: OpenedFile
    columns: dict[str, ColumnPlan]  # warehouse column name -> plan
    notes: list[str] = field(default_factory=list)
    normalize_enums: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> {variant: canonical}
    fills: dict[str, str] = field(default_factory=dict)  # column -> column whose value fills its nulls
    provider_columns: dict[str, str] = field(default_factory=dict)  # stored x_ column -> the file's column


# -- columns -----------------------------------------------------------------------------------------------------
def plan_columns(opened: OpenedFile, fills: dict[str, str] | None = None) -> FilePlan:
    """Match the file's columns to the catalogue; reject missing mandatory columns and unusable types.

    `fills` names columns whose nulls a provider's documented conformance gap lets us fill from another column
    (counted and reported in the ledger)."""
    plans: dict[str, ColumnPlan] = {}
    notes = list(opened.notes)
    ignored, custom, recased = [], [], []
    stored = {}
    for name, typ in opened.columns.items():
        col = lookup(name)
        if col is None:
            kept = _PROVIDER_BY_LOWER.get(name.lower())
            if kept and kept not in stored:
                stored[kept] = name
            else:
                (custom if name.lower().startswith("x_") else ignored).append(name)
            continue
        if col.name in plans:
            raise IngestError(
                f"columns {plans[col.name].source!r} and {name!r} both name FOCUS column {col.name}", file=opened.uri
            )
        if name != col.name:
            recased.append(f"{name}->{col.name}")
        _check_type(opened, col, name, typ)
        if fills and col.name in fills:
            col = replace(col, nullable=True)  # its nulls are filled, not refused
        plans[col.name] = ColumnPlan(col, name, typ)
    missing = [m for m in MANDATORY if m not in plans]
    if missing:
        hint = ""
        if any(n.lower().startswith(("lineitem/", "line_item_")) for n in opened.columns):
            hint = (" (this looks like an AWS Cost and Usage Report: add it as a source with "
                    "`cloudtally sources add NAME --provider aws --format cur|cur2 --location ...`)")
        raise IngestError(
            f"missing mandatory FOCUS column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}{hint}",
            file=opened.uri,
        )
    if recased:
        notes.append("column names matched ignoring case: " + ", ".join(recased))
    if ignored:
        notes.append("columns that are not FOCUS and lack the x_ prefix were ignored: " + ", ".join(ignored))
    if custom:
        notes.append("custom x_ columns not stored: " + ", ".join(custom))
    as_text = [p.source for p in plans.values() if p.column.kind == "string" and p.source_type != "VARCHAR"]
    if as_text:
        notes.append(f"non-text columns stored as text: {', '.join(as_text)}")
    floats = [p.source for p in plans.values() if p.column.kind == "decimal" and p.source_type in ("DOUBLE", "FLOAT")]
    if floats:
        notes.append(f"floating-point columns converted value by value to exact decimals through their shortest "
                     f"text form: {', '.join(floats)}")
    return FilePlan(opened, plans, notes, fills={k: v for k, v in (fills or {}).items() if k in plans and v in plans},
                    provider_columns=stored)


def _check_type(opened: OpenedFile, col: Column, name: str, typ: str) -> None:
    ok = True
    if col.kind == "decimal":
        ok = typ.startswith("DECIMAL") or typ in ("DOUBLE", "FLOAT", "VARCHAR") or bool(_INTEGER.match(typ))
    elif col.kind == "datetime":
        ok = typ.startswith("TIMESTAMP") or typ in ("DATE", "VARCHAR")
    elif col.kind == "tags":
        ok = typ == "VARCHAR" or typ.startswith("MAP(VARCHAR")
    elif col.kind == "json":
        ok = typ == "VARCHAR" or typ.startswith(("STRUCT", "MAP"))
    else:
        ok = not any(marker in typ for marker in _NESTED)
    if not ok:
        want = {"decimal": "a decimal number", "datetime": "a date-time", "tags": "a JSON object or a map"}.get(
            col.kind, "text"
        )
        raise IngestError(f"has type {typ} in the file; FOCUS needs {want}", file=opened.uri, column=name)


# -- expressions -------------------------------------------------------------------------------------------------
def value_expr(plan: ColumnPlan, normalize: dict[str, str] | None = None) -> str:
    """SQL turning the file's column into the warehouse column's exact type."""
    ref, typ, kind = plan.ref, plan.source_type, plan.column.kind
    if kind == "decimal":
        if typ in ("DOUBLE", "FLOAT"):
            return f"CAST(CAST({ref} AS VARCHAR) AS {DECIMAL_SQL})"
        return f"CAST({ref} AS {DECIMAL_SQL})"
    if kind == "datetime":
        return f"CAST({ref} AS TIMESTAMPTZ)"
    if kind == "tags":
        if typ == "VARCHAR":
            return f"CAST(json_transform({ref}, {TAGS_JSON_TYPE}) AS MAP(VARCHAR, VARCHAR))"
        return f"CAST({ref} AS MAP(VARCHAR, VARCHAR))"
    if kind == "json" and typ != "VARCHAR":
        return f"CAST(to_json({ref}) AS VARCHAR)"
    text = ref if typ == "VARCHAR" else f"CAST({ref} AS VARCHAR)"
    if normalize:
        cases = " ".join(f"WHEN {quote_str(k)} THEN {quote_str(v)}" for k, v in normalize.items())
        return f"CASE {text} {cases} ELSE NULLIF({text}, '') END"
    return f"NULLIF({text}, '')"


def _bad_value_checks(plan: ColumnPlan) -> list[tuple[str, str]]:
    """(SQL condition true on a bad row, message) for one column."""
    ref, kind, typ = plan.ref, plan.column.kind, plan.source_type
    out = []
    if not plan.column.nullable:
        out.append((f"{ref} IS NULL", "must not be empty"))
    if kind == "decimal" and typ in ("VARCHAR", "DOUBLE", "FLOAT"):
        inner = ref if typ == "VARCHAR" else f"CAST({ref} AS VARCHAR)"
        out.append((f"{ref} IS NOT NULL AND TRY_CAST({inner} AS {DECIMAL_SQL}) IS NULL", "is not a decimal number"))
    elif kind == "decimal":
        out.append((f"{ref} IS NOT NULL AND TRY_CAST({ref} AS {DECIMAL_SQL}) IS NULL", "does not fit DECIMAL(38,18)"))
    elif kind == "datetime" and typ == "VARCHAR":
        out.append((f"{ref} IS NOT NULL AND TRY_CAST({ref} AS TIMESTAMPTZ) IS NULL", "is not a date-time"))
    elif kind == "tags" and typ == "VARCHAR":
        out.append((
            f"{ref} IS NOT NULL AND TRY(json_transform({ref}, {TAGS_JSON_TYPE})) IS NULL",
            "is not a JSON object of tags",
        ))
    if plan.column.name in STRICT_ENUMS:
        allowed = ", ".join(quote_str(v.lower()) for v in ENUMS[plan.column.name])
        out.append((
            f"{ref} IS NOT NULL AND lower({ref}) NOT IN ({allowed})",
            f"is not one of {', '.join(ENUMS[plan.column.name])}",
        ))
    return out


# -- raw figures -------------------------------------------------------------------------------------------------
def raw_stats(con: duckdb.DuckDBPyConnection, plan: FilePlan) -> list[PeriodStats]:
    """Row counts and BilledCost/EffectiveCost sums per billing period, straight from the file.

    Also detects enumeration values that differ from FOCUS only by case (normalized on load, reported) and
    nulls in ListCost/ContractedCost (kept, reported).
    """
    cols = plan.columns
    start, end = cols["BillingPeriodStart"], cols["BillingPeriodEnd"]
    billed, effective = value_expr(cols["BilledCost"]), value_expr(cols["EffectiveCost"])
    enum_cols = [c for c in ENUMS if c in cols]
    extra = [
        f"count(*) FILTER (WHERE {cols[c].ref} IS NOT NULL AND {cols[c].ref} NOT IN "
        f"({', '.join(quote_str(v) for v in ENUMS[c])}))"
        for c in enum_cols
    ] + [f"count(*) FILTER (WHERE {cols[c].ref} IS NULL)" for c in ("ListCost", "ContractedCost")] + [
        f"count(*) FILTER (WHERE {cols[c].ref} IS NULL)" for c in plan.fills]
    sql = (
        f"SELECT {start.ref} AS p, TRY_CAST({start.ref} AS TIMESTAMPTZ), max(TRY_CAST({end.ref} AS TIMESTAMPTZ)), "
        f"count(*), sum({billed}), sum({effective}), {', '.join(extra)} "
        f"FROM {plan.opened.relation} GROUP BY p"
    )
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error as exc:
        raise diagnose(con, plan, exc) from exc
    periods: dict[datetime, PeriodStats] = {}
    odd = [0] * len(extra)
    for raw_start, start_ts, end_ts, n, b, e, *counts in rows:
        if start_ts is None or end_ts is None:
            raise diagnose(con, plan, None)
        odd = [a + c for a, c in zip(odd, counts)]
        got = periods.get(start_ts)
        totals = Totals(n, b or Decimal(0), e or Decimal(0))
        if got:
            got.raw = got.raw + totals
            got.period_end = max(got.period_end, end_ts)
        else:
            periods[start_ts] = PeriodStats(start_ts, end_ts, totals)
    for column, count in zip(enum_cols, odd):
        if count:
            _enum_variants(con, plan, column)
    for column, count in zip(("ListCost", "ContractedCost"), odd[len(enum_cols):]):
        if count:
            plan.notes.append(f"{column} is null on {count} rows (FOCUS requires a value); kept as null")
    for (column, source), count in zip(plan.fills.items(), odd[len(enum_cols) + 2:]):
        if count:
            plan.notes.append(f"{column} is null on {count} rows (a documented gap of this export); "
                              f"filled from {source}")
    return sorted(periods.values(), key=lambda p: p.period_start)


def _enum_variants(con: duckdb.DuckDBPyConnection, plan: FilePlan, column: str) -> None:
    ref = plan.columns[column].ref
    allowed = ENUMS[column]
    values = con.execute(
        f"SELECT {ref}, count(*) FROM {plan.opened.relation} WHERE {ref} IS NOT NULL "
        f"AND {ref} NOT IN ({', '.join(quote_str(v) for v in allowed)}) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    by_lower = {v.lower(): v for v in allowed}
    fixes, unknown = {}, []
    for value, count in values:
        canonical = by_lower.get(value.lower())
        if canonical:
            fixes[value] = canonical
            plan.notes.append(f"{column} {value!r} normalized to {canonical!r} on {count} rows")
        else:
            unknown.append(f"{value!r} ({count} rows)")
    if unknown:
        if column in STRICT_ENUMS:
            raise diagnose(con, plan, None)
        plan.notes.append(f"{column} has values outside FOCUS's list, kept as is: " + ", ".join(unknown))
    if fixes:
        plan.normalize_enums[column] = fixes


def staged_select(plan: FilePlan) -> StagedFile:
    exprs = []
    for name, p in plan.columns.items():
        expr = value_expr(p, plan.normalize_enums.get(name))
        if name in plan.fills:
            expr = f"coalesce({expr}, {value_expr(plan.columns[plan.fills[name]])})"
        exprs.append(f"{expr} AS {quote_ident(name)}")
    for name, source in plan.provider_columns.items():
        exprs.append(f"NULLIF(trim(CAST({quote_ident(source)} AS VARCHAR)), '') AS {quote_ident(name)}")
    # Lines numbered in parallel (StagedFile.line_count) when the relation reads exactly one file: DuckDB reads
    # *, ? and [ in a path as a glob, and file_row_number starts again in every file it matches.
    if plan.opened.kind == "parquet" and plan.opened.rows and not re.search(r"[*?\[]", plan.opened.uri):
        exprs.append(f"file_row_number AS {LINE_COLUMN}")
        return StagedFile(plan.opened.uri, f"SELECT {', '.join(exprs)} FROM {plan.opened.relation}",
                          line_count=plan.opened.rows)
    return StagedFile(plan.opened.uri, f"SELECT {', '.join(exprs)} FROM {plan.opened.relation}")


# -- diagnostics -------------------------------------------------------------------------------------------------
def diagnose(con: duckdb.DuckDBPyConnection, plan: FilePlan, exc: Exception | None,
             extra_checks: Sequence[tuple[ColumnPlan, str, str]] = ()) -> IngestError:
    """Find the first bad row and column of the file (reads it again, in order, single-threaded).

    `extra_checks` adds (column, SQL condition true on a bad row, message) for value forms a provider reads its own
    way (Azure's MM/dd/yyyy dates)."""
    checks = [(p, cond, msg) for p in plan.columns.values() for cond, msg in _bad_value_checks(p)]
    checks += list(extra_checks)
    labels = ", ".join(
        f"CASE WHEN {cond} THEN {quote_str(str(i))} END" for i, (_, cond, _) in enumerate(checks)
    )
    sql = (
        f"SELECT __row, list_filter([{labels}], lambda x: x IS NOT NULL)[1] AS bad "
        f"FROM {plan.opened.ordered_relation()} WHERE bad IS NOT NULL ORDER BY __row LIMIT 1"
    )
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    try:
        con.execute("SET threads = 1")
        found = con.execute(sql).fetchone()
    except duckdb.Error as exc2:  # the file itself is unreadable (truncated gzip, broken CSV structure)
        return IngestError(first_line(exc or exc2), file=plan.opened.uri)
    finally:
        con.execute(f"SET threads = {int(threads)}")
    if found is None:
        return IngestError(first_line(exc) if exc else "unreadable value", file=plan.opened.uri)
    row, index = found
    p, _, msg = checks[int(index)]
    value = con.execute(
        f"SELECT CAST({p.ref} AS VARCHAR) FROM {plan.opened.ordered_relation()} WHERE __row = ?", [row]
    ).fetchone()[0]
    shown = "" if value is None else f"{value[:80]!r} "
    return IngestError(f"{shown}{msg}", file=plan.opened.uri, row=int(row), column=p.source)
