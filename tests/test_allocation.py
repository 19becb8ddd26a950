"""Allocation: rule validation (the previous version stays active), every line allocated exactly once with exact
splits, effective dates, versions touching only the periods they change, diff, explain and re-delivered months."""
from __future__ import annotations

import csv
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.allocation import engine
from app.allocation.rules import RulesInvalid, parse_document
from app.ingest import ingest
from tests.conftest import make_runtime
from tests.helpers import read_rows, write_csv
from tests.test_samples import SAMPLES

AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"
METRICS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")

RULES = """
dimensions: [product]
tag_aliases:
  team: [Owner, owner_team, "user:team"]
  cost_center: [CostCenter, cost-center]
rules:
  - name: tax-even
    when: {column: ChargeCategory, in: [Tax]}
    split:
      even: [{team: team-data}, {team: team-payments}, {team: team-platform}]
  - name: network-by-compute
    when: {column: ServiceCategory, equals: Networking}
    set: {cost_center: shared}
    split:
      proportional_to: {dimension: team, metric: EffectiveCost, where: {column: ServiceCategory, equals: Compute}}
  - name: storage-60-40
    when: {all: [{column: ServiceCategory, equals: Storage}, {tag: team, missing: true}]}
    split:
      percent: [{set: {team: team-data}, percent: 60}, {set: {team: team-platform}, percent: 40}]
  - name: by-owner
    when: {tag: team, exists: true}
    set:
      team: {tag: team, lower: true}
      cost_center: {tag: cost_center, lower: true, default: none}
      product: {tag: app, default: core}
"""


def q(rt, sql, params=None):
    with rt.warehouse.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def assert_every_line_allocated_once(rt):
    """Per line: exactly one part 1, parts numbered 1..n, and the parts' sums equal the line for all four metrics;
    per day, provider and month: allocated + unallocated = total."""
    sums = ", ".join(f"sum(a.{m}) AS {m}" for m in METRICS)
    bad = q(rt, f"""
        WITH p AS (SELECT x_LineId, count(*) n, max(part) top, count(*) FILTER (WHERE part = 1) ones, {sums}
                   FROM cost_allocation a GROUP BY 1)
        SELECT c.x_LineId FROM cost_and_usage c LEFT JOIN p USING (x_LineId)
        WHERE p.x_LineId IS NULL OR p.ones <> 1 OR p.n <> p.top
           OR {' OR '.join(f'p.{m} IS DISTINCT FROM c.{m}' for m in METRICS)}""")
    assert bad == []
    assert q(rt, "SELECT count(*) FROM cost_allocation WHERE x_LineId NOT IN (SELECT x_LineId FROM cost_and_usage)") \
        == [(0,)]
    for trunc in ("day", "month"):
        rows = q(rt, f"""
            WITH t AS (SELECT ProviderName p, date_trunc('{trunc}', ChargePeriodStart) d, BillingCurrency c,
                              sum(EffectiveCost) total FROM cost_and_usage GROUP BY ALL),
                 a AS (SELECT ProviderName p, date_trunc('{trunc}', ChargePeriodStart) d, BillingCurrency c,
                              coalesce(sum(EffectiveCost) FILTER (WHERE rule_name IS NOT NULL), 0) allocated,
                              coalesce(sum(EffectiveCost) FILTER (WHERE rule_name IS NULL), 0) unallocated
                       FROM cost_allocation GROUP BY ALL)
            SELECT t.total, a.allocated, a.unallocated FROM t LEFT JOIN a USING (p, d, c)""")
        assert rows and all(a is not None and a + u == t for t, a, u in rows)


@pytest.fixture
def loaded(rt, samples):
    ingest(rt, "aws", str(samples / AWS))
    return rt


