"""Commitment purchase recommendations: what to buy next, on top of the commitments already bought (their
utilization and coverage are optimizers/commitment_utilization.py).

Purchase recommendations (`find`): the optimal hourly commitment is a newsvendor quantile.

Let u_h >= 0 be the eligible usage that is still on demand in hour h = 1..N, in money at the price paid now. A
commitment of c per hour buys usage at (1 - d) of that price (d: the discount; for upfront options the effective
hourly rate including the amortized upfront), so it absorbs up to x = c / (1 - d) of on-demand-equivalent usage
per hour and costs c every hour, used or not. The hour's cost is c + max(0, u_h - x), its saving against all on
demand

    s_h(x) = u_h - c - max(0, u_h - x) = min(u_h, x) - (1 - d) x,    S(x) = sum_h min(u_h, x) - N (1 - d) x.

S is concave and piecewise linear with breakpoints at the u_h. Its right derivative is
S'(x+) = #{h: u_h > x} - N (1 - d): raising x by a dollar gains a dollar in every hour whose usage exceeds x and
pays 1 - d in every hour. S rises while more than N (1 - d) hours exceed x, i.e. while the empirical CDF
F(x) = #{h: u_h <= x} / N is below d, and falls after. With u_(1) <= ... <= u_(N) sorted and k = ceil(N d):
#{u_h > u_(k)} <= N - k <= N (1 - d), so S stops rising at u_(k), and for x < u_(k) fewer than k hours have
u_h <= x, so more than N - k >= N (1 - d) exceed it (strictly more than N(1-d) unless N d is an integer, where
S is flat between u_(k) and u_(k+1) and u_(k) is still optimal). Hence

    x* = u_(ceil(N d)),  the d-quantile of hourly eligible usage;   c* = (1 - d) x*.

It is the newsvendor's critical fractile: a dollar of usage left uncovered costs the missed discount d, a dollar
of commitment left unused wastes 1 - d, so cover up to the level present in a share 1 - d of hours (the ratio
d / (d + (1 - d)) = d). tests/test_commitments.py checks x* against a brute-force search (every breakpoint and a
fine grid) to within 0.1%.

Guard against stale data (Azure's rule): x* is computed on the long lookback (7, 30 or 60 days; default 30) and on
the last 3 days, and the lower of the two is recommended, so a recent drop in usage is not committed to.

Hourly data: the series is hourly where the bill is hourly. Where the bill is daily (a line's charge period is a
day, as in the demo), each day's spend is spread evenly over its 24 hours: intraday peaks are invisible and the
quantile is one of daily averages (the recommendation says so in its assumptions).

Buying in tranches (a laddered commitment). Past usage cannot show a drop that comes after the purchase: bought
at the optimum x*, a commitment loses about half the hindsight-optimal savings if usage then falls 30% (backtest in
bench/commitment_eval.py). So the recommendation is a tranche, not the whole optimum: the commitment that is
optimal under a stated downside scenario, usage falling by a share delta (default 30%) right after the purchase.
The quantile is homogeneous, q_d((1 - delta) u) = (1 - delta) q_d(u), so that tranche is x_t = (1 - delta) x*
exactly, and its saving is at least (1 - delta) S(x*) (S is concave with S(0) = 0). The recommender runs again
every review period (default 7 days) on the usage still on demand, which now excludes what the tranche covers: if
usage held, the next tranche is (1 - delta) of the remaining gap, and after k reviews the commitments absorb
(1 - delta^k) x* (70%, 91%, 97.3%, 99.2% ...); if it fell, the 3-day guard sees the lower residual and little or
nothing more is bought. Each recommendation is the tranche of one review period (its ledger key names the period),
so a tranche bought is judged `acted_on` at the next review and the next one is a new recommendation.
delta = 0 recommends the whole optimum at once.

Kinds (rates.yaml): a line counts for every kind whose eligibility it meets. A kind may be bound to a region and an
instance family (EC2 Instance Savings Plans, size-flexible reserved instances: the family of SkuPriceDetails'
InstanceType or of the type the description names). Size-flexible reserved instances (`normalize`) count usage in
normalized units (instance hours x the size's factor) priced at the on-demand unit price the bill shows, and round
the tranche down to whole instances. Kinds that `compete` for the same usage (Compute vs EC2 Instance Savings
Plans vs EC2 RIs; Azure reservations vs the savings plan; GCP resource-based vs flexible CUDs) are compared per
account and currency by the total savings of their recommendations; the best kind is recommended and the others
are listed as alternatives.

Existing commitments: only usage still on demand (PricingCategory Standard) is counted, so the recommendation is
for an additional commitment on top of what already covers usage, as AWS and Azure do. Spot (Dynamic) is never
eligible. Discounts: observed in the bill where a commitment of the same kind covered usage in the lookback
(d = 1 - EffectiveCost / ContractedCost of the covered usage: against ContractedCost, so negotiated discounts are
not counted twice), else the rate table (rates.yaml, editable).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import numpy as np

from app.allocation.sql import lit
from app.warehouse import COST_TABLE
from optimizers import HOURS_PER_MONTH, Recommendation, jsonable, money, window_floor
from optimizers.commitment_kinds import (INSTANCE_TYPE, ObservedDiscounts, instance_family, kind_list, load_kinds,
                                         normalization_factor, option_discounts, term_years)
from optimizers.commitment_utilization import RATIO

LOOKBACKS = (7, 30, 60)  # days
SHORT_LOOKBACK_HOURS = 72
DEFAULT_LOOKBACK = 30
CURVE = (-30, -20, -10, 0, 10, 20, 30)  # % of the optimal commitment
DOWNSIDE = Decimal("0.30")  # the stated downside a tranche is sized for: usage falling 30% right after it is bought
REVIEW_DAYS = 7  # the recommender re-evaluates (and recommends the next tranche) every this many days
PLAN_TARGET = Decimal("0.99")  # the projected ladder is listed until it absorbs this share of the optimum
PLAN_MAX_STEPS = 12


# -- the newsvendor ---------------------------------------------------------------------------------------------------
# The functions below take a series of float64 (the backtests in bench/commitment_eval.py) or of Decimal (an object
# array: `find` builds the bill's series in exact decimals, so the money it reports never passes through binary
# floating point); scalars are brought to the series' type by `_like`.
Number = float | Decimal


def _like(u: np.ndarray, v) -> Number:
    """v in the number type of the series u: Decimal for an object array (floats through their shortest text)."""
    if u.dtype == object:
        return v if isinstance(v, Decimal) else Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    return float(v)


def optimal_usage_level(u: np.ndarray, d: Number) -> Number:
    """x* = u_(ceil(N d)): the d-quantile of hourly usage (module docstring), the on-demand-equivalent level the
    optimal commitment absorbs per hour. 0 for no data."""
    n = len(u)
    if n == 0 or d <= 0:
        return _like(u, 0)
    k = max(1, math.ceil(n * Decimal(repr(d) if isinstance(d, float) else d) - Decimal("1e-9")))
    return _like(u, np.partition(u, k - 1)[k - 1])


def savings(u: np.ndarray, x: Number, d: Number) -> Number:
    """S(x) = sum_h min(u_h, x) - N (1 - d) x: money saved over the series by absorbing x per hour."""
    x, d = _like(u, x), _like(u, d)
    return _like(u, np.minimum(u, x).sum()) - len(u) * (1 - d) * x


@dataclass
class Plan:
    level: Number  # x: on-demand-equivalent usage absorbed per hour
    commitment: Number  # c = (1 - d) x, per hour
    savings: Number  # over the series
    utilization: Number | None
    coverage: Number | None

    @classmethod
    def at(cls, u: np.ndarray, x: Number, d: Number) -> Plan:
        x, d = _like(u, x), _like(u, d)
        absorbed = _like(u, np.minimum(u, x).sum())
        total = _like(u, u.sum())
        return cls(x, (1 - d) * x, savings(u, x, d), absorbed / (len(u) * x) if x > 0 and len(u) else None,
                   absorbed / total if total > 0 else None)


def recommend_level(u: np.ndarray, d: Number,
                    short_hours: int = SHORT_LOOKBACK_HOURS) -> tuple[Number, Number, Number]:
    """(recommended x, long-lookback x*, short-lookback x*): the lower of the two optima."""
    long_x = optimal_usage_level(u, d)
    short_x = optimal_usage_level(u[-short_hours:], d) if len(u) else _like(u, 0)
    return min(long_x, short_x), long_x, short_x


def tranche_level(u: np.ndarray, d: Number, downside: Number = DOWNSIDE,
                  short_hours: int = SHORT_LOOKBACK_HOURS) -> tuple[Number, Number]:
    """(tranche x_t, optimum x): x is the guarded optimum (`recommend_level`) of the usage still on demand, x_t the
    optimum if that usage fell by `downside` right after the purchase: (1 - downside) x (module docstring)."""
    x = recommend_level(u, d, short_hours)[0]
    return (1 - _like(u, downside)) * x, x


def _share(ratio: Number | None) -> float:
    """A ratio (not money) for the API: a JSON number to 4 places, 0 when undefined."""
    return float(round(ratio or 0, 4))


def review_period(day, review_days: int = REVIEW_DAYS):
    """The first day of the review period holding `day`: periods of `review_days` days counted from Monday
    1970-01-05 (weekly periods start on Mondays)."""
    from datetime import date

    epoch = date(1970, 1, 5)
    return epoch + timedelta(days=(day - epoch).days // review_days * review_days)


def downside_option(config: dict) -> Decimal:
    """The stated downside from the config (`commitment_downside`, 0 <= delta < 1), else DOWNSIDE."""
    raw = config.get("commitment_downside")
    delta = DOWNSIDE if raw is None else Decimal(str(raw))
    if not Decimal(0) <= delta < Decimal(1):
        raise ValueError(f"commitment_downside {delta}: must be at least 0 and below 1")
    return delta.normalize() if delta else Decimal(0)


# -- reading the series -----------------------------------------------------------------------------------------------
def _series(con, kinds: list[dict], days: int) -> tuple[dict, dict, dict]:
    """Per (kind, provider, account, currency, region): the on-demand eligible spend as {hour offset: money} over
    the last `days` days of each provider's data, with the window; plus observed discounts and exact sums. A line
    eligible for several (competing) kinds counts for each."""
    case = kind_list(kinds)
    floor = window_floor(con, days)
    bounds = {p: (lo, hi) for p, lo, hi in con.execute(
        f"SELECT \"ProviderName\", min(\"ChargePeriodStart\"), max(\"ChargePeriodEnd\") FROM {COST_TABLE} "
        "WHERE \"ChargeCategory\" = 'Usage' GROUP BY 1").fetchall()}
    rows = con.execute(f"""
        WITH b AS (SELECT * FROM (VALUES {', '.join(f'({lit(p)}, CAST({lit(hi.isoformat())} AS TIMESTAMPTZ))'
                                                       for p, (lo, hi) in bounds.items()) or "(NULL, NULL)"})
                   b(provider, hi))
        SELECT kind, "ProviderName", "BillingAccountId", "BillingCurrency", "RegionId", "ChargePeriodStart",
               "ChargePeriodEnd", itype, sum("EffectiveCost"), sum("PricingQuantity")
        FROM (SELECT unnest({case}) AS kind, {INSTANCE_TYPE} AS itype, * FROM {COST_TABLE}
              WHERE "ChargePeriodStart" >= {floor}) c
        JOIN b ON b.provider = c."ProviderName"
        WHERE kind IS NOT NULL AND "PricingCategory" = 'Standard' AND "CommitmentDiscountId" IS NULL
          AND "ChargePeriodStart" >= b.hi - INTERVAL {int(days)} DAY
        GROUP BY ALL
    """).fetchall()
    observed = con.execute(f"""
        WITH b AS (SELECT * FROM (VALUES {', '.join(f'({lit(p)}, CAST({lit(hi.isoformat())} AS TIMESTAMPTZ))'
                                                       for p, (lo, hi) in bounds.items()) or "(NULL, NULL)"})
                   b(provider, hi))
        SELECT kind, "ProviderName", "BillingAccountId", "BillingCurrency", "CommitmentDiscountType",
               sum("EffectiveCost"), sum(coalesce("ContractedCost", "ListCost"))
        FROM (SELECT unnest({case}) AS kind, * FROM {COST_TABLE} WHERE "ChargePeriodStart" >= {floor}) c
        JOIN b ON b.provider = c."ProviderName"
        WHERE kind IS NOT NULL AND "CommitmentDiscountStatus" = 'Used'
          AND "ChargePeriodStart" >= b.hi - INTERVAL {int(days)} DAY
        GROUP BY ALL
    """).fetchall()
    return bounds, rows, observed


def _tranche_plan(uw: np.ndarray, d: Decimal, plan: Plan, tranche: Plan, delta: Decimal, period, review_days: int,
                  per_month: Decimal) -> dict:
    """The ladder (module docstring): this tranche, the optimum, both priced if usage falls by delta right after
    the purchase, and the tranches later reviews would recommend if usage holds (until they absorb PLAN_TARGET of
    the optimum)."""
    commitment, optimal = _per_hour(tranche.commitment), _per_hour(plan.commitment)
    fell = uw * (1 - delta)  # the stated downside: the lookback's usage less delta
    schedule, cumulative = [], Decimal(0)
    for step_no in range(PLAN_MAX_STEPS):
        share = 1 - delta ** (step_no + 1)
        step_commitment = commitment if step_no == 0 else _per_hour(optimal * share - cumulative)
        cumulative += step_commitment
        schedule.append({"review": step_no, "on": period + timedelta(days=review_days * step_no),
                         "hourly_commitment": step_commitment, "cumulative_hourly_commitment": cumulative,
                         "share_of_optimal": share.quantize(RATIO, ROUND_HALF_UP),
                         "monthly_savings": money(savings(uw, plan.level * share, d) * per_month)})
        if share >= PLAN_TARGET or delta == 0:
            break
    return {
        "strategy": "laddered" if delta > 0 else "all at once",
        "downside": delta, "review_every_days": review_days, "review_period_start": period,
        "next_review": period + timedelta(days=review_days),
        "optimal_hourly_commitment": optimal, "optimal_monthly_savings": money(plan.savings * per_month),
        "tranche_hourly_commitment": commitment, "tranche_share_of_optimal": (1 - delta).quantize(RATIO),
        "tranche_monthly_savings": money(tranche.savings * per_month),
        "tranche_monthly_savings_under_downside": money(savings(fell, tranche.level, d) * per_month),
        "optimal_monthly_savings_under_downside": money(savings(fell, plan.level, d) * per_month),
        "schedule_if_usage_holds": schedule,
    }


def _per_hour(v: Decimal) -> Decimal:
    """An hourly commitment as stated: to a tenth of a cent."""
    return v.quantize(Decimal("0.001"), ROUND_HALF_UP)


def _eligible_groups(rows: list[tuple], by_name: dict) -> dict[tuple, list[tuple]]:
    """`_series`' rows grouped by what one commitment of the kind would cover: (kind, provider, account, currency,
    region if the kind is regional, instance family if family-bound), each a list of (start, end, cost,
    instance type, quantity, normalization factor). Lines a family-bound or size-flexible kind cannot price (no
    known instance type, no quantity) are left out."""
    groups: dict[tuple, list] = {}
    for kind, prov, acct, cur, region, start, end, itype, cost, quantity in rows:
        scope_by = by_name[kind].get("scope_by", [])
        family = instance_family(itype) if "InstanceFamily" in scope_by else None
        if "InstanceFamily" in scope_by and family is None:
            continue  # no known instance type: not eligible for a family-bound kind
        factor = normalization_factor(itype) if by_name[kind].get("normalize") else None
        if by_name[kind].get("normalize") and (factor is None or not quantity):
            continue
        key = (kind, prov, acct, cur, region if "RegionId" in scope_by else None, family)
        groups.setdefault(key, []).append((start, end, cost, itype, quantity, factor))
    return groups


def _hourly_series(lines: list[tuple], w0: datetime, n: int, normalize: bool):
    """(u, daily, exact total, normalized units total, instance hours by type): the group's eligible on-demand
    spend per hour for the n hours from w0, in exact decimals (an object array: the money derived from it never
    passes through binary floats). A line longer than an hour is spread evenly over its hours (daily = every line
    was at least a day long). Size-flexible kinds (normalize) count normalized units (instance hours x factor)."""
    u = np.full(n, Decimal(0), dtype=object)
    daily = True
    exact_total, units_total = Decimal(0), Decimal(0)
    sizes: dict[str, Decimal] = {}
    for start, end, cost, itype, quantity, factor in lines:
        a = int((start - w0).total_seconds() // 3600)
        h = max(1, int((end - start).total_seconds() // 3600))
        daily &= h >= 24
        lo_i, hi_i = max(a, 0), min(a + h, n)
        amount = quantity * factor if normalize else cost
        if hi_i > lo_i:
            u[lo_i:hi_i] += amount / h
        exact_total += cost
        if normalize:
            units_total += amount
            sizes[itype] = sizes.get(itype, Decimal(0)) + quantity
    return u, daily, exact_total, units_total, sizes


def find(con: duckdb.DuckDBPyConnection, config: dict) -> list[Recommendation]:
    """Commitment purchase recommendations: per eligible group (`_eligible_groups`), the tranche of the guarded
    newsvendor optimum over the lookback, priced at the observed or rate-table discount (module docstring), with
    its evidence, assumptions and the competing kinds resolved (`_choose_among_competitors`)."""
    kinds = load_kinds(config.get("rates"))
    by_name = {k["name"]: k for k in kinds}
    lookback = int(config.get("lookback_days", DEFAULT_LOOKBACK))
    delta = downside_option(config)
    review_days = int(config.get("commitment_review_days", REVIEW_DAYS))
    if review_days < 1:
        raise ValueError(f"commitment_review_days {review_days}: must be at least 1")
    days = max(max(LOOKBACKS), lookback)
    bounds, rows, observed_rows = _series(con, kinds, days)
    discounts = ObservedDiscounts(observed_rows, by_name)
    groups = _eligible_groups(rows, by_name)
    out = []
    for (kind_name, prov, acct, cur, region, family), lines in sorted(groups.items(),
                                                                     key=lambda kv: tuple(map(str, kv[0]))):
        kind = by_name[kind_name]
        normalize = bool(kind.get("normalize"))
        first, hi = bounds[prov]
        w0 = max(hi - timedelta(days=days), first.replace(minute=0, second=0, microsecond=0))
        n = int((hi - w0).total_seconds() // 3600)
        u, daily, exact_total, units_total, sizes = _hourly_series(lines, w0, n, normalize)
        unit_price = None
        if normalize:  # the on-demand price of one normalized unit-hour the bill shows: the series back in money
            unit_price = exact_total / units_total
            u *= unit_price
            unit_type = min([*sizes, f"{family}.large"], key=lambda t: normalization_factor(t))
            unit_factor = normalization_factor(unit_type)
            unit_money = unit_factor * unit_price

        def purchasable(x_t: Decimal) -> Decimal:
            """Reserved instances come whole: the tranche rounded down to whole instances of the unit size."""
            return math.floor(x_t / unit_money + Decimal("1e-12")) * unit_money if normalize else x_t

        d_obs, source = discounts.for_kind(kind, prov, acct, cur)
        options = option_discounts(kind, d_obs)
        results = {}
        for opt in options:
            d = opt["discount"]
            windows = {}
            for L in sorted(set(LOOKBACKS) | {lookback}):
                uw = u[-min(n, L * 24):]
                x, long_x, short_x = recommend_level(uw, d)
                plan = Plan.at(uw, x, d)
                windows[L] = (uw, plan, long_x, short_x, Plan.at(uw, purchasable((1 - delta) * x), d))
            results[(opt["term"], opt["payment"])] = (opt, windows)
        default = next(r for r in results.values() if r[0]["is_default"])
        opt, windows = default
        uw, plan, long_x, short_x, tranche = windows[lookback]
        d = opt["discount"]
        if plan.commitment <= 0 or plan.savings <= 0 or tranche.commitment <= 0:
            continue
        hours = len(uw)
        per_month = HOURS_PER_MONTH / hours

        monthly_savings = money(tranche.savings * per_month)
        commitment = _per_hour(tranche.commitment)
        optimal = _per_hour(plan.commitment)
        upfront = Decimal(str(opt.get("upfront", 0)))
        years = term_years(opt["term"])
        upfront_cost = money(commitment * upfront * HOURS_PER_MONTH * 12 * years)
        absorbed_monthly = np.minimum(uw, tranche.level).sum() / hours * HOURS_PER_MONTH
        recurring_monthly = commitment * (1 - upfront) * HOURS_PER_MONTH
        benefit = absorbed_monthly - recurring_monthly
        break_even = (Decimal(0) if upfront_cost == 0 else
                      (upfront_cost / benefit).quantize(Decimal("0.1"), ROUND_HALF_UP) if benefit > 0 else None)
        window_on_demand = sum((c for s, e, c, *_ in lines if s >= hi - timedelta(hours=hours)), Decimal(0))
        curve = [{"change_percent": p, "hourly_commitment": _per_hour((1 - d) * level),
                  "monthly_savings": money(savings(uw, level, d) * per_month)}
                 for p in CURVE for level in [plan.level * (1 + Decimal(p) / 100)]]
        through = (hi - timedelta(seconds=1)).date()
        period = review_period(through, review_days)
        tranche_plan = _tranche_plan(uw, d, plan, tranche, delta, period, review_days, per_month)
        evidence = {
            "kind": kind_name, "label": kind.get("label", kind_name), "lookback_days": lookback,
            "window": {"start": hi - timedelta(hours=hours), "end": hi, "hours": hours},
            "granularity": "daily" if daily else "hourly",
            "eligible_on_demand_cost": window_on_demand,
            "eligible_on_demand_monthly": money(window_on_demand * HOURS_PER_MONTH / hours),
            "discount": d.quantize(RATIO, ROUND_HALF_UP),
            "discount_source": source,
            "observed_discount": None if d_obs is None else d_obs.quantize(RATIO, ROUND_HALF_UP),
            "long_lookback_level": money(long_x), "short_lookback_level": money(short_x),
            "guard": "short (3-day) lookback" if short_x < long_x else "long lookback",
            "hourly_commitment": commitment, "optimal_hourly_commitment": optimal,
            "term": opt["term"], "payment_option": opt["payment"],
            "upfront_cost": upfront_cost, "expected_utilization": _share(tranche.utilization),
            "expected_coverage": _share(tranche.coverage), "break_even_months": break_even,
            "tranche_plan": tranche_plan,
            "instance_family": family,
            "savings_curve": curve,
            "lookbacks": {str(L): {"optimal_hourly_commitment": _per_hour(p.commitment),
                                   "hourly_commitment": _per_hour(t.commitment),
                                   "monthly_savings": money(t.savings / len(w) * HOURS_PER_MONTH),
                                   "optimal_monthly_savings": money(p.savings / len(w) * HOURS_PER_MONTH),
                                   "expected_utilization": _share(t.utilization)}
                          for L, (w, p, _, _, t) in windows.items()},
            "options": [{"term": o["term"], "payment_option": o["payment"],
                         "discount": o["discount"].quantize(RATIO, ROUND_HALF_UP),
                         "hourly_commitment": _per_hour(w[lookback][4].commitment),
                         "optimal_hourly_commitment": _per_hour(w[lookback][1].commitment),
                         "monthly_savings": money(w[lookback][4].savings / len(w[lookback][0])
                                                  * HOURS_PER_MONTH)}
                        for o, w in results.values()],
        }
        assumptions = [
            "Only usage still on demand is counted: the commitment is in addition to those that already cover usage.",
            f"Optimal commitment = (1 - d) x the d-quantile of hourly eligible on-demand spend over {lookback} "
            "days, lowered to the last 3 days' optimum when that is lower (stale-data guard).",
            "Savings replay the lookback: they assume usage continues as it was (no forecast).",
        ]
        if delta > 0:
            assumptions.append(
                f"Bought in tranches: this one is {format((1 - delta) * 100, 'f')}% of the optimum, the commitment "
                f"that is optimal if usage falls {format(delta * 100, 'f')}% right after the purchase. Re-run in "
                f"{review_days} days: the next tranche is sized on the usage then still on demand (if usage holds, "
                "the schedule lists them).")
        if daily:
            assumptions.append("The bill is daily: each day's spend is spread evenly over its 24 hours, so intraday "
                               "peaks are invisible and the quantile is one of daily averages.")
        assumptions.append("Discount observed in the bill: 1 - EffectiveCost / ContractedCost of usage covered by "
                           "existing commitments of this kind." if source == "observed" else
                           f"Discount {source}: the bill does not tell the kinds of Savings Plan apart, so the "
                           "discount observed on the other kind is carried over by the table's price ratio."
                           if d_obs is not None else
                           "Discount from the rate table (optimizers/rates.yaml or CLOUDTALLY_COMMITMENT_RATES): "
                           "typical public figures, not your price sheet.")
        label = kind.get("label", kind_name)
        what = f"{'an' if label[:1] in 'AEIOU' else 'a'} {label}"
        if normalize:
            count = int(round(tranche.level / unit_money))
            evidence["normalized"] = {
                "unit_price_per_hour": unit_price.quantize(Decimal("0.000001"), ROUND_HALF_UP),
                "units_seen": units_total, "instance_hours_by_type": sizes,
                "optimal_units_per_hour": (plan.level / unit_price).quantize(
                    Decimal("0.01"), ROUND_HALF_UP),
                "tranche_units_per_hour": unit_factor * count, "instance_type": unit_type, "instances": count}
            what = (f"{count} x {unit_type} {kind.get('label', kind_name)} ({format(unit_factor * count, 'f')} "
                    f"normalized units)")
            assumptions.append(
                "Size-flexible: usage counts normalized units (instance hours x the size's normalization factor), "
                f"priced at the {format(evidence['normalized']['unit_price_per_hour'], 'f')} {cur} per unit-hour "
                f"the bill shows on demand; the tranche is rounded down to whole {unit_type} instances.")
        evidence = jsonable(evidence)
        scope = f"{prov}/{acct}/{cur}" + (f"/{region}" if region else "") + (f"/{family}" if family else "")
        share_text = "" if delta == 0 else (f" now ({format((1 - delta) * 100, 'f')}% of the optimal {optimal}/hour; "
                                            f"review again on {period + timedelta(days=review_days)})")
        out.append(Recommendation(
            kind="commitment_purchase", category="commitment",
            key=f"commitment_purchase|{kind_name}|{scope}|review {period.isoformat()}",
            provider=prov, currency=cur, billing_account_id=acct, region=region,
            action=f"Buy {what} ({opt['term']}, {opt['payment']}) of {commitment} "
                   f"{cur}/hour" + (f" for the {family} family" if family else "")
                   + (f" in {region}" if region else "") + share_text,
            monthly_savings=monthly_savings, monthly_cost=Decimal(evidence["eligible_on_demand_monthly"]),
            data_through=through, evidence=evidence, assumptions=assumptions))
    return _choose_among_competitors(out, by_name)


def _choose_among_competitors(recs: list[Recommendation], by_name: dict) -> list[Recommendation]:
    """Kinds that compete for the same usage (rates.yaml `competes`): per provider, billing account and currency
    keep the kind whose recommendations save the most together (ties: the first in the rate table), and list the
    others in its recommendations' evidence as alternatives."""
    order = {name: i for i, name in enumerate(by_name)}
    pools: dict[tuple, dict[str, list[Recommendation]]] = {}
    for r in recs:
        group = by_name[r.evidence["kind"]].get("competes")
        if group:
            pools.setdefault((r.provider, r.billing_account_id, r.currency, group), {}).setdefault(
                r.evidence["kind"], []).append(r)
    dropped = set()
    for by_kind in pools.values():
        totals = {k: sum((r.monthly_savings for r in rs), Decimal(0)) for k, rs in by_kind.items()}
        best = min(totals, key=lambda k: (-totals[k], order[k]))
        alternatives = [{"kind": k, "label": by_name[k].get("label", k), "monthly_savings": format(totals[k], "f"),
                         "recommendations": len(by_kind[k])} for k in sorted(totals, key=lambda k: -totals[k])
                        if k != best]
        for r in by_kind[best]:
            r.evidence["alternatives"] = alternatives
            if alternatives:
                r.assumptions.append(
                    "Chosen over " + ", ".join(f"{a['label']} ({a['monthly_savings']} {r.currency}/month)"
                                               for a in alternatives)
                    + ": they cover the same usage, and this kind's recommendations save the most together.")
        for k, rs in by_kind.items():
            if k != best:
                dropped.update(id(r) for r in rs)
    return [r for r in recs if id(r) not in dropped]
