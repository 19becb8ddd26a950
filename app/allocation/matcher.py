"""The rule matcher of the allocation statement: per line, the first rule (document order) that claims it, from
bitmasks instead of a per-line CASE over every rule (`Matcher`; app/allocation/compile.py joins its CTEs and
relation into the statement), and the choice of the per-line columns whose values repeat enough for a lookup
(`lookup_line_columns_query`, `choose_lookup_line_columns`).

Speed (bench/allocation_bench.py, profiled with EXPLAIN ANALYZE): rule tests run once per value of what they read:
for values compared only with literals (equals, in, exists, missing) the lookup is built from the rules' literals
without reading the lines; otherwise from the distinct values among the lines, once per statement. Per-line columns
such as ResourceId get a lookup when the engine finds their values repeat (`choose_lookup_line_columns`), else they
are tested per line only where the rule is still a candidate.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.allocation.rules import All, Condition, Leaf, Not, RuleDocument, TagValue
from app.allocation.sql import PER_LINE_COLUMNS, Tags, ident, leaf_sql, lit, literal_regex, match_sql
from app.warehouse import COST_TABLE

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
