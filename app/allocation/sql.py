"""SQL building blocks of the allocation statement, shared by app/allocation/compile.py (the statement) and
app/allocation/matcher.py (which rule claims each line): SQL literals and identifiers, the line relation (the
warehouse lines plus one column per tag a rule document reads, and per-distinct-value regex lookups on
low-cardinality columns), and a rule's effective window, condition and tag-valued outcomes as SQL expressions.
"""
from __future__ import annotations

from app.allocation.rules import (
    All,
    Any_,
    Condition,
    Leaf,
    Not,
    Proportional,
    Rule,
    RuleDocument,
    TagValue,
    leaves,
)
from app.warehouse import COST_TABLE


def lit(value: str | None) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the line relation: FOCUS columns plus one column per tag a rule looks at ---------------------------------------
# Columns whose values are (nearly) unique per line: a regex on them runs per line. A regex on any other column runs
# once per distinct value of the lines being allocated (a lookup joined in), when the caller asks for lookups.
PER_LINE_COLUMNS = frozenset({"ResourceId", "ResourceName", "ChargeDescription", "SkuPriceId", "AllocatedResourceId",
                              "AllocatedResourceName", "InvoiceId", "CapacityReservationId", "CommitmentDiscountId"})
MASK_BITS = 62  # regex results per BIGINT mask column


class Tags:
    """The tags a document refers to, each a column of the line relation (alias group resolved, case-insensitive),
    and, with `lookups`, the regex tests on low-cardinality columns, each a bit of a mask column joined in from a
    per-distinct-value lookup (see `line_relation`)."""

    def __init__(self, doc: RuleDocument, lookups: bool = False):
        self.doc = doc
        self.columns: dict[tuple[str, ...], str] = {}
        self.lookups = lookups
        self.regexes: dict[str, list[str]] = {}  # column -> patterns, in registration order

    def regex_bit(self, column: str, pattern: str) -> str:
        """SQL boolean: whether `column` matches `pattern`, read from the column's lookup mask."""
        patterns = self.regexes.setdefault(column, [])
        if pattern not in patterns:
            patterns.append(pattern)
        n = patterns.index(pattern)
        j = list(self.regexes).index(column)
        return f"(coalesce(__rx{j}_{n // MASK_BITS} & {1 << (n % MASK_BITS)}, 0) <> 0)"

    def lookup_joins(self, where: str) -> tuple[str, str]:
        """(extra select list, joins) adding the mask columns: per column with regex tests, its distinct values
        among the lines of `where` (alias c), each with the bits of the patterns it matches."""
        cols, joins = [], []
        for j, (column, patterns) in enumerate(self.regexes.items()):
            words = []
            for w in range(0, len(patterns), MASK_BITS):
                terms = [f"CASE WHEN regexp_matches(v, {lit(p)}) THEN {1 << (k % MASK_BITS)} ELSE 0 END"
                         for k, p in enumerate(patterns[w:w + MASK_BITS], start=w)]
                words.append(f"CAST({' + '.join(terms)} AS BIGINT) AS m{w // MASK_BITS}")
                cols.append(f"__l{j}.m{w // MASK_BITS} AS __rx{j}_{w // MASK_BITS}")
            joins.append(f" LEFT JOIN (SELECT v, {', '.join(words)} FROM (SELECT DISTINCT c.{ident(column)} AS v "
                         f"FROM {COST_TABLE} c WHERE {where} AND c.{ident(column)} IS NOT NULL)) __l{j} "
                         f"ON __l{j}.v = c.{ident(column)}")
        return "".join(", " + c for c in cols), "".join(joins)

    def column(self, tag: str) -> str:
        keys = self.doc.tag_keys(tag)
        if keys not in self.columns:
            self.columns[keys] = f"__tag{len(self.columns)}"
        return self.columns[keys]

    def select_list(self) -> str:
        """The tag columns, read from `__k` (the line's tag keys, lower-cased once per line) and `__v` (its values):
        the first key of the alias group, in group order, that the line has; for each key the first entry in the
        map's order."""
        out = []
        for keys, col in self.columns.items():
            picks = [f"__v[list_position(__k, {lit(k)})]" for k in keys]
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


def leaf_sql(leaf: Leaf, tags: Tags, col: str | None = None) -> str:
    """`col`: evaluate the test on this expression instead of the line's column (the matcher's per-value lookups);
    a regex then runs on it directly."""
    on_value = col is not None
    if col is None:
        col = ident(leaf.key) if leaf.kind == "column" else tags.column(leaf.key)
    if leaf.op == "exists":
        return f"({col} IS NOT NULL)"
    if leaf.op == "missing":
        return f"({col} IS NULL)"
    if leaf.op == "equals":
        return f"coalesce({col} = {lit(leaf.value)}, false)"
    if leaf.op == "in":
        return f"coalesce({col} IN ({', '.join(lit(v) for v in leaf.value)}), false)"
    literal = literal_regex(leaf.value)
    if literal is not None:
        how, text = literal
        test = f"{col} = {lit(text)}" if how == "equals" else f"{how}({col}, {lit(text)})"
        return f"coalesce({test}, false)"
    if tags.lookups and not on_value and leaf.kind == "column" and leaf.key not in PER_LINE_COLUMNS:
        return tags.regex_bit(leaf.key, leaf.value)
    return f"coalesce(regexp_matches({col}, {lit(leaf.value)}), false)"


REGEX_META = set(".^$*+?()[]{}|\\")


def literal_regex(pattern: str) -> tuple[str, str] | None:
    """A regex that is a plain literal, optionally anchored (`^abc`, `abc$`, `^abc$`, `abc`), as the equivalent
    string test (RE2 searches, and its `$` matches only at the end of the text): ("equals" | "starts_with" |
    "ends_with" | "contains", literal). None for anything else."""
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    body = pattern[1 if start else 0:len(pattern) - 1 if end else len(pattern)]
    if any(ch in REGEX_META for ch in body) or (start and end and len(pattern) < 2):
        return None
    return ("equals" if start and end else "starts_with" if start else "ends_with" if end else "contains"), body


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
    """SELECT of the warehouse lines in `where` (table alias `c`) with the tag columns the compiled conditions use.
    Call after every condition was compiled (compiling registers the tags). The tag keys are lower-cased once per
    line, not once per rule or key."""
    masks, joins = tags.lookup_joins(where)
    if not tags.columns:
        return f"SELECT c.*{masks} FROM {COST_TABLE} c{joins} WHERE {where}"
    return (f"SELECT c.*{tags.select_list()}{masks} FROM (SELECT c.*, list_transform(map_keys(c.Tags), "
            f"lambda k: lower(k)) AS __k, map_values(c.Tags) AS __v FROM {COST_TABLE} c WHERE {where}) c{joins}")


def leaf_columns(rule: Rule, tags: Tags) -> list[tuple[Leaf, str]]:
    """(leaf, SQL boolean) for every leaf test of a rule's condition and of its proportional `where`."""
    out = [(leaf, leaf_sql(leaf, tags)) for leaf in leaves(rule.when)]
    if isinstance(rule.split, Proportional):
        out += [(leaf, leaf_sql(leaf, tags)) for leaf in leaves(rule.split.where)]
    return out
