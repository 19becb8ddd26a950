"""What raises alert events (app.alerts.events), evaluated after every ingest (the `alerts` after-ingest step of
app.runs), by `serve`'s scheduler every CLOUDTALLY_ALERTS_EVALUATE_SECONDS and by `cloudtally alerts evaluate`:

| kind                     | fires when                                                    | identity                           | team          |
|--------------------------|---------------------------------------------------------------|------------------------------------|---------------|
| ingest.failure           | a source's latest ingest run failed                           | ingest.failure / source            | (finance)     |
| data_quality.<check>     | raised by app.quality when a check newly fails                | (none: app.quality dedupes)        | (finance)     |
| anomaly                  | an anomaly episode of a monitor (app.alerts.anomaly) is recent | anomaly / monitor / currency / first day | team monitor's team |
| budget.actual            | actual spend crossed a threshold (50/80/100 % by default)      | budget.actual / budget / period / threshold | budget's team |
| budget.forecast          | the forecast at completion crosses a threshold                | budget.forecast / budget / period / threshold | budget's team |
| budget.overrun           | the projected crossing date falls inside the period           | budget.overrun / budget / period   | budget's team |
| digest.daily / .weekly   | a team has a digest rule; once per period                      | digest / team / period             | the team      |

A condition that clears resolves its open event (a later recurrence fires again); a higher budget threshold
escalates: the lower threshold's event is resolved and the higher one fires. Thresholds and anomaly parameters are
the params of rules of kind `budget` (`{"thresholds": [50, 80, 100], "forecast_thresholds": [100]}`) and
`anomaly` (`{"z": 4, "min_percent": 0.2, "min_impact": 25, "dimensions": ["ServiceName", "SubAccountId", "team",
"tag:env"], "lookback_days": 3}`).
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
from sqlalchemy import func, select

from app.alerts import anomaly
from app.alerts.events import open_event, raise_event, resolve
from app.alerts.store import rule_params
from app.control import AlertEvent, IngestRun, utcnow

log = logging.getLogger(__name__)
DEFAULT_THRESHOLDS = (50, 80, 100)
DEFAULT_FORECAST_THRESHOLDS = (100,)
CENT = Decimal("0.01")


def _money(v: Decimal | None, currency: str = "") -> str:
    return "n/a" if v is None else f"{Decimal(v).quantize(CENT):,} {currency}".strip()


def _latest_day(rt) -> date | None:
    from app.warehouse import COST_TABLE

    with rt.warehouse.connect(read_only=True) as con:
        latest = con.execute(f"SELECT max(ChargePeriodStart) FROM {COST_TABLE}").fetchone()[0]
    return latest.date() if latest else None


# -- ingestion failures ---------------------------------------------------------------------------------------
def ingest_failures(rt, now: datetime) -> dict:
    counts = {"raised": 0, "resolved": 0}
    with rt.sessions() as session:
        latest = (select(IngestRun.source, func.max(IngestRun.started_at).label("at"))
                  .where(IngestRun.status.in_(("succeeded", "nothing_new", "failed"))).group_by(IngestRun.source)
                  .subquery())
        runs = session.scalars(select(IngestRun).join(latest, (IngestRun.source == latest.c.source)
                                                      & (IngestRun.started_at == latest.c.at)))
        for run in runs:
            identity = f"ingest.failure|{run.source}"
            if run.status == "failed":
                _, what = raise_event(session, "ingest.failure", f"ingest of source {run.source} failed: "
                                      f"{(run.error or run.message or 'unknown error')[:500]}", identity=identity,
                                      source=run.source, severity="critical", now=now,
                                      details={"title": f"Ingestion failed: {run.source}", "run_id": run.id,
                                               "facts": [["Run", run.id], ["Trigger", run.trigger],
                                                         ["Attempts", run.attempts],
                                                         ["Started", run.started_at.isoformat()]]})
                counts["raised"] += what == "created"
            elif resolve(session, identity, now) is not None:
                counts["resolved"] += 1
        session.commit()
    return counts


# -- anomalies --------------------------------------------------------------------------------------------------
def detect_anomalies(rt, start: date, end: date, params: anomaly.Params, dimensions) -> list[dict]:
    """Anomaly episodes in [start, end) with their scores, history from 84 days before start (no events)."""
    mem = duckdb.connect()
    try:
        anomaly.load_series(rt, mem, dimensions, start - timedelta(days=84), end)
        anomaly.detect(mem, params)
        rows = mem.execute(
            "SELECT monitor, currency, first_day, last_day, days, actual, expected, impact, peak_day, peak_percent "
            "FROM anomaly_episodes WHERE last_day >= ? ORDER BY impact DESC, monitor", [start]).fetchall()
        out = []
        for m, cur, first, last, days, actual, expected, impact, peak, pct in rows:
            day_rows = mem.execute("SELECT day, actual, expected, impact, percent, z FROM anomaly_scores WHERE "
                                   "monitor = ? AND currency = ? AND flagged AND day BETWEEN ? AND ? ORDER BY day",
                                   [m, cur, first, last]).fetchall()
            out.append({"monitor": m, "currency": cur, "first_day": first, "last_day": last, "days": days,
                        "actual": actual, "expected": expected, "impact": impact, "peak_day": peak,
                        "peak_percent": pct, "flagged_days": [
                            {"day": d.isoformat(), "actual": str(Decimal(a).quantize(CENT)), "expected": str(e),
                             "impact": str(Decimal(i).quantize(CENT)), "percent": round(p * 100, 1),
                             "z": round(z, 1)} for d, a, e, i, p, z in day_rows]})
        return out
    finally:
        mem.close()


DIMENSION_ORDER = ("ServiceName", "SubAccountId", "RegionId")


def fold_related(episodes: list[tuple[dict, dict]]) -> list[tuple[dict, dict, list[str]]]:
    """One incident, one finance message: an episode of a finance-wide monitor (not team=) that starts the same day,
    in the same currency, as a kept one and whose monitor value is among the kept one's top contributors (the
    BigQuery spike is also the spike of the project that runs it) is folded into it (listed under `also`). Service
    monitors are kept before account and region ones. Team monitors go to their own team and are never folded."""
    def rank(item):
        ep = item[0]
        dim = ep["monitor"].partition("=")[0]
        return (DIMENSION_ORDER.index(dim) if dim in DIMENSION_ORDER else len(DIMENSION_ORDER), -ep["impact"],
                ep["monitor"])

    kept: list[tuple[dict, dict, list[str]]] = []
    for ep, drill in sorted(episodes, key=rank):
        dim, _, value = ep["monitor"].partition("=")
        host = None
        if dim != "team":
            for k_ep, k_drill, also in kept:
                if (k_ep["monitor"].partition("=")[0] != "team" and k_ep["currency"] == ep["currency"]
                        and k_ep["first_day"] == ep["first_day"]
                        and any(i["value"] == value for i in k_drill.get(dim, []))):
                    host = also
                    break
        if host is not None:
            host.append(ep["monitor"])
        else:
            kept.append((ep, drill, []))
    return kept


def anomalies(rt, as_of: date | None, now: datetime) -> dict:
    counts = {"raised": 0, "updated": 0, "resolved": 0}
    with rt.sessions() as session:
        cfg = rule_params(session, "anomaly")
    params = anomaly.Params.from_dict(cfg)
    dimensions = tuple(cfg.get("dimensions") or anomaly.DEFAULT_DIMENSIONS)
    end = as_of or ((_latest_day(rt) or now.date()) + timedelta(days=1))
    lookback = int(cfg.get("lookback_days", 3))
    found = detect_anomalies(rt, end - timedelta(days=lookback), end, params, dimensions)
    live = set()
    kept = fold_related([(ep, anomaly.drilldown(rt, ep["monitor"], ep["currency"], ep["first_day"],
                                                ep["last_day"], ep["first_day"])) for ep in found])
    with rt.sessions() as session:
        for ep, drill, also in kept:
            identity = f"anomaly|{ep['monitor']}|{ep['currency']}|{ep['first_day']}"
            live.add(identity)
            live.update(f"anomaly|{m}|{ep['currency']}|{ep['first_day']}" for m in also)
            key, _, value = ep["monitor"].partition("=")
            existing = open_event(session, identity)
            notified_impact = Decimal((existing.details or {}).get("notified_impact", "0")) if existing else None
            impact = Decimal(ep["actual"]).quantize(CENT) - Decimal(ep["expected"])  # to the cent, adds up
            pct = Decimal(str(round(ep["peak_percent"] * 100, 1)))
            top = []
            for dim, items in drill.items():
                if items:
                    top.append(f"{dim}: " + ", ".join(f"{i['value']} (+{i['impact']})" for i in items))
            days = ep["days"]
            message = (f"{key} {value}: {_money(ep['actual'], ep['currency'])} actual vs "
                       f"{_money(ep['expected'], ep['currency'])} expected over {days} day{'s' * (days > 1)} "
                       f"from {ep['first_day']} to {ep['last_day']} (impact +{_money(impact, ep['currency'])}, "
                       f"peak +{pct}% on {ep['peak_day']}). Top contributors: " + ("; ".join(top) or "n/a"))
            if also:
                message += f" Same incident seen on: {', '.join(also)}."
            details = {"title": f"Cost anomaly: {value}", "monitor": ep["monitor"], "dimension": key,
                       "value": value, "currency": ep["currency"], "first_day": ep["first_day"].isoformat(),
                       "last_day": ep["last_day"].isoformat(), "days": days,
                       "actual": str(Decimal(ep["actual"]).quantize(CENT)),
                       "expected": str(ep["expected"]), "impact": str(impact), "peak_percent": float(pct),
                       "flagged_days": ep["flagged_days"], "top_contributors": drill, "also": also,
                       "notified_impact": str(impact if existing is None else notified_impact),
                       "facts": [["Actual", _money(ep["actual"], ep["currency"])],
                                 ["Expected", _money(ep["expected"], ep["currency"])],
                                 ["Impact", "+" + _money(impact, ep["currency"])], ["Peak", f"+{pct}%"],
                                 ["Days", f"{ep['first_day']} .. {ep['last_day']}"]]}
            # an episode growing to twice the impact it was notified with sends an update; otherwise one message
            escalate = existing is not None and impact >= 2 * (notified_impact or Decimal(0)) > 0
            if escalate:
                details["notified_impact"] = str(impact)
            _, what = raise_event(session, "anomaly", message, identity=identity,
                                  team=value if key == "team" else None, details=details, escalate=escalate,
                                  severity="critical" if pct >= 100 else "warning", now=now)
            counts["raised" if what == "created" else "updated"] += 1
        # episodes that ended (no flagged day within the lookback) resolve
        for e in session.scalars(select(AlertEvent).where(AlertEvent.kind == "anomaly",
                                                          func.coalesce(AlertEvent.status, "open") == "open")):
            if e.identity not in live and e.identity:
                last = (e.details or {}).get("last_day")
                if last and date.fromisoformat(last) < end - timedelta(days=params.gap_days + 1):
                    e.status, e.resolved_at = "resolved", now
                    counts["resolved"] += 1
        session.commit()
    return counts


# -- budgets ------------------------------------------------------------------------------------------------------
def budgets(rt, as_of: date | None, now: datetime) -> dict:
    counts = {"raised": 0, "resolved": 0, "available": True}
    try:
        from app.itfm import budget_statuses
    except ImportError:  # pragma: no cover - the ITFM module is part of the project
        return {**counts, "available": False}
    with rt.sessions() as session:
        cfg = rule_params(session, "budget")
    actual_t = sorted(Decimal(str(t)) for t in cfg.get("thresholds", DEFAULT_THRESHOLDS))
    forecast_t = sorted(Decimal(str(t)) for t in cfg.get("forecast_thresholds", DEFAULT_FORECAST_THRESHOLDS))
    statuses = budget_statuses(rt, as_of)
    with rt.sessions() as session:
        for s in statuses:
            scope = ", ".join(f"{k} {v}" for k, v in (s.scope or {}).items() if v) or "all costs"
            facts = [["Budget", _money(s.budget, s.currency)], ["Actual", _money(s.actual, s.currency)],
                     ["Actual % of budget", f"{s.pct_of_budget_actual}%"],
                     ["Forecast at completion", _money(s.eac, s.currency)],
                     ["Forecast % of budget", f"{s.pct_of_budget_forecast}%" if s.pct_of_budget_forecast
                      is not None else "n/a"],
                     ["Projected crossing", str(s.projected_crossing_date or "none")],
                     ["Period", f"{s.period} ({s.period_start} .. {s.period_end - timedelta(days=1)})"]]
            base = {"budget_id": s.budget_id, "budget": s.name, "period": s.period, "currency": s.currency,
                    "facts": facts, "status": s.to_json()}
            for kind, pct, thresholds in (("budget.actual", s.pct_of_budget_actual, actual_t),
                                          ("budget.forecast", s.pct_of_budget_forecast, forecast_t)):
                crossed = [t for t in thresholds if pct is not None and Decimal(pct) >= t]
                top = crossed[-1] if crossed else None
                for t in thresholds:
                    identity = f"{kind}|{s.budget_id}|{s.period}|{t}"
                    if t != top:
                        counts["resolved"] += resolve(session, identity, now) is not None
                        continue
                    what_crossed = "spent" if kind == "budget.actual" else "is forecast to spend"
                    message = (f"Budget {s.name} ({scope}) {what_crossed} {pct}% of its {s.period} budget "
                               f"({_money(s.actual if kind == 'budget.actual' else s.eac, s.currency)} of "
                               f"{_money(s.budget, s.currency)}); threshold {t}%.")
                    title = (f"Budget {t}% reached: {s.name}" if kind == "budget.actual"
                             else f"Budget forecast over {t}%: {s.name}")
                    _, what = raise_event(session, kind, message, identity=identity, team=s.team,
                                          severity="critical" if t >= 100 else "warning", now=now,
                                          billing_period=s.period[:7] if len(s.period) == 7 else None,
                                          details={**base, "title": title, "threshold": str(t)})
                    counts["raised"] += what == "created"
            identity = f"budget.overrun|{s.budget_id}|{s.period}"
            crossing = s.projected_crossing_date
            if crossing is not None and not s.crossed and s.period_start <= crossing < s.period_end:
                _, what = raise_event(
                    session, "budget.overrun", f"Budget {s.name} ({scope}) is forecast to run out on {crossing}, "
                    f"before its {s.period} period ends on {s.period_end - timedelta(days=1)} (forecast at "
                    f"completion {_money(s.eac, s.currency)} vs budget {_money(s.budget, s.currency)}).",
                    identity=identity, team=s.team, now=now,
                    details={**base, "title": f"Budget overrun forecast: {s.name}", "crossing": str(crossing)})
                counts["raised"] += what == "created"
            else:
                counts["resolved"] += resolve(session, identity, now) is not None
        session.commit()
    return counts


# -- digests ------------------------------------------------------------------------------------------------------
def digests(rt, as_of: date | None, now: datetime) -> dict:
    """Per team with a digest rule (kinds ["digest.daily"] or ["digest.weekly"], params {"teams": [...]} or all
    teams with a channel): spend in the last full period, change vs the one before, top movers by service, open
    recommendations when the optimizers keep them."""
    from app.alerts.models import AlertChannel, AlertRule
    from app.costs import parse_query, run_query

    counts = {"raised": 0}
    end = as_of or ((_latest_day(rt) or now.date()) + timedelta(days=1))
    with rt.sessions() as session:
        wanted: dict[str, set] = {}
        for r in session.scalars(select(AlertRule).where(AlertRule.enabled)):
            for k in r.kinds or []:
                if k in ("digest.daily", "digest.weekly"):
                    teams = (r.params or {}).get("teams") or ([r.team] if r.team else [
                        c.team for c in session.scalars(select(AlertChannel)) if c.team])
                    wanted.setdefault(k, set()).update(t for t in teams if t)
    for kind, teams in wanted.items():
        days = 1 if kind == "digest.daily" else 7
        start, prev = end - timedelta(days=days), end - timedelta(days=2 * days)
        with rt.warehouse.connect(read_only=True) as con:
            def by_service(a, b, team):
                q = parse_query(start=a.isoformat(), end=b.isoformat(), granularity="month",
                                group_by=["ServiceName"], filters=[f"team={team}"], metric="EffectiveCost")
                out: dict = {}
                for row in run_query(con, q).rows:
                    out[(row["ServiceName"], row["currency"])] = out.get((row["ServiceName"], row["currency"]),
                                                                         Decimal(0)) + row["cost"]
                return out
            for team in sorted(teams):
                cur, before = by_service(start, end, team), by_service(prev, start, team)
                totals: dict = {}
                for (svc, ccy), v in cur.items():
                    totals.setdefault(ccy, [Decimal(0), Decimal(0)])[0] += v
                for (svc, ccy), v in before.items():
                    totals.setdefault(ccy, [Decimal(0), Decimal(0)])[1] += v
                movers = sorted(((cur.get(k, Decimal(0)) - before.get(k, Decimal(0)), k) for k in
                                 set(cur) | set(before)), key=lambda t: (-abs(t[0]), t[1]))[:5]
                lines, facts = [], []
                for ccy, (a, b) in sorted(totals.items()):
                    change = f"{((a - b) / b * 100).quantize(Decimal('0.1'))}%" if b else "n/a"
                    lines.append(f"{_money(a, ccy)} ({change} vs the previous {days}-day period)")
                    facts += [[f"Spend ({ccy})", _money(a, ccy)], [f"Previous ({ccy})", _money(b, ccy)],
                              [f"Change ({ccy})", change]]
                for delta, (svc, ccy) in movers:
                    sign = "+" if delta >= 0 else "-"
                    facts.append([f"Mover: {svc}", f"{sign}{_money(abs(delta), ccy)}"])
                recs = _open_recommendations(rt, team)
                if recs is not None:
                    facts.append(["Open recommendations", str(recs)])
                label = start.isoformat() if days == 1 else f"{start} .. {end - timedelta(days=1)}"
                with rt.sessions() as session:
                    _, what = raise_event(
                        session, kind, f"Team {team} spent " + ("; ".join(lines) or "nothing") + f" in {label}.",
                        identity=f"{kind}|team:{team}|{start}", team=team, severity="info", now=now,
                        details={"title": f"{'Daily' if days == 1 else 'Weekly'} cost digest: {team}",
                                 "facts": facts, "period_start": start.isoformat(), "period_end": end.isoformat()})
                    session.commit()
                counts["raised"] += what == "created"
    return counts


def _open_recommendations(rt, team: str) -> int | None:
    """Open recommendations of the team from the optimizers' ledger; None when it is not available."""
    try:
        from optimizers.ledger import list_recommendations
    except ImportError:
        return None
    try:
        with rt.sessions() as session:
            return list_recommendations(session, team=team, status="open", limit=1)[0]
    except Exception:  # noqa: BLE001 - a digest goes out without the count rather than not at all
        log.exception("counting open recommendations failed")
        return None


# -- all ------------------------------------------------------------------------------------------------------------
def evaluate(rt, as_of: date | None = None, now: datetime | None = None, deliver: bool = True) -> dict:
    """Run every trigger, then route and deliver what is due. Returns counts per trigger."""
    now = now or utcnow()
    out: dict = {}
    for name, fn in (("ingest_failures", lambda: ingest_failures(rt, now)),
                     ("anomalies", lambda: anomalies(rt, as_of, now)),
                     ("budgets", lambda: budgets(rt, as_of, now)),
                     ("digests", lambda: digests(rt, as_of, now))):
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one broken trigger must not stop the others
            log.exception("alert trigger %s failed", name)
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    if deliver:
        from app.alerts.delivery import deliver_due

        out["delivery"] = deliver_due(rt, now)
    return out
