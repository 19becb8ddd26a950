"""The cost query (shared by CLI and API), the API's error documents and its OpenAPI description."""
from __future__ import annotations

import csv
import io
from decimal import Decimal, localcontext

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ingest import ingest
from tests.conftest import make_runtime
from tests.helpers import api_client, cli_json, read_rows, sums, write_csv

AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"
AZURE = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_azure.csv"


@pytest.fixture
def loaded(rt, samples):
    ingest(rt, "aws", str(samples / AWS))
    ingest(rt, "azure", str(samples / AZURE))
    return rt


@pytest.fixture
def client(loaded):
    with api_client(loaded) as c:
        yield c


def _rows(samples):
    return read_rows(samples / AWS) + read_rows(samples / AZURE)


def test_cli_and_api_return_the_same_document(client, loaded, samples):
    env = {"CLOUDTALLY_DATA_DIR": str(loaded.settings.data_dir)}
    args = {"start": "2026-05-01", "end": "2026-06-01", "granularity": "day", "group_by": ["ProviderName", "tag:Owner"],
            "filter": ["ServiceCategory=Compute", "ServiceCategory=Storage"], "metric": "BilledCost"}
    api = client.get("/v1/costs", params=args).json()
    from_cli = cli_json("costs", "--start", "2026-05-01", "--end", "2026-06-01", "--granularity", "day",
                        "-g", "ProviderName", "-g", "tag:Owner", "-f", "ServiceCategory=Compute",
                        "-f", "ServiceCategory=Storage", "--metric", "BilledCost", "--format", "json", env=env)
    assert api == from_cli
    assert api["rows"] and all(isinstance(r["cost"], str) for r in api["rows"])
    expected = sum((Decimal(r["BilledCost"]) for r in _rows(samples) if r["ServiceCategory"] in ("Compute", "Storage")),
                   Decimal(0))
    assert Decimal(api["totals"][0]["cost"]) == expected
    assert sum(Decimal(r["cost"]) for r in api["rows"]) == expected


def test_filters_or_within_a_key_and_across_keys(client, samples):
    rows = _rows(samples)

    def api_total(filters):
        body = client.get("/v1/costs", params={"start": "2026-05", "end": "2026-06", "filter": filters}).json()
        return Decimal(body["totals"][0]["cost"]) if body["totals"] else Decimal(0)

    def dev(r):
        return bool(r["Tags"]) and '"Environment":"dev"' in r["Tags"].replace(" ", "")

    both = api_total(["ProviderName=AWS", "ProviderName=Microsoft Azure", "tag:Environment=dev"])
    aws_only = api_total(["ProviderName=AWS", "tag:Environment=dev"])
    assert both == sums([r for r in rows if dev(r)], "EffectiveCost")
    assert aws_only == sums([r for r in rows if dev(r) and r["ProviderName"] == "AWS"], "EffectiveCost")
    assert Decimal(0) < aws_only < both


def test_empty_filter_value_matches_missing_tag(tmp_path, samples):
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    tags = header.index("Tags")
    for r in rows[:30]:
        r[tags] = ""  # no tags at all
    for r in rows[30:40]:
        r[tags] = '{"Environment":"dev"}'  # tags, but no Owner
    rt = make_runtime(tmp_path / "d")
    ingest(rt, "t", str(write_csv(tmp_path / "t.csv", header, rows)))
    untagged = sums(read_rows(tmp_path / "t.csv")[:40], "EffectiveCost")
    with api_client(rt) as c:
        got = c.get("/v1/costs", params={"start": "2026-05", "end": "2026-06", "filter": "tag:Owner="}).json()
        grouped = c.get("/v1/costs", params={"start": "2026-05", "end": "2026-06", "group_by": "tag:Owner"}).json()
    assert Decimal(got["totals"][0]["cost"]) == untagged
    assert [Decimal(r["cost"]) for r in grouped["rows"] if r["tag:Owner"] is None] == [untagged]


def test_default_window_is_the_latest_month_with_data(client):
    body = client.get("/v1/costs").json()
    assert (body["query"]["start"], body["query"]["end"]) == ("2026-05-01", "2026-06-01")


def test_limit_truncates_rows_but_not_totals(client, samples):
    body = client.get("/v1/costs", params={"start": "2026-05", "end": "2026-06", "group_by": "ResourceId",
                                           "limit": 3}).json()
    assert len(body["rows"]) == 3 and body["truncated"] is True
    assert Decimal(body["totals"][0]["cost"]) == sums(_rows(samples), "EffectiveCost")


