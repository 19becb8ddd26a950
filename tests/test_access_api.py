"""API keys and roles, team scoping in the query layer (escape attempts through every parameter), finance monthly
totals and closed months with restatements, pagination and limits."""
from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.access import create_key, server_secret
from app.allocation import engine
from app.api import create_app
from app.control import ApiKey
from app.ingest import ingest
from tests.conftest import make_runtime
from tests.helpers import allocated_samples, api_client, cli, write_csv
from tests.test_allocation import RULES

AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"
MONTH = "2026-05"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = {"start": "2026-05-01", "end": "2026-06-01"}


def q(rt, sql, params=None):
    with rt.warehouse.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


# -- keys and roles ----------------------------------------------------------------------------------------------
def test_keys_are_hashed_checked_every_request_and_revocation_is_immediate(rt_any):
    view, key = create_key(rt_any, "ops", "admin")
    assert key.startswith("ct_") and view["prefix"] == key[:15]
    with rt_any.sessions() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.id == view["id"]))
        assert key not in (row.digest, row.prefix) and len(row.digest) == 64  # only the HMAC is stored
    secret = rt_any.settings.data_dir / "api-key-secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600 and server_secret(rt_any.settings) == secret.read_bytes()

    with TestClient(create_app(rt_any)) as c:
        assert c.get("/healthz").status_code == 200  # open
        none = c.get("/v1/costs")
        assert none.status_code == 401 and none.headers["content-type"] == "application/problem+json"
        assert none.headers["www-authenticate"].startswith("Bearer")
        assert c.get("/v1/costs", headers=bearer(key[:-1] + ("A" if key[-1] != "A" else "B"))).status_code == 401
        assert c.get("/v1/costs", headers=bearer("not-a-key")).status_code == 401
        assert c.get("/v1/costs", headers=bearer(key)).status_code == 200
        made = c.post("/v1/keys", json={"name": "payments dash", "role": "team:payments"}, headers=bearer(key))
        assert made.status_code == 201
        team_key = made.json()["key"]
        assert c.get("/v1/costs", headers=bearer(team_key)).status_code == 200
        listed = c.get("/v1/keys", headers=bearer(key), params={"limit": 1}).json()
        assert listed["total"] == 2 and len(listed["keys"]) == 1 and "key" not in listed["keys"][0]
        assert c.post("/v1/keys", json={"name": "x", "role": "root"}, headers=bearer(key)).status_code == 400
        # revoked: the very next request is refused
        assert c.delete(f"/v1/keys/{made.json()['id']}", headers=bearer(key)).json()["revoked_at"]
        assert c.get("/v1/costs", headers=bearer(team_key)).status_code == 401
        assert c.delete("/v1/keys/nope", headers=bearer(key)).status_code == 404


def test_roles_decide_what_a_key_may_do(rt_any):
    _, admin = create_key(rt_any, "a", "admin")
    _, fin = create_key(rt_any, "f", "finance")
    _, team = create_key(rt_any, "t", "team:team-data")
    with TestClient(create_app(rt_any)) as c:
        def status(method, path, key, **kw):
            return c.request(method, path, headers=bearer(key), **kw).status_code

        for path in ("/v1/deliveries", "/v1/ingest-runs", "/v1/sources", "/v1/data-quality", "/v1/alert-events",
                     "/v1/allocation/coverage", "/v1/finance/monthly-totals?month=2026-05", "/v1/finance/months"):
            assert status("GET", path, team) == 403, path
            assert status("GET", path, fin) == 200, path
            assert status("GET", path, admin) == 200, path
        for path in ("/v1/keys",):
            assert (status("GET", path, team), status("GET", path, fin), status("GET", path, admin)) == (403, 403, 200)
        for method, path, body in (("PUT", "/v1/allocation/rules", {"rules": []}),
                                   ("POST", "/v1/allocation/rules", {"name": "x", "set": {"team": "x"}}),
                                   ("DELETE", "/v1/allocation/rules/x", None),
                                   ("POST", "/v1/sources", {"name": "s", "provider": "focus", "format": "focus",
                                                            "location": "/nowhere"})):
            assert status(method, path, fin, json=body) == 403, path
            assert status(method, path, team, json=body) == 403, path
        forbidden = c.get("/v1/deliveries", headers=bearer(team))
        assert forbidden.headers["content-type"] == "application/problem+json" and "team:team-data" in forbidden.text
        for path in ("/v1/allocation/rules", "/v1/allocation/versions"):
            assert status("GET", path, team) == 200


