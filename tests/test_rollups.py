"""Daily rollups: rebuilt per billing period when an ingest or a rule change touched it, used by the cost query only
while current, and giving the same answers as the line table on random queries."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import rollups
from app.access import ScopeForbidden
from app.allocation import engine
from app.costs import parse_query, run_query
from app.ingest import ingest
from tests.conftest import make_runtime
from tests.test_allocation import RULES

AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"
AZURE = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_azure.csv"
GCP = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_gcp.csv"
DIMS = sorted(rollups.COVERED)


@pytest.fixture(scope="module")
def world(tmp_path_factory, samples):
    rt = make_runtime(tmp_path_factory.mktemp("rollups") / "data")
    ingest(rt, "aws", str(samples / AWS))
    ingest(rt, "azure", str(samples / AZURE))
    engine.apply(rt, RULES)
    yield rt
    rt.close()


def values(rt) -> dict[str, list[str]]:
    with rt.warehouse.connect(read_only=True) as con:
        out = {}
        for d in DIMS:
            table = "cost_allocation" if d in rollups.ALLOCATION_DIMENSIONS else "cost_and_usage"
            out[d] = [v for (v,) in con.execute(f'SELECT DISTINCT "{d}" FROM {table} WHERE "{d}" IS NOT NULL '
                                                f'ORDER BY 1 LIMIT 8').fetchall()]
        return out


def query_strategy(vals):
    filters = st.lists(st.sampled_from(DIMS).flatmap(
        lambda d: st.sampled_from([*vals[d], "", "no-such-value"] if vals[d] else ["", "x"]).map(
            lambda v: f"{d}={v}")), max_size=3)
    return st.fixed_dictionaries({
        "start": st.sampled_from(["2026-04-25", "2026-05-01", "2026-05-03", "2026-05-17"]),
        "end": st.sampled_from(["2026-05-10", "2026-05-20", "2026-06-01", "2026-06-15"]),
        "granularity": st.sampled_from(["day", "month"]),
        "group_by": st.lists(st.sampled_from(DIMS), max_size=3, unique=True),
        "filters": filters,
        "metric": st.sampled_from(["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"]),
        "scope": st.sampled_from([None, None, "team-data", "team-payments", "nobody"]),
    })


def compare(rt, args):
    scope = args.pop("scope")
    q = parse_query(**args)
    with rt.warehouse.connect(read_only=True) as con:
        if scope is not None and any(v != scope for v in q.filters.get("team", ())):
            for path in (False, True):  # another team named: refused on both paths
                with pytest.raises(ScopeForbidden):
                    run_query(con, q, scope, rollups=path)
            return
        lines = run_query(con, q, scope, rollups=False).to_json()
        rolled = run_query(con, q, scope, rollups=True).to_json()
    assert rolled == lines, args


def test_rollups_equal_lines_on_random_queries(world, samples):
    with world.warehouse.connect(read_only=True) as con:
        assert not rollups.fresh(con)  # nothing built yet (direct ingests do not refresh)
    done = rollups.refresh_rt(world)
    assert done["periods"] == ["2026-05"]
    with world.warehouse.connect(read_only=True) as con:
        assert rollups.fresh(con)
        (n,) = con.execute("SELECT count(*) FROM cost_rollup_daily").fetchone()
        assert 0 < n < con.execute("SELECT count(*) FROM cost_allocation").fetchone()[0]
    vals = values(world)

    @given(query_strategy(vals))
    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(args):
        if args["start"] >= args["end"]:
            return
        compare(world, args)

    check()
    # A period allocated no more (a failed allocation after an ingest): its lines are in the rollup unallocated,
    # the line table answers allocation queries from the parts that exist; still the same answers.
    with world.warehouse.connect() as con:
        con.execute("DELETE FROM cost_allocation WHERE x_SourceId = 'azure'")
        con.execute("DELETE FROM allocation_periods")
        assert not rollups.fresh(con)
        assert rollups.refresh(con)["periods"] == ["2026-05"]
        assert rollups.fresh(con)
        assert con.execute("SELECT count(*) FROM cost_rollup_daily WHERE NOT allocated").fetchone()[0] > 0
    check()


def test_rule_change_and_redelivery_make_rollups_stale_until_refreshed(tmp_path, samples):
    rt = make_runtime(tmp_path / "d")
    ingest(rt, "aws", str(samples / AWS))
    engine.apply(rt, RULES)
    assert rollups.refresh_rt(rt)["periods"] == ["2026-05"]
    assert rollups.refresh_rt(rt)["periods"] == []  # nothing changed: nothing rebuilt
    q = parse_query("2026-05-01", "2026-06-01", "month", ["team"], [], "EffectiveCost")
    engine.apply(rt, RULES.replace("rules:\n", "rules:\n  - name: compute\n    when: {column: ServiceCategory, "
                                   "equals: Compute}\n    set: {team: team-compute}\n"))
    with rt.warehouse.connect(read_only=True) as con:
        assert not rollups.fresh(con)
        auto = run_query(con, q).to_json()  # stale: the lines answer
        assert auto == run_query(con, q, rollups=False).to_json()
        assert run_query(con, q, rollups=True).to_json() != auto  # the stale rollup would have been wrong
    assert rollups.refresh_rt(rt)["periods"] == ["2026-05"]
    ingest(rt, "gcp", str(samples / GCP))  # a new delivery: data version moves
    with rt.warehouse.connect(read_only=True) as con:
        assert not rollups.fresh(con)
    rollups.refresh_rt(rt)
    with rt.warehouse.connect(read_only=True) as con:
        assert rollups.fresh(con)
        assert run_query(con, q, rollups=True).to_json() == run_query(con, q, rollups=False).to_json()


def test_api_applies_refresh_the_rollups(world):
    from tests.helpers import api_client

    with api_client(world) as c:
        assert c.put("/v1/allocation/rules", json=__import__("yaml").safe_load(RULES.replace(
            "percent: 60", "percent: 55").replace("percent: 40", "percent: 45"))).status_code == 200
    with world.warehouse.connect(read_only=True) as con:
        assert rollups.fresh(con)


def test_finance_totals_from_rollups_equal_lines(world):
    from app.finance import monthly_totals

    rollups.refresh_rt(world)
    with world.warehouse.connect(read_only=True) as con, world.sessions() as session:
        assert rollups.fresh(con)
        for by in ("team", "cost_center", "provider"):
            rolled = monthly_totals(con, session, "2026-05", by, rollups=True)
            lines = monthly_totals(con, session, "2026-05", by, rollups=False)
            assert (rolled.pop("source"), lines.pop("source")) == ("rollups", "lines")
            assert rolled == lines and rolled["rows"], by
            assert monthly_totals(con, session, "2026-05", by)["source"] == "rollups"
        assert monthly_totals(con, session, "2026-05", "account")["source"] == "lines"