# -- bad input -----------------------------------------------------------------------------------------------------
BAD = [
    ("rules: [{name: a, when: {column: ServiceName, regex: '(unclosed'}, set: {team: x}}]", "a", "when.regex",
     "invalid regular expression"),
    ("rules: [{name: a, when: {column: Colour, equals: red}, set: {team: x}}]", "a", "when.column", "unknown column"),
    ("rules: [{name: a, when: {column: ServiceName, like: x}, set: {team: x}}]", "a", "when.like", "unknown operator"),
    ("rules: [{name: a, split: {percent: [{set: {team: x}, percent: 60}, {set: {team: y}, percent: 30}]}}]", "a",
     "split.percent", "sum to 90, not 100"),
    ("rules: [{name: a, split: {even: [{team: x}, {squad: y}]}}]", "a", "split.even[1].squad",
     "undeclared dimension"),
    ("rules: [{name: a, split: {proportional_to: {dimension: squad}}}]", "a", "split.proportional_to.dimension",
     "undeclared dimension"),
    ("rules: [{name: a, set: {team: x}}, {name: a, set: {team: y}}]", "a", "name", "duplicate rule name"),
    ("rules:\n  - name: a\n    set: {team: x\n  - name: b\n", None, "document", "YAML syntax error at line"),
    ("rules: [{name: a, when: {all: [{tag: team, exists: true}, {not: {column: RegionId, regex: '[z-a]'}}]}, "
     "set: {team: x}}]", "a", "when.all[1].not.regex", "invalid character class range"),
    ("rules: [{name: a, set: {team: x}, effective_from: 2026-06-01, effective_to: 2026-05-01}]", "a",
     "effective_to", "must be after"),
    ("rules: [{name: a, split: {proportional_to: {dimension: team, metric: ConsumedQuantity}}}]", "a",
     "split.proportional_to.unit", "needs the unit its driver lines are in"),
    ("rules: [{name: a, split: {proportional_to: {dimension: team, metric: BilledCost, unit: Hours}}}]", "a",
     "split.proportional_to.unit", "only a usage metric"),
]


@pytest.mark.parametrize("text,rule,fld,message", BAD, ids=[b[3][:24] for b in BAD])
def test_bad_documents_name_rule_and_field_and_keep_the_previous_version(rt_any, samples, text, rule, fld, message):
    ingest(rt_any, "aws", str(samples / AWS))
    good = engine.apply(rt_any, RULES, note="good")
    before = q(rt_any, "SELECT * FROM cost_allocation ORDER BY x_LineId, part")
    with pytest.raises(RulesInvalid) as info:
        engine.apply(rt_any, text, note="bad")
    problem = info.value.problems[0]
    assert (problem.rule, problem.field) == (rule, fld) and message in problem.message
    assert message in str(info.value) and (rule is None or repr(rule) in str(info.value))
    versions = engine.list_versions(rt_any)
    assert [(v["version"], v["active"]) for v in versions] == [(good.version, True)]
    assert q(rt_any, "SELECT * FROM cost_allocation ORDER BY x_LineId, part") == before


def test_a_failing_allocation_keeps_the_previous_version(rt_any, samples, monkeypatch):
    ingest(rt_any, "aws", str(samples / AWS))
    good = engine.apply(rt_any, RULES)
    before = q(rt_any, "SELECT * FROM cost_allocation ORDER BY x_LineId, part")
    from app.allocation import compile as comp

    real = comp.compile_allocation
    def broken(*a):  # the compiled INSERT fails after the DELETE ran, inside the transaction
        c = real(*a)
        return comp.Compiled(c.sql + " WHERE no_such_column", c.params)

    monkeypatch.setattr(engine, "compile_allocation", broken)
    with pytest.raises(Exception, match="no_such_column"):
        engine.apply(rt_any, RULES.replace("team-data}, {team: team-payments", "team-data}, {team: team-x"))
    assert [(v["version"], v["active"]) for v in engine.list_versions(rt_any)] == [(good.version, True)]
    assert q(rt_any, "SELECT * FROM cost_allocation ORDER BY x_LineId, part") == before


def test_tag_aliases_compare_keys_case_insensitively():
    doc = parse_document("tag_aliases: {team: [Owner, 'user:team']}\nrules: []")
    assert doc.tag_keys("TEAM") == doc.tag_keys("owner") == doc.tag_keys("User:Team") == ("team", "owner", "user:team")
    assert doc.tag_keys("app") == ("app",)


# -- every line exactly once -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.rsplit("/", 1)[-1])
def test_every_sample_line_is_allocated_exactly_once(sample, samples, tmp_path):
    rt = make_runtime(tmp_path / "d")
    try:
        ingest(rt, "s", str(samples / sample))
        assert_every_line_allocated_once(rt)  # before any rule: everything unallocated
        assert q(rt, "SELECT DISTINCT team, rule_version FROM cost_allocation") == [("unallocated", 0)]
        engine.apply(rt, RULES)
        assert_every_line_allocated_once(rt)
        rows = read_rows(samples / sample)
        for m in METRICS:  # against an independent reading of the file
            expected = sum((Decimal(r[m]) for r in rows if r.get(m) is not None), Decimal(0))
            assert q(rt, f"SELECT coalesce(sum({m}), 0) FROM cost_allocation")[0][0] == expected
    finally:
        rt.close()


