"""Rightsizing: the VMs the bill shows, judged on their CPU (and memory where measured) over the last 14 days.

Which VMs: Usage lines of ServiceSubcategory Virtual Machines billed in hours, not Spot, not a NAT gateway or
load balancer (AWS's CUR bills those under EC2), with a line on the
provider's last day of data; the instance type comes from SkuPriceDetails' InstanceType, else from the
description. Metrics come from the connector of the VM's cloud (optimizers/metrics), only for the clouds named in
the `metrics` setting (`cloudtally recommend refresh --metrics aws --metrics azure:subscription=...`); without
it, rightsizing finds nothing (billing data has no utilization).

Rules (each configurable, defaults after AWS Compute Optimizer, ../shared/reference/methods.md section 2.1):
- `rightsize_idle`: peak CPU < `idle_cpu` (5%) over the window and, where measured, network out < `idle_network_mb`
  (5 MB) a day on average -> stop or delete it; saving = its whole on-demand cost (committed usage saves nothing
  until the commitment is reused, so it is not counted; the finding says `under_commitment`).
- `rightsize_downsize`: the smallest size of the same family whose capacity holds the P99.5 of CPU (`cpu_percentile`)
  plus 20% headroom (`headroom`): P99.5 x 1.2 x vCPU(now) / vCPU(target) <= `cpu_target` (90%), and, where memory
  is measured, max memory x 1.2 x GiB(now) / GiB(target) <= 100%; saving = its cost x (1 - price(target) /
  price(now)) at the effective rate the bill shows (list prices only give the ratio). Two margins keep the target
  size right for the next fortnight as well (bench/rightsizing_eval.py: with neither, 13% of downsizes broke P99.5
  x 1.2 <= 100% on held-out days): the decision target is 90% rather than 100%, and when the P99.5 of the
  window's second half exceeds the first half's (`project_trend`), that growth is carried one half further
  (P = max(P99.5, P99.5(second half) x growth)).
- `rightsize_generation`: a previous-generation family (m4, c4, r4, t2 on AWS; Dsv3, Esv3 on Azure; n1-standard on
  Google Cloud) -> the same size in the current generation (m6i, c6i, r6i, t3; Dsv5, Esv5; n2d-standard) when that
  lists cheaper; saving = cost x (1 - price(new) / price(old)). Azure's v3 and v5 list alike, so there it finds
  nothing; n1-standard -> n2d-standard lists 11.1% cheaper.
Sizes, prices and generations are in SIZES and GENERATIONS below (public on-demand Linux prices, us-east-1 /
eastus / us-central1; only their ratios are used).
"""
from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import duckdb
import numpy as np

from app.warehouse import COST_TABLE
from optimizers import Recommendation, jsonable, money, monthly, window_floor
from optimizers.metrics import VM, Metrics
from optimizers.waste import NETWORK

DEFAULTS = {"window_days": 14, "idle_cpu": 5.0, "idle_network_mb": 5.0, "cpu_percentile": 99.5, "headroom": 0.2,
            "cpu_target": 90.0, "project_trend": True}

# type -> (vCPU, memory GiB, list price per hour in USD)
SIZES: dict[str, tuple[int, float, str]] = {}
for _fam, _sizes in {
    "m6i": {"large": (2, 8, "0.096"), "xlarge": (4, 16, "0.192"), "2xlarge": (8, 32, "0.384"),
            "4xlarge": (16, 64, "0.768")},
    "c6i": {"large": (2, 4, "0.085"), "xlarge": (4, 8, "0.17"), "2xlarge": (8, 16, "0.34"), "4xlarge": (16, 32, "0.68")},
    "r6i": {"large": (2, 16, "0.126"), "xlarge": (4, 32, "0.252"), "2xlarge": (8, 64, "0.504")},
    "m4": {"large": (2, 8, "0.1"), "xlarge": (4, 16, "0.2"), "2xlarge": (8, 32, "0.4")},
    "c4": {"large": (2, 3.75, "0.1"), "xlarge": (4, 7.5, "0.199"), "2xlarge": (8, 15, "0.398")},
    "r4": {"large": (2, 15.25, "0.133"), "xlarge": (4, 30.5, "0.266"), "2xlarge": (8, 61, "0.532")},
    "t3": {"medium": (2, 4, "0.0416"), "large": (2, 8, "0.0832"), "xlarge": (4, 16, "0.1664")},
    "t2": {"medium": (2, 4, "0.0464"), "large": (2, 8, "0.0928"), "xlarge": (4, 16, "0.1856")},
}.items():
    for _size, _spec in _sizes.items():
        SIZES[f"{_fam}.{_size}"] = _spec
