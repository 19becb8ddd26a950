"""Differential test of the compiled allocation SQL: random small rule documents over random lines, each compared
part by part with a plain Python reading of the README's rules (first match, effective dates, tag aliases compared
case-insensitively, tag-valued outcomes, even/percent/proportional splits with exact remainders, unallocated).
The SQL is written for speed (lookups for regexes, per-line part lists, 64-bit exact arithmetic); this proves the
speed-ups did not change a single part."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.allocation import engine
from app.allocation import matcher as matcher_mod
from app.allocation.rules import parse_data
from tests.conftest import make_runtime

METRICS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
Q18 = Decimal("1e-18")
COLUMNS = {"ServiceName": ["A", "B", "Ab"], "SubAccountId": ["001", "002", "010", "17"],
           "ResourceId": ["i-17", "i-27", "x-1"]}
TAG_KEYS = ["team", "Team", "owner", "env", "App"]
TAG_VALUES = ["x", "Y", "z"]
PATTERNS = ["^0", "7$", "^A$", "b", "^0+1[0-9]$", "[xy]-", "^i-.7$", "^$"]
PERIODS = [datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 4, 1, tzinfo=timezone.utc)]
ALIASES = {"team": ["owner"]}

money = st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=18, allow_nan=False,
                    allow_infinity=False)
line = st.fixed_dictionaries({
    **{c: st.sampled_from(v) for c, v in COLUMNS.items()},
    "period": st.integers(0, 1), "day": st.integers(1, 28), "currency": st.sampled_from(["USD", "EUR"]),
    "tags": st.none() | st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(TAG_VALUES), max_size=3),
    "BilledCost": money, "EffectiveCost": money | st.integers(1, 500).map(Decimal),
    "ListCost": st.none() | money, "ContractedCost": st.none() | money,
    "same": st.sampled_from([(), ("EffectiveCost",), ("ContractedCost", "ListCost"),
                             ("EffectiveCost", "ListCost", "ContractedCost")]),
}).map(lambda ln: {k: (ln["BilledCost"] if k in ln["same"] else v) for k, v in ln.items() if k != "same"})
# ("same": metrics set equal to BilledCost, which take BilledCost's parts in the compiled SQL)

leaf = st.one_of(
    st.builds(lambda c, op, v, vs, p: {"column": c, **({"equals": v} if op == "equals" else {"in": vs} if op == "in"
                                                        else {"regex": p})},
              st.sampled_from(list(COLUMNS)), st.sampled_from(["equals", "in", "regex"]),
              st.sampled_from(sum(COLUMNS.values(), [])), st.lists(st.sampled_from(sum(COLUMNS.values(), [])),
                                                                   min_size=1, max_size=3),
              st.sampled_from(PATTERNS)),
    st.builds(lambda t, op, v, p: {"tag": t, **({"equals": v} if op == "equals" else {"regex": p} if op == "regex"
                                                 else {op: True})},
              st.sampled_from(["team", "Team", "OWNER", "env", "app"]),
              st.sampled_from(["equals", "regex", "exists", "missing"]), st.sampled_from(TAG_VALUES),
              st.sampled_from(["^[xz]$", "Y", "^y"])),
)
condition = st.recursive(leaf, lambda inner: st.one_of(
    st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
    st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
    inner.map(lambda x: {"not": x})), max_leaves=4)
teams = st.sampled_from(["t1", "t2", "t3", "t4"])
outcome = st.one_of(
    st.builds(lambda t: {"set": {"team": t}}, teams),
    st.builds(lambda lower, default: {"set": {"team": {"tag": "team", "lower": lower,
                                                       **({"default": default} if default else {})}}},
              st.booleans(), st.none() | teams),
    st.builds(lambda ts: {"split": {"even": [{"team": t} for t in ts]}}, st.lists(teams, min_size=2, max_size=4)),
    st.builds(lambda ts, cut: {"split": {"percent": [{"set": {"team": ts[0]}, "percent": cut},
                                                     {"set": {"team": ts[1]}, "percent": 100 - cut}]}},
              st.lists(teams, min_size=2, max_size=2), st.sampled_from([1, 12.25, 50, 70])),
    st.builds(lambda where, cc: {"set": {"cost_center": cc}, "split": {"proportional_to": {
        "dimension": "team", "metric": "EffectiveCost", **({"where": where} if where else {})}}},
        st.none() | condition, st.sampled_from(["shared", "ops"])),
)
rule = st.builds(lambda when, out, start: {**({"when": when} if when else {}), **out,
                                           **({"effective_from": start} if start else {})},
                 st.none() | condition, outcome, st.none() | st.sampled_from(["2026-03-15", "2026-04-10"]))


# -- the reference ---------------------------------------------------------------------------------------------------
def tag(ln, name):
    group = [name.lower()]
    for canonical, aliases in ALIASES.items():
        if name.lower() in [canonical, *aliases]:
            group = [canonical, *aliases]
    for key in group:
        for k, v in (ln["tags"] or {}).items():
            if k.lower() == key:
                return v
    return None


def holds(cond, ln):
    if cond is None:
        return True
    if "all" in cond:
        return all(holds(c, ln) for c in cond["all"])
    if "any" in cond:
        return any(holds(c, ln) for c in cond["any"])
    if "not" in cond:
        return not holds(cond["not"], ln)
    value = ln[cond["column"]] if "column" in cond else tag(ln, cond["tag"])
    if "exists" in cond:
        return value is not None
    if "missing" in cond:
        return value is None
    if value is None:
        return False
    if "equals" in cond:
        return value == cond["equals"]
    if "in" in cond:
        return value in cond["in"]
    return re.search(cond["regex"], value) is not None


def times(amount, share):
    r = (abs(amount) * share).quantize(Q18, ROUND_HALF_UP)
    return -r if amount < 0 else r


def split_parts(ln, shares, big):
    """[(share, {metric: amount})] with line x share, the part `big` taking the remainder."""
    out = [(s, {}) for s in shares]
    for m in METRICS:
        if ln[m] is None:
            for _, a in out:
                a[m] = None
            continue
        amounts = [times(ln[m], s) for s in shares]
        amounts[big] += ln[m] - sum(amounts)
        for (_, a), v in zip(out, amounts):
            a[m] = v
    return out


def reference(rules, lines):
    def claims(r, ln):
        start = r.get("effective_from")
        if start and ln["charge"].date() < date.fromisoformat(start):
            return False
        team = r.get("set", {}).get("team")
        if isinstance(team, dict) and "default" not in team and tag(ln, "team") is None:
            return False
        return holds(r.get("when"), ln)

    def team_of(r, ln):
        team = r.get("set", {}).get("team")
        if isinstance(team, dict):
            v = tag(ln, "team")
            return (v.lower() if team["lower"] and v is not None else v) if v is not None else team.get("default")
        return team

    claimed = {ln["id"]: next((i for i, r in enumerate(rules) if claims(r, ln)), None) for ln in lines}
    parts = []
    for ln in lines:
        i = claimed[ln["id"]]
        whole = {m: ln[m] for m in METRICS}
        if i is None:
            parts.append((ln["id"], 1, None, "unallocated", Decimal(1), whole, True))
            continue
        r, split = rules[i], rules[i].get("split")
        name = r["name"]
        if split is None:
            parts.append((ln["id"], 1, name, team_of(r, ln), Decimal(1), whole, False))
        elif "even" in split:
            n = len(split["even"])
            share = _div(Decimal(1), Decimal(n))
            for k, (s, a) in enumerate(split_parts(ln, [share] * n, 0)):
                parts.append((ln["id"], k + 1, name, split["even"][k]["team"], s, a, False))
        elif "percent" in split:
            pcts = [Decimal(str(p["percent"])) for p in split["percent"]]
            shares = [(p / 100).quantize(Q18, ROUND_HALF_UP) for p in pcts]
            for k, (s, a) in enumerate(split_parts(ln, shares, pcts.index(max(pcts)))):
                parts.append((ln["id"], k + 1, name, split["percent"][k]["set"]["team"], s, a, False))
        else:
            spec = split["proportional_to"]
            drivers = {}
            for o in lines:
                j = claimed[o["id"]]
                if (j is not None and "split" not in rules[j] and o["period"] == ln["period"]
                        and o["currency"] == ln["currency"] and holds(spec.get("where"), o)):
                    v = team_of(rules[j], o)
                    if v is not None:
                        drivers[v] = drivers.get(v, Decimal(0)) + o["EffectiveCost"]
            ranked = sorted(((a, v) for v, a in drivers.items() if a > 0), key=lambda x: (-x[0], x[1]))
            if not ranked:
                parts.append((ln["id"], 1, None, "unallocated", Decimal(1), whole, True))
                continue
            total = sum(a for a, _ in ranked)
            shares = [_div(a, total) for a, _ in ranked]
            for k, (s, a) in enumerate(split_parts(ln, shares, 0)):
                parts.append((ln["id"], k + 1, name, ranked[k][1], s, a, False))
    return parts


def _div(a: Decimal, total: Decimal) -> Decimal:
    """a / total rounded half up to 18 places, exactly (integer long division, as the SQL does)."""
    scale = 10 ** 18
    q, r = divmod(int(a * scale) * scale, int(total * scale))
    if 2 * r >= int(total * scale):
        q += 1
    return Decimal(q).scaleb(-18)


# -- the test --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    rt = make_runtime(tmp_path_factory.mktemp("diff") / "d")
    yield rt
    rt.close()


def load(rt, lines):
    with rt.warehouse.connect() as con:
        for table in ("cost_and_usage", "cost_allocation", "allocation_periods", "allocation_totals"):
            con.execute(f"DELETE FROM {table}")
        for ln in lines:
            start = PERIODS[ln["period"]]
            ln["charge"] = start.replace(day=ln["day"])
            tags = ("MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in ln["tags"].items()) + "}"
                    if ln["tags"] is not None else "NULL")
            if ln["tags"] == {}:
                tags = "CAST(MAP {} AS MAP(VARCHAR, VARCHAR))"
            ln["id"] = con.execute(
                "INSERT INTO cost_and_usage BY NAME SELECT 'AWS' ProviderName, 'AWS' PublisherName, "
                "'AWS' InvoiceIssuerName, '1' BillingAccountId, ? BillingPeriodStart, ? BillingPeriodEnd, "
                "? ChargePeriodStart, ? ChargePeriodEnd, 'Usage' ChargeCategory, ? BilledCost, ? EffectiveCost, "
                "? ListCost, ? ContractedCost, ? BillingCurrency, ? ServiceName, 'Compute' ServiceCategory, "
                f"? SubAccountId, ? ResourceId, {tags} Tags, 'd' x_SourceId, 'd' x_DeliveryId, now() x_IngestedAt, "
                "'f' x_SourceFile, nextval('cost_line_id') x_LineId RETURNING x_LineId",
                [start, start.replace(month=start.month + 1), ln["charge"], ln["charge"], ln["BilledCost"],
                 ln["EffectiveCost"], ln["ListCost"], ln["ContractedCost"], ln["currency"], ln["ServiceName"],
                 ln["SubAccountId"], ln["ResourceId"]]).fetchone()[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(rules=st.lists(rule, min_size=1, max_size=6), lines=st.lists(line, min_size=1, max_size=25))
def test_compiled_sql_equals_the_reference(runtime, rules, lines):
    check(runtime, rules, lines)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(rules=st.lists(rule, min_size=1, max_size=6), lines=st.lists(line, min_size=1, max_size=25))
def test_matcher_residual_terms_and_many_words_equal_the_reference(runtime, rules, lines):
    """The matcher's other paths: every rule tested per line as a residual term (no condition expanded), and terms
    spread over many mask words (2 bits each), so the lowest-set-bit search crosses words."""
    with patch.object(matcher_mod, "DNF_LIMIT", 0):
        check(runtime, rules, lines)
    with patch.object(matcher_mod, "WORD_BITS", 2):
        check(runtime, rules, lines)


def check(runtime, rules, lines):
    rules = [{"name": f"r{i}", **r} for i, r in enumerate(rules)]
    doc = {"tag_aliases": ALIASES, "rules": rules}
    parse_data(doc)  # every generated document is valid
    load(runtime, lines)
    engine.apply(runtime, json.dumps(doc))
    with runtime.warehouse.connect(read_only=True) as con:
        got = con.execute(f"SELECT x_LineId, part, rule_name, team, share, {', '.join(METRICS)}, reason IS NOT NULL "
                          "FROM cost_allocation ORDER BY 1, 2").fetchall()
    want = sorted((lid, part, name, team, share, *(a[m] for m in METRICS), unalloc)
                  for lid, part, name, team, share, a, unalloc in reference(rules, lines))
    assert [tuple(r) for r in got] == want