def test_outcomes_splits_and_tag_values(loaded):
    engine.apply(loaded, RULES)
    rows = q(loaded, "SELECT rule_name, team, cost_center, dims['product'] FROM cost_allocation")
    by_rule = {}
    for rule, team, cc, product in rows:
        by_rule.setdefault(rule, set()).add((team, cc, product))
    assert {t for t, _, _ in by_rule["by-owner"]} == {"team-data", "team-payments", "team-platform"}
    assert {cc for _, cc, _ in by_rule["by-owner"]} <= {"cc-1042", "cc-2087", "cc-3110", "none"}
    assert {p for _, _, p in by_rule["by-owner"]} == {"core"}
    assert {(t, cc) for t, cc, _ in by_rule["network-by-compute"]} == {
        ("team-data", "shared"), ("team-payments", "shared"), ("team-platform", "shared")}
    # Even split: three parts per tax line, shares 1/3 rounded, the first target takes the remainder.
    for line_id, parts in _parts_by_line(loaded, "tax-even").items():
        assert [p[1] for p in parts] == ["team-data", "team-payments", "team-platform"]
        _assert_exact(parts, loaded, line_id)
    # Proportional: shares are each team's Compute EffectiveCost (plain rules only) over the total, per period.
    drivers = dict(q(loaded, """SELECT a.team, sum(a.EffectiveCost) FROM cost_allocation a JOIN cost_and_usage c
                                USING (x_LineId) WHERE c.ServiceCategory = 'Compute' AND a.rule_name = 'by-owner'
                                GROUP BY 1"""))
    total = sum(drivers.values())
    shares = dict(q(loaded, "SELECT DISTINCT team, share FROM cost_allocation WHERE rule_name = 'network-by-compute'"))
    assert shares == {t: (d / total).quantize(Decimal("1e-18"), ROUND_HALF_UP) for t, d in drivers.items()}
    for line_id, parts in _parts_by_line(loaded, "network-by-compute").items():
        _assert_exact(parts, loaded, line_id, largest=max(drivers, key=drivers.get))


def _parts_by_line(rt, rule):
    out = {}
    for line_id, team, share, *amounts in q(rt, f"SELECT x_LineId, team, share, {', '.join(METRICS)} FROM "
                                                "cost_allocation WHERE rule_name = ? ORDER BY x_LineId, part", [rule]):
        out.setdefault(line_id, []).append((share, team, *amounts))
    assert out
    return out


def _assert_exact(parts, rt, line_id, largest=None):
    line = q(rt, f"SELECT {', '.join(METRICS)} FROM cost_and_usage WHERE x_LineId = ?", [line_id])[0]
    shares = [p[0] for p in parts]
    big = next(i for i, p in enumerate(parts) if p[1] == largest) if largest else shares.index(max(shares))
    for k, amount in enumerate(line):
        if amount is None:
            assert all(p[2 + k] is None for p in parts)
            continue
        expected = [_times(amount, s) for s in shares]
        expected[big] += amount - sum(expected)
        assert [p[2 + k] for p in parts] == expected and sum(expected) == amount