def test_keys_cli_create_list_revoke(tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}
    made = cli("keys", "create", "--role", "finance", "--name", "budgets", env=env)
    assert made.exit_code == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("ct_") and "not shown again" in made.stderr
    assert cli("keys", "create", "--role", "team:", "--name", "x", env=env).exit_code == 2
    listed = cli("keys", "list", "--output", "json", env=env)
    [view] = __import__("json").loads(listed.stdout)
    assert (view["name"], view["role"], view["revoked_at"]) == ("budgets", "finance", None)
    rt = make_runtime(tmp_path / "d")
    with TestClient(create_app(rt)) as c:
        assert c.get("/v1/finance/months", headers=bearer(key)).status_code == 200
        assert cli("keys", "revoke", view["prefix"], env=env).exit_code == 0
        assert c.get("/v1/finance/months", headers=bearer(key)).status_code == 401
    assert cli("keys", "revoke", "ct_000000000000", env=env).exit_code == 1


def test_auth_disabled_only_on_loopback(tmp_path, monkeypatch):
    from app.cli import is_loopback

    monkeypatch.setenv("CLOUDTALLY_AUTH", "disabled")
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d"), "CLOUDTALLY_AUTH": "disabled"}
    refused = cli("serve", "--host", "0.0.0.0", "--no-scheduler", env=env)
    assert refused.exit_code == 2 and "CLOUDTALLY_AUTH=disabled" in refused.stderr
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    rt = make_runtime(tmp_path / "d")
    assert rt.settings.auth == "disabled"
    with TestClient(create_app(rt)) as c:  # the demo's mode: open
        assert c.get("/v1/keys").status_code == 200


# -- team scoping ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory, samples):
    rt = allocated_samples(tmp_path_factory.mktemp("scope") / "data", samples, RULES)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def team(world):
    with api_client(world, "team:team-data") as c:
        yield c


@pytest.fixture(scope="module")
def admin(world):
    with api_client(world, "admin") as c:
        yield c


def own(world, where="true", params=()):
    return q(world, f"SELECT coalesce(sum(EffectiveCost), 0) FROM cost_allocation WHERE team = 'team-data' "
                    f"AND {where}", list(params))[0][0]


def total(body) -> Decimal:
    return sum((Decimal(t["cost"]) for t in body["totals"]), Decimal(0))


def test_team_key_sees_only_its_team_whatever_it_asks(world, team, admin):
    mine = own(world)
    everything = total(admin.get("/v1/costs", params=WINDOW).json())
    assert Decimal(0) < mine < everything
    assert total(team.get("/v1/costs", params=WINDOW).json()) == mine
    # group_by team: only its own team appears
    body = team.get("/v1/costs", params={**WINDOW, "group_by": "team"}).json()
    assert {r["team"] for r in body["rows"]} == {"team-data"} and total(body) == mine
    # group_by FOCUS columns, tags, other allocation dimensions: still its parts only
    for g in ("ProviderName", "ServiceName", "tag:team", "cost_center", "service", "product"):
        body = team.get("/v1/costs", params={**WINDOW, "group_by": g}).json()
        assert total(body) == mine, g
        assert sum(Decimal(r["cost"]) for r in body["rows"]) == mine, g
    # filter naming its own team is fine; another team (either syntax, or several values) is a 403
    assert total(team.get("/v1/costs", params={**WINDOW, "filter": "team=team-data"}).json()) == mine
    for f in (["team=team-payments"], ["team:team-payments"], ["team=team-data", "team=team-payments"], ["team="]):
        r = team.get("/v1/costs", params={**WINDOW, "filter": f})
        assert r.status_code == 403 and r.json()["errors"][0]["parameter"] == "filter", f
    # tag filters and other teams' cost centers only narrow
    cc_other = q(world, "SELECT cost_center FROM cost_allocation WHERE team = 'team-payments' AND cost_center "
                        "NOT IN (SELECT cost_center FROM cost_allocation WHERE team = 'team-data' "
                        "AND cost_center IS NOT NULL) LIMIT 1")
    for f in ["tag:team=team-payments", "tag:Owner=", "ProviderName=AWS", "cost_center=shared"] + (
            [f"cost_center={cc_other[0][0]}"] if cc_other else []):
        body = team.get("/v1/costs", params={**WINDOW, "filter": f}).json()
        assert total(body) <= mine and {r.get("team", "team-data") for r in body["rows"]} <= {"team-data"}, f
    shared = team.get("/v1/costs", params={**WINDOW, "filter": "cost_center=shared"}).json()
    assert total(shared) == own(world, "cost_center = 'shared'")
    # CSV: the same scoped rows
    text = team.get("/v1/costs", params={**WINDOW, "group_by": "team", "format": "csv"}).text
    rows = list(csv.DictReader(text.splitlines()))
    assert {r["team"] for r in rows} == {"team-data"} and sum(Decimal(r["cost"]) for r in rows) == mine
    # the admin sees the other teams through the same query
    assert {r["team"] for r in admin.get("/v1/costs", params={**WINDOW, "group_by": "team"}).json()["rows"]} > {
        "team-data"}


