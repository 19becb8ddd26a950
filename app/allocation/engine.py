"""Applying rule versions to the warehouse, and reading the result back: versions, diff, explain, coverage.

Which periods a new version re-allocates: for every billing period in the warehouse (BillingPeriodStart), the
*effective rule set* is the document's dimensions and tag aliases plus, in order, every rule whose effective window
[effective_from, effective_to) meets the period's charge periods (its min..max ChargePeriodStart). Its sha256 is
stored per period (table allocation_periods) when the period is allocated. Applying a version re-allocates exactly
the periods whose fingerprint under the new document differs from the stored one (a rule added, removed, edited or
moved whose window overlaps the period, or changed dimensions/aliases: all periods), plus periods never allocated.
The others keep their parts and their rule_version. All of it happens in one DuckDB transaction; the control
database marks the new version active only after that transaction committed, and any error (validation or SQL)
leaves the previous version active and the warehouse as it was.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

import duckdb
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.allocation.compile import ALLOCATION_TABLE, compile_allocation
from app.allocation.matcher import choose_lookup_line_columns, lookup_line_columns_query
from app.allocation.rules import (
    EMPTY,
    BUILTIN_DIMENSIONS,
    QUANTITY_METRICS,
    Even,
    Percent,
    RuleDocument,
    RulesInvalid,
    checksum,
    parse_data,
    parse_document,
)
from app.allocation.sql import Tags, leaf_columns, line_relation, lit, window_sql
from app.control import AllocationRuleVersion
from app.focus import COST_METRICS
from app.warehouse import COST_TABLE, _execute_with_progress

log = logging.getLogger(__name__)
Progress = Callable[[str, float], None]


class VersionNotFound(LookupError):
    pass


@dataclass
class ApplyResult:
    version: int
    created: bool  # False: the document equals the active version's
    reallocated: list[datetime] = field(default_factory=list)
    kept: list[datetime] = field(default_factory=list)
    rule_count: int = 0

    def to_json(self) -> dict:
        return {"version": self.version, "created": self.created, "rule_count": self.rule_count,
                "reallocated_periods": [_day(p) for p in self.reallocated],
                "kept_periods": [_day(p) for p in self.kept]}


def _day(ts: datetime | date) -> str:
    return (ts.date() if isinstance(ts, datetime) else ts).isoformat()


# -- versions in the control database -------------------------------------------------------------------------------
def active(session: Session) -> AllocationRuleVersion | None:
    return session.scalar(select(AllocationRuleVersion).where(AllocationRuleVersion.active.is_(True))
                          .order_by(AllocationRuleVersion.id.desc()))


def document_of(version: AllocationRuleVersion | None) -> RuleDocument:
    return EMPTY if version is None else _parsed(version.document)


@lru_cache(maxsize=8)
def _parsed(text: str) -> RuleDocument:
    """A stored version's document, parsed once per process (RuleDocument is frozen): the API asks for the active
    document's dimensions on every cost query, and parsing costs milliseconds."""
    return parse_document(text)


def active_document(rt) -> tuple[int, RuleDocument]:
    with rt.sessions() as session:
        v = active(session)
        return (v.id, document_of(v)) if v is not None else (0, EMPTY)


def get_version(session: Session, version: int) -> AllocationRuleVersion:
    v = session.get(AllocationRuleVersion, version)
    if v is None:
        raise VersionNotFound(f"no rule version {version}")
    return v


def version_view(v: AllocationRuleVersion) -> dict:
    return {"version": v.id, "created_at": v.created_at.isoformat().replace("+00:00", "Z"), "note": v.note,
            "checksum": v.checksum, "active": v.active, "rule_count": v.rule_count,
            "reallocated_periods": v.periods}


def list_versions(rt) -> list[dict]:
    with rt.sessions() as session:
        return [version_view(v) for v in session.scalars(
            select(AllocationRuleVersion).order_by(AllocationRuleVersion.id.desc()))]


# -- applying -------------------------------------------------------------------------------------------------------
def period_bounds(con: duckdb.DuckDBPyConnection) -> dict[datetime, tuple[datetime, datetime]]:
    return {p: (lo, hi) for p, lo, hi in con.execute(
        f"SELECT BillingPeriodStart, min(ChargePeriodStart), max(ChargePeriodStart) FROM {COST_TABLE} "
        "GROUP BY 1 ORDER BY 1").fetchall()}


