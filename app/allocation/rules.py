"""The allocation rule document: YAML (or JSON) text -> validated dataclasses, or errors naming rule and field.

A document declares the dimensions (team, service, cost_center and environment always exist, plus custom ones),
tag aliases (one canonical tag name and the keys that mean the same thing; keys always compare case-insensitively)
and an ordered list of rules. Every problem found is reported at once, each naming the rule and the field, so a bad
file never half-applies: `parse_document` either returns a whole `RuleDocument` or raises `RulesInvalid`.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Union

import duckdb
import yaml

from app.focus import COST_METRICS, DIMENSIONS, canonical_dimension

BUILTIN_DIMENSIONS = ("team", "service", "cost_center", "environment")
UNALLOCATED = "unallocated"
# Columns a condition may test: every FOCUS text column (ProviderName, BillingAccountId, SubAccountId, ServiceName,
# ServiceCategory, RegionId, ResourceId, SkuId, ChargeCategory, ...) and the provider columns (x_ResourceGroupName,
# x_SkuMeterCategory, x_InvoiceSectionName).
CONDITION_COLUMNS = tuple(d for d in DIMENSIONS if d != "x_DeliveryId")
OPERATORS = ("equals", "in", "regex", "exists", "missing")
DIMENSION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RULE_KEYS = {"name", "when", "set", "split", "effective_from", "effective_to", "description"}


@dataclass(frozen=True)
class RuleProblem:
    rule: str | None  # None: the document itself (YAML syntax, dimensions, tag_aliases)
    field: str
    message: str

    def __str__(self) -> str:
        where = f"rule {self.rule!r}, field {self.field}" if self.rule is not None else f"field {self.field}"
        return f"{where}: {self.message}"


class RulesInvalid(ValueError):
    """The document has problems; none of it applies. `problems` lists each with its rule and field."""

    def __init__(self, problems: list[RuleProblem]):
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


# -- conditions --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leaf:
    """One test on a line: a column or a tag (by canonical name, resolved through the aliases)."""

    kind: str  # "column" | "tag"
    key: str  # canonical column name, or the tag name as written (lower-cased)
    op: str  # one of OPERATORS
    value: Any = None  # str for equals/regex, tuple[str, ...] for in, None for exists/missing
    path: str = ""  # where it sits in the rule ("when.all[0]"), for explain

    def describe(self) -> str:
        subject = self.key if self.kind == "column" else f"tag {self.key}"
        if self.op in ("exists", "missing"):
            return f"{subject} {self.op}"
        if self.op == "in":
            return f"{subject} in {list(self.value)}"
        return f"{subject} {self.op} {self.value!r}"


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Any_:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Union[Leaf, All, Any_, Not]


def leaves(cond: Condition | None) -> list[Leaf]:
    if cond is None:
        return []
    if isinstance(cond, Leaf):
        return [cond]
    if isinstance(cond, Not):
        return leaves(cond.item)
    return [leaf for item in cond.items for leaf in leaves(item)]


# -- outcomes ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagValue:
    """A dimension set to the value of a tag: optionally lower-cased, then mapped; `default` where the tag is
    missing (without a default the rule only claims lines that have the tag)."""

    tag: str
    lower: bool = False
    mapping: tuple[tuple[str, str], ...] = ()
    default: str | None = None


Outcome = Union[str, TagValue]


@dataclass(frozen=True)
class Even:
    targets: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class Percent:
    parts: tuple[tuple[dict[str, str], Decimal], ...]  # (target, percent)


@dataclass(frozen=True)
class Proportional:
    dimension: str
    metric: str  # a cost metric, or a usage quantity (QUANTITY_METRICS) of lines in `unit`
    where: Condition | None
    unit: str | None = None  # for a usage quantity: only driver lines in this unit count

    @property
    def driver(self) -> str:
        """The driver as people read it: `EffectiveCost`, `ConsumedQuantity in GB-Mo`."""
        return f"{self.metric} in {self.unit}" if self.unit else self.metric


# Usage drivers: a proportional split by the usage quantity of the lines `where` selects, in one unit (the unit
# column of each quantity), e.g. shared storage cost by each team's GB-Mo.
QUANTITY_METRICS = {"ConsumedQuantity": "ConsumedUnit", "PricingQuantity": "PricingUnit"}


Split = Union[Even, Percent, Proportional]


@dataclass(frozen=True)
class Rule:
    name: str
    when: Condition | None
    set: dict[str, Outcome]
    split: Split | None
    effective_from: date | None
    effective_to: date | None  # exclusive
    raw: dict = field(compare=False, hash=False, repr=False, default_factory=dict)

    @property
    def canonical(self) -> str:
        """The rule as normalized JSON: what decides whether a rule changed between two versions."""
        return json.dumps(self.raw, sort_keys=True, default=str, separators=(",", ":"))

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether the rule's effective window [effective_from, effective_to) meets charge periods in [start, end]."""
        if self.effective_from is not None and end.date() < self.effective_from:
            return False
        if self.effective_to is not None and start.date() >= self.effective_to:
            return False
        return True


