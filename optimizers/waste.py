"""Waste findings that need only the bill: each detector is one SQL query over the last days of each provider's data.

A resource is considered only while it is still billed: it has a line on the provider's last day of data. Savings
are priced at the effective rate the bill shows for the resource (its EffectiveCost over the window, scaled to a
730-hour month), never at list price. What each detector matches, in the text of a line (SkuMeter,
ChargeDescription, ResourceType, SkuPriceDetails, ResourceId, lower-cased):

| kind | rule | saving |
|---|---|---|
| `idle_public_ip` | an idle address charge: AWS `IdleAddress` / "not attached to a running instance", Google Cloud "Static Ip Charge" (a reserved address not in use) | the whole cost (release it) |
| `unattached_volume` | block storage (ServiceSubcategory Block Storage, ResourceType Volume or Disk, an EBS `vol-` id or a `/disks/` id; not a snapshot) charged every day of the window while no VM was billed in its location (availability zone, else resource group, else region, within the same sub account) during the window: the volume outlived its instance (a billing proxy; inventory would be certain) | the whole cost (snapshot, then delete) |
| `old_snapshot` | snapshot storage first billed more than `snapshot_days` (90) days before the data ends | the whole cost (delete or archive) |
| `idle_network` | a NAT gateway or load balancer billed for at least `idle_days` (14) days whose only charges in that window are hourly: its data processed / LCU quantity is at most `idle_network_quantity` (1 GB) | the whole cost (delete) |
| `gp2_to_gp3` | AWS gp2 volume storage | 20% of its cost (gp3 lists at 0.08 vs gp2 0.10 USD per GB-month in us-east-1) |
| `nonprod_schedule` | a resource tagged env (or environment) = dev, test or staging with hourly usage on every day of the window at >= 80% of its busiest day (hourly bills: billed in >= 95% of the window's hours): running 24x7 | (1 - 60/168) = 64.3% of its on-demand cost (a 12 h x 5 day schedule); usage under a commitment saves nothing until the commitment is resized, so only the on-demand part is priced and the finding says `under_commitment` |
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import duckdb

from app.warehouse import COST_TABLE
from optimizers import Recommendation, monthly, window_floor

DEFAULTS = {"window_days": 14, "snapshot_days": 90, "idle_days": 14, "idle_network_quantity": 1,
            "nonprod_envs": ["dev", "test", "staging"], "always_on_ratio": "0.8"}
SCHEDULE_SAVING = Decimal(1) - Decimal(60) / Decimal(168)  # 12 h x 5 days of 168 hours
GP3_SAVING = Decimal("0.2")
IDLE_IP = r"idleaddress|not attached to a running instance|static ip charge"
NETWORK = r"nat gateway|natgateway|load balanc|loadbalancer|elastic load"
TEXT = ("lower(concat_ws(' ', \"SkuMeter\", \"ChargeDescription\", \"ResourceType\", \"SkuPriceDetails\", "
        "\"ResourceId\"))")
# Block storage: FOCUS's subcategory where the provider sets it; AWS's CUR bills EBS under EC2 (Virtual Machines),
# so volume ids and resource types count too.
VOLUME = ("\"ServiceSubcategory\" = 'Block Storage' OR \"ResourceType\" IN ('Volume', 'Disk') "
          "OR \"ResourceId\" LIKE 'vol-%' OR \"ResourceId\" LIKE '%/disks/%'")
ENV = ("lower((list_filter(map_entries(\"Tags\"), lambda e: lower(e.key) IN ('env', 'environment'))[1]).value)")


def _window(con, days: int) -> str:
    """Usage lines of the last `days` days of each provider's data, with `hi` (the end of the provider's data),
    `txt` (the line's text) and `env`."""
    return f"""
        b AS (SELECT "ProviderName" AS provider, max("ChargePeriodEnd") AS hi FROM {COST_TABLE}
              WHERE "ChargeCategory" = 'Usage' GROUP BY 1),
        w AS (SELECT c.*, b.hi, {TEXT} AS txt, {ENV} AS env,
                     coalesce(c."AvailabilityZone", c."x_ResourceGroupName", c."RegionId") AS location
              FROM {COST_TABLE} c JOIN b ON b.provider = c."ProviderName"
              WHERE c."ChargeCategory" = 'Usage' AND c."ChargePeriodStart" >= {window_floor(con, days)}
                AND c."ChargePeriodStart" >= b.hi - INTERVAL {int(days)} DAY),
        live AS (SELECT DISTINCT "ProviderName", "ResourceId" FROM w
                 WHERE "ResourceId" IS NOT NULL AND "ChargePeriodEnd" >= hi - INTERVAL 1 DAY)"""


RESOURCE_COLS = """"ProviderName", "BillingCurrency", "ResourceId", any_value("BillingAccountId") AS account,
    any_value("SubAccountId") AS sub, any_value("RegionId") AS region, any_value("ResourceName") AS name,
    any_value("ServiceName") AS service, max(hi) AS hi, min("ChargePeriodStart") AS first,
    sum("EffectiveCost") AS cost, bool_or("CommitmentDiscountId" IS NOT NULL) AS committed"""


def _recs(con, sql: str, params: list, kind: str, action: str, assumptions: list[str], share: Decimal,
          window_days: int, evidence_cols: tuple[str, ...] = ()) -> list[Recommendation]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    out = []
    for values in cur.fetchall():
        r = dict(zip(names, values))
        hours = window_days * 24
        cost_monthly = monthly(r["cost"], hours)
        priced = r.get("priced_cost", r["cost"])
        saving = monthly(priced * share, hours)
        evidence = {"window_days": window_days, "window_cost": r["cost"], "priced_cost": priced,
                    "share_saved": share, "first_billed": r["first"], "service": r["service"],
                    "resource_name": r["name"], **{c: r[c] for c in evidence_cols}}
        out.append(Recommendation(
            kind=kind, category="waste", key=f"{kind}|{r['ProviderName']}|{r['account']}|{r['ResourceId']}",
            provider=r["ProviderName"], currency=r["BillingCurrency"], action=action.format(**r),
            monthly_savings=saving, monthly_cost=cost_monthly, billing_account_id=r["account"],
            sub_account_id=r["sub"], resource_id=r["ResourceId"], region=r["region"],
            under_commitment=bool(r["committed"]), data_through=(r["hi"] - timedelta(seconds=1)).date(),
            evidence={k: (format(v, "f") if isinstance(v, Decimal) else v.isoformat() if hasattr(v, "isoformat")
                          else v) for k, v in evidence.items()},
            assumptions=assumptions))
    return out


def idle_public_ips(con, cfg: dict) -> list[Recommendation]:
    days = int(cfg["window_days"])
    sql = f"""WITH {_window(con, days)}
        SELECT {RESOURCE_COLS} FROM w JOIN live USING ("ProviderName", "ResourceId")
        WHERE regexp_matches(txt, ?) GROUP BY "ProviderName", "BillingCurrency", "ResourceId"
        ORDER BY 1, 3"""
    return _recs(con, sql, [IDLE_IP], "idle_public_ip", "Release the idle public IP address {ResourceId}",
                 ["The provider bills this address as idle (not attached to a running instance / reserved and "
                  "unused); releasing it stops the charge.",
                  "Azure bills public IPs the same whether associated or not, so Azure addresses are not judged "
                  "from the bill."], Decimal(1), days)


def unattached_volumes(con, cfg: dict) -> list[Recommendation]:
    days = int(cfg["window_days"])
    sql = f"""WITH {_window(con, days)},
        vms AS (SELECT DISTINCT "ProviderName", "SubAccountId", location FROM w
                WHERE "ServiceSubcategory" = 'Virtual Machines' AND "PricingUnit" ILIKE '%hours'
                  AND NOT regexp_matches(txt, '{NETWORK}')),
        vols AS (SELECT {RESOURCE_COLS}, any_value(location) AS location,
                        count(DISTINCT CAST("ChargePeriodStart" AS DATE)) AS days_billed
                 FROM w JOIN live USING ("ProviderName", "ResourceId")
                 WHERE ({VOLUME}) AND NOT txt LIKE '%snapshot%' AND NOT "PricingUnit" ILIKE '%hours'
                 GROUP BY "ProviderName", "BillingCurrency", "ResourceId")
        SELECT v.* FROM vols v
        WHERE v.days_billed >= ? AND NOT EXISTS (
            SELECT 1 FROM vms m WHERE m."ProviderName" = v."ProviderName" AND m."SubAccountId" IS NOT DISTINCT FROM v.sub
              AND m.location = v.location)
        ORDER BY 1, 3"""
    return _recs(con, sql, [days], "unattached_volume",
                 "Snapshot and delete volume {ResourceId}: no VM was billed in {location} for {days_billed} days",
                 ["Billing-only proxy: the volume was billed every day of the window while no virtual machine was "
                  "billed in its availability zone (else resource group, else region) and sub account; an inventory "
                  "would be certain.", "Saving: the whole volume cost (keep a snapshot if the data matters)."],
                 Decimal(1), days, ("location", "days_billed"))


def old_snapshots(con, cfg: dict) -> list[Recommendation]:
    days, age = int(cfg["window_days"]), int(cfg["snapshot_days"])
    sql = f"""WITH {_window(con, days)},
        firsts AS (SELECT "ProviderName", "ResourceId", min("ChargePeriodStart") AS since FROM {COST_TABLE}
                   WHERE "ChargeCategory" = 'Usage' AND "ResourceId" IS NOT NULL GROUP BY 1, 2)
        SELECT {RESOURCE_COLS}, any_value(f.since) AS since FROM w JOIN live USING ("ProviderName", "ResourceId")
        JOIN firsts f USING ("ProviderName", "ResourceId")
        WHERE txt LIKE '%snapshot%' AND f.since <= w.hi - INTERVAL {age} DAY
        GROUP BY "ProviderName", "BillingCurrency", "ResourceId" ORDER BY 1, 3"""
    return _recs(con, sql, [], "old_snapshot", "Delete or archive snapshot {ResourceId}, billed since {since:%Y-%m-%d}",
                 [f"Policy: snapshots older than {age} days are rarely restored; check retention needs first."],
                 Decimal(1), days, ("since",))


def idle_network(con, cfg: dict) -> list[Recommendation]:
    days = int(cfg["idle_days"])
    limit = Decimal(str(cfg["idle_network_quantity"]))
    sql = f"""WITH {_window(con, days)}
        SELECT {RESOURCE_COLS},
               coalesce(sum("PricingQuantity") FILTER (WHERE NOT "PricingUnit" ILIKE '%hour%'), 0) AS processed,
               count(DISTINCT CAST("ChargePeriodStart" AS DATE)) AS days_billed
        FROM w JOIN live USING ("ProviderName", "ResourceId")
        WHERE regexp_matches(txt, ?) GROUP BY "ProviderName", "BillingCurrency", "ResourceId"
        HAVING bool_or("PricingUnit" ILIKE '%hour%') AND processed <= ? AND days_billed >= ?
        ORDER BY 1, 3"""
    return _recs(con, sql, [NETWORK, limit, days], "idle_network",
                 "Delete {ResourceId}: only hourly charges for {days_billed} days (processed {processed})",
                 [f"Idle: billed hourly for at least {days} days with at most {limit} units (GB, LCU) processed.",
                  "Saving: the whole cost of the gateway or load balancer."],
                 Decimal(1), days, ("processed", "days_billed"))


def gp2_volumes(con, cfg: dict) -> list[Recommendation]:
    days = int(cfg["window_days"])
    sql = f"""WITH {_window(con, days)}
        SELECT {RESOURCE_COLS} FROM w JOIN live USING ("ProviderName", "ResourceId")
        WHERE "ProviderName" = 'AWS' AND regexp_matches(txt, '\\bgp2\\b') AND NOT txt LIKE '%snapshot%'
        GROUP BY "ProviderName", "BillingCurrency", "ResourceId" ORDER BY 1, 3"""
    return _recs(con, sql, [], "gp2_to_gp3", "Change volume {ResourceId} from gp2 to gp3",
                 ["gp3 lists at 80% of gp2's price per GB-month (us-east-1: 0.08 vs 0.10 USD); the saving is 20% "
                  "of the volume's observed cost.",
                  "gp3 includes 3,000 IOPS and 125 MB/s; a gp2 volume above 1 TB had more baseline IOPS and may "
                  "need provisioned IOPS on gp3 (not visible in the bill)."], GP3_SAVING, days)


def nonprod_always_on(con, cfg: dict) -> list[Recommendation]:
    days = int(cfg["window_days"])
    envs = [str(e).lower() for e in cfg["nonprod_envs"]]
    ratio = Decimal(str(cfg["always_on_ratio"]))
    sql = f"""WITH {_window(con, days)},
        h AS (SELECT * FROM w JOIN live USING ("ProviderName", "ResourceId")
              WHERE env IN (SELECT unnest(?)) AND "PricingUnit" ILIKE '%hours'
                AND "ChargePeriodStart" >= hi - INTERVAL {days} DAY),
        per_day AS (SELECT "ProviderName", "ResourceId", CAST("ChargePeriodStart" AS DATE) AS day,
                           sum("PricingQuantity") AS q,
                           sum(epoch("ChargePeriodEnd") - epoch("ChargePeriodStart")) / 3600 AS line_hours,
                           count(DISTINCT "ChargePeriodStart") AS periods
                    FROM h GROUP BY 1, 2, 3),
        steady AS (SELECT "ProviderName", "ResourceId", count(*) AS days_billed, min(q) AS min_q, max(q) AS max_q,
                          sum(periods) AS periods, bool_and(line_hours >= 24 * periods) AS daily
                   FROM per_day GROUP BY 1, 2)
        SELECT {RESOURCE_COLS}, any_value(env) AS env, any_value(s.days_billed) AS days_billed,
               sum("EffectiveCost") FILTER (WHERE "CommitmentDiscountId" IS NULL) AS priced_cost
        FROM h JOIN steady s USING ("ProviderName", "ResourceId")
        WHERE s.days_billed >= ? AND CASE WHEN s.daily THEN s.min_q >= ? * s.max_q
                                          ELSE s.periods >= 0.95 * 24 * ? END
        GROUP BY "ProviderName", "BillingCurrency", "ResourceId"
        HAVING priced_cost > 0 ORDER BY 1, 3"""
    return _recs(con, sql, [envs, days, ratio, days], "nonprod_schedule",
                 "Run {ResourceId} (env={env}) 12 hours on weekdays only instead of 24x7",
                 ["Runs 24x7: usage on every day of the window at no less than "
                  f"{ratio:%} of its busiest day (hourly bills: in at least 95% of the hours).",
                  "A 12 h x 5 day schedule runs 60 of 168 hours: it saves 64.3% of the on-demand cost; committed "
                  "usage saves nothing until the commitment is resized."],
                 SCHEDULE_SAVING, days, ("env", "days_billed"))


DETECTORS = (idle_public_ips, unattached_volumes, old_snapshots, idle_network, gp2_volumes, nonprod_always_on)


def find(con: duckdb.DuckDBPyConnection, config: dict) -> list[Recommendation]:
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}}
    out = []
    for detector in DETECTORS:
        out += detector(con, cfg)
    return out
