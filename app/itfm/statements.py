"""Chargeback and showback statements per team or cost center per billing month, the TBM view, and the flat
ITFM export.

A month is a billing month (BillingPeriodStart), as in app.finance. Amounts are EffectiveCost (amortized: upfront
commitments spread over their term) with BilledCost beside it. A group's statement has its **direct** cost (parts a
rule gave it whole) and its **shared** cost (parts of lines a split rule divided; one line per rule), each by TBM
tower and service. Costs no rule gave a value of the dimension (and lines awaiting allocation) form the
**unallocated** statement. Per currency, statements + unallocated equal the month's warehouse total, checked on
every call (app.finance.ReconciliationError otherwise). Everything is summed in SQL DECIMAL.

In one reporting currency (`rates`): the statements are first built and reconciled per billing currency as above,
then each line is converted with finance's rate for the billing month (RateTable.convert: half-up to 18 places)
and a group's statements in different currencies become one; the `reconciliation` then also compares the converted
statements with the converted warehouse totals (`rounding_difference`: each converted line is rounded to 18 places,
so a few units of 1e-18 when lines carry 18 places; `reconciled` is the exact per-currency check). A missing rate is a QueryError naming the currencies.
"""
from __future__ import annotations

import csv
import io
from decimal import Decimal

import duckdb

from app.allocation.compile import ALLOCATION_TABLE
from app.costs import QueryError, money_str, require_rates
from app.currency import RateTable
from app.finance import ReconciliationError, parse_month, warehouse_totals
from app.itfm import tbm
from app.warehouse import COST_TABLE

BY = ("team", "cost_center")
MODES = ("chargeback", "showback")
EXPORT_COLUMNS = ("period", "cost_center", "team", "service", "tower", "provider", "account", "currency", "billed",
                  "effective", "budget", "forecast", "variance", "row_type")
ZERO = Decimal(0)
METRICS = ("EffectiveCost", "BilledCost")


def _lines_sql(by: str, doc: dict) -> str:
    unalloc = " OR a.team = 'unallocated'" if by == "team" else ""
    return (
        f"SELECT CASE WHEN a.x_LineId IS NULL OR a.{by} IS NULL{unalloc} THEN NULL ELSE a.{by} END AS g, "
        "c.BillingCurrency AS currency, "
        "CASE WHEN a.x_LineId IS NOT NULL AND a.share < 1 THEN 'shared' ELSE 'direct' END AS kind, "
        "CASE WHEN a.x_LineId IS NOT NULL AND a.share < 1 THEN a.rule_name END AS rule, "
        f"{tbm.tower_sql('c', doc)} AS tower, coalesce(c.ServiceCategory, 'Other') AS category, "
        "c.ServiceName AS service, "
        'sum(CASE WHEN a.x_LineId IS NULL THEN c."EffectiveCost" ELSE a."EffectiveCost" END) AS effective, '
        'sum(CASE WHEN a.x_LineId IS NULL THEN c."BilledCost" ELSE a."BilledCost" END) AS billed '
        f"FROM {COST_TABLE} c LEFT JOIN {ALLOCATION_TABLE} a ON a.x_LineId = c.x_LineId "
        "AND a.BillingPeriodStart = c.BillingPeriodStart "
        "WHERE c.BillingPeriodStart >= ? AND c.BillingPeriodStart < ? GROUP BY ALL "
        "ORDER BY currency, g NULLS LAST, kind, rule NULLS FIRST, effective DESC, tower, service NULLS LAST"
    )


def _money(d: dict) -> dict:
    return {k: money_str(v) if isinstance(v, Decimal) else v for k, v in d.items()}


