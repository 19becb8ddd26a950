"""Allocation through the API and the CLI: rule CRUD as versions, problem documents, versions/diff, explain,
coverage, and the cost query grouping and filtering on allocation dimensions."""
from __future__ import annotations

from decimal import Decimal

import pytest
import yaml

from app.ingest import ingest
from tests.helpers import api_client, cli, cli_json, read_rows
from tests.test_allocation import AWS, RULES, assert_every_line_allocated_once

AZURE = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_azure.csv"


@pytest.fixture
def client(rt_any, samples):
    ingest(rt_any, "aws", str(samples / AWS))
    ingest(rt_any, "azure", str(samples / AZURE))
    with api_client(rt_any) as c:
        yield c


def test_rule_crud_makes_versions_and_bad_input_is_a_problem(client, rt_any):
    doc = yaml.safe_load(RULES)
    assert client.get("/v1/allocation/rules").json() == {"version": 0, "document": {
        "dimensions": ["team", "service", "cost_center", "environment"], "rules": []}}
    r = client.put("/v1/allocation/rules", json=doc, params={"note": "initial"})
    assert r.status_code == 200 and r.json()["created"] and r.json()["reallocated_periods"] == ["2026-05-01"]
    v1 = r.json()["version"]
    r = client.post("/v1/allocation/rules", params={"position": 1},
                    json={"name": "compute-to-platform", "when": {"column": "ServiceCategory", "equals": "Compute"},
                          "set": {"team": "platform"}})
    assert r.status_code == 201
    v2 = r.json()["version"]
    assert client.get("/v1/allocation/rules/compute-to-platform").json()["position"] == 1
    bad = client.put("/v1/allocation/rules/compute-to-platform",
                     json={"when": {"column": "ServiceCategory", "regex": "(oops"}, "set": {"team": "platform"}})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["parameter"] == "rules[compute-to-platform].when.regex"
    dup = client.post("/v1/allocation/rules", json={"name": "tax-even", "set": {"team": "x"}})
    assert dup.status_code == 400 and "duplicate rule name" in dup.json()["detail"]
    assert client.put("/v1/allocation/rules/compute-to-platform", json={
        "when": {"column": "ServiceCategory", "equals": "Compute"}, "set": {"team": "platform-eng"}}).status_code == 200
    r = client.delete("/v1/allocation/rules/compute-to-platform")
    assert r.status_code == 200
    assert client.delete("/v1/allocation/rules/nope").status_code == 404
    versions = client.get("/v1/allocation/versions").json()["versions"]
    assert [v["active"] for v in versions] == [True, False, False, False]
    assert versions[-1]["note"] == "initial" and versions[-1]["version"] == v1
    # Deleting the rule again gives v1's allocation back: nothing moved between v1 and the latest.
    latest = versions[0]["version"]
    diff = client.get("/v1/allocation/versions/diff", params={"from": v1, "to": latest}).json()
    assert diff["moved"] == []
    diff = client.get("/v1/allocation/versions/diff", params={"from": v1, "to": v2}).json()
    moved = {r["team"]: Decimal(r["moved"]) for r in diff["moved"]}
    assert moved["platform"] > 0 and sum(moved.values()) == 0
    assert client.get("/v1/allocation/versions/diff", params={"from": v1, "to": 999}).status_code == 404
    assert_every_line_allocated_once(rt_any)


def test_cost_query_groups_and_filters_on_allocation_dimensions(client, samples):
    client.put("/v1/allocation/rules", json=yaml.safe_load(RULES))
    window = {"start": "2026-05", "end": "2026-06"}
    whole = client.get("/v1/costs", params=window).json()
    by_team = client.get("/v1/costs", params={**window, "group_by": "team"}).json()
    assert by_team["totals"] == whole["totals"]
    assert sum(Decimal(r["cost"]) for r in by_team["rows"]) == Decimal(whole["totals"][0]["cost"])
    assert {r["team"] for r in by_team["rows"]} >= {"team-data", "team-payments", "team-platform"}
    rows = read_rows(samples / AWS) + read_rows(samples / AZURE)
    assert Decimal(whole["totals"][0]["cost"]) == sum(Decimal(r["EffectiveCost"]) for r in rows)
    both = client.get("/v1/costs", params={**window, "group_by": ["team", "ProviderName", "tag:Environment"]}).json()
    assert sum(Decimal(r["cost"]) for r in both["rows"]) == Decimal(whole["totals"][0]["cost"])
    colon = client.get("/v1/costs", params={**window, "filter": "cost_center:shared"}).json()
    equals = client.get("/v1/costs", params={**window, "filter": "cost_center=shared"}).json()
    assert colon == {**equals, "query": colon["query"]} and Decimal(colon["totals"][0]["cost"]) > 0
    custom = client.get("/v1/costs", params={**window, "group_by": "product"}).json()
    assert {r["product"] for r in custom["rows"]} == {"core", None}
    assert client.get("/v1/costs", params={"group_by": "squad"}).status_code == 400


