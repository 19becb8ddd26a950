"""Recommendations for the demo dataset (`cloudtally demo`): commitments and waste from the bill, and rightsizing
from CPU metrics the demo generates for its AWS VMs and serves through moto's CloudWatch (moto[server], a dev
dependency: without it the demo skips rightsizing and says so).

The generated CPU (hourly maxima over the bill's last 14 days, seeded by the resource id) follows each workload:
checkout-api VMs run a diurnal 10-30% (room to halve them), the platform cluster's c6i nodes 55-75%, the search
indexer 30-50%, and the sandbox's experiments at 1-3% (idle).
"""
from __future__ import annotations

import math
import os
import random
import socket
from datetime import timedelta

PROFILES = {  # the VM's app tag -> (low, high) hourly CPU %
    "checkout-api": (10, 30), "k8s": (55, 75), "indexer": (30, 50), "experiments": (1, 3)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_history(rt) -> tuple[dict[str, list], str | None]:
    """{ResourceId: [(hour, cpu %)]} for the demo's AWS VMs over the bill's last 14 days, and their region."""
    from app.warehouse import COST_TABLE

    with rt.warehouse.connect(read_only=True) as con:
        rows = con.execute(f"""
            WITH b AS (SELECT max("ChargePeriodEnd") AS hi FROM {COST_TABLE}
                       WHERE "ProviderName" = 'AWS' AND "ChargeCategory" = 'Usage')
            SELECT DISTINCT "ResourceId", map_extract("Tags", 'app')[1], "RegionId", b.hi FROM {COST_TABLE}, b
            WHERE "ProviderName" = 'AWS' AND "SkuMeter" = 'Compute Instance' AND "PricingUnit" = 'Hours'
              AND "ChargePeriodStart" >= b.hi - INTERVAL 14 DAY
            ORDER BY 1""").fetchall()
    series, regions = {}, {}
    for rid, name, region, hi in rows:
        profile = next((v for k, v in PROFILES.items() if name and name.startswith(k)), (20, 40))
        rng = random.Random(rid)
        start = hi - timedelta(days=14)
        points = []
        for h in range(14 * 24):
            t = start + timedelta(hours=h)
            day = 0.5 + 0.5 * math.sin(2 * math.pi * (t.hour - 9) / 24)
            points.append((t, round(profile[0] + (profile[1] - profile[0]) * day * rng.uniform(0.85, 1.0), 2)))
        series[rid] = points
        regions.setdefault(region, []).append(rid)
    return series, regions


def recommend(rt, console=None) -> dict:
    """Refresh the demo's recommendations (rightsizing through a moto CloudWatch holding the generated metrics) and,
    with a rich console, print the biggest ones."""
    summary = _refresh(rt, console)
    if console is not None:
        from rich.table import Table

        from optimizers import ledger

        with rt.sessions() as session:
            total, rows = ledger.list_recommendations(session, limit=8)
        table = Table(title=f"Recommendations: {total} open (`cloudtally recommend list`), the biggest")
        for col in ("kind", "action", "monthly savings"):
            table.add_column(col, justify="right" if col == "monthly savings" else "left")
        for r in rows:
            table.add_row(r["kind"], r["action"], f"{r['monthly_savings']} {r['currency']}")
        console.print(table)
    return summary


def _refresh(rt, console) -> dict:
    from optimizers import ledger

    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        if console is not None:
            console.print("rightsizing skipped: moto[server] is not installed (pip install -e '.[demo]'), so the "
                          "demo cannot serve CloudWatch metrics", markup=False)  # [demo] is not rich markup
        return ledger.refresh(rt, {})
    import logging

    from optimizers.metrics import aws

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo")
    os.environ.pop("AWS_SESSION_TOKEN", None)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        series, regions = cpu_history(rt)
        for region, rids in regions.items():
            aws.put_metrics({r: series[r] for r in rids}, region, {"endpoint_url": endpoint})
        return ledger.refresh(rt, {"metrics": {"AWS": {"endpoint_url": endpoint, "period": 3600}}})
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
