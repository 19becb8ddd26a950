"""Commitments (issue 12, items 1-2): utilization/coverage identities on the demo, the newsvendor quantile against
brute force, the stale-data guard, and purchase recommendations that reconcile to the bill."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from optimizers import commitments
from optimizers.commitments import Plan, optimal_usage_level, recommend_level, savings
from tests.optimizer_fixtures import demo_rt, ingest_rows, line  # noqa: F401 - fixtures

E18 = Decimal("1e-18")


# -- the math ---------------------------------------------------------------------------------------------------------
def brute_force(u: np.ndarray, d: float, grid: int = 20001) -> float:
    """max S(x) over every breakpoint and a fine grid from 0 to max(u)."""
    candidates = np.concatenate([np.unique(u), np.linspace(0, float(u.max()), grid)])
    return max(savings(u, float(x), d) for x in candidates)


@pytest.mark.parametrize("d", [0.05, 0.2, 0.28, 0.4, 0.5, 0.66, 0.9])
@pytest.mark.parametrize("seed", range(4))
def test_quantile_matches_brute_force(d, seed):
    rng = np.random.default_rng(seed)
    hours = 24 * 30
    t = np.arange(hours)
    u = (100 + 40 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 15, hours)).clip(0)
    u[rng.random(hours) < 0.02] *= 3  # spikes
    u[(t // 24) % 7 >= 5] *= 0.6  # weekends
    x = optimal_usage_level(u, d)
    best = brute_force(u, d)
    assert savings(u, x, d) >= best * (1 - 0.001)
    # exact: no breakpoint does better (S is piecewise linear with breakpoints at the u_h)
    assert savings(u, x, d) >= max(savings(u, float(v), d) for v in u) - 1e-6


def test_quantile_edges():
    u = np.array([0.0, 10, 10, 10, 20])
    # d = 0.5: ceil(2.5) = 3rd smallest = 10; S(10) = 40 - 5*0.5*10 = 15, S(20) = 50 - 50 = 0, S(0) = 0
    assert optimal_usage_level(u, 0.5) == 10
    assert savings(u, 10, 0.5) == 15
    # d = 0.2: N d = 1 exactly: S is flat between u_(1) = 0 and u_(2) = 10; the lower end is taken
    assert optimal_usage_level(u, 0.2) == 0
    assert savings(u, 0, 0.2) == savings(u, 10, 0.2) == 0
    assert optimal_usage_level(np.array([]), 0.3) == 0
    plan = Plan.at(u, 10, 0.5)
    assert plan.commitment == 5 and plan.utilization == 40 / 50 and plan.coverage == 40 / 50


def test_stale_data_guard_takes_the_lower_optimum():
    u = np.concatenate([np.full(24 * 27, 100.0), np.full(72, 70.0)])  # a 30% drop in the last 3 days
    x, long_x, short_x = recommend_level(u, 0.3)
    assert long_x == 100 and short_x == 70 and x == 70
    up = np.concatenate([np.full(24 * 27, 70.0), np.full(72, 100.0)])
    assert recommend_level(up, 0.3)[0] == 70  # a recent rise is not committed to either


# -- utilization and coverage on the demo -------------------------------------------------------------------------------
def _rows(rt, sql, params=()):
    with rt.warehouse.connect(read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def _prorate(amount: Decimal, start: datetime, end: datetime, lo: datetime, hi: datetime) -> Decimal:
    ov = max(0, int((min(end, hi) - max(start, lo)).total_seconds()))
    length = int((end - start).total_seconds())
    return (amount * ov / length).quantize(E18, ROUND_HALF_UP)


def test_demo_utilization_identities(demo_rt):
    with demo_rt.warehouse.connect(read_only=True) as con:
        result = commitments.utilization(con, "2026-08", "2026-11")
    rows = {(c["commitment_id"], c["month"]): c for c in result["commitments"]}
    ids = {c for c, _ in rows}
    assert len(ids) == 4  # the SP, the RDS RI, the Azure reservation, the GCP CUD
    purchases = _rows(demo_rt, 'SELECT "CommitmentDiscountId", "ChargePeriodStart", "ChargePeriodEnd", "BilledCost" '
                               "FROM cost_and_usage WHERE \"ChargeCategory\" = 'Purchase' "
                               'AND "CommitmentDiscountId" IS NOT NULL')
    usage = _rows(demo_rt, 'SELECT "CommitmentDiscountId", strftime("ChargePeriodStart", \'%Y-%m\'), '
                           '"CommitmentDiscountStatus", "EffectiveCost" FROM cost_and_usage '
                           "WHERE \"ChargeCategory\" = 'Usage' AND \"CommitmentDiscountId\" IS NOT NULL")
    checked = 0
    for (cid, month), c in rows.items():
        lo = datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)
        hi = (lo + timedelta(days=32)).replace(day=1)
        used = sum((e for i, m, s, e in usage if i == cid and m == month and s == "Used"), Decimal(0))
        unused = sum((e for i, m, s, e in usage if i == cid and m == month and s == "Unused"), Decimal(0))
        fees = [_prorate(b, s, e, lo, hi) for i, s, e, b in purchases if i == cid and s < hi and e > lo]
        if c["provider"] == "Google Cloud":
            # the export's CUD fee is billed daily under the commitment's ResourceId, unamortized, and covered usage
            # is netted to 0: utilization = covered core hours / the fee's hours (1728 a day)
            fee_rows = _rows(demo_rt, 'SELECT sum("BilledCost"), sum("PricingQuantity") FROM cost_and_usage '
                                      "WHERE \"ChargeCategory\" = 'Purchase' AND \"ResourceId\" = ? "
                                      "AND strftime(\"ChargePeriodStart\", '%Y-%m') = ?", [cid, month])[0]
            hours = _rows(demo_rt, 'SELECT sum("PricingQuantity") FROM cost_and_usage WHERE "CommitmentDiscountId" = ? '
                                   "AND strftime(\"ChargePeriodStart\", '%Y-%m') = ?", [cid, month])[0][0]
            assert not fees and c["amortized_fee"] == fee_rows[0] and c["identity_gap"] is None
            assert Decimal(c["utilization"]) == (hours / fee_rows[1]).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            assert c["used_cost"] + c["unused_cost"] == fee_rows[0] and c["note"].startswith("derived")
            assert used == unused == 0  # in the bill itself
            continue
        assert c["used_cost"] == used and c["unused_cost"] == unused
        fee = sum(fees, Decimal(0))
        assert c["amortized_fee"] == fee
        # the identity: sum of EffectiveCost of covered usage + unused = the amortized purchase, to the last decimal
        assert used + unused == fee and c["identity_gap"] == 0
        assert Decimal(c["utilization"]) == (used / (used + unused)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        checked += 1
    assert checked == 9  # three commitments x three months
    # the all-upfront RI: its whole term's payment, spread by time, gives each month its days' share
    ri = next(c for c in result["commitments"] if c["type"] == "Reserved Instance" and c["month"] == "2026-09")
    assert ri["amortized_fee"] == Decimal("5256") * 30 / 365


def test_demo_coverage_and_savings_rate(demo_rt):
    with demo_rt.warehouse.connect(read_only=True) as con:
        result = commitments.utilization(con, "2026-10", None, provider="Microsoft")
    assert {p["provider"] for p in result["providers"]} == {"Microsoft"} and result["end"] == "2026-11"
    usd = next(p for p in result["providers"] if p["currency"] == "USD")
    lines = _rows(demo_rt, 'SELECT "CommitmentDiscountStatus", "ContractedCost", "ListCost", "EffectiveCost" '
                           "FROM cost_and_usage WHERE \"ProviderName\" = 'Microsoft' AND \"BillingCurrency\" = 'USD' "
                           "AND \"ChargeCategory\" = 'Usage' AND \"ServiceSubcategory\" = 'Virtual Machines' "
                           "AND \"PricingUnit\" = 'Hours' AND \"PricingCategory\" <> 'Dynamic' "
                           "AND \"ChargePeriodStart\" >= '2026-10-01' AND \"ChargePeriodStart\" < '2026-11-01'")
    covered = sum((c for s, c, _, _ in lines if s == "Used"), Decimal(0))
    eligible = sum((c for s, c, _, _ in lines if s != "Unused"), Decimal(0))
    assert usd["covered_contracted_cost"] == covered and usd["eligible_contracted_cost"] == eligible
    assert Decimal(usd["coverage"]) == (covered / eligible).quantize(Decimal("0.0001"), ROUND_HALF_UP)
    fee = _rows(demo_rt, "SELECT sum(\"EffectiveCost\") FROM cost_and_usage WHERE \"ProviderName\" = 'Microsoft' "
                         "AND \"CommitmentDiscountId\" IS NOT NULL AND \"ChargePeriodStart\" >= '2026-10-01' "
                         "AND \"ChargePeriodStart\" < '2026-11-01' AND \"BillingCurrency\" = 'USD'")[0][0]
    assert usd["commitment_cost"] == fee == Decimal("630.6888")  # 168 h x 0.1211 x 31 days
    eur = next(p for p in result["providers"] if p["currency"] == "EUR")
    assert eur["coverage"] == "0.0000" and eur["commitment_cost"] == 0


# -- recommendations ----------------------------------------------------------------------------------------------------
def test_demo_purchase_recommendations_reconcile(demo_rt):
    with demo_rt.warehouse.connect(read_only=True) as con:
        recs = commitments.find(con, {})
    kinds = {r.evidence["kind"] for r in recs}
    assert kinds == {"aws-rds-reserved-instance", "azure-vm-reservation", "gcp-resource-cud"}
    for r in recs:
        ev = r.evidence
        assert ev["granularity"] == "daily" and ev["lookback_days"] == 30 and ev["window"]["hours"] == 720
        # the eligible on-demand spend is the bill's, to the last decimal
        region = "AND \"RegionId\" = ?" if r.region else ""
        kind = next(k for k in commitments.load_kinds() if k["name"] == ev["kind"])
        tests = " AND ".join(f'"{c}" IN ({", ".join(repr(v) for v in vals)})' for c, vals in kind["eligible"].items())
        exact = _rows(demo_rt, f"SELECT sum(\"EffectiveCost\") FROM cost_and_usage WHERE \"ProviderName\" = ? "
                               f"AND \"BillingAccountId\" = ? AND \"BillingCurrency\" = ? AND {tests} "
                               "AND \"ChargeCategory\" = 'Usage' AND \"PricingCategory\" = 'Standard' "
                               f"AND \"ChargePeriodStart\" >= '2026-10-02' {region}",
                      [r.provider, r.billing_account_id, r.currency] + ([r.region] if r.region else []))[0][0]
        assert Decimal(ev["eligible_on_demand_cost"]) == exact
        # the savings curve peaks at the recommendation (S is concave, the recommendation is its optimum or lower)
        curve = {p["change_percent"]: Decimal(p["monthly_savings"]) for p in ev["savings_curve"]}
        assert curve[0] == r.monthly_savings > 0
        assert all(curve[p] <= curve[0] + Decimal("0.01") for p in (10, 20, 30)) or ev["guard"].startswith("short")
        assert Decimal(ev["hourly_commitment"]) > 0 and 0 < ev["expected_utilization"] <= 1
        assert set(ev["lookbacks"]) == {"7", "30", "60"}
    # No second Compute Savings Plan: the demo's plan covers the steady EC2 usage; what stays on demand runs on
    # weekdays only (71.4% of hours), and at the observed 28% discount a dollar must be used in over 72% of hours
    reservation = next(r for r in recs if r.evidence["kind"] == "azure-vm-reservation" and r.region == "eastus")
    # the demo reservation's 0.1211 per hour against 0.17664 contracted (0.192 list less 8%): 31.44%, observed
    assert reservation.evidence["discount_source"] == "observed" and reservation.evidence["discount"] == "0.3144"
    cud = next(r for r in recs if r.evidence["kind"] == "gcp-resource-cud")
    assert cud.evidence["discount_source"] == "rate table"  # GCP's netted credits show no usable discount
    ri = next(r for r in recs if r.evidence["kind"] == "aws-rds-reserved-instance")
    assert ri.evidence["payment_option"] == "All Upfront" and Decimal(ri.evidence["break_even_months"]) > 0


def test_recommendation_from_hourly_lines_and_the_guard(rt, tmp_path):
    """Hourly lines: 60 days at 10/h on weekdays' business hours and 4/h otherwise, then the last 3 days at 2/h."""
    start = datetime(2026, 5, 1, tzinfo=timezone.utc)
    rows = []
    for h in range(60 * 24):
        t = start + timedelta(hours=h)
        level = Decimal(2) if h >= 57 * 24 else (Decimal(10) if 8 <= t.hour < 20 and t.weekday() < 5 else Decimal(4))
        rows.append(line(t.date(), start=t, hours=1, cost=level, ResourceId="i-1"))
    ingest_rows(rt, tmp_path / "files", rows)
    with rt.warehouse.connect(read_only=True) as con:
        [rec] = commitments.find(con, {"lookback_days": 30})
    ev = rec.evidence
    assert ev["granularity"] == "hourly" and ev["discount_source"] == "rate table" and ev["discount"] == "0.2800"
    assert ev["guard"] == "short (3-day) lookback"
    assert Decimal(ev["hourly_commitment"]) == Decimal("1.440")  # (1 - 0.28) x 2
    assert Decimal(ev["long_lookback_level"]) == 4
    assert Decimal(ev["eligible_on_demand_cost"]) == sum((r["EffectiveCost"] for r in rows[-720:]), Decimal(0))
