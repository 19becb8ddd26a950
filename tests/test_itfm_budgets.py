"""Budgets (issue 10): periods with a configurable fiscal year, versions side by side, CSV round-trip, and the exact
status arithmetic (actual, EAC, variance, burn rate, crossing date), on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest

from app.itfm import budget_statuses, periods
from app.itfm.actuals import DailySeries, ScopeDims, daily_series
from app.itfm.budgets import (BudgetError, compute_status, create_budget, export_csv, get_budget, import_csv,
                              rates_from, statuses)
from app.itfm.models import BudgetAmount
from app.itfm.forecast import Forecast, forecast_series
from tests.itfm_fixtures import alpha_cost, days, ingest_rows, standard_rows

D = Decimal


# -- periods ---------------------------------------------------------------------------------------------------------
def test_fiscal_periods_with_a_configurable_first_month():
    assert periods.bounds("fiscal_year", "FY2027", 7) == (date(2026, 7, 1), date(2027, 7, 1))
    assert periods.bounds("fiscal_year", "FY2026", 1) == (date(2026, 1, 1), date(2027, 1, 1))
    assert periods.bounds("quarter", "FY2027-Q2", 7) == (date(2026, 10, 1), date(2027, 1, 1))
    assert periods.bounds("quarter", "2026-Q4", 1) == periods.bounds("quarter", "FY2026-Q4", 1)
    assert periods.containing("quarter", date(2026, 11, 15), 7) == (date(2026, 10, 1), date(2027, 1, 1))
    assert periods.containing("quarter", date(2027, 2, 1), 2) == (date(2027, 2, 1), date(2027, 5, 1))
    assert periods.containing("fiscal_year", date(2027, 1, 31), 2) == (date(2026, 2, 1), date(2027, 2, 1))
    for fy in range(1, 13):
        for kind in periods.KINDS:
            for d in days(date(2025, 1, 1), date(2027, 12, 31))[::17]:
                start, end = periods.containing(kind, d, fy)
                assert start <= d < end
                assert periods.bounds(kind, periods.label(kind, start, fy), fy) == (start, end)
    for kind, bad in (("month", "2026-13"), ("quarter", "2026-Q5"), ("fiscal_year", "2027"), ("week", "2026")):
        with pytest.raises(periods.PeriodError):
            periods.bounds(kind, bad, 1)
    with pytest.raises(periods.PeriodError):  # calendar-style quarters only for calendar fiscal years
        periods.bounds("quarter", "2026-Q1", 4)


# -- status arithmetic, exact ----------------------------------------------------------------------------------------
class _B:  # a budget-shaped object with amounts (no database needed for the arithmetic)
    def __init__(self, amounts, kind="month", fy=1):
        self.id, self.name, self.period, self.fiscal_year_start = "b1", "alpha-oct", kind, fy
        self.team, self.service, self.cost_center, self.provider, self.account = "alpha", None, None, None, None
        self.currency, self.metric, self.convert_currencies = "USD", "EffectiveCost", False
        self.amounts = [type("A", (), dict(version=v, period_start=s, period_end=e, amount=D(a)))
                        for v, s, e, a in amounts]


def _forecast(start: date, values: list[str]) -> Forecast:
    vals = [D(v) for v in values]
    return Forecast(ScopeDims(team="alpha"), "USD", start, vals, vals, vals, vals, vals, [D(0)] * len(vals),
                    "test", date(2026, 9, 1), start - timedelta(days=1))


def test_status_arithmetic_is_exact():
    oct1, nov1 = date(2026, 10, 1), date(2026, 11, 1)
    b = _B([("plan", oct1, nov1, "900"), ("reforecast-1", oct1, nov1, "1000.00")])
    series = DailySeries(ScopeDims(team="alpha"), "USD", oct1, [D("37.123")] * 10, [D("5.5")] + [D(0)] * 9)
    s = compute_status(b, oct1, nov1, series, _forecast(date(2026, 10, 11), ["40.00"] * 21), None,
                       date(2026, 10, 10))
    assert s.version == "reforecast-1" and s.budget == D("1000.00") and s.versions == {"plan": D(900),
                                                                                        "reforecast-1": D("1000.00")}
    assert s.actual == D("376.730") and s.days_elapsed == 10 and s.days_in_period == 31
    assert s.forecast_remaining == D("840.00") and s.eac == D("1216.730")
    assert s.variance == D("216.730") and s.variance_pct == D("21.67") and s.favorable is False
    assert s.burn_rate == D("37.67") and s.phased_budget == D("322.58") and s.variance_to_date == D("54.150")
    assert s.pct_of_budget_actual == D("37.67") and s.pct_of_budget_forecast == D("121.67")
    # 376.73 + 15 x 40 = 976.73 < 1000 after Oct 25; + 40 on Oct 26 = 1016.73
    assert s.projected_crossing_date == date(2026, 10, 26) and s.crossed is False
    assert s.actual_through == date(2026, 10, 10) and s.period == "2026-10"
    j = s.to_json()
    assert j["eac"] == "1216.73" and j["variance_pct"] == "21.67" and j["projected_crossing_date"] == "2026-10-26"

    # under budget: favorable, no crossing; a finished period needs no forecast
    under = compute_status(b, oct1, nov1, series, _forecast(date(2026, 10, 11), ["10"] * 21), None, date(2026, 10, 10))
    assert under.eac == D("586.730") and under.variance == D("-413.270") and under.favorable is True
    assert under.projected_crossing_date is None and under.variance_pct == D("-41.33")
    full = DailySeries(ScopeDims(team="alpha"), "USD", oct1, [D("40")] * 31, [D(0)] * 31)
    done = compute_status(b, oct1, nov1, full, None, None, date(2026, 10, 31))
    assert done.forecast_remaining == 0 and done.eac == done.actual == D(1240) and done.forecast_note is None
    assert done.crossed and done.projected_crossing_date == date(2026, 10, 25)  # 25 x 40 = 1000
    # no forecast possible: EAC unknown, the reason is kept, actual figures still exact
    none = compute_status(b, oct1, nov1, series, None, "only 10 days", date(2026, 10, 10))
    assert none.eac is None and none.variance is None and none.favorable is None and none.forecast_note == "only 10 days"
    assert none.actual == D("376.730")


# -- budgets on the warehouse ------------------------------------------------------------------------------------------
@pytest.fixture
def loaded(rt_any, tmp_path):
    rows = standard_rows()
    ingest_rows(rt_any, tmp_path / "focus", rows)
    return rt_any, rows


def _expected_alpha(d: date) -> Decimal:
    fee = D("180.00") if d.day == 1 else D(0)  # 60% of the 300.00 shared fee
    return alpha_cost(d) + fee


def test_budget_status_on_the_warehouse_is_exact_and_team_scoped(loaded):
    rt, _ = loaded
    with rt.sessions() as session:
        create_budget(session, {"name": "alpha-monthly", "team": "alpha", "currency": "USD"}, [
            {"version": "plan", "period": "2026-10", "amount": "1500"},
            {"version": "reforecast-1", "period": "2026-10", "amount": "1400.50"},
            {"version": "plan", "period": "2026-09", "amount": "1500"}])
        create_budget(session, {"name": "alpha-q", "team": "alpha", "currency": "USD", "period": "quarter",
                                "fiscal_year_start": 7}, [{"period": "FY2027-Q2", "amount": "5000"}])
        create_budget(session, {"name": "beta-storage", "team": "beta", "service": "Amazon S3", "currency": "USD"},
                      [{"period": "2026-10", "amount": "100"}])
        create_budget(session, {"name": "all-eur", "currency": "EUR"}, [{"period": "2026-10", "amount": "10"}])
    got = {s.name: s for s in budget_statuses(rt)}
    assert set(got) == {"alpha-monthly", "alpha-q", "beta-storage", "all-eur"}
    a = got["alpha-monthly"]
    oct_days = days(date(2026, 10, 1), date(2026, 10, 20))
    assert a.actual == sum(_expected_alpha(d) for d in oct_days)  # EUR line never counted in USD
    assert a.actual_through == date(2026, 10, 20) and a.days_elapsed == 20 and a.version == "reforecast-1"
    # the EAC's forecast part is the forecast of the same series, day by day
    with rt.warehouse.connect(read_only=True) as con:
        series = daily_series(con, [ScopeDims(team="alpha")], currency="USD")[(0, "USD")]
    assert series.end == date(2026, 10, 20) and series.calendar[(date(2026, 10, 1) - series.start).days] == D("180.00")
    f = forecast_series(series, 11)
    assert a.forecast_remaining == sum(f.point) and a.eac == a.actual + sum(f.point)
    assert a.variance == a.eac - D("1400.50") and a.favorable == (a.variance <= 0)
    # the daily forecast is in the right range: alpha costs 40-70 a day
    assert all(D(35) < v < D(80) for v in f.point)
    q = got["alpha-q"]
    assert (q.period, q.period_start, q.period_end) == ("FY2027-Q2", date(2026, 10, 1), date(2027, 1, 1))
    assert q.actual == a.actual and q.days_in_period == 92
    with rt.warehouse.connect(read_only=True) as con:
        f92 = forecast_series(series, 72)
    assert q.forecast_remaining == sum(f92.point)
    assert got["all-eur"].actual == D("2.00") * 20
    assert got["beta-storage"].actual == sum(D("20.5") + D("0.25") * (d.day % 3) for d in oct_days)
    # a team sees only its own budgets
    assert {s.name for s in budget_statuses(rt, team="beta")} == {"beta-storage"}
    assert budget_statuses(rt, team="gamma") == []
    # a past period: September, complete, no forecast needed
    with rt.sessions() as session:
        b = get_budget(session, "alpha-monthly")
        with rt.warehouse.connect(read_only=True) as con:
            (sep,) = statuses(con, [b], period="2026-09")
    assert sep.actual == sum(_expected_alpha(d) for d in days(date(2026, 9, 1), date(2026, 9, 30)))
    assert sep.eac == sep.actual and sep.forecast_remaining == 0
    # as_of in the past: actual to the day before, the rest forecast from the data up to then
    with rt.sessions() as session:
        b = get_budget(session, "alpha-monthly")
        with rt.warehouse.connect(read_only=True) as con:
            (early,) = statuses(con, [b], as_of=date(2026, 10, 6))
    assert early.actual == sum(_expected_alpha(d) for d in days(date(2026, 10, 1), date(2026, 10, 5)))
    assert early.days_elapsed == 5 and early.eac is not None


def test_fewer_than_14_days_give_no_forecast_and_say_why(rt, tmp_path):
    ingest_rows(rt, tmp_path / "f", [r for r in standard_rows(date(2026, 10, 10), date(2026, 10, 20))])
    with rt.sessions() as session:
        create_budget(session, {"name": "a", "team": "alpha", "currency": "USD"}, [{"period": "2026-10", "amount": "9"}])
    (s,) = budget_statuses(rt)
    assert s.eac is None and "only 11 days" in s.forecast_note and "at least 14" in s.forecast_note
    assert s.actual == sum(alpha_cost(d) for d in days(date(2026, 10, 10), date(2026, 10, 20)))
    assert s.crossed and s.projected_crossing_date == date(2026, 10, 10)


# -- CRUD and CSV ----------------------------------------------------------------------------------------------------
def test_csv_round_trip_and_errors_name_row_and_column(rt_any):
    text = ("budget,team,service,cost_center,provider,account,period_type,fiscal_year_start,currency,metric,version,"
            "period,amount\n"
            "alpha,alpha,,,,,month,1,USD,EffectiveCost,plan,2026-10,1000.10\n"
            "alpha,alpha,,,,,month,1,USD,EffectiveCost,reforecast-1,2026-10,1100\n"
            "alpha,alpha,,,,,month,1,USD,EffectiveCost,plan,2026-11,1000.123456789012345678\n"
            "fy,,,CC-1,AWS,222222222222,fiscal_year,7,EUR,BilledCost,plan,FY2027,120000\n"
            "q,beta,,,,,quarter,4,USD,EffectiveCost,plan,FY2027-Q1,3000\n")
    with rt_any.sessions() as session:
        assert import_csv(session, text) == {"budgets_created": 3, "budgets_updated": 0, "amounts": 5}
        out = export_csv(session)
        expected = text.replace("1100\n", "1100.00\n").replace("120000\n", "120000.00\n").replace(
            "3000\n", "3000.00\n")  # amounts come back as exact decimals with cents
        lines = expected.splitlines()  # and the optional convert_currencies column (false: not in the file)
        assert out == "\n".join([lines[0] + ",convert_currencies"] + [x + ",false" for x in lines[1:]]) + "\n"
        assert import_csv(session, out)["budgets_updated"] == 3 and export_csv(session) == out  # idempotent
        fy = get_budget(session, "fy")
        assert (fy.amounts[0].period_start, fy.amounts[0].period_end) == (date(2026, 7, 1), date(2027, 7, 1))
        assert fy.amounts[0].amount == D("120000")
        assert get_budget(session, "alpha").amounts[-1].amount == D("1000.123456789012345678")
        assert export_csv(session, team="beta").count("\n") == 2
        # replace: amounts of a named budget missing from the file are removed
        import_csv(session, text.splitlines()[0] + "\n" + text.splitlines()[1] + "\n", replace=True)
        assert [a.version for a in get_budget(session, "alpha").amounts] == ["plan"]

        bad = ("budget,team,period_type,currency,version,period,amount\n"
               "x,alpha,month,USD,plan,2026-13,1\n"
               "x,alpha,month,usd,draft,2026-10,-5\n"
               "y,alpha,week,US,plan,2026-10,abc\n"
               "x,beta,month,USD,plan,2026-11,1\n")
        with pytest.raises(BudgetError) as err:
            import_csv(session, bad)
        names = [p["parameter"] for p in err.value.problems]
        assert names == ["row 1, period", "row 2, version", "row 2, amount", "row 3, period_type", "row 3, currency",
                         "row 4, budget"], names
        with pytest.raises(BudgetError):
            import_csv(session, "name,amount\nx,1\n")
        for junk in ("\r0", "budget,currency\n\"x", "\x00"):  # schemathesis found "\r0" (a csv.Error: 500)
            with pytest.raises(BudgetError):
                import_csv(session, junk)
        assert import_csv(session, "budget,currency,period,amount\n")["amounts"] == 0
        assert {b for b in ("x", "y")} & {r.split(",")[0] for r in export_csv(session).splitlines()} == set()


def test_create_validates_and_names_the_parameter(rt_any):
    with rt_any.sessions() as session:
        create_budget(session, {"name": "a", "currency": "USD"}, [{"period": "2026-10", "amount": "1"}])
        with pytest.raises(BudgetError) as err:
            create_budget(session, {"name": "a", "currency": "USD"})
        assert err.value.problems[0]["parameter"] == "name"
        with pytest.raises(BudgetError) as err:
            create_budget(session, {"name": "b", "currency": "dollars", "metric": "ListCost", "period": "week",
                                    "fiscal_year_start": 13}, [{"period": "2026-10", "amount": "NaN"}])
        assert [p["parameter"] for p in err.value.problems] == ["period", "fiscal_year_start", "currency", "metric",
                                                                 "amounts[0].period", "amounts[0].amount"]


# -- budgets in one currency ------------------------------------------------------------------------------------------
def _with_eur(usd: DailySeries, rates: dict[str, Decimal], first: date | None = None) -> DailySeries:
    """alpha's USD series plus its EUR line (2.00 a day, usage) at the month's rate, computed here by hand; from
    `first` on (default: the series' start)."""
    first = first or usd.start
    n0 = (first - usd.start).days
    usage = [u + D("2.00") * rates[usd.day(i).strftime("%Y-%m")] for i, u in enumerate(usd.usage)][n0:]
    return DailySeries(usd.scope, "USD", first, usage, usd.calendar[n0:])


def test_a_budget_converting_currencies_counts_them_at_finance_rates_and_names_what_it_leaves_out(loaded):
    from app.currency import check_rate, delete_rate, set_rates

    rt, _ = loaded
    rates = {"2026-07": D("1.10"), "2026-08": D("1.0925"), "2026-09": D("1.0800"), "2026-10": D("1.085")}
    with rt.sessions() as session:
        set_rates(session, [check_rate(m, "EUR", "USD", str(r), "ECB") for m, r in rates.items()])
        create_budget(session, {"name": "alpha-all", "team": "alpha", "currency": "USD", "convert_currencies": True},
                      [{"period": "2026-10", "amount": "1500"}])
        create_budget(session, {"name": "alpha-usd", "team": "alpha", "currency": "USD"},
                      [{"period": "2026-10", "amount": "1500"}])
    oct_days = days(date(2026, 10, 1), date(2026, 10, 20))
    usd_only = sum(_expected_alpha(d) for d in oct_days)
    got = {s.name: s for s in budget_statuses(rt)}
    conv, plain = got["alpha-all"], got["alpha-usd"]
    assert conv.convert_currencies and not plain.convert_currencies
    assert conv.actual == usd_only + 20 * D("2.00") * D("1.085")  # 43.40 USD for the EUR line's 40.00
    assert conv.conversion == [{"currency": "EUR", "month": "2026-10", "rate": D("1.085"), "source": "ECB"}]
    assert conv.not_counted == []
    # the forecast learns from the converted series, every month at its own rate
    with rt.warehouse.connect(read_only=True) as con:
        usd = daily_series(con, [ScopeDims(team="alpha")], currency="USD")[(0, "USD")]
    assert conv.forecast_remaining == sum(forecast_series(_with_eur(usd, rates), 11).point)
    assert conv.eac == conv.actual + conv.forecast_remaining
    # a budget that does not convert counts USD only and says what it leaves out
    assert plain.actual == usd_only and plain.conversion == []
    assert [{k: v for k, v in n.items() if k != "reason"} for n in plain.not_counted] == [
        {"currency": "EUR", "amount": D("40.00"), "months": ["2026-10"]}]
    assert "billed in EUR" in plain.not_counted[0]["reason"] and "convert_currencies" in plain.not_counted[0]["reason"]
    js = conv.to_json()
    assert js["conversion"] == [{"currency": "EUR", "month": "2026-10", "rate": "1.085", "source": "ECB"}]
    assert plain.to_json()["not_counted"][0]["amount"] == "40.00"

    # no rate for September (history only): October is complete, the forecast learns from October 1st on
    with rt.sessions() as session:
        assert delete_rate(session, "2026-09", "EUR", "USD")
        session.commit()
    (conv,) = [s for s in budget_statuses(rt) if s.name == "alpha-all"]
    assert conv.actual == usd_only + D("43.40") and conv.not_counted == []
    short = sum(forecast_series(_with_eur(usd, rates, date(2026, 10, 1)), 11).point)
    assert conv.forecast_remaining == short != sum(forecast_series(_with_eur(usd, rates), 11).point)

    # no rate for October: its EUR costs are not counted, named with the month, and nothing is forecast
    with rt.sessions() as session:
        assert delete_rate(session, "2026-10", "EUR", "USD")
        session.commit()
    (conv,) = [s for s in budget_statuses(rt) if s.name == "alpha-all"]
    assert conv.actual == usd_only and conv.conversion == []
    (left,) = conv.not_counted
    assert (left["currency"], left["amount"], left["months"]) == ("EUR", D("40.00"), ["2026-10"])
    assert left["reason"] == "no exchange rate from EUR into USD for 2026-10"
    assert conv.eac is None and "without an exchange rate" in conv.forecast_note
    # a past month at its own rate (August: complete, no forecast), through the statuses() entry point
    with rt.sessions() as session:
        b = get_budget(session, "alpha-all")
        b.amounts.append(BudgetAmount(version="plan", period_start=date(2026, 8, 1), period_end=date(2026, 9, 1),
                                      amount=D("1500")))
        session.commit()
        with rt.warehouse.connect(read_only=True) as con:
            (aug,) = statuses(con, [b], period="2026-08", rates=rates_from(session))
            (no_rates,) = statuses(con, [b], period="2026-08")  # no rate loader: nothing converts
    aug_days = days(date(2026, 8, 1), date(2026, 8, 31))
    assert aug.actual == sum(_expected_alpha(d) for d in aug_days) + 31 * D("2.00") * D("1.0925")
    assert aug.conversion == [{"currency": "EUR", "month": "2026-08", "rate": D("1.0925"), "source": "ECB"}]
    assert aug.eac == aug.actual and aug.forecast_remaining == 0
    assert no_rates.actual == sum(_expected_alpha(d) for d in aug_days)
    assert no_rates.not_counted[0]["amount"] == D("62.00")


def test_convert_currencies_in_the_api_and_csv(loaded):
    from app.currency import check_rate, set_rates

    rt, _ = loaded
    with rt.sessions() as session:
        set_rates(session, [check_rate("2026-10", "EUR", "USD", "1.085")])
        text = ("budget,team,currency,period,amount,convert_currencies\n"
                "alpha-all,alpha,USD,2026-10,1500,true\n")
        assert import_csv(session, text)["budgets_created"] == 1
        assert get_budget(session, "alpha-all").convert_currencies is True
        # a file without the column leaves the setting as it is; a bad value names row and column
        import_csv(session, "budget,team,currency,period,amount\nalpha-all,alpha,USD,2026-10,1600\n")
        assert get_budget(session, "alpha-all").convert_currencies is True
        assert export_csv(session).splitlines()[1].endswith(",1600.00,true")
        with pytest.raises(BudgetError) as err:
            import_csv(session, text.replace(",true", ",maybe"))
        assert [p["parameter"] for p in err.value.problems] == ["row 1, convert_currencies"]
        import_csv(session, text.replace(",true", ",false"))
        assert get_budget(session, "alpha-all").convert_currencies is False


def test_convert_currencies_through_the_api(loaded):
    from tests.helpers import api_client

    rt, _ = loaded
    fin = api_client(rt, "finance")
    with fin:
        assert fin.put("/v1/fx-rates", json={"rates": [
            {"month": "2026-10", "currency": "EUR", "to_currency": "USD", "rate": "1.085", "source": "ECB"}]}
        ).status_code == 200
        made = fin.post("/v1/budgets", json={"name": "alpha-all", "team": "alpha", "currency": "USD",
                                             "convert_currencies": True,
                                             "amounts": [{"period": "2026-10", "amount": "1500"}]})
        assert made.status_code == 201 and made.json()["convert_currencies"] is True
        fin.post("/v1/budgets", json={"name": "alpha-usd", "team": "alpha", "currency": "USD",
                                      "amounts": [{"period": "2026-10", "amount": "1500"}]})
        st = {s["name"]: s for s in fin.get("/v1/budgets/status").json()["statuses"]}
        usd_only = sum(_expected_alpha(d) for d in days(date(2026, 10, 1), date(2026, 10, 20)))
        assert D(st["alpha-all"]["actual"]) == usd_only + D("43.40")
        assert st["alpha-all"]["conversion"] == [
            {"currency": "EUR", "month": "2026-10", "rate": "1.085", "source": "ECB"}]
        assert D(st["alpha-usd"]["actual"]) == usd_only
        assert st["alpha-usd"]["not_counted"][0]["currency"] == "EUR"
        one = fin.get("/v1/budgets/alpha-all/status").json()["statuses"][0]
        assert one["conversion"] == st["alpha-all"]["conversion"]
        rows = {r["name"]: r for r in csv.DictReader(io.StringIO(
            fin.get("/v1/budgets/status", params={"format": "csv"}).text))}
        assert rows["alpha-all"]["convert_currencies"] == "true"
        assert rows["alpha-all"]["conversion"] == "EUR 2026-10 x 1.085 (ECB)"
        assert rows["alpha-usd"]["not_counted"].startswith("EUR 40.00 (billed in EUR;")