for _n, _p in ((2, "0.096"), (4, "0.192"), (8, "0.384"), (16, "0.768")):
    SIZES[f"Standard_D{_n}s_v5"] = (_n, _n * 4, _p)
for _n, _p in ((2, "0.126"), (4, "0.252"), (8, "0.504"), (16, "1.008")):
    SIZES[f"Standard_E{_n}s_v5"] = (_n, _n * 8, _p)
for _n in (2, 4, 8, 16, 32):
    SIZES[f"n2-standard-{_n}"] = (_n, _n * 4, str(Decimal("0.097118") * _n / 2))
# previous generations elsewhere: Azure's v3 series list at the v5 price in eastus (a move saves nothing there, so
# the rule finds none); GCP's first-generation n1 lists above the AMD n2d of the second (us-central1)
for _n, _p in ((2, "0.096"), (4, "0.192"), (8, "0.384"), (16, "0.768")):
    SIZES[f"Standard_D{_n}s_v3"] = (_n, _n * 4, _p)
for _n, _p in ((2, "0.126"), (4, "0.252"), (8, "0.504"), (16, "1.008")):
    SIZES[f"Standard_E{_n}s_v3"] = (_n, _n * 8, _p)
for _n in (1, 2, 4, 8, 16, 32):
    SIZES[f"n1-standard-{_n}"] = (_n, _n * 3.75, str(Decimal("0.0475") * _n))
    SIZES[f"n2d-standard-{_n}"] = (_n, _n * 4, str(Decimal("0.042246") * _n))
# family key (see `family`) -> the current generation's family key
GENERATIONS = {"m4": "m6i", "c4": "c6i", "r4": "r6i", "t2": "t3", "Standard_D*s_v3": "Standard_D*s_v5",
               "Standard_E*s_v3": "Standard_E*s_v5", "n1-standard": "n2d-standard"}
TYPE_IN_TEXT = re.compile(r"\b([a-z]\d[a-z]*\.\d*x?large|[a-z]\d\.(?:nano|micro|small|medium)|Standard_[A-Z]\d+[a-z]*_v\d|"
                          r"[a-z]\d-(?:standard|highmem|highcpu)-\d+)\b")


def family(itype: str) -> tuple[str, int]:
    """(family key, vCPU) of a known type: AWS `m6i`, Azure `Standard_D*s_v5`, GCP `n2-standard`."""
    if itype.startswith("Standard_"):
        return re.sub(r"\d+", "*", itype, count=1), SIZES[itype][0]
    if "-" in itype:
        return itype.rsplit("-", 1)[0], SIZES[itype][0]
    return itype.split(".", 1)[0], SIZES[itype][0]


def same_family(itype: str) -> list[str]:
    fam = family(itype)[0]
    return sorted((t for t in SIZES if family(t)[0] == fam), key=lambda t: (SIZES[t][0], SIZES[t][1]))