def statements(con: duckdb.DuckDBPyConnection, month: str, by: str = "team", mode: str = "chargeback",
               group: str | None = None, rates: RateTable | None = None) -> dict:
    if by not in BY:
        raise QueryError("by", f"{by!r} is not one of {', '.join(BY)}")
    if mode not in MODES:
        raise QueryError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    start, end = parse_month("month", month)
    doc = tbm.mapping()
    rows = con.execute(_lines_sql(by, doc), [start, end]).fetchall()
    groups: dict[tuple, dict] = {}
    for g, cur, kind, rule, tower, category, service, effective, billed in rows:
        key = (g, cur)
        st = groups.setdefault(key, {"group": g if g is not None else "unallocated", "unallocated": g is None,
                                     "currency": cur, "direct": {"EffectiveCost": ZERO, "BilledCost": ZERO},
                                     "shared": {}, "lines": []})
        effective, billed = Decimal(effective or 0), Decimal(billed or 0)
        if kind == "shared":
            sh = st["shared"].setdefault(rule, {"rule": rule, "EffectiveCost": ZERO, "BilledCost": ZERO})
            sh["EffectiveCost"] += effective
            sh["BilledCost"] += billed
        else:
            st["direct"]["EffectiveCost"] += effective
            st["direct"]["BilledCost"] += billed
        st["lines"].append({"kind": kind, "rule": rule, "pool": doc["pool"], "tower": tower,
                            "service_category": category, "service": service, "EffectiveCost": effective,
                            "BilledCost": billed})
    totals = warehouse_totals(con, start, end)
    recon = []
    for cur in sorted(set(totals) | {c for _, c in groups}):
        sums = {m: sum((st["direct"][m] + sum((s[m] for s in st["shared"].values()), ZERO)
                        for (g, c), st in groups.items() if c == cur), ZERO) for m in ("EffectiveCost", "BilledCost")}
        wh = totals.get(cur, {"EffectiveCost": ZERO, "BilledCost": ZERO})
        if any(sums[m] != wh[m] for m in sums):
            raise ReconciliationError(f"statements {month} by {by}, {cur}: {sums} != warehouse {wh}")
        unalloc = groups.get((None, cur), {"direct": {"EffectiveCost": ZERO, "BilledCost": ZERO}})["direct"]
        recon.append({"currency": cur, **{m: {"statements": money_str(sums[m] - unalloc[m]),
                                               "unallocated": money_str(unalloc[m]), "warehouse": money_str(wh[m])}
                                           for m in ("EffectiveCost", "BilledCost")}, "reconciled": True})
    conversion = None
    if rates is not None:
        groups, recon, conversion = _in_one_currency(groups, recon, totals, month, rates)
    out_statements, out_unalloc = [], []
    for (g, cur), st in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0] is None, kv[0][0] or "")):
        shared = sorted(st["shared"].values(), key=lambda s: s["rule"] or "")
        total = {m: st["direct"][m] + sum((s[m] for s in shared), ZERO) for m in ("EffectiveCost", "BilledCost")}
        view = {"group": st["group"], "currency": cur, "direct": _money(st["direct"]),
                "shared": [_money(s) for s in shared], "total": _money(total),
                "lines": [_money(x) for x in st["lines"]]}
        if g is None:
            out_unalloc.append(view)
        elif group is None or g == group:
            out_statements.append(view)
    return {"month": month, "by": by, "mode": mode, "metric": "EffectiveCost",
            "note": ("chargeback: each group's total is charged to its P&L" if mode == "chargeback" else
                     "showback: for information; the cost stays in the central budget"),
            "statements": out_statements, "unallocated": out_unalloc if group is None else [],
            "reconciliation": recon, **({"conversion": conversion} if conversion else {})}


def _in_one_currency(groups: dict, recon: list[dict], totals: dict, month: str, rates: RateTable):
    """The reconciled per-currency `groups` as one statement per group in `rates.target` (each line converted, the
    line keeping its `billing_currency`), the reconciliation in the target beside the per-currency one, and the
    conversion block (rates used)."""
    currencies = {c for _, c in groups} | set(totals)
    require_rates(rates, currencies, month)
    target = rates.target
    out: dict[tuple, dict] = {}
    for (g, cur), st in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0] or "")):
        t = out.setdefault((g, target), {**st, "currency": target, "direct": {m: ZERO for m in METRICS},
                                          "shared": {}, "lines": []})
        for ln in st["lines"]:
            conv = {**ln, "billing_currency": cur, **{m: rates.convert(ln[m], cur, month) for m in METRICS}}
            t["lines"].append(conv)
            if ln["kind"] == "shared":
                sh = t["shared"].setdefault(ln["rule"], {"rule": ln["rule"], **{m: ZERO for m in METRICS}})
            else:
                sh = t["direct"]
            for m in METRICS:
                sh[m] += conv[m]
    for t in out.values():
        t["lines"].sort(key=lambda x: (x["kind"], x["rule"] or "", -x["EffectiveCost"], x["tower"],
                                       x["service"] or "", x["billing_currency"]))
    wh = {m: sum((rates.convert(totals[c][m], c, month) for c in totals), ZERO) for m in METRICS}
    unalloc = out.get((None, target), {"direct": {m: ZERO for m in METRICS}})["direct"]
    sums = {m: sum((t["direct"][m] + sum((s[m] for s in t["shared"].values()), ZERO) for t in out.values()), ZERO)
            for m in METRICS}
    converted = {"currency": target, **{m: {"statements": money_str(sums[m] - unalloc[m]),
                                            "unallocated": money_str(unalloc[m]), "warehouse": money_str(wh[m])}
                                        for m in METRICS},
                 "rounding_difference": {m: money_str(sums[m] - wh[m]) for m in METRICS},
                 "reconciled": True, "billing_currencies": recon}
    return out, [converted], {"currency": target, "rates": rates.used((c, month) for c in currencies)}


