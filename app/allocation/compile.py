"""Rule document -> one DuckDB statement that allocates the lines of some billing periods (`compile_allocation`).

Order of evaluation (the README's "Allocation rules" section says the same):
1. Each line gets the FIRST rule, in document order, whose effective window holds its ChargePeriodStart, whose
   condition is true and, where the rule sets a dimension from a tag without a default, whose line has that tag.
   `Matcher` (app/allocation/matcher.py) picks it from bitmasks (per-distinct-value lookups AND-ed per line; lowest
   set bit = first rule), so the per-line work does not grow with the number of rules the way a CASE over every rule
   does.
2. Lines of plain rules (`set` only) become one part holding the whole line. Lines of `even`/`percent` rules
   become one part per target (outcomes and targets are a VALUES table joined in).
3. Proportional splits are computed from step 2's plain-rule parts only: per billing period and billing currency,
   the rule's metric summed by value of its dimension over the plain-rule parts whose lines match its `where`;
   values with a positive sum are the drivers. A proportional line with no positive driver in its period and
   currency stays unallocated, with a reason naming the rule.
4. Lines no rule claims get one part with team 'unallocated', rule NULL and a reason.

Exact money: a part's amount is line x share, rounded half away from zero to 18 decimal places (the warehouse's
scale) with integer arithmetic (DuckDB's DECIMAL division is floating point, so it is never used): the line's
integer part times the share is an exact DECIMAL product, its fraction times the share is done in 64-bit pieces
(`times_share`). The part with the largest share (ties: the first target; for proportional splits the largest
driver, ties by value) takes the line minus the other parts, so the parts of every line sum to the line exactly,
for all four cost metrics. Proportional shares are driver / total rounded to 18 places by long division in
128-bit integers (a few rows per period, currency and value).

Speed (bench/allocation_bench.py, profiled with EXPLAIN ANALYZE): rule tests run once per value of what they read
(app/allocation/matcher.py says how). The line relation (app/allocation/sql.py) lower-cases tag keys once per line;
a literal regex becomes a string test; a split line's parts are a list built and unnested within its row (no
window, no materialized copy of the lines); a metric equal to an earlier one on the line reuses its parts; lines
with a single part involve no arithmetic and no amount lists at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from app.allocation.matcher import Matcher
from app.allocation.rules import (
    BUILTIN_DIMENSIONS,
    QUANTITY_METRICS,
    Even,
    Percent,
    Proportional,
    RuleDocument,
    TagValue,
    UNALLOCATED,
)
from app.allocation.sql import Tags, condition_sql, ident, line_relation, lit, tag_value_sql

ALLOCATION_TABLE = "cost_allocation"
METRICS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
UNITS = 10 ** 18  # one unit = 1e-18, the warehouse's DECIMAL(38,18) scale
SHARE_SQL = "DECIMAL(38,18)"
NO_RULE = "no rule matched"


# -- exact arithmetic in SQL ----------------------------------------------------------------------------------------
GIGA = 10 ** 9


def to_units(x: str) -> str:
    """A non-negative DECIMAL(38,18) as a HUGEINT count of 1e-18 units (exact for values below 1.7e20)."""
    return (f"(CAST(trunc({x}) AS HUGEINT) * {UNITS} + "
            f"CAST(({x} - trunc({x})) * {UNITS} AS HUGEINT))")


def from_units(u: str) -> str:
    """A non-negative HUGEINT count of 1e-18 units back to DECIMAL(38,18), exactly."""
    return f"(CAST({u} AS DECIMAL(38,0)) * CAST('1e-18' AS DECIMAL(19,18)))"


def line_pieces(amount: str, prefix: str) -> list[tuple[str, str]]:
    """Per line, once: amount = int + sign x (a1 * 1e9 + a0) / 1e18 with int the signed integer part, a
    DECIMAL(20,0) (any DECIMAL(38,18) fits), sign -1 or 1, and a1, a0 < 1e9 the digits of |amount|'s fraction as
    BIGINTs; `times_share` multiplies these by a share with 64-bit integer operations."""
    a = f"abs({amount})"
    frac = f"CAST(({a} - trunc({a})) * {UNITS} AS BIGINT)"
    return [(f"CAST(trunc({amount}) AS DECIMAL(20,0))", f"{prefix}_i"),
            (f"CASE WHEN {amount} < 0 THEN -1 ELSE 1 END", f"{prefix}_sg"),
            (f"{frac} // {GIGA}", f"{prefix}_a1"), (f"{frac} % {GIGA}", f"{prefix}_a0")]


def times_share(amount: str, prefix: str, p: str) -> str:
    """amount x share (0 <= share <= 1) rounded half away from zero to 18 places, exactly, from the line's pieces
    (`line_pieces(amount, prefix)`) and the share's: `{p}.sd` (the share as DECIMAL(19,18)) and `{p}.s1`, `{p}.s0`
    (its 1e-18 units = s1 * 1e9 + s0, both < 1e9, BIGINT). The signed integer part times the share is an exact
    DECIMAL product; with f = a1 * 1e9 + a0 the units of |amount|'s fraction, f x s / 1e18 = a1*s1 + m / 1e9 +
    a0*s0 / 1e18 with m = a1*s0 + a0*s1 < 2e18, so round(f x s / 1e18) = a1*s1 + m // 1e9 + ((m % 1e9) * 1e9 +
    a0*s0 + 5e17) // 1e18, which takes the line's sign (rounding half away from zero); every intermediate stays below
    2.6e18 (no 128-bit division anywhere) and no per-part sign test is needed. `amount` itself is not read (NULL
    amounts have NULL pieces)."""
    i, sg, a1, a0 = f"{prefix}_i", f"{prefix}_sg", f"{prefix}_a1", f"{prefix}_a0"
    m = f"({a1} * {p}.s0 + {a0} * {p}.s1)"
    frac_units = (f"{a1} * {p}.s1 + {m} // {GIGA} + (({m} % {GIGA}) * {GIGA} + {a0} * {p}.s0 + {UNITS // 2}) "
                  f"// {UNITS}")
    return f"({i} * {p}.sd + CAST({sg} * ({frac_units}) AS DECIMAL(19,0)) * CAST('1e-18' AS DECIMAL(19,18)))"


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


def _share_units(share: Decimal) -> tuple[int, int]:
    units = int(share.scaleb(18))
    return divmod(units, GIGA)


def compile_allocation(doc: RuleDocument, version: int, periods: list,
                       lookup_line_columns: frozenset[str] = frozenset()) -> Compiled:
    """The INSERT that writes the allocation of every line of `periods` (BillingPeriodStart values) under `doc`.

    Shape (one statement, one pass over the lines to allocate, plus a pass over the lines a proportional `where`
    selects when there are proportional rules):
    - `lines`: per line the first matching rule (the CASE) and the tag-valued outcomes;
    - `plan`: per rule its name, kind and its parts as a list of structs (share, share units, fixed dimensions);
      for proportional rules `shares` holds the parts per billing period and currency (from the drivers);
    - per line one list of parts: a plain rule's or an unclaimed line's single part holds the line itself (no
      arithmetic); a split line's parts are line x share (`times_share`), and the largest part (`big`) is the line
      minus the others, all within the line's row (no window); then the list is unnested into rows."""
    tags = Tags(doc, lookups=True)
    dims = doc.dimensions
    dim_cols = {d: ident(f"d_{d}") for d in dims}
    rules = list(doc.rules)
    props = [(i, r) for i, r in enumerate(rules, start=1) if isinstance(r.split, Proportional)]
    placeholders = ", ".join("?" for _ in periods)
    in_periods = f"c.BillingPeriodStart IN ({placeholders})"

    # 1. rule index per line (first match: the Matcher) and the tag-valued outcomes.
    matcher = Matcher(doc, tags, lookup_line_columns)
    rule_idx = matcher.rule_sql()
    tag_outcomes = {}
    for d in dims:
        whens = [(i, tag_value_sql(r.set[d], tags)) for i, r in enumerate(rules, start=1)
                 if isinstance(r.set.get(d), TagValue)]
        if whens:
            tag_outcomes[d] = "CASE rule_idx " + " ".join(f"WHEN {i} THEN {e}" for i, e in whens) + " END"
    wheres = {i: condition_sql(r.split.where, tags) for i, r in props}
    tag_cols = "".join(", " + c for c in tags.columns.values()) if tag_outcomes else ""
    tv_cols = "".join(f", {e} AS {ident('__tv_' + d)}" for d, e in tag_outcomes.items())
    base = ("x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, BillingCurrency, ProviderName, "
            "BilledCost, EffectiveCost, ListCost, ContractedCost")

    def matched(where: str, extra: str = "", keep: str = "true") -> str:
        relation = matcher.relation(line_relation(doc, tags, where))
        inner = f"SELECT {base}{extra}, {rule_idx} AS rule_idx{tag_cols} FROM ({relation}) c WHERE {keep}"
        return f"SELECT *{tv_cols} FROM ({inner}) l"

    # 2. the parts of every rule: VALUES of (rule, kind, part, share, share units, is_largest, fixed dimensions).
    targets = _targets(doc)
    target_rows = []
    for i, kind, part, share, big, fixed in targets:
        s1, s0 = _share_units(share)
        target_rows.append(
            f"({i}, {lit(kind)}, {part}, CAST({lit(str(share))} AS {SHARE_SQL}), {s1}, {s0}, {str(big).lower()}, "
            + ", ".join(lit(fixed.get(d)) for d in dims) + ")")
    target_names = "rule_idx, kind, part, share, s1, s0, is_largest, " + ", ".join(dim_cols[d] for d in dims)
    if target_rows:
        targets_sql = f"SELECT * FROM (VALUES {', '.join(target_rows)}) v({target_names})"
    else:
        targets_sql = ("SELECT CAST(NULL AS INTEGER) rule_idx, CAST(NULL AS VARCHAR) kind, 0 part, "
                       f"CAST(0 AS {SHARE_SQL}) share, CAST(0 AS BIGINT) s1, CAST(0 AS BIGINT) s0, false is_largest, "
                       + ", ".join(f"CAST(NULL AS VARCHAR) {dim_cols[d]}" for d in dims) + " WHERE false")
    info_rows = []
    for i, r in enumerate(rules, start=1):
        reason = None
        if isinstance(r.split, Proportional):
            reason = (f"rule {r.name}: proportional split by {r.split.dimension} found no positive "
                      f"{r.split.driver} driver in this billing period and currency")
        info_rows.append(f"({i}, {lit(r.name)}, {lit(reason)})")
    info = ("SELECT * FROM (VALUES " + ", ".join(info_rows) + ") v(rule_idx, rule_name, no_driver)") if rules else (
        "SELECT CAST(NULL AS INTEGER) AS rule_idx, CAST(NULL AS VARCHAR) AS rule_name, "
        "CAST(NULL AS VARCHAR) AS no_driver WHERE false")

    def part_struct(part: str, share: str, s1: str, s0: str, dim_values: dict[str, str]) -> str:
        fields = [f"'part': CAST({part} AS INTEGER)", f"'share': CAST({share} AS {SHARE_SQL})",
                  f"'sd': CAST({share} AS DECIMAL(19,18))", f"'s1': CAST({s1} AS BIGINT)",
                  f"'s0': CAST({s0} AS BIGINT)"]
        fields += [f"{lit('d_' + d)}: CAST({dim_values.get(d, 'NULL')} AS VARCHAR)" for d in dims]
        return "{" + ", ".join(fields) + "}"

    plan = ("SELECT t.rule_idx, any_value(i.rule_name) AS rule_name, any_value(i.no_driver) AS no_driver, "
            "any_value(t.kind) AS kind, CAST(max(CASE WHEN t.is_largest THEN t.part END) AS INTEGER) AS big, "
            "list(" + part_struct("t.part", "t.share", "t.s1", "t.s0", {d: f"t.{dim_cols[d]}" for d in dims})
            + " ORDER BY t.part) FILTER (WHERE t.kind <> 'proportional') AS parts "
            "FROM targets t JOIN info i ON i.rule_idx = t.rule_idx GROUP BY t.rule_idx")
    ctes = [*matcher.ctes(in_periods), f"info AS ({info})", f"targets AS ({targets_sql})", f"plan AS ({plan})"]

    # 3. proportional drivers and exact shares (small tables: one row per rule, period, currency and value), from
    # the plain-rule lines that some proportional `where` selects.
    if props:
        any_where = " OR ".join(f"({w})" for w in wheres.values())
        w_cols = "".join(f", {w} AS __w{i}" for i, w in wheres.items())
        # usage drivers: the quantity and its unit of each driver line (only the metrics some rule splits by)
        quantities = sorted({r.split.metric for _, r in props if r.split.metric in QUANTITY_METRICS})
        w_cols += "".join(f", c.{ident(q)}, c.{ident(QUANTITY_METRICS[q])}" for q in quantities)
        plain_dim = {d: (f"coalesce(t.{dim_cols[d]}, m.{ident('__tv_' + d)})" if d in tag_outcomes
                         else f"t.{dim_cols[d]}") for d in dims}
        ctes.append("driver_lines AS (SELECT m.*, " + ", ".join(f"{plain_dim[d]} AS {dim_cols[d]}" for d in dims)
                    + f" FROM ({matched(in_periods, w_cols, any_where)}) m "
                    "JOIN targets t ON t.rule_idx = m.rule_idx AND t.kind = 'set')")
        def in_unit(r) -> str:
            if r.split.unit is None:
                return ""
            return f" AND {ident(QUANTITY_METRICS[r.split.metric])} = {lit(r.split.unit)}"

        drivers = " UNION ALL ".join(
            f"SELECT {i} AS rule_idx, BillingPeriodStart, BillingCurrency, {dim_cols[r.split.dimension]} AS value, "
            f"sum({ident(r.split.metric)}) AS amount FROM driver_lines WHERE __w{i}"
            f"{in_unit(r)} AND {dim_cols[r.split.dimension]} IS NOT NULL GROUP BY ALL "
            f"HAVING sum({ident(r.split.metric)}) > 0"
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
        ctes.append("s7 AS (SELECT *, __q + CASE WHEN (__r * 10) // __t >= 5 THEN 1 ELSE 0 END AS __u FROM s6)")
        # each share's dimensions: the split dimension's value, the rule's fixed values for the others
        share_dims = {}
        for d in dims:
            whens = []
            for i, r in props:
                if r.split.dimension == d:
                    whens.append(f"WHEN {i} THEN value")
                elif isinstance(r.set.get(d), str):
                    whens.append(f"WHEN {i} THEN {lit(r.set[d])}")
            share_dims[d] = f"CASE rule_idx {' '.join(whens)} END" if whens else "NULL"
        ctes.append(
            "shares AS (SELECT rule_idx, BillingPeriodStart, BillingCurrency, list("
            + part_struct("rnk", from_units("__u"), f"__u // {GIGA}", f"__u % {GIGA}", share_dims)
            + " ORDER BY rnk) AS parts FROM s7 GROUP BY ALL)")

    # 4. per line its parts: a list of structs (one for whole and unclaimed lines), amounts exact, then unnested.
    unclaimed_struct = part_struct("1", "1", "0", "0", {"team": lit(UNALLOCATED)} if "team" in dims else {})
    if props:
        pick = ("CASE WHEN p.kind = 'proportional' THEN s.parts ELSE p.parts END")
        join_shares = (" LEFT JOIN shares s ON s.rule_idx = l.rule_idx AND s.BillingPeriodStart = l.BillingPeriodStart"
                       " AND s.BillingCurrency = l.BillingCurrency")
    else:
        pick, join_shares = "p.parts", ""
    ctes.append(f"lines AS ({matched(in_periods)})")
    ctes.append(
        f"j AS (SELECT l.*, p.rule_name, p.kind, coalesce(p.big, 1) AS big, {pick} AS __parts, "
        f"CASE WHEN p.rule_idx IS NULL THEN {lit(NO_RULE)} ELSE p.no_driver END AS __no_reason "
        f"FROM lines l LEFT JOIN plan p ON p.rule_idx = l.rule_idx{join_shares})")
    ctes.append("k AS (SELECT * EXCLUDE (__parts), __parts IS NOT NULL AS claimed, "
                "__parts IS NOT NULL AND kind <> 'set' AS is_split, "
                f"coalesce(__parts, [{unclaimed_struct}]) AS __parts FROM j)")
    # A metric equal to an earlier one on the line (BilledCost = EffectiveCost = ContractedCost on most lines of
    # real bills) has the same parts: it takes that metric's part list instead of computing its own (`__own_m` is
    # false; the first equal metric always has its own list).
    def same(i: int) -> str:
        return " OR ".join(f"{METRICS[i]} = {METRICS[j]}" for j in range(i))

    owns = [f"is_split AND NOT coalesce({same(i)}, false) AS __own_{m}" for i, m in enumerate(METRICS) if i]
    ctes.append(f"k0 AS (SELECT *, is_split AS __own_{METRICS[0]}, {', '.join(owns)} FROM k)")
    pieces = [f"CASE WHEN __own_{m} THEN {e} END AS {name}" for m in METRICS for e, name in line_pieces(m, f"__{m}")]
    ctes.append(f"k1 AS (SELECT *, {', '.join(pieces)} FROM k0)")
    # single-part lines carry no amount lists (NULL): unnest pads them with NULL and the part takes the line's amount
    amounts = [f"CASE WHEN __own_{m} THEN list_transform(__parts, lambda p: {times_share(m, f'__{m}', 'p')}) "
               f"END AS __am_{m}" for m in METRICS]
    ctes.append(f"k2 AS (SELECT *, {', '.join(amounts)} FROM k1)")
    rems = [f"CASE WHEN __own_{m} THEN {m} - list_sum(__am_{m}) END AS __rem_{m}" for m in METRICS]
    ctes.append(f"k3 AS (SELECT *, {', '.join(rems)} FROM k2)")
    finals = [f"CASE WHEN __own_{m} THEN list_transform(__am_{m}, lambda v, n: CASE WHEN n = big THEN v + __rem_{m} "
              f"ELSE v END) END AS __own_fin_{m}" for m in METRICS]
    ctes.append(f"k3b AS (SELECT *, {', '.join(finals)} FROM k3)")
    picks = [f"__own_fin_{METRICS[0]} AS __fin_{METRICS[0]}"]
    for i, m in enumerate(METRICS[1:], start=1):
        whens = " ".join(f"WHEN {m} = {METRICS[j]} THEN __own_fin_{METRICS[j]}" for j in range(i))
        picks.append(f"CASE WHEN NOT is_split OR __own_{m} THEN __own_fin_{m} {whens} END AS __fin_{m}")
    ctes.append(f"k4 AS (SELECT *, {', '.join(picks)} FROM k3b)")
    ctes.append("parts_rows AS (SELECT x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, BillingCurrency, "
                "ProviderName, claimed, CASE WHEN claimed THEN rule_name END AS rule_name, "
                "CASE WHEN claimed THEN NULL ELSE __no_reason END AS reason"
                + "".join(f", {ident('__tv_' + d)}" for d in tag_outcomes)
                + ", is_split, " + ", ".join(f"{m} AS __line_{m}" for m in METRICS)
                + ", unnest(__parts) AS p, " + ", ".join(f"unnest(__fin_{m}) AS __part_{m}" for m in METRICS)
                + " FROM k4)")

    def dim_expr(d: str) -> str:
        if d in tag_outcomes:
            return f"CASE WHEN claimed THEN coalesce(p.{dim_cols[d]}, {ident('__tv_' + d)}) ELSE p.{dim_cols[d]} END"
        return f"p.{dim_cols[d]}"

    custom = [d for d in dims if d not in BUILTIN_DIMENSIONS]
    if custom:
        entries = ", ".join(f"{{'key': {lit(d)}, 'value': {dim_expr(d)}}}" for d in custom)
        dims_map = f"map_from_entries(list_filter([{entries}], lambda e: e.value IS NOT NULL))"
    else:
        dims_map = "CAST(NULL AS MAP(VARCHAR, VARCHAR))"
    sql = (
        f"INSERT INTO {ALLOCATION_TABLE} (x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, "
        "BillingCurrency, ProviderName, rule_name, rule_version, part, team, service, cost_center, environment, dims, "
        "share, BilledCost, EffectiveCost, ListCost, ContractedCost, reason) "
        "WITH " + ", ".join(ctes) + " "
        f"SELECT x_LineId, x_SourceId, BillingPeriodStart, ChargePeriodStart, BillingCurrency, ProviderName, "
        f"rule_name, {int(version)}, p.part, {dim_expr('team')}, {dim_expr('service')}, {dim_expr('cost_center')}, "
        f"{dim_expr('environment')}, {dims_map}, p.share, "
        + ", ".join(f"CASE WHEN is_split THEN __part_{m} ELSE __line_{m} END AS {m}" for m in METRICS) + ", reason "
        "FROM parts_rows"
    )
    params = list(periods) * sql.count(in_periods)
    return Compiled(sql, params)