def vms_in_bill(con: duckdb.DuckDBPyConnection, days: int) -> list[dict]:
    rows = con.execute(f"""
        WITH b AS (SELECT "ProviderName" AS provider, max("ChargePeriodEnd") AS hi FROM {COST_TABLE}
                   WHERE "ChargeCategory" = 'Usage' GROUP BY 1)
        SELECT "ProviderName", "ResourceId", "BillingCurrency", any_value("BillingAccountId"),
               any_value("SubAccountId"), any_value("RegionId"), any_value("SkuPriceDetails"),
               any_value("ChargeDescription"), max(hi), sum("EffectiveCost"),
               sum("EffectiveCost") FILTER (WHERE "CommitmentDiscountId" IS NULL),
               bool_or("CommitmentDiscountId" IS NOT NULL), max("ChargePeriodEnd")
        FROM {COST_TABLE} c JOIN b ON b.provider = c."ProviderName"
        WHERE "ChargeCategory" = 'Usage' AND "ServiceSubcategory" = 'Virtual Machines' AND "PricingUnit" = 'Hours'
          AND coalesce("PricingCategory", '') <> 'Dynamic' AND "ResourceId" IS NOT NULL
          AND coalesce("CommitmentDiscountStatus", '') <> 'Unused'
          AND NOT regexp_matches(lower(concat_ws(' ', "SkuMeter", "ChargeDescription", "ResourceType")), ?)
          AND "ChargePeriodStart" >= {window_floor(con, days)} AND "ChargePeriodStart" >= hi - INTERVAL {int(days)} DAY
        GROUP BY 1, 2, 3 HAVING max("ChargePeriodEnd") >= max(hi) - INTERVAL 1 DAY ORDER BY 1, 2""", [NETWORK]).fetchall()
    out = []
    for prov, rid, cur, acct, sub, region, details, text, hi, cost, on_demand, committed, _ in rows:
        itype = None
        if details:
            try:
                itype = json.loads(details).get("InstanceType")
            except (ValueError, AttributeError):
                itype = None
        if not itype and text:
            m = TYPE_IN_TEXT.search(text)
            itype = m.group(1) if m else None
        out.append({"provider": prov, "resource_id": rid, "currency": cur, "account": acct, "sub": sub,
                    "region": region, "type": itype, "hi": hi, "cost": cost, "on_demand": on_demand or Decimal(0),
                    "committed": committed})
    return out


def _connector(provider: str):
    from optimizers.metrics import aws, azure, gcp

    return {"AWS": aws, "Microsoft": azure, "Google Cloud": gcp}.get(provider)


PROVIDER_KEYS = {"aws": "AWS", "azure": "Microsoft", "gcp": "Google Cloud"}


def parse_metrics_option(items: list[str] | str | dict | None) -> dict[str, dict]:
    """`aws`, `aws:endpoint_url=http://...,region=us-east-1`, `azure:subscription=...`: {ProviderName: options}."""
    if not items:
        return {}
    if isinstance(items, dict):
        return items
    if isinstance(items, str):
        items = [items]
    out = {}
    for item in items:
        cloud, _, rest = item.partition(":")
        if cloud not in PROVIDER_KEYS:
            raise ValueError(f"metrics {item!r}: the cloud must be aws, azure or gcp")
        options = {}
        for pair in filter(None, rest.split(",")):
            k, sep, v = pair.partition("=")
            if not sep:
                raise ValueError(f"metrics {item!r}: {pair!r} is not KEY=VALUE")
            options[k] = v
        out[PROVIDER_KEYS[cloud]] = options
    return out


def judge(vm: dict, m: Metrics, cfg: dict) -> tuple[str, str | None, dict] | None:
    """(kind, target type, evidence) for one VM's metrics, or None when it is right-sized."""
    cpu = np.asarray(m.cpu, dtype=float)
    if not len(cpu):
        return None
    peak, p = float(cpu.max()), float(np.percentile(cpu, cfg["cpu_percentile"]))
    trend = 1.0
    if cfg.get("project_trend") and len(cpu) >= 4:
        # growth between the window's halves, carried one half further: the size must hold the next fortnight too
        first, last = (float(np.percentile(h, cfg["cpu_percentile"])) for h in np.array_split(cpu, 2))
        if first > 0 and last > first:
            trend = last / first
            p = max(p, last * trend)
    net = float(np.mean(m.network_out_bytes_per_day)) / 1e6 if m.network_out_bytes_per_day else None
    mem = float(np.max(m.memory)) if m.memory else None
    evidence = {"samples": len(cpu), "peak_cpu": round(peak, 2), "p_cpu": round(p, 2), "trend": round(trend, 4),
                "cpu_percentile": cfg["cpu_percentile"], "network_out_mb_per_day": None if net is None else round(net, 2),
                "max_memory": None if mem is None else round(mem, 2), "metrics_source": m.source,
                "instance_type": vm["type"]}
    if peak < cfg["idle_cpu"] and (net is None or net < cfg["idle_network_mb"]):
        return "rightsize_idle", None, evidence
    itype = vm["type"]
    if itype not in SIZES:
        return None
    vcpu, gib, _ = SIZES[itype]
    fits = []
    for t in same_family(itype):
        tv, tg, _ = SIZES[t]
        if tv >= vcpu:
            break
        need_cpu = p * (1 + cfg["headroom"]) * vcpu / tv
        need_mem = None if mem is None else mem * (1 + cfg["headroom"]) * gib / tg
        if need_cpu <= cfg["cpu_target"] and (need_mem is None or need_mem <= 100):
            fits.append((t, need_cpu, need_mem))
    if fits:
        t, need_cpu, need_mem = fits[0]
        evidence.update(target_cpu=round(need_cpu, 2), target_memory=None if need_mem is None else round(need_mem, 2))
        return "rightsize_downsize", t, evidence
    target = next_generation(itype)
    if target in SIZES and Decimal(SIZES[target][2]) < Decimal(SIZES[itype][2]):
        return "rightsize_generation", target, evidence
    return None