def _times(amount: Decimal, share: Decimal) -> Decimal:
    exact = abs(amount) * share
    rounded = exact.quantize(Decimal("1e-18"), ROUND_HALF_UP)
    return -rounded if amount < 0 else rounded


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amounts=st.lists(st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=18, allow_nan=False,
                                 allow_infinity=False), min_size=1, max_size=8),
    weights=st.lists(st.integers(min_value=1, max_value=10_000), min_size=2, max_size=6),
)
def test_percent_and_even_splits_are_exact_for_any_amounts(tmp_path_factory, samples, amounts, weights):
    """Random amounts (18 places) and random percentages (summing to 100 with up to 4 decimals): each part is
    line x share rounded half away from zero, the largest (first on ties) takes the remainder, parts sum to the line."""
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    cols = [header.index(m) for m in METRICS]
    picked = []
    for i, amount in enumerate(amounts):
        row = list(rows[i % len(rows)])
        for c in cols:
            row[c] = format(amount, "f")
        picked.append(row)
    folder = tmp_path_factory.mktemp("split")
    rt = make_runtime(folder / "d")
    try:
        ingest(rt, "p", str(write_csv(folder / "p.csv", header, picked)))
        total = sum(weights)
        pcts = [(Decimal(w) * 100 / total).quantize(Decimal("0.0001")) for w in weights]
        pcts[-1] += 100 - sum(pcts)
        if pcts[-1] <= 0:
            return
        parts = ", ".join(f"{{set: {{team: t{i}}}, percent: {p}}}" for i, p in enumerate(pcts))
        targets = ", ".join(f"{{team: e{i}}}" for i in range(len(weights)))
        engine.apply(rt, f"rules:\n  - name: pct\n    when: {{column: ProviderName, equals: AWS}}\n"
                         f"    split: {{percent: [{parts}]}}\n")
        assert_every_line_allocated_once(rt)
        for line_id, got in _parts_by_line(rt, "pct").items():
            assert [s for s, *_ in got] == [p / 100 for p in pcts]
            _assert_exact(got, rt, line_id)
        engine.apply(rt, f"rules:\n  - name: even\n    split: {{even: [{targets}]}}\n")
        for line_id, got in _parts_by_line(rt, "even").items():
            _assert_exact(got, rt, line_id)
    finally:
        rt.close()


def test_proportional_split_without_drivers_stays_unallocated_with_a_reason(loaded):
    engine.apply(loaded, """
rules:
  - name: shared
    when: {column: ServiceCategory, equals: Networking}
    split: {proportional_to: {dimension: team, where: {column: ServiceCategory, equals: Quantum}}}
  - name: rest
    set: {team: everyone}
""")
    reasons = q(loaded, "SELECT DISTINCT team, rule_name, reason FROM cost_allocation a JOIN cost_and_usage c "
                        "USING (x_LineId) WHERE c.ServiceCategory = 'Networking'")
    assert reasons == [("unallocated", None, "rule shared: proportional split by team found no positive "
                                             "EffectiveCost driver in this billing period and currency")]
    assert_every_line_allocated_once(loaded)


def test_a_usage_driver_splits_by_each_teams_quantity_in_one_unit(loaded):
    """proportional_to a usage quantity: shares are each team's ConsumedQuantity of the `where` lines in the rule's
    unit only (the sample's Compute lines are in Hours and in GB-Seconds, which must not be added)."""
    doc = RULES.replace("proportional_to: {dimension: team, metric: EffectiveCost,",
                        "proportional_to: {dimension: team, metric: ConsumedQuantity, unit: Hours,")
    assert doc != RULES
    engine.apply(loaded, doc)
    drivers = dict(q(loaded, """SELECT a.team, sum(c.ConsumedQuantity) FROM cost_allocation a JOIN cost_and_usage c
                                USING (x_LineId) WHERE c.ServiceCategory = 'Compute' AND c.ConsumedUnit = 'Hours'
                                AND a.rule_name = 'by-owner' GROUP BY 1"""))
    assert len(drivers) == 3 and all(d > 0 for d in drivers.values())
    total = sum(drivers.values())
    shares = dict(q(loaded, "SELECT DISTINCT team, share FROM cost_allocation WHERE rule_name = 'network-by-compute'"))
    assert shares == {t: (d / total).quantize(Decimal("1e-18"), ROUND_HALF_UP) for t, d in drivers.items()}
    # not the shares of the cost driver, nor of all Compute quantities with their units mixed
    mixed = dict(q(loaded, """SELECT a.team, sum(c.ConsumedQuantity) FROM cost_allocation a JOIN cost_and_usage c
                              USING (x_LineId) WHERE c.ServiceCategory = 'Compute' AND a.rule_name = 'by-owner'
                              GROUP BY 1"""))
    assert shares != {t: (d / sum(mixed.values())).quantize(Decimal("1e-18"), ROUND_HALF_UP) for t, d in mixed.items()}
    for line_id, parts in _parts_by_line(loaded, "network-by-compute").items():
        _assert_exact(parts, loaded, line_id, largest=max(drivers, key=drivers.get))
    assert_every_line_allocated_once(loaded)
    # explain shows the same drivers, with the unit
    (line_id,) = q(loaded, "SELECT min(x_LineId) FROM cost_allocation WHERE rule_name = 'network-by-compute'")[0]
    with loaded.warehouse.connect(read_only=True) as con:
        split = engine.explain_line(loaded, con, line_id)["split"]
    assert (split["metric"], split["unit"]) == ("ConsumedQuantity", "Hours")
    assert {d["value"]: d["amount"] for d in split["drivers"]} == drivers and split["driver_total"] == total
    # no line in the unit: unallocated, and the reason names the driver with its unit
    engine.apply(loaded, doc.replace("unit: Hours", "unit: Parsecs"))
    assert q(loaded, "SELECT count(*) FROM cost_allocation WHERE rule_name = 'network-by-compute'") == [(0,)]
    reasons = {r for (r,) in q(loaded, "SELECT DISTINCT reason FROM cost_allocation WHERE reason LIKE '%network%'")}
    assert reasons == {"rule network-by-compute: proportional split by team found no positive ConsumedQuantity in "
                       "Parsecs driver in this billing period and currency"}