def apply(rt, document: str | dict, note: str | None = None, progress: Progress | None = None) -> ApplyResult:
    """Validate `document` (YAML/JSON text or parsed data), make it the active version and re-allocate the periods
    whose effective rules it changes. Raises RulesInvalid (nothing changed) or the database error (rolled back)."""
    doc = parse_document(document) if isinstance(document, str) else parse_data(document)
    text = doc.to_text()
    digest = checksum(text)
    report = progress or (lambda _m, _f: None)
    with rt.sessions() as session, rt.warehouse.connect() as con:
        current = active(session)
        bounds = period_bounds(con)
        stored = dict(con.execute("SELECT BillingPeriodStart, fingerprint FROM allocation_periods").fetchall())
        affected = [p for p, (lo, hi) in bounds.items() if stored.get(p) != doc.fingerprint(lo, hi)]
        stale = [p for p in stored if p not in bounds]  # periods whose lines are all gone
        if current is not None and current.checksum == digest:
            if affected or stale:  # e.g. an allocation an ingest could not finish: redo it under this version
                report("re-allocating", 0.0)
                _allocate(con, doc, current.id, affected + stale, bounds, new_version=False, progress=progress)
            return ApplyResult(current.id, False, affected, [p for p in bounds if p not in affected], len(doc.rules))
        new = AllocationRuleVersion(note=note, document=text, checksum=digest, active=False,
                                    rule_count=len(doc.rules), periods=[_day(p) for p in affected])
        session.add(new)
        session.flush()
        try:
            report(f"allocating {len(affected)} billing period(s)", 0.0)
            _allocate(con, doc, new.id, affected + stale, bounds, new_version=True, progress=progress)
        except BaseException:
            session.rollback()
            raise
        session.execute(update(AllocationRuleVersion).where(AllocationRuleVersion.id != new.id)
                        .values(active=False))
        new.active = True
        session.commit()
        report("done", 1.0)
        return ApplyResult(new.id, True, affected, [p for p in bounds if p not in affected], len(doc.rules))


def allocate_periods(rt, con: duckdb.DuckDBPyConnection, periods: list[datetime]) -> int:
    """Re-allocate `periods` (after an ingest replaced lines in them) under the active version (0 and no rules when
    none was applied yet). Returns the version used."""
    version, doc = active_document(rt)
    bounds = period_bounds(con)
    _allocate(con, doc, version, sorted(set(periods)), bounds, new_version=False)
    return version


def _allocate(con, doc: RuleDocument, version: int, periods: list[datetime], bounds, *, new_version: bool,
              progress: Progress | None = None) -> None:
    now = datetime.now(timezone.utc)
    in_periods = ", ".join("?" for _ in periods)
    compiled = compile_allocation(doc, version, periods, _lookup_line_columns(con, doc, periods)) if periods else None
    con.execute("SET preserve_insertion_order = false")
    con.begin()
    try:
        if periods:
            con.execute(f"DELETE FROM {ALLOCATION_TABLE} WHERE BillingPeriodStart IN ({in_periods})", periods)
            if progress is None:
                con.execute(compiled.sql, compiled.params)
            else:
                _execute_with_progress(con, compiled.sql, compiled.params, lambda f: progress("allocating", f * 0.9))
        # One pass over the parts: their sums per period and totals key (the version snapshot), from which both
        # the check and allocation_totals are read.
        totals = new_version or bool(periods and version)
        if periods or totals:
            where = "" if new_version else f" WHERE BillingPeriodStart IN ({in_periods})"
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {SUMS} AS SELECT BillingPeriodStart, ProviderName, BillingCurrency, "
                "team, cost_center, service, count(*) FILTER (WHERE part = 1) AS first_parts, "
                + ", ".join(f"sum({m}) AS {m}" for m in COST_METRICS)
                + f" FROM {ALLOCATION_TABLE}{where} GROUP BY ALL", [] if new_version else periods)
        if periods:
            _check(con, periods)
            con.execute(f"DELETE FROM allocation_periods WHERE BillingPeriodStart IN ({in_periods})", periods)
            rows = [(p, version, doc.fingerprint(*bounds[p]), now) for p in periods if p in bounds]
            if rows:
                con.executemany("INSERT INTO allocation_periods VALUES (?, ?, ?, ?)", rows)
        if totals:
            if not new_version:
                con.execute(f"DELETE FROM allocation_totals WHERE version = ? AND BillingPeriodStart IN ({in_periods})",
                            [version, *periods])
            con.execute(f"INSERT INTO allocation_totals SELECT ?, BillingPeriodStart, ProviderName, BillingCurrency, "
                        f"team, cost_center, service, {', '.join(COST_METRICS)} FROM {SUMS}", [version])
        con.execute("UPDATE warehouse_state SET data_version = data_version + 1")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS {SUMS}")
        con.execute("RESET preserve_insertion_order")