def statements_csv(doc: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["month", "by", "mode", "group", "currency", "kind", "rule", "pool", "tower", "service_category",
                "service", "EffectiveCost", "BilledCost", "billing_currency"])
    for st in doc["statements"] + doc["unallocated"]:
        for ln in st["lines"]:
            kind = "unallocated" if st in doc["unallocated"] else ln["kind"]
            w.writerow([doc["month"], doc["by"], doc["mode"], st["group"], st["currency"], kind, ln["rule"] or "",
                        ln["pool"], ln["tower"], ln["service_category"], ln["service"] or "", ln["EffectiveCost"],
                        ln["BilledCost"], ln.get("billing_currency", st["currency"])])
    for r in doc["reconciliation"]:
        w.writerow([doc["month"], doc["by"], doc["mode"], "TOTAL (warehouse)", r["currency"], "total", "", "", "", "",
                    "", r["EffectiveCost"]["warehouse"], r["BilledCost"]["warehouse"],
                    "+".join(b["currency"] for b in r.get("billing_currencies", [r]))])
    return buf.getvalue()


def tbm_totals(con: duckdb.DuckDBPyConnection, month: str, by: str = "tower", rates: RateTable | None = None) -> dict:
    """Month totals by TBM layer: pool (always Cloud Services), tower, or solution (the allocated team;
    `unallocated` for the rest), per currency (or in `rates.target`), reconciled to the warehouse."""
    if by not in ("pool", "tower", "solution"):
        raise QueryError("by", f"{by!r} is not one of pool, tower, solution")
    doc = statements(con, month, "team", rates=rates)
    acc: dict[tuple, dict] = {}
    for st in doc["statements"] + doc["unallocated"]:
        for ln in st["lines"]:
            key = {"pool": ln["pool"], "tower": ln["tower"], "solution": st["group"]}[by]
            row = acc.setdefault((st["currency"], key), {"EffectiveCost": ZERO, "BilledCost": ZERO})
            row["EffectiveCost"] += Decimal(ln["EffectiveCost"])
            row["BilledCost"] += Decimal(ln["BilledCost"])
    rows = [{by: k, "currency": cur, **_money(v)} for (cur, k), v in
            sorted(acc.items(), key=lambda kv: (kv[0][0], -kv[1]["EffectiveCost"]))]
    return {"month": month, "by": by, "pool": tbm.mapping()["pool"], "rows": rows,
            "reconciliation": doc["reconciliation"], **({"conversion": doc["conversion"]} if "conversion" in doc else {})}


