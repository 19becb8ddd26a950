"""Reporting in one currency: finance's exchange rates (app.currency, /v1/fx-rates) and the cost query's `currency`.

The fixture holds the public AWS FOCUS sample in USD (May 2026) and the Azure sample re-labelled as EUR, once in
May and once moved to April, so a query mixes two currencies over two months."""
from __future__ import annotations

import csv
from decimal import ROUND_HALF_UP, Decimal

import pytest

from app import currency, rollups
from app.ingest import ingest
from tests.helpers import FOCUS_AWS, FOCUS_AZURE, api_client, cli, cli_json, read_rows, sums, write_csv

Q = Decimal(1).scaleb(-18)


def _eur_copy(samples, tmp_path, name: str, month: str | None = None):
    with open(samples / FOCUS_AZURE, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    cur = [i for i, h in enumerate(header) if h in ("BillingCurrency", "PricingCurrency")]
    dates = [i for i, h in enumerate(header) if h.endswith(("PeriodStart", "PeriodEnd"))]
    for r in rows:
        for i in cur:
            r[i] = "EUR" if r[i] else r[i]
        if month == "2026-04":
            for i in dates:
                r[i] = r[i].replace("2026-05-", "2026-04-").replace("2026-06-01", "2026-05-01")
    return write_csv(tmp_path / name, header, rows)


@pytest.fixture
def mixed(rt_any, samples, tmp_path):
    ingest(rt_any, "aws", str(samples / FOCUS_AWS))
    ingest(rt_any, "azure-eur-may", str(_eur_copy(samples, tmp_path, "eur-may.csv")))
    ingest(rt_any, "azure-eur-april", str(_eur_copy(samples, tmp_path, "eur-april.csv", "2026-04")))
    return rt_any


def _usd(samples):
    return sums(read_rows(samples / FOCUS_AWS), "EffectiveCost")


def _eur(samples):
    return sums(read_rows(samples / FOCUS_AZURE), "EffectiveCost")


def test_costs_in_one_currency_convert_each_month_with_its_rate(mixed, samples):
    """On SQLite and PostgreSQL: rows converted with their month's rate, currencies merged, one exact total."""
    with api_client(mixed) as c:
        put = c.put("/v1/fx-rates", json={"rates": [
            {"month": "2026-05", "currency": "usd", "to_currency": "EUR", "rate": "0.9213", "source": "ECB month-end"},
            {"month": "2026-04", "currency": "USD", "to_currency": "EUR", "rate": "0.95"}]})
        assert put.status_code == 200, put.text
        body = c.get("/v1/costs", params={"start": "2026-04", "end": "2026-06", "currency": "eur"}).json()
        native = c.get("/v1/costs", params={"start": "2026-04", "end": "2026-06"}).json()
    usd_in_eur = (_usd(samples) * Decimal("0.9213")).quantize(Q, ROUND_HALF_UP)
    assert body["query"]["currency"] == "EUR"
    assert [(r["period"], Decimal(r["cost"]), r["currency"]) for r in body["rows"]] == [
        ("2026-04-01", _eur(samples), "EUR"), ("2026-05-01", usd_in_eur + _eur(samples), "EUR")]
    assert body["totals"] == [{"currency": "EUR", "cost": body["totals"][0]["cost"]}]
    assert Decimal(body["totals"][0]["cost"]) == usd_in_eur + 2 * _eur(samples)
    # only the rate a row needed is listed, with its source; the April USD rate was not used
    assert body["conversion"] == {"currency": "EUR", "rates": [
        {"currency": "USD", "month": "2026-05", "rate": "0.9213", "source": "ECB month-end"}]}
    # without `currency` nothing changes: one row per period and currency, totals per currency
    assert {t["currency"] for t in native["totals"]} == {"USD", "EUR"} and "conversion" not in native
    assert native["query"]["currency"] is None


def test_grouped_rows_merge_across_currencies_and_keep_the_order(rt, samples, tmp_path):
    ingest(rt, "aws", str(samples / FOCUS_AWS))
    ingest(rt, "azure-eur-may", str(_eur_copy(samples, tmp_path, "eur-may.csv")))
    with rt.sessions() as s:
        currency.set_rates(s, [currency.check_rate("2026-05", "EUR", "USD", "1.0825")])
        s.commit()
    with api_client(rt) as c:
        body = c.get("/v1/costs", params={"start": "2026-05", "end": "2026-06", "group_by": "ServiceCategory",
                                          "currency": "USD"}).json()
        native = c.get("/v1/costs", params={"start": "2026-05", "end": "2026-06", "group_by": "ServiceCategory"}).json()
    expected: dict[str, Decimal] = {}
    for r in native["rows"]:
        cost = Decimal(r["cost"])
        if r["currency"] == "EUR":
            cost = (cost * Decimal("1.0825")).quantize(Q, ROUND_HALF_UP)
        expected[r["ServiceCategory"]] = expected.get(r["ServiceCategory"], Decimal(0)) + cost
    got = [(r["ServiceCategory"], Decimal(r["cost"])) for r in body["rows"]]
    assert dict(got) == expected and len(got) == len(expected)
    assert [c for _, c in got] == sorted((c for _, c in got), reverse=True)
    assert Decimal(body["totals"][0]["cost"]) == sum(expected.values())
    assert {r["currency"] for r in body["rows"]} == {"USD"}


def test_a_missing_rate_is_a_400_naming_currency_and_months(mixed):
    with api_client(mixed) as c:
        r = c.get("/v1/costs", params={"start": "2026-04", "end": "2026-06", "currency": "USD"})
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
        assert "EUR for 2026-04, 2026-05" in r.json()["detail"] and "currency" in r.text
        # one month set: the other is still named
        c.put("/v1/fx-rates", json={"rates": [{"month": "2026-04", "currency": "EUR", "to_currency": "USD",
                                               "rate": "1.1"}]})
        r = c.get("/v1/costs", params={"start": "2026-04", "end": "2026-06", "currency": "USD"})
        assert r.status_code == 400 and "EUR for 2026-05" in r.json()["detail"]
        assert "2026-04" not in r.json()["detail"].split("EUR for")[1]
        assert c.get("/v1/costs", params={"currency": "EURO"}).status_code in (400, 422)


def test_a_changed_rate_changes_the_cached_answer(rt, samples):
    ingest(rt, "aws", str(samples / FOCUS_AWS))
    with api_client(rt) as c:
        params = {"start": "2026-05", "end": "2026-06", "currency": "GBP"}
        c.put("/v1/fx-rates", json={"rates": [{"month": "2026-05", "currency": "USD", "to_currency": "GBP",
                                               "rate": "0.8"}]})
        first = c.get("/v1/costs", params=params).json()
        assert c.get("/v1/costs", params=params).json() == first  # a repeat (answered from the read cache)
        c.put("/v1/fx-rates", json={"rates": [{"month": "2026-05", "currency": "USD", "to_currency": "GBP",
                                               "rate": "0.79"}]})
        second = c.get("/v1/costs", params=params).json()
    assert Decimal(first["totals"][0]["cost"]) == (_usd(samples) * Decimal("0.8")).quantize(Q, ROUND_HALF_UP)
    assert Decimal(second["totals"][0]["cost"]) == (_usd(samples) * Decimal("0.79")).quantize(Q, ROUND_HALF_UP)


def test_truncated_rows_keep_whole_converted_totals(mixed):
    with api_client(mixed) as c:
        c.put("/v1/fx-rates", json={"rates": [{"month": m, "currency": "EUR", "to_currency": "USD", "rate": "1.08"}
                                              for m in ("2026-04", "2026-05")]})
        params = {"start": "2026-04", "end": "2026-06", "group_by": "ServiceName", "currency": "USD"}
        whole = c.get("/v1/costs", params=params).json()
        cut = c.get("/v1/costs", params={**params, "limit": 2}).json()
    assert cut["truncated"] is True and len(cut["rows"]) <= 2
    assert cut["totals"] == whole["totals"]


def test_rates_api_validates_and_team_keys_only_read(rt):
    with api_client(rt) as admin, api_client(rt, "team:payments") as team:
        bad = admin.put("/v1/fx-rates", json={"rates": [
            {"month": "2026-13", "currency": "USD", "to_currency": "EUR", "rate": "1"},
            {"month": "2026-05", "currency": "USD", "to_currency": "EUR", "rate": "-1"},
            {"month": "2026-05", "currency": "USD", "to_currency": "USD", "rate": "1"},
            {"month": "2026-05", "currency": "US", "to_currency": "EUR", "rate": "1"}]})
        assert bad.status_code == 400
        assert [e["parameter"] for e in bad.json()["errors"]] == [
            "rates[0].month", "rates[1].rate", "rates[2].to_currency", "rates[3].currency"]
        assert admin.get("/v1/fx-rates").json() == {"rates": []}  # all or nothing
        ok = admin.put("/v1/fx-rates", json={"rates": [{"month": "2026-05", "currency": "USD", "to_currency": "EUR",
                                                        "rate": "0.920000"}]})
        assert ok.json() == {"stored": 1}
        assert team.get("/v1/fx-rates").json()["rates"][0]["rate"] == "0.92"
        assert team.put("/v1/fx-rates", json={"rates": []}).status_code == 403
        assert team.delete("/v1/fx-rates/USD/EUR/2026-05").status_code == 403
        assert admin.delete("/v1/fx-rates/usd/eur/2026-05").status_code == 200
        assert admin.delete("/v1/fx-rates/USD/EUR/2026-05").status_code == 404


def test_csv_import_names_file_row_and_column_and_round_trips(rt_any):
    text = ("month,currency,to_currency,rate,source\n2026-05,USD,EUR,0.9213,ECB\n2026-05,GBP,EUR,1.17x,\n"
            "2026-04,USD,EUR,0.95,\n2026-05,USD,EUR,0.93,\n")
    with pytest.raises(currency.RateError) as err:
        currency.parse_csv(text, "rates.csv")
    assert [p["parameter"] for p in err.value.problems] == ["rates.csv row 3, column rate", "rates.csv row 5"]
    with pytest.raises(currency.RateError) as err:
        currency.parse_csv("month,currency,rate\n", "r.csv")
    assert "to_currency" in str(err.value)
    good = text.replace("1.17x", "1.17").replace("2026-05,USD,EUR,0.93,\n", "")
    with api_client(rt_any) as c:
        assert c.post("/v1/fx-rates/import", content=text.encode()).status_code == 400
        assert c.get("/v1/fx-rates").json() == {"rates": []}
        assert c.post("/v1/fx-rates/import", content=good.encode()).json() == {"stored": 3}
        exported = c.get("/v1/fx-rates", params={"format": "csv"}).text
        listed = c.get("/v1/fx-rates", params={"to_currency": "EUR", "currency": "USD"}).json()["rates"]
    assert [r["month"] for r in listed] == ["2026-04", "2026-05"]
    assert {line for line in exported.splitlines()[1:]} == {
        "2026-04,USD,EUR,0.95,", "2026-05,GBP,EUR,1.17,", "2026-05,USD,EUR,0.9213,ECB"}
    # exact at rest on both control databases: 18 decimal places survive
    with rt_any.sessions() as s:
        currency.set_rates(s, [currency.check_rate("2026-06", "USD", "EUR", "0.123456789012345678")])
        s.commit()
        assert currency.RateTable.load(s, "EUR").rates[("USD", "2026-06")][0] == Decimal("0.123456789012345678")


def test_cost_query_without_rates_for_its_currency_is_refused(rt):
    from app.costs import parse_query, run_query

    q = parse_query("2026-05", "2026-06", currency="EUR")
    with rt.warehouse.connect() as con, pytest.raises(ValueError):
        run_query(con, q)


@pytest.mark.parametrize("granularity", ["day", "month"])
def test_rollups_and_lines_convert_alike(rt, samples, tmp_path, granularity):
    from app.costs import parse_query, run_query

    ingest(rt, "aws", str(samples / FOCUS_AWS))
    ingest(rt, "azure-eur-may", str(_eur_copy(samples, tmp_path, "eur-may.csv")))
    table = currency.RateTable("USD", {("EUR", "2026-05"): (Decimal("1.0825"), None)})
    q = parse_query("2026-05", "2026-06", granularity, ["ProviderName"], currency="USD")
    rollups.refresh_rt(rt)
    with rt.warehouse.connect() as con:
        lines = run_query(con, q, rollups=False, rates=table)
        rolled = run_query(con, q, rollups=True, rates=table)
    assert lines.to_json() == rolled.to_json()
    assert lines.totals and lines.totals[0]["currency"] == "USD"



def test_cli_sets_imports_and_reports_like_the_api(rt, samples, tmp_path):
    ingest(rt, "aws", str(samples / FOCUS_AWS))
    ingest(rt, "azure-eur-may", str(_eur_copy(samples, tmp_path, "eur-may.csv")))
    env = {"CLOUDTALLY_DATA_DIR": str(rt.settings.data_dir)}
    bad = tmp_path / "bad.csv"
    bad.write_text("month,currency,to_currency,rate\n2026-05,EUR,USD,abc\n")
    result = cli("fx", "import", str(bad), env=env)
    assert result.exit_code == 1 and f"{bad} row 2, column rate" in result.stderr
    assert cli("fx", "set", "2026-05", "EUR", "EUR", "1", env=env).exit_code == 2
    assert cli("fx", "set", "2026-05", "eur", "usd", "1.0825", "--source", "budget rate", env=env).exit_code == 0
    listed = cli("fx", "list", "--format", "csv", env=env).stdout
    assert listed == "month,currency,to_currency,rate,source\n2026-05,EUR,USD,1.0825,budget rate\n"
    args = {"start": "2026-05", "end": "2026-06", "group_by": "ProviderName", "currency": "USD"}
    from_cli = cli_json("costs", "--start", "2026-05", "--end", "2026-06", "-g", "ProviderName", "--currency", "usd",
                        "--format", "json", env=env)
    with api_client(rt) as c:
        assert c.get("/v1/costs", params=args).json() == from_cli
    assert from_cli["conversion"]["rates"] == [{"currency": "EUR", "month": "2026-05", "rate": "1.0825",
                                                "source": "budget rate"}]
    table = cli("costs", "--start", "2026-05", "--end", "2026-06", "--currency", "USD", env=env)
    assert table.exit_code == 0 and "EUR 2026-05 x 1.0825 (budget rate)" in table.stdout
    missing = cli("costs", "--start", "2026-05", "--end", "2026-06", "--currency", "GBP", env=env)
    assert missing.exit_code == 1 and "USD for 2026-05" in missing.stderr and "EUR for 2026-05" in missing.stderr
    assert cli("fx", "delete", "2026-05", "EUR", "USD", env=env).exit_code == 0
    assert cli("fx", "delete", "2026-05", "EUR", "USD", env=env).exit_code == 1