SUMS = "__allocation_sums"  # temporary: the parts' sums per period and totals key, while an allocation commits


def _lookup_line_columns(con, doc: RuleDocument, periods: list[datetime]) -> frozenset[str]:
    """The per-line columns (ResourceId, ...) whose values repeat enough among the lines of `periods` for the
    matcher to test each distinct value once instead of each line (one approximate count per column)."""
    query = lookup_line_columns_query(doc, f"c.BillingPeriodStart IN ({', '.join('?' for _ in periods)})")
    if query is None:
        return frozenset()
    sql, cols = query
    return choose_lookup_line_columns(con.execute(sql, periods).fetchone(), cols)


class AllocationMismatch(RuntimeError):
    """The parts do not add up to the lines (a bug, never expected): the allocation was rolled back."""


def _check(con, periods: list[datetime]) -> None:
    """Per period: one first part per line, and the parts' sums (read from the SUMS table the caller just built from
    the parts) equal the lines' sums for every metric."""
    in_periods = ", ".join("?" for _ in periods)
    sums = ", ".join(f"sum({m})" for m in COST_METRICS)
    lines = dict((r[0], r[1:]) for r in con.execute(
        f"SELECT BillingPeriodStart, count(*), {sums} FROM {COST_TABLE} WHERE BillingPeriodStart IN ({in_periods}) "
        "GROUP BY 1", periods).fetchall())
    parts = dict((r[0], r[1:]) for r in con.execute(
        f"SELECT BillingPeriodStart, CAST(sum(first_parts) AS BIGINT), {sums} FROM {SUMS} "
        f"WHERE BillingPeriodStart IN ({in_periods}) GROUP BY 1", periods).fetchall())
    for p, expected in lines.items():
        if parts.get(p) != expected:
            raise AllocationMismatch(f"allocation of {_day(p)} does not add up: lines {expected} vs parts "
                                     f"{parts.get(p)}")


def after_ingest(rt, con: duckdb.DuckDBPyConnection, periods: list[datetime]) -> str | None:
    """Allocate freshly loaded periods; a failure is logged and returned (the delivery itself stands), and the
    periods are marked unallocated so the next `rules apply` redoes them."""
    try:
        allocate_periods(rt, con, periods)
        return None
    except Exception as exc:  # noqa: BLE001 - reported, never hides the loaded delivery
        log.exception("allocation after ingest failed")
        try:
            con.execute(f"DELETE FROM allocation_periods WHERE BillingPeriodStart IN "
                        f"({', '.join('?' for _ in periods)})", periods)
        except duckdb.Error:
            pass
        return f"allocation failed: {exc}"


