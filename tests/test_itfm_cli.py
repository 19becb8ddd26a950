"""`cloudtally budgets|forecast|finance` (issue 10) on fixture data, and the demo's sample budgets on the demo data."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from app import demo
from app.itfm import budget_statuses
from app.itfm.budgets import import_csv
from tests.helpers import cli
from tests.itfm_fixtures import ingest_rows, standard_rows


def test_cli_budgets_forecast_finance(rt, tmp_path):
    ingest_rows(rt, tmp_path / "focus", standard_rows())
    env = {"CLOUDTALLY_DATA_DIR": str(rt.settings.data_dir)}
    f = tmp_path / "b.csv"
    f.write_text("budget,team,currency,period,amount\nalpha,alpha,USD,2026-10,1500\n")
    r = cli("budgets", "import", str(f), env=env)
    assert r.exit_code == 0 and "1 budget(s) created" in r.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("budget,team,currency,period,amount\nalpha,alpha,USD,2026-10,lots\n")
    r = cli("budgets", "import", str(bad), env=env)
    assert r.exit_code == 1 and "row 1, amount" in r.stderr
    r = cli("budgets", "status", "--output", "json", env=env)
    (s,) = json.loads(r.stdout)
    assert s["name"] == "alpha" and s["period"] == "2026-10" and s["actual_through"] == "2026-10-20"
    assert cli("budgets", "export", env=env).stdout.splitlines()[1].startswith("alpha,alpha,,,,,month,1,USD")
    r = cli("forecast", "--team", "alpha", "--currency", "USD", "--horizon", "30", "--output", "json", env=env)
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and len(doc["forecasts"][0]["days"]) == 30
    r = cli("forecast", "--team", "nobody", env=env)
    assert r.exit_code == 1 and "14 days" in r.stderr
    r = cli("finance", "chargeback", "--month", "2026-10", "--format", "csv", env=env)
    assert r.exit_code == 0 and "shared-fees" in r.stdout
    assert cli("finance", "chargeback", "--month", "2026-13", env=env).exit_code == 2
    r = cli("finance", "chargeback", "--month", "2026-10", "--currency", "GBP", env=env)
    assert r.exit_code == 1 and "no exchange rate into GBP" in r.stderr and "USD for 2026-10" in r.stderr
    assert cli("fx", "set", "2026-10", "EUR", "USD", "1.085", env=env).exit_code == 0
    r = cli("finance", "chargeback", "--month", "2026-10", "--currency", "USD", env=env)
    assert r.exit_code == 0 and "converted into USD: EUR 2026-10 x 1.085" in r.stdout
    r = cli("finance", "export", "--month", "2026-10", env=env)
    assert r.stdout.splitlines()[0].startswith("period,cost_center,team,service,tower") and ",budget" in r.stdout
    r = cli("forecast", "backtest", "--teams", "--output", "json", env=env)
    assert r.exit_code == 0 and {"team=alpha", "team=beta"} <= {b["scope_key"] for b in json.loads(r.stdout)}
    r = cli("forecast", "accuracy", "--output", "json", env=env)
    assert {"team=alpha", "team=beta"} <= {b["scope_key"] for b in json.loads(r.stdout)}


@pytest.mark.slow
def test_demo_budgets_work_on_the_demo_data(tmp_path):
    from tests.optimizer_fixtures import load_demo

    rt = load_demo(tmp_path)
    try:
        with rt.sessions() as session:
            import_csv(session, demo.BUDGETS_FILE.read_text())
        got = {s.name: s for s in budget_statuses(rt)}
        assert set(got) == {"payments-monthly", "data-monthly", "platform-quarterly", "mobile-aws", "search-eur",
                            "shared-fy"}
        # as of 1 November: October is complete (EAC = actual); the quarter and the fiscal year are forecast
        assert got["payments-monthly"].period == "2026-10" and got["payments-monthly"].eac == got["payments-monthly"].actual
        q = got["platform-quarterly"]
        assert q.period == "FY2026-Q4" and q.actual_through == date(2026, 10, 31) and q.forecast_remaining > 0
        assert q.eac == q.actual + q.forecast_remaining and q.forecast_note is None
        assert got["shared-fy"].period == "FY2027" and got["shared-fy"].forecast_remaining > 0
        assert got["search-eur"].currency == "EUR" and got["search-eur"].actual > Decimal(1000)
    finally:
        rt.close()
