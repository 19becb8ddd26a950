"""Commitment utilization and coverage: how much of each commitment already bought is used, and how much of the
eligible usage commitments cover (`recommend commitments`, GET /v1/commitments/utilization).

Utilization and coverage (`utilization`) come straight from the FOCUS commitment columns, as DECIMAL sums in SQL:

- per commitment (CommitmentDiscountId) and month of ChargePeriodStart: used cost (EffectiveCost of its `Used`
  rows), unused cost (of its `Unused` rows: the waste), utilization = used / (used + unused), the amortized fee
  (its Purchase rows' BilledCost prorated exactly to the month by their charge period: a daily fee, a monthly fee,
  or an upfront payment spread over its whole term), and the identity gap used + unused - amortized fee, which is
  0 whenever the provider amortizes (AWS, Azure). Net savings = ContractedCost of the covered usage (what it would
  have cost on demand at your price) - used - unused. Google Cloud's export nets covered usage to 0, has no Unused
  rows and bills the CUD's fee unamortized under the commitment's ResourceId: there utilization = covered hours /
  the fee's hours, and used and unused cost split the fee by it (derived, so no identity gap).
- per provider, currency and month: eligible usage (see rates.yaml), coverage = ContractedCost of covered eligible
  usage / ContractedCost of all eligible usage (covered + on-demand), commitment cost (Used + Unused EffectiveCost,
  plus Purchase rows that carry EffectiveCost: Google Cloud's export bills a CUD's fee without amortizing it and
  without the commitment's id), unused cost, and the effective savings rate 1 - (on-demand eligible EffectiveCost +
  commitment cost) / ListCost of eligible usage (FinOps' ESR; `commitment_savings_rate` is the same against
  ContractedCost, i.e. not counting negotiated discounts).

What to buy next is optimizers/commitments.py (purchase recommendations).
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

import duckdb

from app.allocation.compile import from_units, to_units
from app.warehouse import COST_TABLE
from optimizers.commitment_kinds import kind_case, load_kinds

RATIO = Decimal("0.0001")


# -- utilization and coverage ---------------------------------------------------------------------------------------
def _month_bounds(start: str | None, end: str | None, con) -> tuple[datetime, datetime]:
    """[start, end) as month starts; default the latest month with usage (one month when only one is given)."""
    def shift(m: datetime, n: int) -> datetime:
        y, mo = divmod(m.year * 12 + m.month - 1 + n, 12)
        return m.replace(year=y, month=mo + 1)

    if start is None and end is None:
        hi = con.execute(f"SELECT max(\"ChargePeriodStart\") FROM {COST_TABLE} "
                         "WHERE \"ChargeCategory\" = 'Usage'").fetchall()[0][0]
        hi = hi or datetime.now(timezone.utc)
        lo = hi.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return lo, shift(lo, 1)
    lo = _parse_month(start) if start else shift(_parse_month(end), -1)
    return lo, (_parse_month(end) if end else shift(lo, 1))


def _parse_month(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m").replace(tzinfo=timezone.utc)


def _ratio(num: Decimal | None, den: Decimal | None) -> str | None:
    if num is None or not den:
        return None
    return format((Decimal(num) / Decimal(den)).quantize(RATIO, ROUND_HALF_UP), "f")


def _prorated(amount: str, start: str, end: str, lo: str, hi: str) -> str:
    """SQL: `amount` x overlap([start, end), [lo, hi)) / (end - start), rounded half up to 1e-18, exactly (integer
    arithmetic on 1e-18 units and seconds; DuckDB's DECIMAL division is floating point and is never used)."""
    ov = f"greatest(0, epoch(least({end}, {hi})) - epoch(greatest({start}, {lo})))"
    length = f"greatest(1, epoch({end}) - epoch({start}))"
    units = to_units(f"abs({amount})")
    q = (f"((({units}) * CAST(2 * {ov} AS HUGEINT) + CAST({length} AS HUGEINT)) "
         f"// (2 * CAST({length} AS HUGEINT)))")
    return f"(sign({amount}) * {from_units(q)})"


def utilization(con: duckdb.DuckDBPyConnection, start: str | None = None, end: str | None = None,
                provider: str | None = None, kinds: list[dict] | None = None) -> dict:
    """Per commitment and month, and per provider, currency and month, over the months [start, end) (YYYY-MM;
    default: the latest month with data). Money as exact Decimals; ratios as 4-decimal strings."""
    kinds = kinds or load_kinds()
    lo, hi = _month_bounds(start, end, con)
    pfilter = 'AND "ProviderName" = ?' if provider else ""
    pargs = [provider] if provider else []
    per_commitment = con.execute(f"""
        WITH u AS (
            SELECT "CommitmentDiscountId" AS id, "ProviderName" AS provider, "BillingCurrency" AS currency,
                   date_trunc('month', "ChargePeriodStart") AS month,
                   any_value("CommitmentDiscountName") AS name, any_value("CommitmentDiscountType") AS type,
                   any_value("CommitmentDiscountCategory") AS category,
                   coalesce(sum("EffectiveCost") FILTER (WHERE "CommitmentDiscountStatus" = 'Used'), 0) AS used,
                   sum("EffectiveCost") FILTER (WHERE "CommitmentDiscountStatus" = 'Unused') AS unused,
                   sum(coalesce("ContractedCost", "ListCost")) FILTER (WHERE "CommitmentDiscountStatus" = 'Used')
                       AS covered_contracted,
                   sum("ListCost") FILTER (WHERE "CommitmentDiscountStatus" = 'Used') AS covered_list,
                   sum("CommitmentDiscountQuantity") FILTER (WHERE "CommitmentDiscountStatus" = 'Used') AS used_qty,
                   sum("CommitmentDiscountQuantity") FILTER (WHERE "CommitmentDiscountStatus" = 'Unused')
                       AS unused_qty,
                   any_value("CommitmentDiscountUnit") AS unit,
                   sum("PricingQuantity") FILTER (WHERE "CommitmentDiscountStatus" = 'Used') AS covered_qty
            FROM {COST_TABLE}
            WHERE "ChargeCategory" = 'Usage' AND "CommitmentDiscountId" IS NOT NULL
              AND "ChargePeriodStart" >= ? AND "ChargePeriodStart" < ? {pfilter}
            GROUP BY ALL
        ), p AS (
            SELECT u.id, u.month,
                   sum({_prorated('c."BilledCost"', 'c."ChargePeriodStart"', 'c."ChargePeriodEnd"', 'u.month',
                                  "u.month + INTERVAL 1 MONTH")}) AS fee,
                   sum({_prorated('c."PricingQuantity"', 'c."ChargePeriodStart"', 'c."ChargePeriodEnd"', 'u.month',
                                  "u.month + INTERVAL 1 MONTH")})
                       FILTER (WHERE c."PricingUnit" = 'Hours') AS fee_hours,
                   bool_or(c."CommitmentDiscountId" IS NULL) AS by_resource
            FROM (SELECT DISTINCT id, month FROM u) u
            JOIN {COST_TABLE} c ON coalesce(c."CommitmentDiscountId", c."ResourceId") = u.id
             AND c."ChargeCategory" = 'Purchase'
             AND c."ChargePeriodStart" < u.month + INTERVAL 1 MONTH AND c."ChargePeriodEnd" > u.month
            GROUP BY ALL
        )
        SELECT u.*, p.fee, p.fee_hours, p.by_resource FROM u LEFT JOIN p USING (id, month)
        ORDER BY provider, id, month
    """, [lo, hi, *pargs]).fetchall()
    commitments = []
    for (cid, prov, cur, month, name, ctype, category, used, unused, covered_c, covered_l, used_q, unused_q, unit,
         covered_qty, fee, fee_hours, by_resource) in per_commitment:
        unlinked = fee is None and unused is None
        # Google Cloud: covered usage netted to 0, no Unused rows, the fee unamortized (its ResourceId is the
        # commitment): utilization = covered hours / the fee's hours, and used / unused follow from the fee
        derived = (fee is not None and unused is None and not used and fee_hours and covered_qty is not None
                   and by_resource)
        if derived:
            share = min(Decimal(1), covered_qty / fee_hours)
            used = (fee * share).quantize(Decimal("1e-18"), ROUND_HALF_UP)
            unused = fee - used
        total = used + (unused or 0)
        row = {
            "commitment_id": cid, "name": name, "type": ctype, "category": category, "provider": prov,
            "currency": cur, "month": month.strftime("%Y-%m"), "used_cost": used, "unused_cost": unused or Decimal(0),
            "amortized_fee": fee, "identity_gap": None if fee is None or derived else total - fee,
            "utilization": None if unlinked else _ratio(used, total),
            "quantity_utilization": _ratio(used_q, (used_q or 0) + (unused_q or 0)) if used_q is not None else None,
            "commitment_unit": unit, "covered_contracted_cost": covered_c, "covered_list_cost": covered_l,
            "net_savings": None if unlinked or covered_c is None else covered_c - total,
        }
        if unlinked:
            row["note"] = ("the bill carries no Unused rows and no fee with this commitment's id: its utilization "
                           "and savings are only known per provider")
        if derived:
            row["quantity_utilization"] = row["utilization"]
            row["note"] = ("derived: the bill nets covered usage to 0 and bills the fee unamortized (Google Cloud); "
                           "utilization = covered hours / the fee's hours, used and unused cost split the fee by it")
        commitments.append(row)
    case = kind_case(kinds)
    per_provider = con.execute(f"""
        WITH lines AS (
            SELECT "ProviderName" AS provider, "BillingCurrency" AS currency,
                   date_trunc('month', "ChargePeriodStart") AS month, {case} AS kind, *
            FROM {COST_TABLE}
            WHERE "ChargePeriodStart" >= ? AND "ChargePeriodStart" < ? {pfilter}
        )
        SELECT provider, currency, month,
               sum(coalesce("ContractedCost", "ListCost")) FILTER (WHERE kind IS NOT NULL
                   AND "CommitmentDiscountStatus" = 'Used') AS covered,
               sum(coalesce("ContractedCost", "ListCost")) FILTER (WHERE kind IS NOT NULL
                   AND coalesce("CommitmentDiscountStatus", '') <> 'Unused') AS eligible_contracted,
               sum("ListCost") FILTER (WHERE kind IS NOT NULL
                   AND coalesce("CommitmentDiscountStatus", '') <> 'Unused') AS eligible_list,
               sum("EffectiveCost") FILTER (WHERE kind IS NOT NULL AND "CommitmentDiscountId" IS NULL)
                   AS eligible_on_demand,
               coalesce(sum("EffectiveCost") FILTER (WHERE "ChargeCategory" = 'Usage'
                   AND "CommitmentDiscountId" IS NOT NULL), 0)
                 + coalesce(sum("EffectiveCost") FILTER (WHERE "ChargeCategory" = 'Purchase'
                   AND ("CommitmentDiscountId" IS NOT NULL OR "ChargeDescription" ILIKE '%commitment%')), 0)
                   AS commitment_cost,
               coalesce(sum("EffectiveCost") FILTER (WHERE "CommitmentDiscountStatus" = 'Unused'), 0) AS unused
        FROM lines GROUP BY ALL HAVING eligible_contracted IS NOT NULL OR commitment_cost <> 0
        ORDER BY provider, currency, month
    """, [lo, hi, *pargs]).fetchall()
    providers = []
    for prov, cur, month, covered, elig_c, elig_l, on_demand, ccost, unused in per_provider:
        spent = (on_demand or 0) + ccost
        providers.append({
            "provider": prov, "currency": cur, "month": month.strftime("%Y-%m"),
            "eligible_contracted_cost": elig_c or Decimal(0), "covered_contracted_cost": covered or Decimal(0),
            "eligible_on_demand_cost": on_demand or Decimal(0), "commitment_cost": ccost, "unused_cost": unused,
            "coverage": _ratio(covered or 0, elig_c),
            "effective_savings_rate": _ratio(elig_l - spent, elig_l) if elig_l else None,
            "commitment_savings_rate": _ratio(elig_c - spent, elig_c) if elig_c else None,
        })
    return {"start": lo.strftime("%Y-%m"), "end": hi.strftime("%Y-%m"), "commitments": commitments,
            "providers": providers}