# -- reading --------------------------------------------------------------------------------------------------------
def _pct(part: Decimal | None, whole: Decimal | None) -> str | None:
    if whole is None or whole == 0:
        return None
    return str((Decimal(part or 0) * 100 / whole).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _ts(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def coverage(con: duckdb.DuckDBPyConnection, start: date | None = None, end: date | None = None,
             granularity: str = "month") -> list[dict]:
    """Per provider, period (month or day of ChargePeriodStart) and currency: EffectiveCost total (from the lines),
    allocated and unallocated (from the parts), and the % allocated."""
    trunc = "day" if granularity == "day" else "month"
    where, params = ["true"], []
    if start:
        where.append("ChargePeriodStart >= ?")
        params.append(_ts(start))
    if end:
        where.append("ChargePeriodStart < ?")
        params.append(_ts(end))
    w = " AND ".join(where)
    rows = con.execute(
        f"WITH t AS (SELECT ProviderName, CAST(date_trunc('{trunc}', ChargePeriodStart) AS DATE) AS period, "
        f"BillingCurrency, sum(EffectiveCost) AS total FROM {COST_TABLE} WHERE {w} GROUP BY ALL), "
        f"a AS (SELECT ProviderName, CAST(date_trunc('{trunc}', ChargePeriodStart) AS DATE) AS period, "
        "BillingCurrency, sum(EffectiveCost) FILTER (WHERE rule_name IS NOT NULL) AS allocated, "
        f"sum(EffectiveCost) FILTER (WHERE rule_name IS NULL) AS unallocated FROM {ALLOCATION_TABLE} WHERE {w} "
        "GROUP BY ALL) "
        "SELECT t.ProviderName, t.period, t.BillingCurrency, t.total, a.allocated, a.unallocated "
        "FROM t LEFT JOIN a USING (ProviderName, period, BillingCurrency) ORDER BY 2, 1, 3", params + params,
    ).fetchall()
    out = []
    for provider, period, currency, total, allocated, unallocated in rows:
        allocated, unallocated = allocated or Decimal(0), unallocated or Decimal(0)
        out.append({"provider": provider, "period": period.isoformat(), "currency": currency, "total": total,
                    "allocated": allocated, "unallocated": unallocated,
                    "not_allocated_yet": total - allocated - unallocated,
                    "coverage_pct": _pct(allocated, total)})
    return out


DIFF_KEYS = ("team", "cost_center", "service")


def diff(rt, con: duckdb.DuckDBPyConnection, v_from: int, v_to: int, by: str = "team",
         metric: str = "EffectiveCost") -> dict:
    """Totals per billing period, currency and `by` under two versions, and what moved (to - from)."""
    if by not in DIFF_KEYS:
        raise ValueError(f"by must be one of {', '.join(DIFF_KEYS)}")
    with rt.sessions() as session:
        for v in (v_from, v_to):
            get_version(session, v)
    m = f'"{metric}"'
    rows = con.execute(
        f"WITH a AS (SELECT BillingPeriodStart, BillingCurrency, {by} AS k, sum({m}) AS amount FROM allocation_totals "
        f"WHERE version = ? GROUP BY ALL), b AS (SELECT BillingPeriodStart, BillingCurrency, {by} AS k, "
        f"sum({m}) AS amount FROM allocation_totals WHERE version = ? GROUP BY ALL) "
        "SELECT coalesce(a.BillingPeriodStart, b.BillingPeriodStart) p, coalesce(a.BillingCurrency, b.BillingCurrency) c,"
        " coalesce(a.k, b.k) k, a.amount, b.amount FROM a FULL OUTER JOIN b ON a.BillingPeriodStart = "
        "b.BillingPeriodStart AND a.BillingCurrency = b.BillingCurrency AND a.k IS NOT DISTINCT FROM b.k "
        "ORDER BY 1, 2, 3 NULLS LAST", [v_from, v_to]).fetchall()
    out = []
    for p, cur, k, a, b in rows:
        a, b = a or Decimal(0), b or Decimal(0)
        out.append({"billing_period": _day(p), "currency": cur, by: k, "from": a, "to": b, "moved": b - a})
    return {"from": v_from, "to": v_to, "by": by, "metric": metric, "rows": out,
            "moved": [r for r in out if r["moved"] != 0]}


def _leaf_truths(con, doc: RuleDocument, rule, where: str, params: list) -> list[dict]:
    """Each leaf test of `rule` re-evaluated in SQL over the lines selected by `where`: how many were true."""
    tags = Tags(doc)
    tests = leaf_columns(rule, tags)
    window = window_sql(rule) or "true"
    if not tests:
        counts = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {window}) FROM ({line_relation(doc, tags, where)})",
                             params).fetchone()
        return [{"test": "effective window", "true_for": counts[1], "lines": counts[0]}]
    cols = ", ".join(f"count(*) FILTER (WHERE {sql})" for _, sql in tests)
    counts = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {window}), {cols} FROM ({line_relation(doc, tags, where)})",
        params).fetchone()
    total = counts[0]
    out = [{"test": "effective window", "true_for": counts[1], "lines": total}]
    out += [{"test": leaf.describe(), "path": leaf.path, "true_for": n, "lines": total}
            for (leaf, _), n in zip(tests, counts[2:])]
    return out