@dataclass(frozen=True)
class RuleDocument:
    dimensions: tuple[str, ...]
    tag_aliases: dict[str, tuple[str, ...]]
    rules: tuple[Rule, ...]
    raw: dict = field(compare=False, hash=False, repr=False, default_factory=dict)

    @property
    def custom_dimensions(self) -> tuple[str, ...]:
        return tuple(d for d in self.dimensions if d not in BUILTIN_DIMENSIONS)

    def tag_keys(self, name: str) -> tuple[str, ...]:
        """Lower-cased tag keys that mean `name`: its alias group (canonical name first), or just itself."""
        low = name.lower()
        for canonical, aliases in self.tag_aliases.items():
            group = (canonical.lower(), *(a.lower() for a in aliases))
            if low in group:
                return tuple(dict.fromkeys(group))
        return (low,)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    @property
    def header(self) -> str:
        """Dimensions and aliases as normalized JSON: a change to them changes every period's allocation."""
        return json.dumps({"dimensions": list(self.dimensions), "tag_aliases": self.tag_aliases}, sort_keys=True)

    def fingerprint(self, start: datetime, end: datetime) -> str:
        """The effective rule set of a billing period whose charges run from `start` to `end`: dimensions, aliases
        and, in order, every rule whose effective window meets the period. Equal fingerprints = same allocation."""
        h = hashlib.sha256(self.header.encode())
        for r in self.rules:
            if r.overlaps(start, end):
                h.update(b"\x00" + r.canonical.encode())
        return h.hexdigest()

    def to_text(self) -> str:
        return json.dumps(self.raw, indent=2, default=str)