# -- versions, effective dates, re-delivery --------------------------------------------------------------------------
def _three_months(tmp_path, samples, scale=None):
    """The AWS sample repeated as 2026-05, 2026-06 and 2026-07 (dates shifted), as one CSV."""
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    date_cols = [i for i, h in enumerate(header) if h.endswith(("PeriodStart", "PeriodEnd"))]
    out = []
    for month in ("05", "06", "07"):
        for r in rows:
            r = list(r)
            for i in date_cols:
                v = r[i]
                if v.startswith("2026-06-01") and header[i].endswith("End"):
                    v = f"2026-{int(month) + 1:02d}" + v[7:]
                elif v.startswith("2026-05"):
                    v = f"2026-{month}" + v[7:]
                r[i] = v
            if scale and month == scale[0]:
                for m in METRICS:
                    k = header.index(m)
                    if r[k]:
                        r[k] = format(Decimal(r[k]) * scale[1], "f")
            out.append(r)
    return header, out


def test_changing_one_rule_reallocates_only_its_periods_and_the_diff_shows_what_moved(rt_any, samples, tmp_path):
    header, rows = _three_months(tmp_path, samples)
    ingest(rt_any, "aws", str(write_csv(tmp_path / "three.csv", header, rows)))
    v1 = engine.apply(rt_any, RULES, note="v1")
    assert v1.created and [p.month for p in v1.reallocated] == [5, 6, 7]
    # Storage from July on goes 100% to platform: only July's effective rules change.
    changed = RULES.replace("""  - name: storage-60-40""", """  - name: storage-july
    effective_from: 2026-07-01
    when: {column: ServiceCategory, equals: Storage}
    set: {team: team-platform}
  - name: storage-60-40""")
    v2 = engine.apply(rt_any, changed, note="storage to platform from July")
    assert [p.month for p in v2.reallocated] == [7] and [p.month for p in v2.kept] == [5, 6]
    assert dict(q(rt_any, "SELECT month(BillingPeriodStart), max(rule_version) FROM cost_allocation GROUP BY 1")) == {
        5: v1.version, 6: v1.version, 7: v2.version}
    assert q(rt_any, "SELECT count(*) FROM cost_allocation WHERE rule_name = 'storage-july' "
                     "AND month(ChargePeriodStart) <> 7") == [(0,)]
    assert_every_line_allocated_once(rt_any)
    with rt_any.warehouse.connect(read_only=True) as con:
        d = engine.diff(rt_any, con, v1.version, v2.version)
    moved = {(r["billing_period"], r["team"]): r["moved"] for r in d["moved"]}
    assert moved and all(p == "2026-07-01" for p, _ in moved)
    assert sum(moved.values()) == 0 and moved[("2026-07-01", "team-platform")] > 0
    # What platform gained is exactly what the other teams lost.
    assert moved[("2026-07-01", "team-platform")] == -sum(v for (p, t), v in moved.items() if t != "team-platform")
    # Re-applying the same document makes no version.
    again = engine.apply(rt_any, changed)
    assert (again.created, again.version, again.reallocated) == (False, v2.version, [])
    assert [v["version"] for v in engine.list_versions(rt_any)] == [v2.version, v1.version]