def _split_view(con, doc: RuleDocument, rule, period: datetime, currency: str) -> dict | None:
    split = rule.split
    if split is None:
        return None
    if isinstance(split, Even):
        return {"kind": "even", "targets": list(split.targets)}
    if isinstance(split, Percent):
        return {"kind": "percent", "targets": [{"set": t, "percent": str(p)} for t, p in split.parts]}
    tags = Tags(doc)
    from app.allocation.sql import condition_sql

    where = condition_sql(split.where, tags)
    plain = [r.name for r in doc.rules if r.split is None]
    value = split.dimension if split.dimension in BUILTIN_DIMENSIONS else f"dims[{lit(split.dimension)}]"
    drivers = []
    if plain:
        relation = line_relation(doc, tags, "c.BillingPeriodStart = ? AND c.BillingCurrency = ?")
        cols = f"x_LineId AS lid, ({where}) AS w"
        if split.unit is None:  # a cost driver: the plain rule's part (the whole line's amount)
            amount, keep, params = f'a."{split.metric}"', "", []
        else:  # a usage driver: the line's quantity, in the rule's unit only (a plain rule's line has one part)
            cols += f', "{split.metric}" AS q, "{QUANTITY_METRICS[split.metric]}" AS u'
            amount, keep, params = "c.q", " AND c.u = ?", [split.unit]
        rows = con.execute(
            f"SELECT a.{value} AS v, sum({amount}) FROM {ALLOCATION_TABLE} a JOIN "
            f"(SELECT {cols} FROM ({relation})) c ON c.lid = a.x_LineId "
            f"WHERE c.w{keep} AND a.rule_name IN ({', '.join('?' for _ in plain)}) AND a.{value} IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC, 1", [period, currency, *params, *plain]).fetchall()
        drivers = [{"value": v, "amount": a} for v, a in rows if a > 0]
    total = sum((d["amount"] for d in drivers), Decimal(0))
    return {"kind": "proportional", "dimension": split.dimension, "metric": split.metric,
            **({"unit": split.unit} if split.unit else {}),
            "billing_period": _day(period), "currency": currency, "driver_total": total, "drivers": drivers}