def export_rows(con: duckdb.DuckDBPyConnection, month: str, budget_rows: list[dict] | None = None,
                rates: RateTable | None = None) -> list[dict]:
    """The flat ITFM hand-off of a billing month: one `cost` row per cost center, team, service, tower, provider,
    account and currency (summing to the warehouse per currency), then one `budget` row per monthly budget of the
    month (its scope's dimensions, actual as `effective`, budget, forecast = EAC, variance = EAC - budget).
    `rates`: every amount in `rates.target` (each converted with the month's rate after the per-currency check;
    cost rows equal but for their currency merged)."""
    start, end = parse_month("month", month)
    sql = (
        "SELECT a.cost_center, CASE WHEN a.team = 'unallocated' THEN NULL ELSE a.team END, "
        f"coalesce(a.service, c.ServiceName), {tbm.tower_sql('c')}, c.ProviderName, c.SubAccountId, "
        "c.BillingCurrency, "
        'sum(CASE WHEN a.x_LineId IS NULL THEN c."BilledCost" ELSE a."BilledCost" END), '
        'sum(CASE WHEN a.x_LineId IS NULL THEN c."EffectiveCost" ELSE a."EffectiveCost" END) '
        f"FROM {COST_TABLE} c LEFT JOIN {ALLOCATION_TABLE} a ON a.x_LineId = c.x_LineId "
        "AND a.BillingPeriodStart = c.BillingPeriodStart "
        "WHERE c.BillingPeriodStart >= ? AND c.BillingPeriodStart < ? GROUP BY ALL "
        "ORDER BY 7, 1 NULLS LAST, 2 NULLS LAST, 3 NULLS LAST, 4, 5, 6 NULLS LAST")
    rows = []
    sums: dict[str, list[Decimal]] = {}
    for cc, team, service, tower, provider, account, cur, billed, effective in con.execute(sql, [start, end]).fetchall():
        billed, effective = Decimal(billed or 0), Decimal(effective or 0)
        s = sums.setdefault(cur, [ZERO, ZERO])
        s[0] += billed
        s[1] += effective
        rows.append({"period": month, "cost_center": cc, "team": team, "service": service, "tower": tower,
                     "provider": provider, "account": account, "currency": cur, "billed": billed,
                     "effective": effective, "budget": None, "forecast": None, "variance": None, "row_type": "cost"})
    wh = warehouse_totals(con, start, end)
    for cur in set(wh) | set(sums):
        got = sums.get(cur, [ZERO, ZERO])
        want = wh.get(cur, {"BilledCost": ZERO, "EffectiveCost": ZERO})
        if got != [want["BilledCost"], want["EffectiveCost"]]:
            raise ReconciliationError(f"export {month}, {cur}: rows {got} != warehouse {want}")
    if rates is None:
        return rows + (budget_rows or [])
    return _export_in_currency(rows, budget_rows or [], month, rates)


def _export_in_currency(rows: list[dict], budget_rows: list[dict], month: str, rates: RateTable) -> list[dict]:
    require_rates(rates, {r["currency"] for r in rows + budget_rows}, month)
    amounts = ("billed", "effective", "budget", "forecast", "variance")
    merged: dict[tuple, dict] = {}
    for r in rows:
        key = tuple(r[k] for k in EXPORT_COLUMNS if k not in amounts and k != "currency")
        row = merged.setdefault(key, {**r, "currency": rates.target, "billed": ZERO, "effective": ZERO})
        row["billed"] += rates.convert(r["billed"], r["currency"], month)
        row["effective"] += rates.convert(r["effective"], r["currency"], month)
    budgets = []
    for r in budget_rows:  # each amount at the rate from the budget's currency; variance = forecast - budget again
        b = {**r, "currency": rates.target,
             **{k: None if r[k] is None else rates.convert(r[k], r["currency"], month) for k in amounts}}
        if b["forecast"] is not None and b["budget"] is not None:
            b["variance"] = b["forecast"] - b["budget"]
        budgets.append(b)
    return list(merged.values()) + budgets


def export_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXPORT_COLUMNS)
    for r in rows:
        w.writerow(["" if r[k] is None else (money_str(r[k]) if isinstance(r[k], Decimal) else r[k])
                    for k in EXPORT_COLUMNS])
    return buf.getvalue()


def budget_export_rows(con: duckdb.DuckDBPyConnection, session, month: str, team: str | None = None) -> list[dict]:
    """Budget rows of the export: every budget with a monthly amount for `month`, with its status."""
    from app.itfm import budgets

    _, found = budgets.list_budgets(session, team)
    monthly = [b for b in found if b.period == "month"]
    out = []
    for s in budgets.statuses(con, monthly, period=month, rates=budgets.rates_from(session)) if monthly else []:
        out.append({"period": month, "cost_center": s.scope["cost_center"], "team": s.scope["team"],
                    "service": s.scope["service"], "tower": None, "provider": s.scope["provider"],
                    "account": s.scope["account"], "currency": s.currency, "billed": None, "effective": s.actual,
                    "budget": s.budget, "forecast": s.eac, "variance": s.variance, "row_type": "budget"})
    return out