def test_csv_format(client, samples):
    resp = client.get("/v1/costs", params={"start": "2026-05", "end": "2026-06", "group_by": "ServiceCategory",
                                           "format": "csv"})
    assert resp.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(resp.text)))
    assert list(table[0]) == ["period", "ServiceCategory", "cost", "currency"]
    assert sum(Decimal(r["cost"]) for r in table) == sums(_rows(samples), "EffectiveCost")


def test_currencies_are_never_added(tmp_path, samples):
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    cur = header.index("BillingCurrency")
    for r in rows[:50]:
        r[cur] = "EUR"
    rt = make_runtime(tmp_path / "d")
    ingest(rt, "mixed", str(write_csv(tmp_path / "mixed.csv", header, rows)))
    with api_client(rt) as c:
        body = c.get("/v1/costs", params={"start": "2026-05", "end": "2026-06", "group_by": "ProviderName"}).json()
    by_cur = {t["currency"]: Decimal(t["cost"]) for t in body["totals"]}
    parsed = read_rows(tmp_path / "mixed.csv")
    assert by_cur == {"EUR": sums(parsed, "EffectiveCost", "EUR"), "USD": sums(parsed, "EffectiveCost", "USD")}
    assert {r["currency"] for r in body["rows"]} == {"EUR", "USD"}


@pytest.mark.parametrize("params,parameter", [
    ({"granularity": "week"}, "granularity"),
    ({"metric": "Cost"}, "metric"),
    ({"start": "yesterday"}, "start"),
    ({"start": "2026-05-10", "end": "2026-05-01"}, "end"),
    ({"group_by": "Nope"}, "group_by"),
    ({"filter": "ProviderName"}, "filter"),
    ({"filter": "tag:=x"}, "filter"),
    ({"limit": "0"}, "limit"),
    ({"format": "xml"}, "format"),
])
def test_bad_parameters_are_problem_documents_naming_the_parameter(client, params, parameter):
    resp = client.get("/v1/costs", params=params)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == 400 and body["title"] and parameter in body["detail"]
    assert [e["parameter"] for e in body["errors"]] == [parameter]


def test_deliveries_endpoint(client):
    body = client.get("/v1/deliveries", params={"source": "aws"}).json()
    (d,) = body["deliveries"]
    assert d["status"] == "loaded" and d["raw"] == d["landed"] and d["billing_period_start"] == "2026-05-01T00:00:00Z"
    assert client.get(f"/v1/deliveries/{d['id']}").json()["id"] == d["id"]
    missing = client.get("/v1/deliveries/nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/deliveries", params={"billing_period": "2026-05"}).json()["deliveries"]
    assert client.get("/v1/deliveries", params={"status": "bogus"}).status_code == 400


def test_healthz(client):
    body = client.get("/healthz").json()
    # Two deliveries, each followed by the allocation of its period: four changes to what queries return.
    assert body["status"] == "ok" and body["warehouse"]["data_version"] == 4


def test_openapi_documents_every_parameter(client):
    spec = client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert op.get("summary"), (path, method)
            for p in op.get("parameters", []):
                assert p.get("description"), (path, method, p["name"])
    costs = spec["paths"]["/v1/costs"]["get"]
    assert {p["name"] for p in costs["parameters"]} == {
        "start", "end", "granularity", "group_by", "filter", "metric", "limit", "format", "currency"}
    assert "application/problem+json" in costs["responses"]["400"]["content"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=18,
                            allow_nan=False, allow_infinity=False), min_size=1, max_size=30))
def test_any_decimal_costs_reconcile_exactly(tmp_path_factory, samples, amounts):
    """Whatever exact decimals a file holds (up to 18 places, 31 digits: beyond Python's default 28-digit
    context), the API total is their exact sum."""
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    b, e = header.index("BilledCost"), header.index("EffectiveCost")
    picked = []
    for i, amount in enumerate(amounts):
        row = list(rows[i % len(rows)])
        row[b] = format(amount, "f")
        row[e] = format(-amount, "f")
        picked.append(row)
    folder = tmp_path_factory.mktemp("prop")
    rt = make_runtime(folder / "d")
    ingest(rt, "p", str(write_csv(folder / "p.csv", header, picked)))
    with api_client(rt) as c:
        for metric, sign in (("BilledCost", 1), ("EffectiveCost", -1)):
            body = c.get("/v1/costs", params={"start": "2026-05", "end": "2026-06", "metric": metric}).json()
            with localcontext(prec=80):
                assert Decimal(body["totals"][0]["cost"]) == sign * sum(amounts, Decimal(0))
    rt.close()