def test_team_key_cannot_escape_through_explain_or_ledger(world, team, admin):
    other_line = q(world, "SELECT x_LineId FROM cost_allocation GROUP BY 1 HAVING bool_and(team = 'team-payments') "
                          "LIMIT 1")[0][0]
    shared_line = q(world, "SELECT x_LineId FROM cost_allocation GROUP BY 1 HAVING bool_or(team = 'team-data') "
                           "AND bool_or(team <> 'team-data') LIMIT 1")[0][0]
    own_line = q(world, "SELECT x_LineId FROM cost_allocation GROUP BY 1 HAVING bool_and(team = 'team-data') "
                        "LIMIT 1")[0][0]
    r = team.get("/v1/allocation/explain", params={"line_id": other_line})
    assert r.status_code == 403 and r.json()["errors"][0]["parameter"] == "line_id"
    assert admin.get("/v1/allocation/explain", params={"line_id": other_line}).status_code == 200
    shared = team.get("/v1/allocation/explain", params={"line_id": shared_line}).json()
    assert {p["team"] for p in shared["parts"]} == {"team-data"} and "split" not in shared
    assert shared["line"]["EffectiveCost"] is None and shared["redacted"]
    mine = team.get("/v1/allocation/explain", params={"line_id": own_line}).json()
    assert mine["line"]["EffectiveCost"] is not None
    assert team.get("/v1/allocation/explain", params={"team": "team-payments"}).status_code == 403
    grp = team.get("/v1/allocation/explain", params={"day": "2026-05-03"}).json()
    assert grp["filters"] == {"team": "team-data"}
    assert all(p["team"] == "team-data" for g in grp["groups"] for p in g.get("split_parts", []))
    for path in ("/v1/deliveries", "/v1/allocation/coverage", "/v1/allocation/versions/diff?from=1&to=1",
                 "/v1/ingest-runs", "/v1/finance/monthly-totals?month=2026-05&by=team&format=csv"):
        assert team.get(path).status_code == 403, path
    delivery = admin.get("/v1/deliveries").json()["deliveries"][0]["id"]
    assert team.get(f"/v1/deliveries/{delivery}").status_code == 403


# -- finance ------------------------------------------------------------------------------------------------------
def test_monthly_totals_reconcile_for_every_dimension(world, admin):
    (billed, effective), = q(world, "SELECT sum(BilledCost), sum(EffectiveCost) FROM cost_and_usage "
                                    "WHERE strftime(BillingPeriodStart, '%Y-%m') = ?", [MONTH])
    for by in ("cost_center", "team", "service", "provider", "account"):
        body = admin.get("/v1/finance/monthly-totals", params={"month": MONTH, "by": by}).json()
        [foot] = body["reconciliation"]
        assert foot["reconciled"] and Decimal(foot["BilledCost"]["warehouse"]) == billed
        assert Decimal(foot["EffectiveCost"]["warehouse"]) == effective
        assert sum(Decimal(r["EffectiveCost"]) for r in body["rows"]) == effective, by
        assert sum(Decimal(r["BilledCost"]) for r in body["rows"]) == billed, by
        assert len({(r["group"], r["currency"]) for r in body["rows"]}) == len(body["rows"])
    cc = admin.get("/v1/finance/monthly-totals", params={"month": MONTH, "by": "cost_center"}).json()
    [unalloc] = [r for r in cc["rows"] if r["unallocated"]]
    assert Decimal(unalloc["EffectiveCost"]) == q(
        world, "SELECT sum(EffectiveCost) FROM cost_allocation WHERE cost_center IS NULL")[0][0]
    shared = next(r for r in cc["rows"] if r["group"] == "shared")
    assert Decimal(shared["BilledCost"]) == q(
        world, "SELECT sum(BilledCost) FROM cost_allocation WHERE cost_center = 'shared'")[0][0]
    text = admin.get("/v1/finance/monthly-totals", params={"month": MONTH, "by": "team", "format": "csv",
                                                            "metric": "BilledCost"}).text
    rows = list(csv.DictReader(text.splitlines()))
    assert list(rows[0]) == ["month", "by", "group", "unallocated", "currency", "BilledCost"]
    assert sum(Decimal(r["BilledCost"]) for r in rows if not r["group"].startswith("TOTAL")) == billed
    assert rows[-1]["group"] == "TOTAL (warehouse)" and Decimal(rows[-1]["BilledCost"]) == billed
    empty = admin.get("/v1/finance/monthly-totals", params={"month": "2020-01"}).json()
    assert empty["rows"] == [] and empty["reconciliation"] == []
    for bad in ({"month": "2026-13"}, {"month": "2026-5"}, {"month": MONTH, "by": "region"}):
        r = admin.get("/v1/finance/monthly-totals", params=bad)
        assert r.status_code == 400 and r.json()["errors"][0]["parameter"] in bad