def test_effective_dates_bound_a_rule_by_charge_period(rt, samples, tmp_path):
    header, rows = _three_months(tmp_path, samples)
    ingest(rt, "aws", str(write_csv(tmp_path / "three.csv", header, rows)))
    engine.apply(rt, """
rules:
  - name: june-only
    effective_from: 2026-06-01
    effective_to: 2026-07-01
    set: {team: june}
  - name: rest
    set: {team: other}
""")
    got = dict(q(rt, "SELECT month(ChargePeriodStart) m, list(DISTINCT team ORDER BY team) FROM cost_allocation "
                     "GROUP BY 1"))
    assert got == {5: ["other"], 6: ["june"], 7: ["other"]}


def test_ingest_of_a_redelivered_month_reallocates_it(rt, samples, tmp_path):
    header, rows = _three_months(tmp_path, samples)
    ingest(rt, "aws", str(write_csv(tmp_path / "three.csv", header, rows)))
    v = engine.apply(rt, RULES)
    june_ids = {i for (i,) in q(rt, "SELECT x_LineId FROM cost_allocation WHERE month(BillingPeriodStart) = 6")}
    may_before = q(rt, "SELECT * FROM cost_allocation WHERE month(BillingPeriodStart) = 5 ORDER BY x_LineId, part")
    header, rows = _three_months(tmp_path, samples, scale=("06", Decimal(2)))
    june_rows = [r for r in rows if r[header.index("BillingPeriodStart")].startswith("2026-06")]
    ingest(rt, "aws", str(write_csv(tmp_path / "june.csv", header, june_rows)))
    assert_every_line_allocated_once(rt)
    new_ids = {i for (i,) in q(rt, "SELECT x_LineId FROM cost_allocation WHERE month(BillingPeriodStart) = 6")}
    assert new_ids and not (new_ids & june_ids)
    assert q(rt, "SELECT DISTINCT rule_version FROM cost_allocation WHERE month(BillingPeriodStart) = 6") == [
        (v.version,)]
    assert q(rt, "SELECT * FROM cost_allocation WHERE month(BillingPeriodStart) = 5 ORDER BY x_LineId, part") == \
        may_before
    may, june = (q(rt, f"SELECT sum(EffectiveCost) FROM cost_allocation WHERE month(BillingPeriodStart) = {m}")[0][0]
                 for m in (5, 6))
    assert june == 2 * may
    # The active version's snapshot follows the re-delivery (the diff compares current figures).
    assert q(rt, "SELECT sum(EffectiveCost) FROM allocation_totals WHERE version = ? AND "
                 "month(BillingPeriodStart) = 6", [v.version])[0][0] == june


# -- explain -------------------------------------------------------------------------------------------------------
def test_explain_a_line_and_a_group(loaded):
    v = engine.apply(loaded, RULES)
    (line_id,) = q(loaded, "SELECT x_LineId FROM cost_allocation WHERE rule_name = 'network-by-compute' LIMIT 1")[0]
    with loaded.warehouse.connect(read_only=True) as con:
        e = engine.explain_line(loaded, con, line_id)
    assert (e["rule"], e["version"], e["rule_position"]) == ("network-by-compute", v.version, 2)
    assert [(t["test"], t["true"]) for t in e["tests"]] == [
        ("effective window", True), ("ServiceCategory equals 'Networking'", True),
        ("ServiceCategory equals 'Compute'", False)]
    split = e["split"]
    assert split["kind"] == "proportional" and split["driver_total"] == sum(d["amount"] for d in split["drivers"])
    assert [p["team"] for p in e["parts"]] == [d["value"] for d in split["drivers"]]
    assert sum(p["EffectiveCost"] for p in e["parts"]) == e["line"]["EffectiveCost"]
    (owned,) = q(loaded, "SELECT x_LineId FROM cost_allocation WHERE rule_name = 'by-owner' LIMIT 1")[0]
    with loaded.warehouse.connect(read_only=True) as con:
        e = engine.explain_line(loaded, con, owned)
        g = engine.explain_group(loaded, con, {"team": "team-data"}, None)
    assert e["split"] is None and [t["true"] for t in e["tests"]] == [True, True]
    rules = {x["rule"]: x for x in g["groups"]}
    assert set(rules) == {"by-owner", "tax-even", "network-by-compute", "storage-60-40"} - (
        set() if q(loaded, "SELECT count(*) FROM cost_allocation WHERE rule_name = 'storage-60-40' AND "
                           "team = 'team-data'")[0][0] else {"storage-60-40"})
    assert rules["by-owner"]["tests"][1]["true_for"] == rules["by-owner"]["lines"]
    assert rules["tax-even"]["tests"][1]["true_for"] == rules["tax-even"]["lines"]
