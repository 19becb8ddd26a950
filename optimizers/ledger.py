"""The recommendation ledger (control DB table `recommendations`, migration 0007) and its measured accuracy.

`refresh` runs every optimizer over the warehouse and reconciles what they find with the ledger:

- a finding not in the ledger is stored `open`, with its inputs (the optimizer settings), evidence, assumptions,
  predicted monthly savings and the baseline monthly cost of what it acts on; the same finding found again (same
  key: kind, provider, account, resource or commitment scope) updates its open row;
- an open recommendation that is no longer found is checked against the data that arrived after it
  (`data_through`):
  - a resource recommendation is **acted on** when the resource left the bill (no line on the provider's last day
    of data: `resource gone`) or is still billed but no longer qualifies (`changed`, e.g. a schedule, a new size,
    gp3); its realized monthly savings = the baseline monthly cost - the resource's monthly cost since (0 once
    gone), both at the EffectiveCost the bill shows;
  - a commitment purchase is **acted on** when a commitment of that kind appears for the same provider and billing
    account after `data_through` (`commitment bought`); realized monthly savings = that commitment's net savings
    (ContractedCost of the usage it covered - its used and unused EffectiveCost) per 730-hour month;
  - otherwise it is **expired** (no longer found, nothing done: usage changed or the thresholds did);
- acted-on recommendations are re-measured on every refresh, so realized savings settle as data arrives
  (`measured_through`).

`accuracy` compares realized with predicted savings per kind and currency.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
from sqlalchemy import JSON, Boolean, Index, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from app.allocation.compile import ALLOCATION_TABLE
from app.control import Base, Money, UTCDateTime, new_id, utcnow
from app.warehouse import COST_TABLE
from optimizers import Recommendation, jsonable, monthly, registry
from optimizers.commitment_kinds import INSTANCE_TYPE, load_kinds

STATUSES = ("open", "acted_on", "expired")
AFTER_WINDOW_DAYS = 14  # the resource's cost after the action is measured over at most its last 14 days


class RecommendationRow(Base):
    __tablename__ = "recommendations"
    __table_args__ = (Index("ix_recommendations_status_kind", "status", "kind"),
                      Index("ix_recommendations_team", "team"), Index("ix_recommendations_key", "key"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64), nullable=False)  # sha256 of the finding's key
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    category: Mapped[str] = mapped_column(String(20), nullable=False)
    provider: Mapped[str] = mapped_column(String(100), nullable=False)
    currency: Mapped[str] = mapped_column(String(10), nullable=False)
    billing_account_id: Mapped[str | None] = mapped_column(String(200))
    sub_account_id: Mapped[str | None] = mapped_column(String(200))
    resource_id: Mapped[str | None] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="open")
    monthly_savings: Mapped[Decimal] = mapped_column(Money, nullable=False)
    monthly_cost: Mapped[Decimal] = mapped_column(Money, nullable=False)
    first_monthly_savings: Mapped[Decimal] = mapped_column(Money, nullable=False)
    under_commitment: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    evidence: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    assumptions: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    inputs: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    data_through: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[dict | None] = mapped_column(JSON)
    realized_monthly_savings: Mapped[Decimal | None] = mapped_column(Money)
    measured_through: Mapped[str | None] = mapped_column(String(10))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _money(v: Decimal | None) -> str | None:
    from app.costs import money_str

    return None if v is None else money_str(Decimal(v))


def view(row: RecommendationRow) -> dict:
    iso = lambda v: v.isoformat().replace("+00:00", "Z") if v else None  # noqa: E731
    return {
        "id": row.id, "kind": row.kind, "category": row.category, "status": row.status, "provider": row.provider,
        "currency": row.currency, "billing_account_id": row.billing_account_id, "sub_account_id": row.sub_account_id,
        "resource_id": row.resource_id, "region": row.region, "team": row.team, "action": row.action,
        "monthly_savings": _money(row.monthly_savings), "monthly_cost": _money(row.monthly_cost),
        "first_monthly_savings": _money(row.first_monthly_savings), "under_commitment": row.under_commitment,
        "data_through": row.data_through, "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
        "closed_at": iso(row.closed_at), "outcome": row.outcome,
        "realized_monthly_savings": _money(row.realized_monthly_savings), "measured_through": row.measured_through,
        "evidence": row.evidence, "assumptions": row.assumptions, "inputs": row.inputs,
    }


# -- teams ---------------------------------------------------------------------------------------------------------
def assign_teams(con: duckdb.DuckDBPyConnection, recs: list[Recommendation]) -> None:
    """Each resource recommendation's team: the team its lines' allocation parts give the most EffectiveCost
    (ties: by name). Commitment purchases (account-wide) have no team: team keys do not see them."""
    ids = sorted({r.resource_id for r in recs if r.resource_id})
    if not ids:
        return
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                         [ALLOCATION_TABLE]).fetchall()[0][0]
    if not exists:
        return
    con.register("__rec_resources", pa.table({"rid": ids}))
    try:
        rows = con.execute(f"""
            SELECT rid, arg_max(team, (cost, team)) FROM (
                SELECT c."ResourceId" AS rid, a.team, sum(a."EffectiveCost") AS cost
                FROM {COST_TABLE} c JOIN __rec_resources r ON r.rid = c."ResourceId"
                JOIN {ALLOCATION_TABLE} a ON a."x_LineId" = c."x_LineId"
                WHERE a.team IS NOT NULL GROUP BY 1, 2) GROUP BY 1""").fetchall()
    finally:
        con.unregister("__rec_resources")
    teams = dict(rows)
    for r in recs:
        if r.resource_id:
            r.team = teams.get(r.resource_id)


# -- verification against later data --------------------------------------------------------------------------------
def _provider_ends(con) -> dict[str, datetime]:
    return dict(con.execute(f"SELECT \"ProviderName\", max(\"ChargePeriodEnd\") FROM {COST_TABLE} "
                            "WHERE \"ChargeCategory\" = 'Usage' GROUP BY 1").fetchall())


def _resource_after(con, rows: list[RecommendationRow], ends: dict) -> dict[str, dict]:
    """Per recommendation id: the resource's cost over its last AFTER_WINDOW_DAYS days after data_through, whether
    it is billed on the provider's last day, and its SKUs after."""
    cands = [r for r in rows if r.resource_id and r.data_through and r.provider in ends]
    if not cands:
        return {}
    table = pa.table({
        "id": [r.id for r in cands], "provider": [r.provider for r in cands],
        "rid": [r.resource_id for r in cands],
        "since": [datetime.combine(date.fromisoformat(r.data_through) + timedelta(days=1), datetime.min.time(),
                                   tzinfo=ends[r.provider].tzinfo) for r in cands],
        "hi": [ends[r.provider] for r in cands],
    })
    con.register("__rec_after", table)
    try:
        found = con.execute(f"""
            SELECT k.id, any_value(k.since), any_value(k.hi),
                   coalesce(sum(c."EffectiveCost") FILTER (WHERE c."ChargePeriodStart" >= greatest(k.since,
                       k.hi - INTERVAL {AFTER_WINDOW_DAYS} DAY)), 0) AS recent_cost,
                   max(c."ChargePeriodEnd") AS last_end, list(DISTINCT c."SkuId") FILTER (WHERE c."SkuId" IS NOT NULL)
            FROM __rec_after k LEFT JOIN {COST_TABLE} c ON c."ProviderName" = k.provider
             AND c."ResourceId" = k.rid AND c."ChargeCategory" = 'Usage' AND c."ChargePeriodStart" >= k.since
            GROUP BY k.id""").fetchall()
    finally:
        con.unregister("__rec_after")
    out = {}
    for rid, since, hi, recent, last_end, skus in found:
        if hi <= since:
            continue  # no newer data yet
        hours = int((hi - max(since, hi - timedelta(days=AFTER_WINDOW_DAYS))).total_seconds() // 3600)
        gone = last_end is None or last_end < hi - timedelta(days=1) + timedelta(seconds=1)
        out[rid] = {"gone": gone, "recent_cost": recent, "hours": hours, "skus": skus or [],
                    "measured_through": (hi - timedelta(seconds=1)).date().isoformat()}
    return out


def _new_commitments(con, rows: list[RecommendationRow], ends: dict, kinds: dict) -> dict[str, dict]:
    """Per commitment-purchase recommendation id: the commitments of its kind that appeared (first covered usage
    or unused row) after its data_through for its provider and billing account (and its region and instance family
    where the recommendation names them: an EC2 Instance Savings Plan or reserved instance for another family did
    not act on it), with their monthly net savings."""
    out = {}
    for r in rows:
        if r.kind != "commitment_purchase" or not r.data_through or r.provider not in ends:
            continue
        kind = kinds.get((r.evidence or {}).get("kind"))
        types = (kind or {}).get("commitment_types") or []
        region = "AND \"RegionId\" = ?" if r.region else ""
        # once acted on, only the commitments that closed it count: a later tranche is the next recommendation's
        mine = (r.outcome or {}).get("commitments") if r.status == "acted_on" else None
        only = "AND \"CommitmentDiscountId\" IN (SELECT unnest(?))" if mine else ""
        family = (r.evidence or {}).get("instance_family")
        # the family of the usage a commitment covered: its Unused rows name no instance, so any covered line counts
        same_family = f"AND bool_or(regexp_replace({INSTANCE_TYPE}, '\\.[^.]+$', '') = ?)" if family else ""
        found = con.execute(f"""
            WITH firsts AS (
                SELECT "CommitmentDiscountId" AS id, min("ChargePeriodStart") AS first FROM {COST_TABLE}
                WHERE "ProviderName" = ? AND "BillingAccountId" = ? AND "ChargeCategory" = 'Usage'
                  AND "CommitmentDiscountType" IN (SELECT unnest(?)) {region} {only}
                GROUP BY 1 HAVING min("ChargePeriodStart") >= ? {same_family})
            SELECT f.id, f.first, max(c."ChargePeriodEnd"),
                   sum(coalesce(c."ContractedCost", c."ListCost")) FILTER (WHERE c."CommitmentDiscountStatus" = 'Used'),
                   sum(c."EffectiveCost")
            FROM firsts f JOIN {COST_TABLE} c ON c."CommitmentDiscountId" = f.id AND c."ChargeCategory" = 'Usage'
            GROUP BY 1, 2""", [r.provider, r.billing_account_id, types, *([r.region] if r.region else []),
                               *([list(mine)] if mine else []),
                               datetime.combine(date.fromisoformat(r.data_through) + timedelta(days=1),
                                                datetime.min.time(), tzinfo=ends[r.provider].tzinfo),
                               *([family] if family else [])]).fetchall()
        if found:
            net = sum(((covered or 0) - cost for _, _, _, covered, cost in found), Decimal(0))
            first = min(f for _, f, _, _, _ in found)
            last = max(e for _, _, e, _, _ in found)
            hours = int((last - first).total_seconds() // 3600)
            out[r.id] = {"commitments": [i for i, *_ in found], "net_savings": net, "hours": hours,
                         "measured_through": (ends[r.provider] - timedelta(seconds=1)).date().isoformat()}
    return out


# -- refresh ---------------------------------------------------------------------------------------------------------
def refresh(rt, config: dict | None = None, only: list[str] | None = None,
            step: Callable[[str], None] | None = None) -> dict:
    """Run the optimizers, store what they find, check earlier recommendations against newer data. Returns counts,
    the optimizers that failed (`errors`: the others still ran; the failed ones' open findings stay open) and the
    total predicted monthly savings of open recommendations per currency."""
    config = dict(config or {})
    if not config.get("metrics") and os.environ.get("CLOUDTALLY_RIGHTSIZING_METRICS"):
        config["metrics"] = [m for m in os.environ["CLOUDTALLY_RIGHTSIZING_METRICS"].split(";") if m.strip()]
    optimizers = {k: v for k, v in registry().items() if not only or k in only}
    found: list[Recommendation] = []
    errors: list[dict] = []
    with rt.warehouse.connect(read_only=True) as con:
        for name, fn in optimizers.items():
            if step:
                step(name)
            try:
                found += fn(con, config)
            except Exception as exc:  # noqa: BLE001 - one optimizer failing (e.g. a metrics API) spares the others
                errors.append({"optimizer": name, "error": f"{type(exc).__name__}: {exc}"})
        assign_teams(con, found)
        ends = _provider_ends(con)
        kinds = {k["name"]: k for k in load_kinds(config.get("rates"))}
        now = utcnow()
        counts = {"new": 0, "updated": 0, "acted_on": 0, "expired": 0, "remeasured": 0}
        inputs = json.loads(json.dumps(jsonable(config), default=lambda o: type(o).__name__))
        with rt.sessions() as session:
            open_rows = {r.key: r for r in session.scalars(select(RecommendationRow).where(
                RecommendationRow.status == "open"))}
            seen = set()
            for rec in found:
                key = digest(rec.key)
                if key in seen:
                    continue
                seen.add(key)
                row = open_rows.get(key)
                if row is None:
                    row = RecommendationRow(key=key, kind=rec.kind, category=rec.category, status="open",
                                            first_monthly_savings=rec.monthly_savings, created_at=now)
                    session.add(row)
                    counts["new"] += 1
                else:
                    counts["updated"] += 1
                row.provider, row.currency, row.action = rec.provider, rec.currency, rec.action
                row.billing_account_id, row.sub_account_id = rec.billing_account_id, rec.sub_account_id
                row.resource_id, row.region, row.team = rec.resource_id, rec.region, rec.team
                row.monthly_savings, row.monthly_cost = rec.monthly_savings, rec.monthly_cost
                row.under_commitment = rec.under_commitment
                row.evidence, row.assumptions, row.inputs = jsonable(rec.evidence), list(rec.assumptions), inputs
                row.data_through = rec.data_through.isoformat() if rec.data_through else None
                row.updated_at = now
            categories = {"commitments": "commitment", "waste": "waste", "rightsizing": "rightsizing"}
            failed = {e["optimizer"] for e in errors}  # their open findings are not judged this time
            ran_categories = {categories[n] for n in optimizers if n in categories and n not in failed}
            from optimizers.rightsizing import parse_metrics_option

            measured = set(parse_metrics_option(config.get("metrics")))  # rightsizing judged only these clouds
            stale = [r for k, r in open_rows.items() if k not in seen and r.category in ran_categories
                     and (r.category != "rightsizing" or r.provider in measured)]
            acted = list(session.scalars(select(RecommendationRow).where(RecommendationRow.status == "acted_on")))
            after = _resource_after(con, stale + acted, ends)
            bought = _new_commitments(con, stale + acted, ends, kinds)
            for r in stale:
                if r.kind == "commitment_purchase":
                    b = bought.get(r.id)
                    if b is None:
                        r.status, r.outcome = "expired", {"reason": "no longer recommended and no commitment bought"}
                    else:
                        r.status = "acted_on"
                        r.outcome = {"reason": "commitment bought", "commitments": b["commitments"]}
                        r.realized_monthly_savings = monthly(b["net_savings"], b["hours"])
                        r.measured_through = b["measured_through"]
                else:
                    a = after.get(r.id)
                    if a is None:
                        r.status = "expired"
                        r.outcome = {"reason": "no longer found on the same data (thresholds or rules changed)"}
                    else:
                        r.status = "acted_on"
                        r.outcome = {"reason": "resource gone" if a["gone"] else "changed", "skus_after": a["skus"]}
                        r.realized_monthly_savings = r.monthly_cost - (Decimal(0) if a["gone"] else
                                                                       monthly(a["recent_cost"], a["hours"]))
                        r.measured_through = a["measured_through"]
                r.closed_at = r.updated_at = now
                counts[r.status] += 1
            for r in acted:  # re-measure as data arrives
                if r.kind == "commitment_purchase" and r.id in bought:
                    b = bought[r.id]
                    r.realized_monthly_savings = monthly(b["net_savings"], b["hours"])
                    r.measured_through = b["measured_through"]
                elif r.id in after:
                    a = after[r.id]
                    r.realized_monthly_savings = r.monthly_cost - (Decimal(0) if a["gone"] else
                                                                   monthly(a["recent_cost"], a["hours"]))
                    r.measured_through = a["measured_through"]
                else:
                    continue
                counts["remeasured"] += 1
            session.commit()
            totals = session.execute(select(RecommendationRow.currency, RecommendationRow.monthly_savings).where(
                RecommendationRow.status == "open")).all()
    per_currency: dict[str, Decimal] = {}
    for cur, v in totals:
        per_currency[cur] = per_currency.get(cur, Decimal(0)) + v
    return {**counts, "found": len(found), "errors": errors, "open_monthly_savings": [
        {"currency": c, "monthly_savings": _money(v)} for c, v in sorted(per_currency.items())]}


AFTER_INGEST_SETTING = "CLOUDTALLY_RECOMMEND_AFTER_INGEST"


def after_ingest(rt, source: str, periods: list) -> dict:
    """The ingest run's `recommendations` step (app/runs.py): a refresh after every ingest when
    CLOUDTALLY_RECOMMEND_AFTER_INGEST is on (1/true/yes; off by default: a refresh reads the last 60 days of every
    provider and, with rightsizing, calls the clouds' metrics APIs)."""
    if os.environ.get(AFTER_INGEST_SETTING, "").lower() not in ("1", "true", "yes"):
        return {"ran": False, "reason": f"{AFTER_INGEST_SETTING} is off: run `cloudtally recommend refresh`"}
    summary = refresh(rt, {})
    if summary["errors"]:
        raise RuntimeError("; ".join(f"{e['optimizer']}: {e['error']}" for e in summary["errors"]))
    return {"ran": True, **{k: summary[k] for k in ("found", "new", "updated", "acted_on", "expired")}}


# -- queries ---------------------------------------------------------------------------------------------------------
def list_recommendations(session, *, team: str | None = None, status: str | None = "open", kind: str | None = None,
                         category: str | None = None, provider: str | None = None, limit: int = 100,
                         offset: int = 0) -> tuple[int, list[dict]]:
    stmt = select(RecommendationRow)
    for column, value in ((RecommendationRow.team, team), (RecommendationRow.status, status),
                          (RecommendationRow.kind, kind), (RecommendationRow.category, category),
                          (RecommendationRow.provider, provider)):
        if value is not None:
            stmt = stmt.where(column == value)
    # biggest predicted savings first (Money is text on SQLite, so the database cannot sort it: the ledger holds
    # thousands of rows at most, sorted here)
    rows = sorted(session.scalars(stmt).all(), key=lambda r: (-r.monthly_savings, r.id))
    return len(rows), [view(r) for r in rows[offset:offset + limit]]


def get(session, rec_id: str) -> RecommendationRow | None:
    return session.get(RecommendationRow, rec_id)


def accuracy(session, team: str | None = None) -> dict:
    """Realized vs predicted monthly savings of the recommendations acted on, per kind and currency."""
    stmt = select(RecommendationRow).where(RecommendationRow.status.in_(("acted_on", "open", "expired")))
    if team is not None:
        stmt = stmt.where(RecommendationRow.team == team)
    groups: dict[tuple, dict] = {}
    for r in session.scalars(stmt):
        g = groups.setdefault((r.kind, r.currency), {"kind": r.kind, "currency": r.currency, "open": 0, "expired": 0,
                                                     "acted_on": 0, "predicted": Decimal(0), "realized": Decimal(0),
                                                     "ratios": []})
        g[r.status] += 1
        if r.status == "acted_on" and r.realized_monthly_savings is not None:
            g["predicted"] += r.monthly_savings
            g["realized"] += r.realized_monthly_savings
            if r.monthly_savings:
                g["ratios"].append(r.realized_monthly_savings / r.monthly_savings)
    out = []
    for (kind, cur), g in sorted(groups.items()):
        ratios = sorted(g.pop("ratios"))
        predicted, realized = g.pop("predicted"), g.pop("realized")
        n = len(ratios)
        median = None if not n else ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2
        out.append({**g, "predicted_monthly_savings": _money(predicted), "realized_monthly_savings": _money(realized),
                    "realized_to_predicted": _ratio(realized, predicted),
                    "median_realized_to_predicted": None if median is None else _ratio(median, Decimal(1))})
    return {"kinds": out}


def _ratio(num: Decimal, den: Decimal) -> str | None:
    return None if not den else format((Decimal(num) / Decimal(den)).quantize(Decimal("0.0001")), "f")