def test_closed_month_redelivery_is_a_flagged_restatement(rt_any, samples, tmp_path):
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    b, e = header.index("BilledCost"), header.index("EffectiveCost")
    ingest(rt_any, "aws", str(write_csv(tmp_path / "may.csv", header, rows)))
    _, fin_key = create_key(rt_any, "controller", "finance")
    with TestClient(create_app(rt_any), headers=bearer(fin_key)) as c:
        before = c.get("/v1/finance/monthly-totals", params={"month": MONTH, "by": "provider"}).json()
        assert before["closed"] is None and before["restatement"] is None
        closed = c.post(f"/v1/finance/months/{MONTH}/close", params={"note": "May books"})
        assert closed.status_code == 201 and closed.json()["closed_by"] == "controller"
        assert c.post(f"/v1/finance/months/{MONTH}/close").status_code == 409
        assert c.post("/v1/finance/months/2019-01/close").status_code == 400  # nothing to close
        same = c.get("/v1/finance/monthly-totals", params={"month": MONTH}).json()
        assert same["closed"]["totals"][0]["BilledCost"] == before["reconciliation"][0]["BilledCost"]["warehouse"]
        assert same["restatement"] == {"restated": False, "deltas": [], "deliveries": []}
        # the provider restates May after the close: still loaded, but flagged with its delta
        restated = [list(r) for r in rows]
        restated[0][b] = str(Decimal(restated[0][b]) - Decimal("1.25"))
        restated[0][e] = str(Decimal(restated[0][e]) + Decimal("0.5"))
        ingest(rt_any, "aws", str(write_csv(tmp_path / "may-v2.csv", header, restated)))
        after = c.get("/v1/finance/monthly-totals", params={"month": MONTH, "by": "provider"}).json()
        assert after["restatement"]["restated"]
        assert after["restatement"]["deltas"] == [{"currency": "USD", "EffectiveCost_delta": "0.50",
                                                   "BilledCost_delta": "-1.25"}]
        assert Decimal(after["reconciliation"][0]["BilledCost"]["warehouse"]) == Decimal(
            before["reconciliation"][0]["BilledCost"]["warehouse"]) - Decimal("1.25")
        [flag] = after["restatement"]["deliveries"]
        assert (flag["BilledCost_delta"], flag["EffectiveCost_delta"], flag["changed"]) == ("-1.25", "0.50", True)
        ledger = c.get("/v1/deliveries").json()
        assert ledger["total"] == 2
        new, old = ledger["deliveries"]
        assert new["restatement"]["delivery"] == new["id"] == flag["delivery"] and old["restatement"] is None
        assert new["restatement"]["previous_delivery"] == old["id"]
        assert c.get(f"/v1/deliveries/{new['id']}").json()["restatement"] == new["restatement"]
        assert c.get("/v1/finance/months").json()["total"] == 1


