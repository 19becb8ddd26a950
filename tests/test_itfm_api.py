"""Chargeback statements, the TBM view and the flat export reconciled to the cent; the budgets and forecasts API
with roles and the team scope; the backtest machinery on a synthetic series with known properties (issue 10)."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest

from app.itfm import backtest as bt
from app.itfm import statements
from app.itfm.forecast import NotEnoughHistory
from tests.helpers import api_client
from tests.itfm_fixtures import alpha_cost, days, ingest_rows, standard_rows

D = Decimal
OCT = days(date(2026, 10, 1), date(2026, 10, 20))


@pytest.fixture
def loaded(rt_any, tmp_path):
    ingest_rows(rt_any, tmp_path / "focus", standard_rows())
    return rt_any


def test_chargeback_statements_reconcile_to_the_cent(loaded):
    with loaded.warehouse.connect(read_only=True) as con:
        doc = statements.statements(con, "2026-10", "team")
        by_cc = statements.statements(con, "2026-10", "cost_center", "showback")
    st = {(s["group"], s["currency"]): s for s in doc["statements"]}
    alpha = st[("alpha", "USD")]
    assert D(alpha["direct"]["EffectiveCost"]) == sum(alpha_cost(d) for d in OCT)
    assert alpha["shared"] == [{"rule": "shared-fees", "EffectiveCost": "180.00", "BilledCost": "0.00"}]
    beta = st[("beta", "USD")]
    assert beta["shared"][0]["EffectiveCost"] == "120.00"  # 40% of the 300.00 fee
    assert D(beta["direct"]["EffectiveCost"]) == sum(D("20.5") + D("0.25") * (d.day % 3) for d in OCT) + D("15.75")
    (unalloc,) = doc["unallocated"]
    assert (unalloc["currency"], D(unalloc["total"]["EffectiveCost"])) == ("USD", D("1.10") * 20)
    assert D(st[("alpha", "EUR")]["total"]["EffectiveCost"]) == D("2.00") * 20
    usd = next(r for r in doc["reconciliation"] if r["currency"] == "USD")
    warehouse = sum(alpha_cost(d) + D("20.5") + D("0.25") * (d.day % 3) + D("1.10") for d in OCT) + D("300") + D("15.75")
    assert D(usd["EffectiveCost"]["warehouse"]) == warehouse
    assert D(usd["EffectiveCost"]["statements"]) + D(usd["EffectiveCost"]["unallocated"]) == warehouse
    assert D(usd["BilledCost"]["warehouse"]) == warehouse - D("300")  # the fee is billed 0 (amortized)
    # by cost center: the shared fee's parts have cost center CC-SHARED
    cc = {(s["group"], s["currency"]): s for s in by_cc["statements"]}
    assert D(cc[("CC-SHARED", "USD")]["total"]["EffectiveCost"]) == D("300.00")
    assert by_cc["mode"] == "showback"
    # CSV lines sum to the same
    rows = list(csv.DictReader(io.StringIO(statements.statements_csv(doc))))
    assert sum(D(r["EffectiveCost"]) for r in rows if r["kind"] != "total" and r["currency"] == "USD") == warehouse
    # TBM: towers from ServiceCategory, solution = team
    with loaded.warehouse.connect(read_only=True) as con:
        towers = {(r["tower"], r["currency"]): D(r["EffectiveCost"]) for r in statements.tbm_totals(con, "2026-10")["rows"]}
        solutions = {r["solution"] for r in statements.tbm_totals(con, "2026-10", "solution")["rows"]}
    assert towers[("Storage", "USD")] == sum(D("20.5") + D("0.25") * (d.day % 3) for d in OCT)
    assert towers[("IT Management", "USD")] == D("300.00") and towers[("Other", "USD")] == D("15.75")
    assert sum(v for (t, c), v in towers.items() if c == "USD") == warehouse
    assert solutions == {"alpha", "beta", "unallocated"}


def test_chargeback_in_one_currency_converts_each_line_and_still_reconciles(loaded):
    from app.costs import QueryError
    from app.currency import RateTable, check_rate, set_rates

    with loaded.warehouse.connect(read_only=True) as con:
        native = statements.statements(con, "2026-10", "team")
        with pytest.raises(QueryError) as err:  # no rate yet: an error naming the currency and month
            statements.statements(con, "2026-10", "team", rates=RateTable("USD", {}))
        assert err.value.parameter == "currency" and "EUR for 2026-10" in err.value.message
    with loaded.sessions() as session:
        set_rates(session, [check_rate("2026-10", "EUR", "USD", "1.085", "ECB"),
                            check_rate("2026-10", "USD", "EUR", "0.9216589861751152", "ECB")])
        session.commit()
    usd_rates, eur_rates = RateTable.for_currency(loaded, "USD"), RateTable.for_currency(loaded, "EUR")
    with loaded.warehouse.connect(read_only=True) as con:
        doc = statements.statements(con, "2026-10", "team", rates=usd_rates)
        in_eur = statements.statements(con, "2026-10", "team", rates=eur_rates)
        towers = statements.tbm_totals(con, "2026-10", rates=usd_rates)
    nat = {(s["group"], s["currency"]): s for s in native["statements"]}
    st = {s["group"]: s for s in doc["statements"]}
    assert set(st) == {"alpha", "beta"} and {s["currency"] for s in doc["statements"]} == {"USD"}
    # alpha's USD statement plus its EUR statement x 1.085 (40.00 EUR -> 43.40 USD), lines keep their currency
    alpha = st["alpha"]
    assert D(alpha["total"]["EffectiveCost"]) == D(nat[("alpha", "USD")]["total"]["EffectiveCost"]) + D("43.40")
    assert alpha["shared"] == nat[("alpha", "USD")]["shared"]
    eur_lines = [ln for ln in alpha["lines"] if ln["billing_currency"] == "EUR"]
    assert sum(D(ln["EffectiveCost"]) for ln in eur_lines) == D("43.40")
    assert sum(D(ln["EffectiveCost"]) for ln in alpha["lines"]) == D(alpha["total"]["EffectiveCost"])
    assert st["beta"]["total"] == nat[("beta", "USD")]["total"]  # USD stays as it is
    # reconciliation: converted statements + unallocated = converted warehouse, and the per-currency proofs beside
    (rec,) = doc["reconciliation"]
    usd_wh = next(r for r in native["reconciliation"] if r["currency"] == "USD")["EffectiveCost"]["warehouse"]
    assert D(rec["EffectiveCost"]["warehouse"]) == D(usd_wh) + D("43.40")
    assert D(rec["EffectiveCost"]["statements"]) + D(rec["EffectiveCost"]["unallocated"]) == D(
        rec["EffectiveCost"]["warehouse"])
    assert rec["rounding_difference"] == {"EffectiveCost": "0.00", "BilledCost": "0.00"}
    assert rec["billing_currencies"] == native["reconciliation"]
    assert doc["conversion"] == {"currency": "USD", "rates": [
        {"currency": "EUR", "month": "2026-10", "rate": "1.085", "source": "ECB"}]}
    # into EUR: a rate with 16 places makes products longer than 18 places; the rounding difference is shown
    (rec_eur,) = in_eur["reconciliation"]
    diff = D(rec_eur["rounding_difference"]["EffectiveCost"])
    assert abs(diff) < D("1e-15") and D(rec_eur["EffectiveCost"]["statements"]) + D(
        rec_eur["EffectiveCost"]["unallocated"]) - D(rec_eur["EffectiveCost"]["warehouse"]) == diff
    # CSV: one currency, each line's billing currency in the last column
    rows = list(csv.DictReader(io.StringIO(statements.statements_csv(doc))))
    assert {r["currency"] for r in rows} == {"USD"} and {r["billing_currency"] for r in rows} == {"USD", "EUR", "EUR+USD"}
    assert sum(D(r["EffectiveCost"]) for r in rows if r["kind"] != "total") == D(rec["EffectiveCost"]["warehouse"])
    # TBM in one currency sums to the same converted total
    assert {r["currency"] for r in towers["rows"]} == {"USD"}
    assert sum(D(r["EffectiveCost"]) for r in towers["rows"]) == D(rec["EffectiveCost"]["warehouse"])
    # the API: currency= on chargeback and tbm; a missing rate is a 400 naming the parameter
    fin = api_client(loaded, "finance")
    with fin:
        got = fin.get("/v1/finance/chargeback", params={"month": "2026-10", "currency": "USD"})
        assert got.status_code == 200 and got.json()["conversion"] == doc["conversion"]
        assert fin.get("/v1/finance/tbm", params={"month": "2026-10", "currency": "USD"}).json()["rows"] == \
            towers["rows"]
        bad = fin.get("/v1/finance/chargeback", params={"month": "2026-10", "currency": "GBP"})
        assert bad.status_code == 400 and bad.json()["errors"][0]["parameter"] == "currency"
        assert "no exchange rate into GBP" in bad.json()["errors"][0]["detail"]


def test_monthly_totals_and_the_itfm_export_in_one_currency(loaded):
    from app.currency import check_rate, set_rates
    from app.itfm.budgets import create_budget

    with loaded.sessions() as session:
        set_rates(session, [check_rate("2026-10", "EUR", "USD", "1.085", "ECB")])
        create_budget(session, {"name": "alpha-eur", "team": "alpha", "currency": "EUR"},
                      [{"period": "2026-10", "amount": "100"}])
    fin = api_client(loaded, "finance")
    with fin:
        native = fin.get("/v1/finance/monthly-totals", params={"month": "2026-10", "by": "team"}).json()
        doc = fin.get("/v1/finance/monthly-totals", params={"month": "2026-10", "by": "team", "currency": "USD"}).json()
        nat = {(r["group"], r["currency"]): D(r["EffectiveCost"]) for r in native["rows"]}
        got = {r["group"]: D(r["EffectiveCost"]) for r in doc["rows"]}
        assert {r["currency"] for r in doc["rows"]} == {"USD"} and len(doc["rows"]) == len(got)
        assert got["alpha"] == nat[("alpha", "USD")] + nat[("alpha", "EUR")] * D("1.085")
        assert got["beta"] == nat[("beta", "USD")]
        (rec,) = doc["reconciliation"]
        assert D(rec["EffectiveCost"]["groups"]) == D(rec["EffectiveCost"]["warehouse"]) == sum(got.values())
        assert rec["rounding_difference"]["EffectiveCost"] == "0.00"
        assert rec["billing_currencies"] == native["reconciliation"]
        assert doc["conversion"]["rates"] == [{"currency": "EUR", "month": "2026-10", "rate": "1.085", "source": "ECB"}]
        # a closed month keeps its snapshot per billing currency
        assert fin.post("/v1/finance/months/2026-10/close").status_code == 201
        closed = fin.get("/v1/finance/monthly-totals", params={"month": "2026-10", "currency": "USD"}).json()
        assert {t["currency"] for t in closed["closed"]["totals"]} == {"USD", "EUR"}
        bad = fin.get("/v1/finance/monthly-totals", params={"month": "2026-10", "currency": "JPY"})
        assert bad.status_code == 400 and "no exchange rate into JPY" in bad.text
        # the flat export: every amount in USD, cost rows summing to the converted total, budget rows converted
        text = fin.get("/v1/finance/export", params={"month": "2026-10", "currency": "USD"}).text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {r["currency"] for r in rows} == {"USD"}
        assert sum(D(r["effective"]) for r in rows if r["row_type"] == "cost") == D(rec["EffectiveCost"]["warehouse"])
        (budget,) = [r for r in rows if r["row_type"] == "budget"]
        assert D(budget["budget"]) == D("108.50") and D(budget["effective"]) == D("43.40")  # 40.00 EUR actual
        assert budget["forecast"] and D(budget["variance"]) == D(budget["forecast"]) - D(budget["budget"])


def test_tbm_mapping_is_overridable(loaded, tmp_path, monkeypatch):
    (tmp_path / "tbm.yaml").write_text("towers: {Compute: Compute Cloud}\npool: Public Cloud\n")
    monkeypatch.setenv("CLOUDTALLY_TBM_MAPPING", str(tmp_path / "tbm.yaml"))
    with loaded.warehouse.connect(read_only=True) as con:
        doc = statements.tbm_totals(con, "2026-10")
    assert doc["pool"] == "Public Cloud" and "Compute Cloud" in {r["tower"] for r in doc["rows"]}
    assert "Storage" in {r["tower"] for r in doc["rows"]}  # other keys keep their default


def test_api_budgets_forecasts_finance_with_roles_and_team_scope(loaded):
    rt = loaded
    fin, team, admin = api_client(rt, "finance"), api_client(rt, "team:beta"), api_client(rt, "admin")
    with fin, team, admin:
        text = ("budget,team,service,currency,version,period,amount\n"
                "alpha-oct,alpha,,USD,plan,2026-10,1500\n"
                "beta-oct,beta,,USD,plan,2026-10,700\n"
                "beta-oct,beta,,USD,reforecast-1,2026-10,800\n")
        assert team.post("/v1/budgets/import", content=text, headers={"content-type": "text/csv"}).status_code == 403
        r = fin.post("/v1/budgets/import", content=text, headers={"content-type": "text/csv"})
        assert r.status_code == 200 and r.json()["budgets_created"] == 2
        bad = fin.post("/v1/budgets/import", content="budget,currency,period,amount\nx,USD,2026-13,1\n",
                       headers={"content-type": "text/csv"})
        assert bad.status_code == 400 and bad.json()["errors"][0]["parameter"] == "row 1, period"
        assert fin.get("/v1/budgets/export").text.count("\n") == 4
        assert team.get("/v1/budgets/export").text.count("\n") == 3
        assert [b["name"] for b in team.get("/v1/budgets").json()["budgets"]] == ["beta-oct"]
        assert team.get("/v1/budgets/alpha-oct").status_code == 404
        assert team.get("/v1/budgets/alpha-oct/status").status_code == 404
        assert team.delete("/v1/budgets/beta-oct").status_code == 403
        st = fin.get("/v1/budgets/status").json()["statuses"]
        assert [s["name"] for s in st] == ["alpha-oct", "beta-oct"]
        beta = st[1]
        assert beta["budget"] == "800.00" and beta["versions"] == {"plan": "700.00", "reforecast-1": "800.00"}
        assert D(beta["actual"]) == sum(D("20.5") + D("0.25") * (d.day % 3) for d in OCT) + D("15.75") + D("120.00")
        assert D(beta["eac"]) == D(beta["actual"]) + D(beta["forecast_remaining"])
        assert D(beta["variance"]) == D(beta["eac"]) - D("800")
        assert [s["name"] for s in team.get("/v1/budgets/status").json()["statuses"]] == ["beta-oct"]
        csv_status = fin.get("/v1/budgets/status", params={"format": "csv"}).text
        assert csv_status.splitlines()[0].startswith("name,budget_id,team")
        created = fin.post("/v1/budgets", json={"name": "n", "currency": "USD", "amounts": [
            {"period": "2026-13", "amount": "1"}]})
        assert created.status_code == 400 and created.json()["errors"][0]["parameter"] == "amounts[0].period"
        # forecasts: a team key forecasts its own team; another team is a 403
        f = team.get("/v1/forecasts", params={"horizon_days": 20, "currency": "USD"})
        assert f.status_code == 200
        (doc,) = f.json()["forecasts"]
        assert doc["scope"]["team"] == "beta" and len(doc["days"]) == 20 and doc["start"] == "2026-10-21"
        assert all(D(d["lo95"]) <= D(d["lo80"]) <= D(d["forecast"]) <= D(d["hi80"]) <= D(d["hi95"]) for d in doc["days"])
        acc = doc["accuracy"]
        assert acc["available"] and acc["windows"] == 6 and acc["horizon_days"] == 30
        assert set(acc["metrics"]) >= {"daily_mape", "wape", "month_ape_median", "month_ape_p90", "coverage80",
                                       "coverage95", "mase", "mase_snaive", "interval_scale80"}
        assert doc["intervals_calibration"]["scale80"] == acc["metrics"]["interval_scale80"]
        assert team.get("/v1/forecasts", params={"team": "alpha"}).status_code == 403
        assert team.get("/v1/forecasts/accuracy", params={"team": "alpha"}).status_code == 403
        assert [b["scope_key"] for b in team.get("/v1/forecasts/accuracy").json()["backtests"]] == ["team=beta"]
        none = fin.get("/v1/forecasts", params={"team": "nobody"})
        assert none.status_code == 422 and "14 days" in none.json()["detail"]
        # finance routes stay closed to team keys
        for path in ("/v1/finance/chargeback?month=2026-10", "/v1/finance/export?month=2026-10",
                     "/v1/finance/tbm?month=2026-10"):
            assert team.get(path).status_code == 403
            assert fin.get(path).status_code == 200
        export = list(csv.DictReader(io.StringIO(fin.get("/v1/finance/export", params={"month": "2026-10"}).text)))
        assert list(export[0]) == list(statements.EXPORT_COLUMNS)
        cost = [r for r in export if r["row_type"] == "cost"]
        assert sum(D(r["effective"]) for r in cost if r["currency"] == "USD") == (
            sum(alpha_cost(d) + D("20.5") + D("0.25") * (d.day % 3) + D("1.10") for d in OCT) + D("315.75"))
        budget_rows = {r["team"]: r for r in export if r["row_type"] == "budget"}
        assert budget_rows["beta"]["budget"] == "800.00" and budget_rows["beta"]["forecast"] == beta["eac"]
        assert budget_rows["beta"]["variance"] == beta["variance"]
        assert admin.delete("/v1/budgets/beta-oct").status_code == 200
        assert admin.get("/v1/budgets/beta-oct").status_code == 404


# -- backtest machinery -------------------------------------------------------------------------------------------------
def test_backtest_plan_rolls_the_origin_without_overlap_when_history_allows():
    assert bt.plan(210) == (30, [30, 60, 90, 120, 150, 180])  # 30 apart, no overlap, the last ends the data
    assert bt.plan(200) == (28, [30, 58, 86, 114, 142, 170])  # every window trains on >= 28 days
    assert bt.plan(92) == (6, [32, 38, 44, 50, 56, 62])  # the demo's 92 days: step 6
    assert bt.plan(63) == (1, [28, 29, 30, 31, 32, 33])
    with pytest.raises(NotEnoughHistory):
        bt.plan(62)


def test_window_metrics_by_hand():
    y = np.array([10.0, 20.0, 0.0, 40.0])
    f = {"point": np.array([12.0, 18.0, 1.0, 40.0]), "lo80": np.array([11, 19, -1, 30.0]),
         "hi80": np.array([13, 21, 2, 50.0]), "lo95": np.array([0, 0, -5, 0.0]), "hi95": np.array([99, 99, 9, 99.0]),
         "half80": np.array([1.0, 1, 1.5, 10]), "half95": np.array([50.0, 50, 7, 50])}
    train = np.array([1.0, 2, 3, 4, 5, 6, 7, 3, 4, 5, 6, 7, 8, 9])  # lag-7 differences: all 2
    m = bt.window_metrics(y, f, train)
    assert m["abs_err"] == 5 and m["abs_y"] == 70 and m["scale"] == 2
    assert m["month_ape"] == pytest.approx(1 / 70 * 100) and m["in80"] == 3 and m["in95"] == 4
    assert m["mae"] == 1.25 and m["mae_snaive"] == pytest.approx(np.mean(np.abs(np.array([3, 4, 5, 6.0]) - y)))
    assert m["r80"] == [2.0, 2.0, 1 / 1.5, 0.0]  # |error| / the model's half-width: conformity scores
    s = bt.summarize([m])
    assert s["wape"] == round(5 / 70 * 100, 2) and s["coverage80_model"] == 75.0 and s["coverage95_model"] == 100.0
    # one window: no other window to calibrate on (scale 1); two identical windows calibrate each other
    assert s["coverage80"] == 50.0 and s["interval_scale80"] == 2.0  # ceil(5 x 0.8) = 4th smallest score of 4
    two = bt.summarize([m, m])
    assert two["coverage80"] == 100.0 and two["interval_scale80"] == 2.0
    assert bt.conformal_scale([0.1] * 10, 80) == 0.5 and bt.conformal_scale([9.0], 80) == 5.0
    assert s["daily_mape"] == round(np.mean([0.2, 0.1, 0.0]) * 100, 2) and s["mase"] == round(1.25 / 2, 3)


def synthetic(n: int = 730, noise: float = 0.05, seed: int = 7) -> tuple[np.ndarray, np.ndarray, date]:
    """Weekly seasonality (weekends at 60%), growth 20%/year, multiplicative noise, a 2000.00 fee and tax on the 1st."""
    rng = np.random.default_rng(seed)
    start = date(2024, 11, 1)
    t = np.arange(n)
    week = np.where([(start + timedelta(days=int(i))).weekday() >= 5 for i in t], 0.6, 1.0)
    usage = 1000 * (1 + 0.2 * t / 365) * week * (1 + rng.normal(0, noise, n))
    cal = np.array([2000.0 if (start + timedelta(days=int(i))).day == 1 else 5.0 for i in t])
    return usage, cal, start


@pytest.mark.slow
def test_backtest_on_a_synthetic_series_with_known_properties():
    usage, cal, start = synthetic()
    fee_aware = bt.backtest_arrays(usage, cal, start)
    assert fee_aware["step"] == 30 and len(fee_aware["windows"]) == 6
    m = fee_aware["metrics"]
    # 5% daily noise: daily errors near it, month totals within a few %, the fee never missed
    assert 2 < m["daily_mape"] < 9 and m["month_ape_median"] < 3 and m["month_ape_p90"] < 6
    assert 65 <= m["coverage80"] <= 95 and m["coverage95"] >= 85
    assert m["mase_improvement"] >= 20 and m["mase"] < m["mase_snaive"]
    # the same series without taking the calendar part out (all of it modelled as usage) is worse on month totals
    naive = bt.backtest_arrays(usage + cal, np.zeros_like(cal), start)["metrics"]
    assert naive["daily_mape"] > m["daily_mape"]
    # a noiseless series is forecast almost exactly
    clean, cal0, _ = synthetic(noise=0.0)
    exact = bt.backtest_arrays(clean, cal0, start)["metrics"]
    assert exact["month_ape_p90"] < 1.0 and exact["daily_mape"] < 2.0
