"""Rule document -> one DuckDB statement that allocates the lines of some billing periods.

Order of evaluation (the README's "Allocation rules" section says the same):
1. Each line gets the FIRST rule, in document order, whose effective window holds its ChargePeriodStart, whose
   condition is true and, where the rule sets a dimension from a tag without a default, whose line has that tag.
   `Matcher` picks it from bitmasks (per-distinct-value lookups AND-ed per line; lowest set bit = first rule), so
   the per-line work does not grow with the number of rules the way a CASE over every rule does.
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
(`Matcher`): for values compared only with literals (equals, in, exists, missing) the lookup is built from the
rules' literals without reading the lines; otherwise from the distinct values among the lines, once per statement.
Per-line columns such as ResourceId get a lookup when the engine finds their values repeat
(`choose_lookup_line_columns`), else they are tested per line only where the rule is still a candidate. The line
relation lower-cases tag keys once per line; a literal regex becomes a string test; a split line's parts are a list
built and unnested within its row (no window, no materialized copy of the lines); a metric equal to an earlier one
on the line reuses its parts; lines with a single part involve no arithmetic and no amount lists at all.
"""
from __future__ import annotations

from collections.abc import Callable
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


# -- the matcher: which rule claims each line, without a per-line CASE over every rule ------------------------------
DNF_LIMIT = 32  # terms per rule; a rule whose condition expands to more is tested per line (a residual term)
WORD_BITS = 62  # terms per BIGINT mask word (bits 0..61: every mask stays positive)


def dnf(cond: Condition | None, negate: bool = False) -> list[list[tuple[Leaf, bool]]] | None:
    """`cond` (negated with `negate`) as a disjunction of conjunctions of (leaf, positive) tests; [[]] is true, []
    false; None when it expands to more than DNF_LIMIT terms."""
    if cond is None:
        return [] if negate else [[]]
    if isinstance(cond, Leaf):
        return [[(cond, not negate)]]
    if isinstance(cond, Not):
        return dnf(cond.item, not negate)
    parts = [dnf(c, negate) for c in cond.items]
    if any(p is None for p in parts):
        return None
    if isinstance(cond, All) != negate:  # all(...), or not any(...): a conjunction
        terms: list[list[tuple[Leaf, bool]]] = [[]]
        for p in parts:
            terms = [t + u for t in terms for u in p]
            if len(terms) > DNF_LIMIT:
                return None
        return terms
    terms = [t for p in parts for t in p]
    return terms if len(terms) <= DNF_LIMIT else None


@dataclass
class _Test:
    """One test of a term on a subject's value: `sql` builds the SQL boolean on a value expression; `literals` are
    the values it can be true or false on differently from any other non-NULL value (equals/in/exists/missing and
    literal `^...$` regexes), None when it is not such a test (a regex, a window); `other` is its truth on any
    non-NULL value not in `literals` (meaningful only when `literals` is not None)."""

    sql: Callable[[str], str]
    literals: tuple[str, ...] | None = None
    other: bool = False


@dataclass
class _Subject:
    """A value the matcher's tests read: a column or a tag (alias group)."""

    column: str  # the line relation's column (a FOCUS column, or the tag's __tagN)
    keys: tuple[str, ...] | None  # a tag's lower-cased keys; None for a column
    tests: dict[int, list[_Test]]  # term -> tests that must all hold
    lookup_line_columns: frozenset[str] = frozenset()

    @property
    def literal(self) -> bool:
        """Every test compares with literals: the lookup holds those values (and NULL) only, read from the rules,
        not from the lines; any other value gets the mask of `other` (a constant)."""
        return all(x.literals is not None for tests in self.tests.values() for x in tests)

    @property
    def per_line(self) -> bool:
        """Values (nearly) unique per line: tested per line, only where the term is still a candidate."""
        return (self.keys is None and self.column in PER_LINE_COLUMNS and not self.literal
                and self.column not in self.lookup_line_columns)

    def literals(self) -> list[str]:
        return sorted({v for tests in self.tests.values() for x in tests for v in x.literals})


