"""Rule document -> one DuckDB statement that allocates the lines of some billing periods.

Order of evaluation (the README's "Allocation rules" section says the same):
1. Each line gets the FIRST rule, in document order, whose effective window holds its ChargePeriodStart, whose
   condition is true and, where the rule sets a dimension from a tag without a default, whose line has that tag.
   The CASE that picks it is the only per-rule work done per line.
2. Lines of plain rules (`set` only) become one part holding the whole line. Lines of `even`/`percent` rules
   become one part per target (outcomes and targets are a VALUES table joined in).
3. Proportional splits are computed from step 2's plain-rule parts only: per billing period and billing currency,
   the rule's metric summed by value of its dimension over the plain-rule parts whose lines match its `where`;
   values with a positive sum are the drivers. A proportional line with no positive driver in its period and
   currency stays unallocated, with a reason naming the rule.
4. Lines no rule claims get one part with team 'unallocated', rule NULL and a reason.

Exact money: a part's amount is line x share, rounded half away from zero to 18 decimal places (the warehouse's
scale) with 128-bit integer arithmetic (DuckDB's DECIMAL division is floating point, so it is never used), and the
part with the largest share (ties: the first target; for proportional splits the largest driver, ties by value)
takes the remainder, so the parts of every line sum to the line exactly, for all four cost metrics. Proportional
shares are driver / total rounded to 18 places by long division, also in integers.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from app.allocation.rules import (
    All,
    Any_,
    BUILTIN_DIMENSIONS,
    Condition,
    Even,
    Leaf,
    Not,
    Percent,
    Proportional,
    Rule,
    RuleDocument,
    TagValue,
    UNALLOCATED,
    leaves,
)
from app.warehouse import COST_TABLE

ALLOCATION_TABLE = "cost_allocation"
METRICS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
UNITS = 10 ** 18  # one unit = 1e-18, the warehouse's DECIMAL(38,18) scale
SHARE_SQL = "DECIMAL(38,18)"
NO_RULE = "no rule matched"


def lit(value: str | None) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the line relation: FOCUS columns plus one column per tag a rule looks at ---------------------------------------
class Tags:
    """The tags a document refers to, each a column of the line relation (alias group resolved, case-insensitive)."""

    def __init__(self, doc: RuleDocument):
        self.doc = doc
        self.columns: dict[tuple[str, ...], str] = {}

    def column(self, tag: str) -> str:
        keys = self.doc.tag_keys(tag)
        if keys not in self.columns:
            self.columns[keys] = f"__tag{len(self.columns)}"
        return self.columns[keys]

    def select_list(self) -> str:
        out = []
        for keys, col in self.columns.items():
            picks = [f"list_filter(map_entries(Tags), lambda e: lower(e.key) = {lit(k)})[1].value" for k in keys]
            expr = picks[0] if len(picks) == 1 else f"coalesce({', '.join(picks)})"
            out.append(f"{expr} AS {col}")
        return "".join(", " + e for e in out)


def condition_sql(cond: Condition | None, tags: Tags) -> str:
    """A condition as a SQL boolean that is never NULL (so NOT and CASE behave)."""
    if cond is None:
        return "true"
    if isinstance(cond, All):
        return "(" + " AND ".join(condition_sql(c, tags) for c in cond.items) + ")"
    if isinstance(cond, Any_):
        return "(" + " OR ".join(condition_sql(c, tags) for c in cond.items) + ")"
    if isinstance(cond, Not):
        return f"(NOT {condition_sql(cond.item, tags)})"
    return leaf_sql(cond, tags)


def leaf_sql(leaf: Leaf, tags: Tags) -> str:
    col = ident(leaf.key) if leaf.kind == "column" else tags.column(leaf.key)
    if leaf.op == "exists":
        return f"({col} IS NOT NULL)"
    if leaf.op == "missing":
        return f"({col} IS NULL)"
    if leaf.op == "equals":
        return f"coalesce({col} = {lit(leaf.value)}, false)"
    if leaf.op == "in":
        return f"coalesce({col} IN ({', '.join(lit(v) for v in leaf.value)}), false)"
    return f"coalesce(regexp_matches({col}, {lit(leaf.value)}), false)"


def window_sql(rule: Rule) -> str:
    parts = []
    if rule.effective_from is not None:
        parts.append(f"ChargePeriodStart >= TIMESTAMPTZ {lit(rule.effective_from.isoformat() + ' 00:00:00+00')}")
    if rule.effective_to is not None:
        parts.append(f"ChargePeriodStart < TIMESTAMPTZ {lit(rule.effective_to.isoformat() + ' 00:00:00+00')}")
    return " AND ".join(parts)


def match_sql(rule: Rule, tags: Tags) -> str:
    """Whether `rule` claims a line (ignoring earlier rules): window, condition, tags its outcome needs."""
    parts = [p for p in (window_sql(rule), condition_sql(rule.when, tags)) if p and p != "true"]
    for value in rule.set.values():
        if isinstance(value, TagValue) and value.default is None:
            parts.append(f"({tags.column(value.tag)} IS NOT NULL)")
    return " AND ".join(parts) or "true"


def tag_value_sql(value: TagValue, tags: Tags) -> str:
    expr = tags.column(value.tag)
    if value.lower:
        expr = f"lower({expr})"
    if value.mapping:
        expr = f"CASE {expr} " + " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in value.mapping) + f" ELSE {expr} END"
    if value.default is not None:
        expr = f"coalesce({expr}, {lit(value.default)})"
    return expr


def line_relation(doc: RuleDocument, tags: Tags, where: str) -> str:
    """SELECT of the warehouse lines in `where` with the tag columns the compiled conditions use. Call after every
    condition was compiled (compiling registers the tags)."""
    return f"SELECT c.*{tags.select_list()} FROM {COST_TABLE} c WHERE {where}"


# -- exact arithmetic in SQL ----------------------------------------------------------------------------------------
def to_units(x: str) -> str:
    """A non-negative DECIMAL(38,18) as a HUGEINT count of 1e-18 units (exact for values below 1.7e20)."""
    return (f"(CAST(trunc({x}) AS HUGEINT) * {UNITS} + "
            f"CAST(({x} - trunc({x})) * {UNITS} AS HUGEINT))")


def from_units(u: str) -> str:
    """A non-negative HUGEINT count of 1e-18 units back to DECIMAL(38,18), exactly."""
    return (f"(CAST(({u}) // {UNITS} AS DECIMAL(38,18)) + "
            f"CAST(({u}) % {UNITS} AS DECIMAL(38,0)) * 0.000000000000000001)")


def times_share(amount: str, share: str) -> str:
    """amount x share (0 <= share <= 1) rounded half away from zero to 18 places: with |amount| = q + r/1e18 and
    share = s/1e18, the exact product is q*s + r*s/1e18 units; only the second term needs rounding."""
    a = f"abs({amount})"
    q = f"CAST(trunc({a}) AS HUGEINT)"
    r = f"CAST(({a} - trunc({a})) * {UNITS} AS HUGEINT)"
    s = f"CAST({share} * {UNITS} AS HUGEINT)"
    units = f"({q} * {s} + ({r} * {s} + {UNITS // 2}) // {UNITS})"
    value = from_units(units)
    return f"(CASE WHEN {amount} < 0 THEN -{value} ELSE {value} END)"


def decimal_share(numerator: int, denominator: int) -> Decimal:
    """numerator/denominator rounded half up to 18 places, exactly (Python Decimal on integers)."""
    q, r = divmod(numerator * UNITS, denominator)
    if 2 * r >= denominator:
        q += 1
    return Decimal(q).scaleb(-18)


# -- the statement --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compiled:
    sql: str  # INSERT INTO cost_allocation ... for the periods bound by `params`
    params: list


def _targets(doc: RuleDocument) -> list[tuple]:
    """(rule_idx, kind, part, share, is_largest, *dimension literals) for every rule's parts; proportional rules get
    one template row (part 0) with their fixed dimension values."""
    rows = []
    for idx, rule in enumerate(doc.rules, start=1):
        fixed = {d: v for d, v in rule.set.items() if isinstance(v, str)}
        split = rule.split
        if split is None:
            rows.append((idx, "set", 1, Decimal(1), True, fixed))
        elif isinstance(split, Even):
            n = len(split.targets)
            share = decimal_share(1, n)
            rows += [(idx, "even", i + 1, share, i == 0, fixed | t) for i, t in enumerate(split.targets)]
        elif isinstance(split, Percent):
            top = max(p for _, p in split.parts)
            first_top = next(i for i, (_, p) in enumerate(split.parts) if p == top)
            rows += [(idx, "percent", i + 1, (p / 100).quantize(Decimal(1).scaleb(-18), ROUND_HALF_UP), i == first_top,
                      fixed | t) for i, (t, p) in enumerate(split.parts)]
        else:
            rows.append((idx, "proportional", 0, Decimal(0), False, fixed))
    return rows


def compile_allocation(doc: RuleDocument, version: int, periods: list) -> Compiled:
    """The INSERT that writes the allocation of every line of `periods` (BillingPeriodStart values) under `doc`."""
    tags = Tags(doc)
    dims = doc.dimensions
    dim_cols = {d: ident(f"d_{d}") for d in dims}
    rules = list(doc.rules)
    props = [(i, r) for i, r in enumerate(rules, start=1) if isinstance(r.split, Proportional)]

    # 1. rule index per line (first match), the tag-valued outcomes, and each proportional rule's `where`.
    branches = " ".join(f"WHEN {match_sql(r, tags)} THEN {i}" for i, r in enumerate(rules, start=1))
    rule_idx = f"CASE {branches} END" if rules else "CAST(NULL AS INTEGER)"
    tag_outcomes = {}
    for d in dims:
        whens = [(i, tag_value_sql(r.set[d], tags)) for i, r in enumerate(rules, start=1)
                 if isinstance(r.set.get(d), TagValue)]
        if whens:
            tag_outcomes[d] = "CASE rule_idx " + " ".join(f"WHEN {i} THEN {e}" for i, e in whens) + " END"
    wheres = {i: condition_sql(r.split.where, tags) for i, r in props}
    placeholders = ", ".join("?" for _ in periods)
    relation = line_relation(doc, tags, f"c.BillingPeriodStart IN ({placeholders})")
    where_cols = "".join(f", {w} AS __w{i}" for i, w in wheres.items())
    lines = (f"SELECT x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, BillingCurrency, ProviderName, "
             f"BilledCost, EffectiveCost, ListCost, ContractedCost{where_cols}, {rule_idx} AS rule_idx"
             f"{''.join(', ' + c for c in tags.columns.values()) if tag_outcomes else ''} FROM ({relation}) c")
    tv_cols = "".join(f", {e} AS {ident('__tv_' + d)}" for d, e in tag_outcomes.items())
    matched = f"SELECT *{tv_cols} FROM ({lines}) l"

    # 2. VALUES: rule names and kinds, and every part's share and fixed dimension values.
    info_rows = []
    for i, r in enumerate(rules, start=1):
        reason = None
        if isinstance(r.split, Proportional):
            reason = (f"rule {r.name}: proportional split by {r.split.dimension} found no positive "
                      f"{r.split.metric} driver in this billing period and currency")
        info_rows.append(f"({i}, {lit(r.name)}, {lit(reason)})")
    info = ("SELECT * FROM (VALUES " + ", ".join(info_rows) + ") v(rule_idx, rule_name, no_driver)") if rules else (
        "SELECT CAST(NULL AS INTEGER) AS rule_idx, CAST(NULL AS VARCHAR) AS rule_name, "
        "CAST(NULL AS VARCHAR) AS no_driver WHERE false")
    target_rows = [
        f"({i}, {lit(kind)}, {part}, CAST({lit(str(share))} AS {SHARE_SQL}), {str(big).lower()}, "
        + ", ".join(lit(fixed.get(d)) for d in dims) + ")"
        for i, kind, part, share, big, fixed in _targets(doc)
    ]
    target_names = "rule_idx, kind, part, share, is_largest, " + ", ".join(dim_cols[d] for d in dims)
    if target_rows:
        targets = f"SELECT * FROM (VALUES {', '.join(target_rows)}) v({target_names})"
    else:
        targets = ("SELECT CAST(NULL AS INTEGER) rule_idx, CAST(NULL AS VARCHAR) kind, 0 part, "
                   f"CAST(0 AS {SHARE_SQL}) share, false is_largest, "
                   + ", ".join(f"CAST(NULL AS VARCHAR) {dim_cols[d]}" for d in dims) + " WHERE false")

    def dim_expr(d: str, fixed: str = "t") -> str:
        parts = [f"{fixed}.{dim_cols[d]}"]
        if d in tag_outcomes:
            parts.append(f"m.{ident('__tv_' + d)}")
        return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"

    common = ("m.x_LineId, m.x_SourceId, m.BillingPeriodStart, m.ChargePeriodStart, m.BillingCurrency, "
              "m.ProviderName, m.BilledCost, m.EffectiveCost, m.ListCost, m.ContractedCost")
    parts0 = (f"SELECT {common}, m.rule_idx, i.rule_name, i.no_driver, t.kind, t.part, t.share, t.is_largest"
              + "".join(f", {w}" for w in (f'm.__w{i}' for i, _ in props))
              + "".join(f", {dim_expr(d)} AS {dim_cols[d]}" for d in dims)
              + " FROM matched m LEFT JOIN info i ON i.rule_idx = m.rule_idx"
              " LEFT JOIN targets t ON t.rule_idx = m.rule_idx")

    # 3. proportional drivers and exact shares (small tables: one row per rule, period, currency and value).
    ctes = [f"matched AS ({matched})", f"info AS ({info})", f"targets AS ({targets})",
            f"parts0 AS {'MATERIALIZED ' if props else ''}({parts0})"]
    if props:
        drivers = " UNION ALL ".join(
            f"SELECT {i} AS rule_idx, BillingPeriodStart, BillingCurrency, {dim_cols[r.split.dimension]} AS value, "
            f"sum({ident(r.split.metric)}) AS amount FROM parts0 WHERE kind = 'set' AND __w{i} "
            f"AND {dim_cols[r.split.dimension]} IS NOT NULL GROUP BY ALL HAVING sum({ident(r.split.metric)}) > 0"
            for i, r in props)
        ctes.append(f"drivers AS ({drivers})")
        ctes.append(
            "d0 AS (SELECT *, sum(amount) OVER (PARTITION BY rule_idx, BillingPeriodStart, BillingCurrency) AS total, "
            "row_number() OVER (PARTITION BY rule_idx, BillingPeriodStart, BillingCurrency ORDER BY amount DESC, value) "
            "AS rnk FROM drivers)")
        # Long division of driver by total, 3 digits at a time (remainder x 1000 stays within HUGEINT for totals
        # below 1.7e17 in the billing currency), then one more digit to round half up.
        ctes.append(f"s0 AS (SELECT *, {to_units('amount')} AS __r, {to_units('total')} AS __t, "
                    f"CAST(0 AS HUGEINT) AS __q FROM d0)")
        for k in range(1, 7):
            ctes.append(f"s{k} AS (SELECT * EXCLUDE (__r, __q), (__r * 1000) % __t AS __r, "
                        f"__q * 1000 + (__r * 1000) // __t AS __q FROM s{k - 1})")
        ctes.append("shares AS (SELECT rule_idx, BillingPeriodStart, BillingCurrency, value, amount AS driver, "
                    f"total AS driver_total, rnk, rnk = 1 AS is_largest, "
                    f"{from_units('__q + CASE WHEN (__r * 10) // __t >= 5 THEN 1 ELSE 0 END')} AS share FROM s6)")

    # 4. the parts: whole lines, unallocated lines, split parts (with the remainder to the largest part).
    dim_list = ", ".join(dim_cols[d] for d in dims)
    whole = (f"SELECT x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, BillingCurrency, ProviderName, "
             f"rule_name, 1 AS part, CAST(1 AS {SHARE_SQL}) AS share, {dim_list}, BilledCost, EffectiveCost, "
             f"ListCost, ContractedCost, CAST(NULL AS VARCHAR) AS reason FROM parts0 WHERE kind = 'set'")
    unclaimed = (f"SELECT x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, BillingCurrency, ProviderName, "
                 f"CAST(NULL AS VARCHAR) AS rule_name, 1 AS part, CAST(1 AS {SHARE_SQL}) AS share, "
                 + ", ".join(f"{lit(UNALLOCATED) if d == 'team' else 'CAST(NULL AS VARCHAR)'} AS {dim_cols[d]}"
                             for d in dims)
                 + ", BilledCost, EffectiveCost, ListCost, ContractedCost, ")
    selects = [whole, unclaimed + f"{lit(NO_RULE)} AS reason FROM parts0 WHERE rule_idx IS NULL"]
    split_sources = [f"SELECT x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, BillingCurrency, "
                     f"ProviderName, rule_name, part, share, is_largest, {dim_list}, BilledCost, EffectiveCost, "
                     f"ListCost, ContractedCost FROM parts0 WHERE kind IN ('even', 'percent')"]
    if props:
        selects.append(unclaimed + "p.no_driver AS reason FROM parts0 p WHERE kind = 'proportional' AND NOT EXISTS "
                       "(SELECT 1 FROM shares s WHERE s.rule_idx = p.rule_idx AND s.BillingPeriodStart = "
                       "p.BillingPeriodStart AND s.BillingCurrency = p.BillingCurrency)")
        prop_dims = []
        for d in dims:
            choices = " ".join(f"WHEN {i} THEN s.value" for i, r in props if r.split.dimension == d)
            prop_dims.append(f"CASE p.rule_idx {choices} ELSE p.{dim_cols[d]} END AS {dim_cols[d]}" if choices
                             else f"p.{dim_cols[d]}")
        split_sources.append(
            "SELECT p.x_LineId, p.x_SourceId, p.BillingPeriodStart, p.ChargePeriodStart, p.BillingCurrency, "
            "p.ProviderName, p.rule_name, CAST(row_number() OVER (PARTITION BY p.x_LineId ORDER BY s.rnk) AS INTEGER) "
            "AS part, s.share, s.is_largest, " + ", ".join(prop_dims)
            + ", p.BilledCost, p.EffectiveCost, p.ListCost, p.ContractedCost FROM parts0 p JOIN shares s ON "
            "s.rule_idx = p.rule_idx AND s.BillingPeriodStart = p.BillingPeriodStart AND "
            "s.BillingCurrency = p.BillingCurrency WHERE p.kind = 'proportional'")
    ctes.append("splits AS (" + " UNION ALL ".join(split_sources) + ")")
    ctes.append("split_parts AS (SELECT *, " + ", ".join(
        f"{times_share(m, 'share')} AS __p_{m}" for m in METRICS) + " FROM splits)")
    selects.append(
        "SELECT x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, BillingCurrency, ProviderName, "
        f"rule_name, part, share, {dim_list}, "
        + ", ".join(f"CASE WHEN is_largest THEN __p_{m} + ({m} - sum(__p_{m}) OVER (PARTITION BY x_LineId)) "
                    f"ELSE __p_{m} END AS {m}" for m in METRICS)
        + ", CAST(NULL AS VARCHAR) AS reason FROM split_parts")

    custom = [d for d in dims if d not in BUILTIN_DIMENSIONS]
    if custom:
        entries = ", ".join(f"{{'key': {lit(d)}, 'value': {dim_cols[d]}}}" for d in custom)
        dims_map = f"map_from_entries(list_filter([{entries}], lambda e: e.value IS NOT NULL))"
    else:
        dims_map = "CAST(NULL AS MAP(VARCHAR, VARCHAR))"
    sql = (
        f"INSERT INTO {ALLOCATION_TABLE} (x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, "
        "BillingCurrency, ProviderName, rule_name, rule_version, part, team, service, cost_center, environment, dims, "
        "share, BilledCost, EffectiveCost, ListCost, ContractedCost, reason) "
        "WITH " + ", ".join(ctes) + " "
        f"SELECT x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, BillingCurrency, ProviderName, "
        f"rule_name, {int(version)}, part, {dim_cols['team']}, {dim_cols['service']}, {dim_cols['cost_center']}, "
        f"{dim_cols['environment']}, {dims_map}, share, BilledCost, EffectiveCost, ListCost, ContractedCost, reason "
        "FROM (" + " UNION ALL ".join(selects) + ")"
    )
    return Compiled(sql, list(periods))


def leaf_columns(rule: Rule, tags: Tags) -> list[tuple[Leaf, str]]:
    """(leaf, SQL boolean) for every leaf test of a rule's condition and of its proportional `where`."""
    out = [(leaf, leaf_sql(leaf, tags)) for leaf in leaves(rule.when)]
    if isinstance(rule.split, Proportional):
        out += [(leaf, leaf_sql(leaf, tags)) for leaf in leaves(rule.split.where)]
    return out