def explain_line(rt, con: duckdb.DuckDBPyConnection, line_id: int) -> dict:
    line = con.execute(
        f"SELECT x_LineId, x_SourceId, ProviderName, BillingAccountId, SubAccountId, ServiceName, ServiceCategory, "
        f"RegionId, ResourceId, SkuId, ChargeCategory, ChargePeriodStart, BillingPeriodStart, BillingCurrency, "
        f"CAST(Tags AS JSON), BilledCost, EffectiveCost, ListCost, ContractedCost FROM {COST_TABLE} "
        "WHERE x_LineId = ?", [line_id]).fetchone()
    if line is None:
        raise LookupError(f"no line {line_id}")
    names = ["line_id", "source", "ProviderName", "BillingAccountId", "SubAccountId", "ServiceName", "ServiceCategory",
             "RegionId", "ResourceId", "SkuId", "ChargeCategory", "ChargePeriodStart", "BillingPeriodStart",
             "BillingCurrency", "Tags", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost"]
    view = dict(zip(names, line))
    view["Tags"] = json.loads(view["Tags"]) if view["Tags"] else None
    parts = _parts(con, "x_LineId = ?", [line_id])
    out: dict[str, Any] = {"line": view, "parts": parts}
    if not parts:
        out["rule"] = None
        out["reason"] = "not allocated yet (apply rules or re-ingest)"
        return out
    version, rule_name = parts[0]["rule_version"], parts[0]["rule_name"]
    out.update({"version": version, "rule": rule_name, "reason": parts[0]["reason"]})
    if version and rule_name:
        with rt.sessions() as session:
            doc = document_of(get_version(session, version))
        rule = doc.rule(rule_name)
        out["rule_position"] = doc.rules.index(rule) + 1
        out["rule_document"] = rule.raw
        out["tests"] = [{k: v for k, v in t.items() if k not in ("lines",)} | {"true": t["true_for"] == 1}
                        for t in _leaf_truths(con, doc, rule, "c.x_LineId = ?", [line_id])]
        out["split"] = _split_view(con, doc, rule, view["BillingPeriodStart"], view["BillingCurrency"])
    return out


def _parts(con, where: str, params: list, limit: int = 1000) -> list[dict]:
    cols = ["x_LineId", "part", "rule_name", "rule_version", "team", "service", "cost_center", "environment",
            "CAST(dims AS JSON)", "share", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "reason"]
    keys = ["line_id", "part", "rule_name", "rule_version", "team", "service", "cost_center", "environment", "dims",
            "share", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "reason"]
    rows = con.execute(f"SELECT {', '.join(cols)} FROM {ALLOCATION_TABLE} WHERE {where} ORDER BY x_LineId, part "
                       f"LIMIT {int(limit)}", params).fetchall()
    out = []
    for r in rows:
        d = dict(zip(keys, r))
        d["dims"] = json.loads(d["dims"]) if d["dims"] else {}
        out.append(d)
    return out


def explain_group(rt, con: duckdb.DuckDBPyConnection, filters: dict[str, str], day: date | None,
                  sample: int = 5) -> dict:
    """For the parts matching dimension filters (team, service, cost_center, environment) and a charge day: which
    rules and versions claimed them, amounts, how often each of the rule's tests was true, sample line ids."""
    where, params = [], []
    for k, v in filters.items():
        if k not in BUILTIN_DIMENSIONS:
            raise ValueError(f"{k} is not one of {', '.join(BUILTIN_DIMENSIONS)}")
        where.append(f"{k} = ?")
        params.append(v)
    if day:
        where.append("ChargePeriodStart >= ? AND ChargePeriodStart < ?")
        params += [_ts(day), _ts(day) + timedelta(days=1)]
    w = " AND ".join(where) or "true"
    groups = con.execute(
        f"SELECT rule_name, rule_version, any_value(reason), count(DISTINCT x_LineId), count(*), sum(BilledCost), "
        f"sum(EffectiveCost), list(DISTINCT x_LineId ORDER BY x_LineId)[1:{int(sample)}] FROM {ALLOCATION_TABLE} "
        f"WHERE {w} GROUP BY 1, 2 ORDER BY 7 DESC NULLS LAST", params).fetchall()
    out = []
    docs: dict[int, RuleDocument] = {}
    for rule_name, version, reason, lines, parts, billed, effective, sample_ids in groups:
        g: dict[str, Any] = {"rule": rule_name, "version": version, "lines": lines, "parts": parts,
                             "BilledCost": billed, "EffectiveCost": effective, "sample_line_ids": sample_ids}
        if rule_name is None:
            g["reason"] = reason
        elif version:
            if version not in docs:
                with rt.sessions() as session:
                    docs[version] = document_of(get_version(session, version))
            doc = docs[version]
            rule = doc.rule(rule_name)
            g["rule_position"] = doc.rules.index(rule) + 1
            g["rule_document"] = rule.raw
            sub = (f"c.x_LineId IN (SELECT x_LineId FROM {ALLOCATION_TABLE} WHERE {w} AND rule_name = ? "
                   "AND rule_version = ?)")
            g["tests"] = _leaf_truths(con, doc, rule, sub, [*params, rule_name, version])
            if rule.split is not None:
                g["split"] = {"kind": type(rule.split).__name__.lower()}
                g["split_parts"] = [
                    {"share": s, "team": t, "EffectiveCost": e} for s, t, e in con.execute(
                        f"SELECT share, team, sum(EffectiveCost) FROM {ALLOCATION_TABLE} WHERE {w} AND rule_name = ? "
                        "AND rule_version = ? GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 50",
                        [*params, rule_name, version]).fetchall()]
        out.append(g)
    return {"filters": filters, "day": day.isoformat() if day else None, "groups": out}


def jsonable(value: Any) -> Any:
    """Decimals as exact strings, dates as ISO text: the API's and the CLI's JSON."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


__all__ = ["apply", "allocate_periods", "after_ingest", "coverage", "diff", "explain_line", "explain_group",
           "list_versions", "active_document", "RulesInvalid", "VersionNotFound", "ApplyResult", "jsonable"]