def leaf_test(leaf: Leaf, positive: bool, tags: Tags) -> _Test:
    """The matcher's test of `leaf` (negated unless `positive`) on a value."""
    if positive:
        sql = (lambda v, leaf=leaf: leaf_sql(leaf, tags, v))
    else:
        sql = (lambda v, leaf=leaf: f"(NOT {leaf_sql(leaf, tags, v)})")
    literals: tuple[str, ...] | None = None
    if leaf.op in ("exists", "missing"):
        literals = ()
    elif leaf.op == "equals":
        literals = (leaf.value,)
    elif leaf.op == "in":
        literals = tuple(leaf.value)
    else:
        literal = literal_regex(leaf.value)
        if literal is not None and literal[0] == "equals":
            literals = (literal[1],)
    # on a non-NULL value no literal equals: equals/in/regex false, exists true, missing false
    other = (leaf.op == "exists") == positive
    return _Test(sql, literals, other)


TAG_VALUES = "__tag_values"


def lookup_line_columns_query(doc: RuleDocument, where: str) -> tuple[str, list[str]] | None:
    """The per-line columns (PER_LINE_COLUMNS) the matcher would test per line, and a query of (count(*),
    approx_count_distinct(column)...) over the lines of `where` to choose, per column, a lookup (few distinct
    values) or per-line tests (`Matcher(..., lookup_line_columns=...)`). None when there is no such column."""
    m = Matcher(doc, Tags(doc))
    cols = [s.column for s in m.subjects.values() if s.per_line]
    if not cols:
        return None
    return (f"SELECT count(*), {', '.join(f'approx_count_distinct(c.{ident(c)})' for c in cols)} "
            f"FROM {COST_TABLE} c WHERE {where}"), cols


def choose_lookup_line_columns(counts: tuple, cols: list[str]) -> frozenset[str]:
    """Per-line columns whose values repeat enough for a lookup: distinct values at most a quarter of the lines
    (the lookup's tests run once per value, the lines pay one hash probe) and at most LOOKUP_MAX_VALUES (the
    lookup is a hash table in memory)."""
    lines = counts[0] or 0
    return frozenset(c for c, n in zip(cols, counts[1:]) if n is not None and n * 4 <= lines
                     and n <= LOOKUP_MAX_VALUES)


LOOKUP_MAX_VALUES = 4_000_000