def test_explain_and_coverage_endpoints(client):
    client.put("/v1/allocation/rules", json=yaml.safe_load(RULES))
    cov = client.get("/v1/allocation/coverage").json()["coverage"]
    assert {c["provider"] for c in cov} == {"AWS", "Microsoft Azure"}
    for c in cov:
        assert Decimal(c["allocated"]) + Decimal(c["unallocated"]) == Decimal(c["total"])
        assert Decimal(c["coverage_pct"]) == (Decimal(c["allocated"]) * 100 / Decimal(c["total"])).quantize(
            Decimal("0.01"))
    group = client.get("/v1/allocation/explain", params={"team": "team-data", "day": "2026-05-03"}).json()
    assert group["groups"] and all(g["rule"] for g in group["groups"])
    line_id = group["groups"][0]["sample_line_ids"][0]
    one = client.get("/v1/allocation/explain", params={"line_id": line_id}).json()
    assert one["line"]["line_id"] == line_id and one["rule"] and all(t["true"] for t in one["tests"][:2])
    assert client.get("/v1/allocation/explain", params={"line_id": 10 ** 12}).status_code == 404
    nothing = client.get("/v1/allocation/explain")
    assert nothing.status_code == 400 and nothing.json()["errors"][0]["parameter"] == "line_id"


def test_openapi_describes_every_allocation_parameter(client):
    spec = client.get("/openapi.json").json()
    paths = [p for p in spec["paths"] if p.startswith("/v1/allocation")]
    assert {"/v1/allocation/rules", "/v1/allocation/rules/{name}", "/v1/allocation/versions",
            "/v1/allocation/versions/diff", "/v1/allocation/explain", "/v1/allocation/coverage"} <= set(paths)
    for path in paths:
        for method, op in spec["paths"][path].items():
            assert op.get("summary")
            assert all(p.get("description") for p in op.get("parameters", [])), (path, method)


def test_cli_rules_commands(tmp_path, samples):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "data")}
    cli_json("ingest", str(samples / AWS), "--source", "aws", "--output", "json", env=env)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: a\n    when: {column: Nope, equals: x}\n    set: {team: x}\n")
    r = cli("rules", "apply", str(bad), env=env)
    assert r.exit_code == 1 and "rule 'a', field when.column: unknown column 'Nope'" in r.stderr
    good = tmp_path / "rules.yaml"
    good.write_text(RULES)
    applied = cli_json("rules", "apply", str(good), "--note", "first", "--output", "json", env=env)
    assert applied["version"] == 1 and applied["reallocated_periods"] == ["2026-05-01"]
    assert "version 1 already holds" in cli("rules", "apply", str(good), env=env).stdout
    good.write_text(RULES.replace("{team: team-payments}, {team: team-platform}]", "{team: team-payments}, {team: ops}]"))
    assert cli_json("rules", "apply", str(good), "--output", "json", env=env)["version"] == 2
    assert [v["version"] for v in cli_json("rules", "versions", "--output", "json", env=env)] == [2, 1]
    diff = cli_json("rules", "diff", "1", "2", "--output", "json", env=env)
    moved = {r["team"]: Decimal(r["moved"]) for r in diff["moved"]}
    assert moved and sum(moved.values()) == 0 and moved["ops"] > 0 and moved["team-platform"] == -moved["ops"]
    shown = yaml.safe_load(cli("rules", "show", env=env).stdout)
    assert [r["name"] for r in shown["rules"]] == ["tax-even", "network-by-compute", "storage-60-40", "by-owner"]
    table = cli("costs", "--start", "2026-05", "-g", "team", env=env).stdout
    assert "team-platform" in table and "allocation coverage (EffectiveCost allocated by rules): AWS 2026-05" in table
    cov = cli_json("rules", "coverage", "--output", "json", env=env)
    assert [c["provider"] for c in cov] == ["AWS"]
    explained = cli_json("rules", "explain", "--team", "team-data", "--day", "2026-05-03", env=env)
    assert explained["groups"]
    assert cli("rules", "explain", env=env).exit_code == 2