def next_generation(itype: str) -> str | None:
    """The same size in the current generation: m4.xlarge -> m6i.xlarge, Standard_D4s_v3 -> Standard_D4s_v5,
    n1-standard-4 -> n2d-standard-4; None when the family is current or unknown."""
    if itype not in SIZES:
        return None
    fam = family(itype)[0]
    new = GENERATIONS.get(fam)
    if new is None:
        return None
    if itype.startswith("Standard_"):
        return new.replace("*", re.search(r"\d+", itype).group(0), 1)
    if "-" in itype:
        return f"{new}-{itype.rsplit('-', 1)[1]}"
    return f"{new}.{itype.split('.', 1)[1]}"


def find(con: duckdb.DuckDBPyConnection, config: dict) -> list[Recommendation]:
    cfg = {**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}}
    sources = parse_metrics_option(config.get("metrics"))
    if not sources:
        return []
    days = int(cfg["window_days"])
    vms = [v for v in vms_in_bill(con, days) if v["provider"] in sources]
    out = []
    for provider, options in sources.items():
        group = [v for v in vms if v["provider"] == provider]
        if not group:
            continue
        hi = max(v["hi"] for v in group)
        metrics = _connector(provider).fetch(
            [VM(v["resource_id"], provider, v["region"], v["type"], v["sub"]) for v in group],
            hi - timedelta(days=days), hi, options)
        for v in group:
            m = metrics.get(v["resource_id"])
            verdict = judge(v, m, cfg) if m else None
            if verdict is None:
                continue
            kind, target, evidence = verdict
            hours = days * 24
            if kind == "rightsize_idle":
                priced, share = v["on_demand"], Decimal(1)
                action = f"Stop or delete {v['resource_id']}: peak CPU {evidence['peak_cpu']}% in {days} days"
            else:
                priced = v["cost"]
                share = 1 - Decimal(SIZES[target][2]) / Decimal(SIZES[v["type"]][2])
                verb = "Downsize" if kind == "rightsize_downsize" else "Move"
                action = f"{verb} {v['resource_id']} from {v['type']} to {target}"
            evidence.update(window_days=days, window_cost=v["cost"], priced_cost=priced, share_saved=share,
                            target_type=target)
            out.append(Recommendation(
                kind=kind, category="rightsizing", key=f"{kind}|{provider}|{v['account']}|{v['resource_id']}",
                provider=provider, currency=v["currency"], action=action,
                monthly_savings=monthly(priced * share, hours), monthly_cost=monthly(v["cost"], hours),
                billing_account_id=v["account"], sub_account_id=v["sub"], resource_id=v["resource_id"],
                region=v["region"], under_commitment=bool(v["committed"]),
                data_through=(hi - timedelta(seconds=1)).date(), evidence=jsonable(evidence),
                assumptions=[
                    f"CPU over {days} days from {evidence['metrics_source']}; P{cfg['cpu_percentile']} plus "
                    f"{cfg['headroom']:.0%} headroom must fit the target's vCPUs"
                    + ("; memory measured" if evidence["max_memory"] is not None else
                       "; memory not measured (no agent): the target keeps the family's memory per vCPU"),
                    "Saving at the effective rate the bill shows; list prices only give the size ratio."
                    + (" Part of its usage is under a commitment: the saving needs the commitment reused."
                       if v["committed"] else "")]))
    return [r for r in out if r.monthly_savings > 0]


__all__ = ["find", "judge", "SIZES", "money"]