EMPTY = RuleDocument(BUILTIN_DIMENSIONS, {}, (), {"dimensions": list(BUILTIN_DIMENSIONS), "rules": []})


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- parsing -----------------------------------------------------------------------------------------------------
def load_text(text: str) -> Any:
    """YAML (JSON is YAML) text -> Python data; a syntax error names its line and column. Parsed with libyaml when
    PyYAML has it (same constructor and resolver, a 200-rule document in 40 ms instead of 280 ms); a document it
    rejects is parsed again by the pure-Python loader, whose error messages are the ones reported."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # noqa: S506 - CSafeLoader is the safe loader
        except yaml.YAMLError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
        raise RulesInvalid([RuleProblem(None, "document", f"YAML syntax error at {where}: {problem}")]) from None


def parse_document(text: str) -> RuleDocument:
    return parse_data(load_text(text))


def parse_data(data: Any) -> RuleDocument:
    p = _Parser()
    doc = p.document(data)
    if p.problems:
        raise RulesInvalid(p.problems)
    return doc


class _Parser:
    def __init__(self):
        self.problems: list[RuleProblem] = []
        self.rule: str | None = None
        self.dimensions: tuple[str, ...] = BUILTIN_DIMENSIONS

    def err(self, fld: str, message: str) -> None:
        self.problems.append(RuleProblem(self.rule, fld, message))

    def document(self, data: Any) -> RuleDocument:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.err("document", "must be a mapping with dimensions, tag_aliases and rules")
            return EMPTY
        for key in sorted(set(data) - {"dimensions", "tag_aliases", "rules"}, key=str):
            self.err(str(key), "unknown key (allowed: dimensions, tag_aliases, rules)")
        dims = list(BUILTIN_DIMENSIONS)
        raw_dims = data.get("dimensions") or []
        if not isinstance(raw_dims, list):
            self.err("dimensions", "must be a list of names")
            raw_dims = []
        for i, d in enumerate(raw_dims):
            if not isinstance(d, str) or not DIMENSION_NAME.match(d):
                self.err(f"dimensions[{i}]", f"{d!r} is not a dimension name (lower case letters, digits, _)")
            elif canonical_dimension(d) is not None:
                self.err(f"dimensions[{i}]", f"{d!r} is a FOCUS column; dimensions must have their own names")
            elif d not in dims:
                dims.append(d)
        self.dimensions = tuple(dims)
        aliases: dict[str, tuple[str, ...]] = {}
        raw_aliases = data.get("tag_aliases") or {}
        if not isinstance(raw_aliases, dict):
            self.err("tag_aliases", "must map a tag name to a list of keys that mean the same")
            raw_aliases = {}
        seen: dict[str, str] = {}
        for name, keys in raw_aliases.items():
            if isinstance(keys, str):
                keys = [keys]
            if not isinstance(name, str) or not name or not isinstance(keys, list) or not all(
                    isinstance(k, str) and k for k in keys):
                self.err(f"tag_aliases.{name}", "must be a tag name with a list of tag keys")
                continue
            for k in (name, *keys):
                owner = seen.setdefault(k.lower(), name)
                if owner != name:
                    self.err(f"tag_aliases.{name}", f"tag key {k!r} is already an alias of {owner!r}")
            aliases[name] = tuple(keys)
        rules: list[Rule] = []
        raw_rules = data.get("rules") or []
        if not isinstance(raw_rules, list):
            self.err("rules", "must be a list of rules")
            raw_rules = []
        names: set[str] = set()
        for i, raw in enumerate(raw_rules):
            self.rule = None
            if not isinstance(raw, dict):
                self.err(f"rules[{i}]", "a rule must be a mapping with name, when, set/split")
                continue
            name = raw.get("name")
            if not isinstance(name, str) or not name.strip():
                self.err(f"rules[{i}].name", "every rule needs a non-empty name")
                name = f"#{i + 1}"
            self.rule = name
            if name in names:
                self.err("name", f"duplicate rule name (rule #{i + 1}); rule names must be unique")
            names.add(name)
            rule = self.one_rule(name, raw)
            if rule is not None:
                rules.append(rule)
        self.rule = None
        raw_doc = {"dimensions": list(self.dimensions), "tag_aliases": {k: list(v) for k, v in aliases.items()},
                   "rules": [_plain(r) for r in raw_rules]}
        return RuleDocument(self.dimensions, aliases, tuple(rules), raw_doc)

    def one_rule(self, name: str, raw: dict) -> Rule | None:
        for key in sorted(set(raw) - RULE_KEYS, key=str):
            self.err(str(key), f"unknown key (allowed: {', '.join(sorted(RULE_KEYS))})")
        when = self.condition(raw["when"], "when") if raw.get("when") is not None else None
        outcome = self.outcomes(raw.get("set") or {}, "set", allow_tag=True)
        split = self.split(raw["split"]) if raw.get("split") is not None else None
        if not outcome and split is None:
            self.err("set", "a rule needs `set` (dimension values) or `split` (targets)")
        start = self.day(raw.get("effective_from"), "effective_from")
        end = self.day(raw.get("effective_to"), "effective_to")
        if start and end and end <= start:
            self.err("effective_to", f"{end} must be after effective_from {start} (effective_to is exclusive)")
        if isinstance(split, Proportional) and split.dimension in outcome:
            self.err("split.proportional_to.dimension",
                     f"{split.dimension!r} is also in `set`; the split sets it from the driver values")
        return Rule(name, when, outcome, split, start, end, _plain(raw))

    def day(self, value: Any, fld: str) -> date | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        text = str(value)
        for fmt in ("%Y-%m-%d", "%Y-%m"):
            try:
                return datetime.strptime(text, fmt).date()
            except ValueError:
                continue
        self.err(fld, f"{value!r} is not a date (YYYY-MM-DD, or YYYY-MM for the month's first day)")
        return None

    # conditions
    def condition(self, raw: Any, path: str) -> Condition | None:
        if not isinstance(raw, dict) or not raw:
            self.err(path, "a condition is a mapping: {all: [...]}, {any: [...]}, {not: ...}, "
                           "{column: NAME, <operator>: ...} or {tag: KEY, <operator>: ...}")
            return None
        combinators = [k for k in ("all", "any", "not") if k in raw]
        if combinators:
            if len(raw) != 1:
                self.err(path, f"{combinators[0]!r} cannot be combined with other keys in one mapping")
                return None
            key = combinators[0]
            if key == "not":
                inner = self.condition(raw["not"], f"{path}.not")
                return Not(inner) if inner is not None else None
            items = raw[key]
            if not isinstance(items, list) or not items:
                self.err(f"{path}.{key}", "must be a non-empty list of conditions")
                return None
            parsed = [self.condition(c, f"{path}.{key}[{i}]") for i, c in enumerate(items)]
            if any(c is None for c in parsed):
                return None
            return All(tuple(parsed)) if key == "all" else Any_(tuple(parsed))
        return self.leaf(raw, path)

    def leaf(self, raw: dict, path: str) -> Leaf | None:
        subjects = [k for k in ("column", "tag") if k in raw]
        if len(subjects) != 1:
            self.err(path, "a test names exactly one `column` or one `tag`")
            return None
        kind = subjects[0]
        subject = raw[kind]
        ops = [k for k in raw if k != kind]
        unknown = [k for k in ops if k not in OPERATORS]
        if unknown:
            self.err(f"{path}.{unknown[0]}", f"unknown operator {unknown[0]!r} (allowed: {', '.join(OPERATORS)})")
            return None
        if len(ops) != 1:
            self.err(path, f"a test takes exactly one operator ({', '.join(OPERATORS)})")
            return None
        op = ops[0]
        if kind == "column":
            col = canonical_dimension(subject) if isinstance(subject, str) else None
            if col is None or col not in CONDITION_COLUMNS:
                self.err(f"{path}.column", f"unknown column {subject!r} (allowed: {', '.join(CONDITION_COLUMNS)})")
                return None
            key = col
        else:
            if not isinstance(subject, str) or not subject:
                self.err(f"{path}.tag", "must be a tag key")
                return None
            key = subject.lower()
        value = raw[op]
        if op in ("exists", "missing"):
            if value is not True:
                self.err(f"{path}.{op}", f"write `{op}: true`")
                return None
            value = None
        elif op == "in":
            if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
                self.err(f"{path}.in", "must be a non-empty list of values")
                return None
            value = tuple(str(v) for v in value)
        else:
            if not _scalar(value):
                self.err(f"{path}.{op}", "must be a single text value")
                return None
            value = str(value)
            if op == "regex":
                problem = regex_problem(value)
                if problem:
                    self.err(f"{path}.regex", f"invalid regular expression {value!r}: {problem}")
                    return None
        return Leaf(kind, key, op, value, path)

    # outcomes
    def outcomes(self, raw: Any, path: str, allow_tag: bool) -> dict[str, Outcome]:
        if not isinstance(raw, dict):
            self.err(path, "must map dimension names to values")
            return {}
        out: dict[str, Outcome] = {}
        for dim, value in raw.items():
            if dim not in self.dimensions:
                self.err(f"{path}.{dim}", f"undeclared dimension {dim!r} (declared: {', '.join(self.dimensions)}); "
                                          f"add it under `dimensions:`")
                continue
            if isinstance(value, dict) and allow_tag:
                tv = self.tag_value(value, f"{path}.{dim}")
                if tv is not None:
                    out[dim] = tv
            elif _scalar(value) and str(value) != "":
                out[dim] = str(value)
            else:
                what = "a value or {tag: KEY}" if allow_tag else "a value (split targets take fixed values)"
                self.err(f"{path}.{dim}", f"must be {what}")
        return out

    def tag_value(self, raw: dict, path: str) -> TagValue | None:
        extra = set(raw) - {"tag", "lower", "map", "default"}
        if extra:
            self.err(f"{path}.{sorted(extra, key=str)[0]}", "unknown key (allowed: tag, lower, map, default)")
            return None
        tag, mapping = raw.get("tag"), raw.get("map") or {}
        if not isinstance(tag, str) or not tag:
            self.err(f"{path}.tag", "must be a tag key")
            return None
        if not isinstance(mapping, dict) or not all(_scalar(k) and _scalar(v) for k, v in mapping.items()):
            self.err(f"{path}.map", "must map tag values to dimension values")
            return None
        if "lower" in raw and not isinstance(raw["lower"], bool):
            self.err(f"{path}.lower", "must be true or false")
            return None
        default = raw.get("default")
        if default is not None and not _scalar(default):
            self.err(f"{path}.default", "must be a single value")
            return None
        return TagValue(tag.lower(), bool(raw.get("lower")), tuple((str(k), str(v)) for k, v in mapping.items()),
                        None if default is None else str(default))

    def target(self, raw: Any, path: str) -> dict[str, str] | None:
        if not isinstance(raw, dict) or not raw:
            self.err(path, "a split target is a mapping of dimension values, e.g. {team: payments}")
            return None
        before = len(self.problems)
        out = self.outcomes(raw, path, allow_tag=False)
        return out if len(self.problems) == before else None

    def split(self, raw: Any) -> Split | None:
        if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("even", "percent", "proportional_to"):
            self.err("split", "must be one of {even: [targets]}, {percent: [{set: ..., percent: N}]}, "
                              "{proportional_to: {dimension: ..., metric: ..., where: ...}}")
            return None
        kind, body = next(iter(raw.items()))
        path = f"split.{kind}"
        if kind == "even":
            if not isinstance(body, list) or len(body) < 2:
                self.err(path, "needs a list of at least two targets")
                return None
            targets = [self.target(t, f"{path}[{i}]") for i, t in enumerate(body)]
            return Even(tuple(targets)) if all(t is not None for t in targets) else None
        if kind == "percent":
            if not isinstance(body, list) or not body:
                self.err(path, "needs a list of {set: {...}, percent: N}")
                return None
            parts, ok, total = [], True, Decimal(0)
            for i, part in enumerate(body):
                if not isinstance(part, dict) or set(part) != {"set", "percent"}:
                    self.err(f"{path}[{i}]", "each part is {set: {dimension: value}, percent: N}")
                    ok = False
                    continue
                target = self.target(part["set"], f"{path}[{i}].set")
                try:
                    pct = Decimal(str(part["percent"]))
                    if isinstance(part["percent"], bool) or not pct.is_finite() or pct <= 0:
                        raise InvalidOperation
                    if pct.as_tuple().exponent < -16:
                        self.err(f"{path}[{i}].percent", "at most 16 decimal places")
                        ok = False
                except (InvalidOperation, ValueError):
                    self.err(f"{path}[{i}].percent", f"{part['percent']!r} is not a positive number")
                    ok = False
                    continue
                total += pct
                if target is None:
                    ok = False
                parts.append((target, pct))
            if ok and total != 100:
                self.err(path, f"percentages sum to {total}, not 100")
                ok = False
            return Percent(tuple(parts)) if ok else None
        if not isinstance(body, dict) or "dimension" not in body or set(body) - {"dimension", "metric", "where",
                                                                                 "unit"}:
            self.err(path, "needs {dimension: NAME, metric: EffectiveCost, where: <condition>} (a usage metric "
                           "also needs unit: UNIT)")
            return None
        dim = body["dimension"]
        if dim not in self.dimensions:
            self.err(f"{path}.dimension", f"undeclared dimension {dim!r} (declared: {', '.join(self.dimensions)})")
            return None
        metrics = (*COST_METRICS, *QUANTITY_METRICS)
        metric = next((m for m in metrics if m.lower() == str(body.get("metric", "EffectiveCost")).lower()), None)
        if metric is None:
            self.err(f"{path}.metric", f"{body.get('metric')!r} is not one of {', '.join(metrics)}")
            return None
        unit = body.get("unit")
        if metric in QUANTITY_METRICS:
            if not isinstance(unit, str) or not unit.strip():
                self.err(f"{path}.unit", f"a split by {metric} needs the unit its driver lines are in "
                                         f"({QUANTITY_METRICS[metric]}, e.g. GB-Mo or Hours): quantities in "
                                         "different units do not add up")
                return None
            unit = unit.strip()
        elif unit is not None:
            self.err(f"{path}.unit", f"only a usage metric ({', '.join(QUANTITY_METRICS)}) takes a unit; "
                                     f"{metric} is money in the billing currency")
            return None
        where = None
        if body.get("where") is not None:
            where = self.condition(body["where"], f"{path}.where")
            if where is None:
                return None
        return Proportional(dim, metric, where, unit)


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, Decimal)) and not isinstance(v, bool)


def _plain(v: Any) -> Any:
    """YAML data with dates as ISO text and Decimals as text: JSON-serializable and stable."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v


_REGEX_LOCK = threading.Lock()
_REGEX_CON: duckdb.DuckDBPyConnection | None = None


def regex_problem(pattern: str) -> str | None:
    """Why DuckDB's regular-expression engine (RE2, what the compiled rules run on) rejects `pattern`, or None."""
    global _REGEX_CON
    with _REGEX_LOCK:
        if _REGEX_CON is None:
            _REGEX_CON = duckdb.connect()
        try:
            _REGEX_CON.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
        except duckdb.Error as exc:
            return str(exc).split("Error: ", 1)[-1]
    return None