# -- the read cache (app.warehouse.Warehouse.read_through) behind /v1/costs and monthly totals ----------------------
def test_cached_answers_never_cross_scopes_outlive_the_data_or_a_revocation(rt_any, samples, tmp_path):
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    b = header.index("BilledCost")
    ingest(rt_any, "aws", str(write_csv(tmp_path / "may.csv", header, rows)))
    engine.apply(rt_any, RULES)
    _, fin_key = create_key(rt_any, "controller", "finance")
    team_view, team_key = create_key(rt_any, "data dash", "team:team-data")
    params = {**WINDOW, "metric": "BilledCost"}
    with TestClient(create_app(rt_any)) as c:
        assert rt_any.warehouse.cache_limit_bytes > 0  # the server runs with the cache (CLOUDTALLY_API_CACHE_MB)
        everything = total(c.get("/v1/costs", params=params, headers=bearer(fin_key)).json())
        mine = total(c.get("/v1/costs", params=params, headers=bearer(team_key)).json())
        assert Decimal(0) < mine < everything  # the same query under another scope is never the cached answer
        assert total(c.get("/v1/costs", params=params, headers=bearer(fin_key)).json()) == everything
        assert rt_any.warehouse._cache  # ...which is there, and answered the repeat
        totals = c.get("/v1/finance/monthly-totals", params={"month": MONTH, "by": "provider"},
                       headers=bearer(fin_key)).json()
        assert Decimal(totals["reconciliation"][0]["BilledCost"]["warehouse"]) == everything
        # a re-delivery from another process (`cloudtally ingest` beside `serve`): the next answers are new
        restated = [list(r) for r in rows]
        restated[0][b] = str(Decimal(restated[0][b]) + Decimal("100.25"))
        redelivered = write_csv(tmp_path / "may-v2.csv", header, restated)
        env = {**os.environ, "CLOUDTALLY_DATA_DIR": str(rt_any.settings.data_dir),
               "CLOUDTALLY_DATABASE_URL": rt_any.settings.resolved_database_url}
        done = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(redelivered), "--source", "aws"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        after = total(c.get("/v1/costs", params=params, headers=bearer(fin_key)).json())
        assert after == everything + Decimal("100.25")
        totals = c.get("/v1/finance/monthly-totals", params={"month": MONTH, "by": "provider"},
                       headers=bearer(fin_key)).json()
        assert Decimal(totals["reconciliation"][0]["BilledCost"]["warehouse"]) == after
        # a revoked key is refused at once, though its answer sits in the cache
        assert c.get("/v1/costs", params=params, headers=bearer(team_key)).status_code == 200
        assert c.delete(f"/v1/keys/{team_view['id']}", headers=bearer(create_key(rt_any, "ops", "admin")[1]))
        assert c.get("/v1/costs", params=params, headers=bearer(team_key)).status_code == 401


# -- pagination and limits ---------------------------------------------------------------------------------------
def test_lists_page_with_totals(world, admin):
    engine.apply(world, RULES.replace("team-data}, {team: team-payments", "team-payments}, {team: team-data"),
                 note="second")
    full = admin.get("/v1/allocation/versions").json()
    assert full["total"] == len(full["versions"]) >= 2
    page = admin.get("/v1/allocation/versions", params={"limit": 1, "offset": 1}).json()
    assert page["versions"] == full["versions"][1:2] and page["total"] == full["total"]
    d_all = admin.get("/v1/deliveries").json()
    d_page = admin.get("/v1/deliveries", params={"limit": 1, "offset": 1}).json()
    assert d_page["deliveries"] == d_all["deliveries"][1:2] and d_page["total"] == d_all["total"] == 2
    for path, key in (("/v1/sources", "sources"), ("/v1/ingest-runs", "runs"), ("/v1/data-quality", "checks"),
                      ("/v1/alert-events", "events"), ("/v1/keys", "keys"), ("/v1/finance/months", "months")):
        body = admin.get(path, params={"limit": 1, "offset": 0}).json()
        assert body["limit"] == 1 and body["offset"] == 0 and len(body[key]) <= 1 and body["total"] >= len(body[key])
        assert admin.get(path, params={"limit": 0}).status_code == 400, path


def test_limits_are_a_400_naming_the_parameter(admin):
    cases = [
        ({"start": "2020-01-01", "end": "2023-01-01", "granularity": "day"}, "end"),
        ({"start": "2000-01-01", "end": "2020-01-01", "granularity": "month"}, "end"),
        ({"group_by": "ProviderName,ServiceName,RegionId,ChargeCategory,SubAccountId"}, "group_by"),
        ({"filter": [f"ServiceName=s{i}" for i in range(101)]}, "filter"),
    ]
    for params, parameter in cases:
        r = admin.get("/v1/costs", params=params)
        assert r.status_code == 400 and r.json()["errors"][0]["parameter"] == parameter, params
    ok = admin.get("/v1/costs", params={"start": "2024-06-01", "end": "2026-06-01", "granularity": "day"})
    assert ok.status_code == 200