class Matcher:
    """Per line, the first rule (document order) that claims it, as set operations instead of a 200-branch CASE.

    Every rule's claim (effective window AND condition AND the tags its outcome needs) is expanded into terms:
    conjunctions of tests that each read one value (a column, a tag, ChargePeriodStart). Terms are numbered in rule
    order and packed into BIGINT words of WORD_BITS bits. For every value a test reads, a lookup holds, per word,
    the bits of the terms whose tests on that value all hold (terms that do not read it: always set); it is joined
    to the lines on the value. A line's word is the AND of its lookups' words, so a bit is set exactly when the term
    holds for the line; the rule of the lowest set bit (first word first) is the first rule that claims the line.
    A lookup's values: when every test on the value compares with literals (equals, in, exists, missing), those
    literals and NULL, from the rules (no pass over the lines); a line whose value is none of them gets the mask
    every other value has (a constant). Otherwise the DISTINCT values among the lines (tags: from one pass over
    the tag maps), computed once per statement (MATERIALIZED CTEs) for every relation that joins them. Values
    unique per line (PER_LINE_COLUMNS, e.g. ResourceId, unless `lookup_line_columns` names them because their
    values repeat) get no lookup: their tests run per line, only where the term's bit is still set, and clear it
    when false. A rule whose expansion is too large (DNF_LIMIT) has one term, always set by the lookups and cleared
    per line when its SQL condition is false. Same result as the CASE by construction;
    tests/test_allocation_differential.py compares it with a Python reading of the rules."""

    def __init__(self, doc: RuleDocument, tags: Tags, lookup_line_columns: frozenset[str] = frozenset()):
        self.tags = tags
        self.lookup_line_columns = lookup_line_columns
        self.term_rule: list[int] = []
        self.residual: dict[int, str] = {}  # term -> per-line SQL
        self.subjects: dict[str, _Subject] = {}
        for idx, rule in enumerate(doc.rules, start=1):
            terms = dnf(rule.when)
            if terms is None:
                self.residual[len(self.term_rule)] = match_sql(rule, tags)
                self.term_rule.append(idx)
                continue
            extra: list[tuple[str | None, str, _Test]] = []  # (column or None, column or tag, test)
            if rule.effective_from is not None:
                ts = lit(rule.effective_from.isoformat() + " 00:00:00+00")
                extra.append(("ChargePeriodStart", "ChargePeriodStart",
                              _Test(lambda v, ts=ts: f"({v} >= TIMESTAMPTZ {ts})")))
            if rule.effective_to is not None:
                ts = lit(rule.effective_to.isoformat() + " 00:00:00+00")
                extra.append(("ChargePeriodStart", "ChargePeriodStart",
                              _Test(lambda v, ts=ts: f"({v} < TIMESTAMPTZ {ts})")))
            for value in rule.set.values():
                if isinstance(value, TagValue) and value.default is None:
                    extra.append((None, value.tag, _Test(lambda v: f"({v} IS NOT NULL)", (), True)))
            for term in terms:
                t = len(self.term_rule)
                self.term_rule.append(idx)
                for leaf, positive in term:
                    self._test(leaf.key if leaf.kind == "column" else None, leaf.key, t,
                               leaf_test(leaf, positive, tags))
                for column, key, test in extra:
                    self._test(column, key, t, test)

    def _test(self, column: str | None, key: str, term: int, test: _Test) -> None:
        """Register `test` of `term` on a column (`column` given) or on tag `key`."""
        if column is not None:
            subject = self.subjects.setdefault(column, _Subject(column, None, {}, self.lookup_line_columns))
        else:
            name = self.tags.column(key)
            subject = self.subjects.setdefault(name, _Subject(name, self.tags.doc.tag_keys(key), {}))
        subject.tests.setdefault(term, []).append(test)

    def words(self) -> int:
        return (len(self.term_rule) + WORD_BITS - 1) // WORD_BITS

    def _terms(self, w: int) -> range:
        return range(w * WORD_BITS, min((w + 1) * WORD_BITS, len(self.term_rule)))

    def _mask_words(self, s: _Subject) -> list[tuple[int, str, int]]:
        """Per word that some term of `s` tests: (word, SQL mask of the value `v`, the mask of any other value)."""
        out = []
        for w in range(self.words()):
            terms = self._terms(w)
            if not any(t in s.tests for t in terms):
                continue
            always = sum(1 << (t % WORD_BITS) for t in terms if t not in s.tests)
            cases = [f"CASE WHEN {' AND '.join(x.sql('v') for x in s.tests[t])} THEN {1 << (t % WORD_BITS)} ELSE 0 END"
                     for t in terms if t in s.tests]
            other = always + sum(1 << (t % WORD_BITS) for t in terms if t in s.tests
                                 and all(x.other for x in s.tests[t]))
            out.append((w, f"CAST({' + '.join([str(always), *cases])} AS BIGINT)", other))
        return out

    def ctes(self, where: str) -> list[str]:
        """CTEs the relations read (put them in the statement's WITH), computed once however many relations join
        them: each lookup (`__lk{j}`: the value v and its words m{w}) and, for lookups over tag values read from
        the lines, the distinct (key, value) pairs of those tags among the lines of `where`."""
        out = []
        keys = sorted({k for s in self.subjects.values() if s.keys and not s.literal for k in s.keys})
        if keys:
            out.append(f"{TAG_VALUES} AS MATERIALIZED (SELECT DISTINCT k, v FROM (SELECT lower(e.key) AS k, "
                       f"e.value AS v FROM (SELECT unnest(map_entries(c.Tags)) AS e FROM {COST_TABLE} c WHERE {where})) "
                       f"WHERE list_contains([{', '.join(lit(k) for k in keys)}], k))")
        for j, s in enumerate(self.subjects.values()):
            if s.per_line:
                continue
            cols = [f"{sql} AS m{w}" for w, sql, _ in self._mask_words(s)]
            if s.literal:
                values = ", ".join(f"({lit(v)})" for v in [*s.literals(), None])
                source = f"SELECT CAST(v AS VARCHAR) AS v FROM (VALUES {values}) t(v)"
            else:
                if s.keys is None:
                    source = f"SELECT DISTINCT c.{ident(s.column)} AS v FROM {COST_TABLE} c WHERE {where}"
                else:
                    source = f"SELECT DISTINCT v FROM {TAG_VALUES} WHERE k IN ({', '.join(lit(k) for k in s.keys)})"
                source = f"SELECT DISTINCT v FROM ({source} UNION ALL SELECT NULL)"
            out.append(f"__lk{j} AS MATERIALIZED (SELECT v, {', '.join(cols)} FROM ({source}))")
        return out

    def relation(self, relation: str) -> str:
        """`relation` (lines with the tag columns, alias c) with the line's words `__word0..` added. Uses the CTEs
        of `ctes(where)`."""
        n = self.words()
        if not n:
            return relation
        joins = []
        per_word: list[list[str]] = [[] for _ in range(n)]
        gated: list[list[tuple[int, str]]] = [[] for _ in range(n)]  # per word: (term, per-line test)
        for j, s in enumerate(self.subjects.values()):
            if s.per_line:
                for t, tests in s.tests.items():
                    gated[t // WORD_BITS].append((t, " AND ".join(x.sql(f"c.{ident(s.column)}") for x in tests)))
                continue
            for w, _, other in self._mask_words(s):
                per_word[w].append(f"coalesce(__s{j}.m{w}, {other})" if s.literal else f"__s{j}.m{w}")
            joins.append(f" LEFT JOIN __lk{j} __s{j} ON __s{j}.v IS NOT DISTINCT FROM c.{ident(s.column)}")
        words, finals = [], []
        for w in range(n):
            terms = self._terms(w)
            words.append(f"CAST({' & '.join(per_word[w]) or sum(1 << (t % WORD_BITS) for t in terms)} AS BIGINT) "
                         f"AS __lw{w}")
            clear = [f"CASE WHEN (__lw{w} & {1 << (t % WORD_BITS)}) <> 0 AND NOT ({sql}) THEN {1 << (t % WORD_BITS)} "
                     "ELSE 0 END" for t, sql in gated[w]]
            clear += [f"CASE WHEN {self.residual[t]} THEN 0 ELSE {1 << (t % WORD_BITS)} END"
                      for t in terms if t in self.residual]
            if clear:  # only lines where one of these terms is still a candidate evaluate the per-line tests
                check = sum(1 << (t % WORD_BITS) for t, _ in gated[w]) + sum(
                    1 << (t % WORD_BITS) for t in terms if t in self.residual)
                finals.append(f"CASE WHEN (__lw{w} & {check}) = 0 THEN __lw{w} ELSE __lw{w} & "
                              f"~CAST({' + '.join(clear)} AS BIGINT) END AS __word{w}")
            else:
                finals.append(f"__lw{w} AS __word{w}")
        inner = f"SELECT c.*, {', '.join(words)} FROM ({relation}) c{''.join(joins)}"
        return f"SELECT c.*, {', '.join(finals)} FROM ({inner}) c"

    def rule_sql(self) -> str:
        """The first claiming rule's index from the words (NULL: none)."""
        if not self.term_rule:
            return "CAST(NULL AS INTEGER)"
        whens = []
        for w in range(self.words()):
            rules = self.term_rule[w * WORD_BITS:(w + 1) * WORD_BITS]
            whens.append(f"WHEN __word{w} <> 0 THEN [{', '.join(map(str, rules))}]"
                         f"[CAST(log2(__word{w} & -__word{w}) AS INTEGER) + 1]")
        return f"CAST(CASE {' '.join(whens)} END AS INTEGER)"


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
                      f"{r.split.metric} driver in this billing period and currency")
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
        plain_dim = {d: (f"coalesce(t.{dim_cols[d]}, m.{ident('__tv_' + d)})" if d in tag_outcomes
                         else f"t.{dim_cols[d]}") for d in dims}
        ctes.append(f"driver_lines AS (SELECT m.*, " + ", ".join(f"{plain_dim[d]} AS {dim_cols[d]}" for d in dims)
                    + f" FROM ({matched(in_periods, w_cols, any_where)}) m "
                    "JOIN targets t ON t.rule_idx = m.rule_idx AND t.kind = 'set')")
        drivers = " UNION ALL ".join(
            f"SELECT {i} AS rule_idx, BillingPeriodStart, BillingCurrency, {dim_cols[r.split.dimension]} AS value, "
            f"sum({ident(r.split.metric)}) AS amount FROM driver_lines WHERE __w{i} "
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
    whole = part_struct("1", "1", "0", "0", {})
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


def leaf_columns(rule: Rule, tags: Tags) -> list[tuple[Leaf, str]]:
    """(leaf, SQL boolean) for every leaf test of a rule's condition and of its proportional `where`."""
    out = [(leaf, leaf_sql(leaf, tags)) for leaf in leaves(rule.when)]
    if isinstance(rule.split, Proportional):
        out += [(leaf, leaf_sql(leaf, tags)) for leaf in leaves(rule.split.where)]
    return out
