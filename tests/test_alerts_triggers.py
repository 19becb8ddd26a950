"""Triggers over the demo dataset (three clouds, August-October 2026) with real receivers: the September BigQuery
spike is found as one anomaly episode with expected vs actual and its top contributors, alerted once and updated
while it lasts; budget thresholds on actual and forecast, the overrun forecast; ingestion failures; digests."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
import yaml
from sqlalchemy import select

from app import demo, sources
from app.alerts import anomaly, store, triggers
from app.control import AlertEvent, IngestRun
from app.ingest import ingest
from app.runtime import Runtime
from app.settings import Settings
from tests.alerts_fixtures import Receiver, allow_local

NOW = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def demo_rt(tmp_path_factory):
    from app.allocation import engine
    from app.rollups import refresh_rt

    root = tmp_path_factory.mktemp("alerts-demo")
    rt = Runtime(Settings(data_dir=root / "data"))
    rt.init()
    for name, path in demo.write_exports(root / "exports").items():
        provider, fmt = demo.source_formats()[name]
        sources.add(rt, name, provider, fmt, str(path))
        ingest(rt, name)
    engine.apply(rt, yaml.safe_load(demo.RULES_FILE.read_text()), note="demo rules")
    refresh_rt(rt)
    yield rt
    rt.close()


@pytest.fixture
def clean(demo_rt):
    """The demo runtime with no alert state left by another test."""
    from app.alerts.models import AlertAttempt, AlertChannel, AlertDelivery, AlertRule

    allow_local(demo_rt)
    with demo_rt.sessions() as session:
        for model in (AlertAttempt, AlertDelivery, AlertRule, AlertChannel, AlertEvent, IngestRun):
            session.query(model).delete()
        session.commit()
    return demo_rt


def test_the_september_bigquery_spike_is_found(clean):
    found = triggers.detect_anomalies(clean, date(2026, 9, 1), date(2026, 11, 1), anomaly.Params(),
                                      anomaly.DEFAULT_DIMENSIONS)
    bq = [e for e in found if e["monitor"] == "ServiceName=BigQuery"]
    assert len(bq) == 1
    (ep,) = bq
    assert (ep["first_day"], ep["last_day"], ep["days"]) == (date(2026, 9, 21), date(2026, 9, 23), 3)
    assert ep["actual"] > 2 * ep["expected"] and ep["impact"] == ep["actual"] - ep["expected"]
    # nothing else in the demo is an anomaly: only the monitors the spike is part of (the GCP project that runs
    # BigQuery and its team), the same days; monthly fees, tax and credits on the 1st are not scored
    assert {(e["monitor"], e["first_day"], e["days"]) for e in found} == {
        ("ServiceName=BigQuery", date(2026, 9, 21), 3), ("SubAccountId=acme-data-prod", date(2026, 9, 21), 3),
        ("team=data", date(2026, 9, 21), 3)}


def test_anomaly_alert_fires_once_with_context_and_updates(clean):
    hook = Receiver().start()
    try:
        store.create_channel(clean, "finance-hook", "webhook", hook.url, finance=True)
        out = triggers.evaluate(clean, as_of=date(2026, 9, 22), now=NOW)  # the spike's first day is in
        assert out["anomalies"]["raised"] >= 1, out
        events = [r.json["event"] for r in hook.received if r.json["event"]["kind"] == "anomaly"]
        # one incident, one finance message: the project's episode is folded into the service's; the team's
        # episode goes to the team (no data-team channel here: no_route)
        assert [e["details"]["monitor"] for e in events] == ["ServiceName=BigQuery"]
        ev = events[0]
        assert ev["details"]["also"] == ["SubAccountId=acme-data-prod"]
        assert "Same incident seen on: SubAccountId=acme-data-prod." in ev["message"]
        assert ev["identity"] == "anomaly|ServiceName=BigQuery|USD|2026-09-21"
        assert "actual vs" in ev["message"] and "expected" in ev["message"] and "Top contributors" in ev["message"]
        details = ev["details"]
        assert Decimal(details["actual"]) - Decimal(details["expected"]) == Decimal(details["impact"])
        skus = details["top_contributors"]["SkuId"]
        assert skus and Decimal(skus[0]["impact"]) > Decimal(details["impact"]) / 2  # the analysis SKU
        assert details["top_contributors"]["SubAccountId"]
        n = len(hook.received)
        # the next two days are the same episode: updated, no new message unless its impact doubles
        triggers.evaluate(clean, as_of=date(2026, 9, 23), now=NOW)
        triggers.evaluate(clean, as_of=date(2026, 9, 24), now=NOW)
        with clean.sessions() as session:
            row = session.scalar(select(AlertEvent).where(AlertEvent.identity == ev["identity"]))
            assert row.details["days"] == 3 and row.occurrences == 3 and row.status == "open"
        updates = [r.json["event"] for r in hook.received[n:]
                   if r.json["event"]["identity"] == ev["identity"]]
        assert all(u["update"] for u in updates) and len(updates) <= 2
        # after the episode (no flagged day for longer than the gap) the event resolves
        triggers.evaluate(clean, as_of=date(2026, 10, 10), now=NOW)
        with clean.sessions() as session:
            assert session.scalar(select(AlertEvent.status).where(AlertEvent.identity == ev["identity"])) == \
                "resolved"
    finally:
        hook.stop()


def test_budget_thresholds_on_actual_and_forecast(clean):
    from app.itfm import budget_statuses
    from app.itfm.cli import demo_budgets

    demo_budgets(clean)
    statuses = budget_statuses(clean, date(2026, 10, 20))
    assert statuses
    pay = Receiver().start()
    try:
        store.create_channel(clean, "payments", "slack", pay.url, team="payments")
        store.create_rule(clean, "budget thresholds", kinds=["budget"], mode="mute",
                          params={"thresholds": [50, 80, 100], "forecast_thresholds": [90, 100]})
        store.create_rule(clean, "mute-other", kinds=["anomaly", "digest.*"], mode="mute")
        triggers.evaluate(clean, as_of=date(2026, 10, 20), now=NOW)
        with clean.sessions() as session:
            events = list(session.scalars(select(AlertEvent).where(AlertEvent.kind.like("budget.%"))))
        expected = set()
        for s in statuses:
            crossed = [t for t in (50, 80, 100) if s.pct_of_budget_actual is not None
                       and s.pct_of_budget_actual >= t]
            if crossed:
                expected.add(f"budget.actual|{s.budget_id}|{s.period}|{crossed[-1]}")
            fc = [t for t in (90, 100) if s.pct_of_budget_forecast is not None and s.pct_of_budget_forecast >= t]
            if fc:
                expected.add(f"budget.forecast|{s.budget_id}|{s.period}|{fc[-1]}")
            if s.projected_crossing_date and not s.crossed and s.period_start <= s.projected_crossing_date < \
                    s.period_end:
                expected.add(f"budget.overrun|{s.budget_id}|{s.period}")
        assert expected and {e.identity for e in events} == expected
        pay_events = [e for e in events if e.team == "payments"]
        got = [r.json for r in pay.received]
        assert len(got) == len(pay_events) and all(g["blocks"][0]["text"]["text"].startswith("Budget") for g in got)
        # the same evaluation again sends nothing new
        triggers.evaluate(clean, as_of=date(2026, 10, 20), now=NOW)
        assert len(pay.received) == len(pay_events)
    finally:
        pay.stop()


def test_ingest_failure_fires_once_and_resolves(clean):
    hook = Receiver().start()
    try:
        store.create_channel(clean, "ops", "webhook", hook.url, finance=True)
        store.create_rule(clean, "only-ingest", kinds=["anomaly", "budget.*", "digest.*"], mode="mute")
        with clean.sessions() as session:
            for i, status in enumerate(("succeeded", "failed")):
                session.add(IngestRun(source="aws-demo", trigger="scheduled", status=status, runner="test",
                                      started_at=datetime(2026, 11, 1, i, tzinfo=timezone.utc), attempts=3,
                                      error="S3 bucket vanished" if status == "failed" else None,
                                      deliveries={}, steps=[]))
            session.commit()
        triggers.evaluate(clean, now=NOW)
        triggers.evaluate(clean, now=NOW)
        (got,) = [r.json["event"] for r in hook.received]
        assert got["kind"] == "ingest.failure" and "S3 bucket vanished" in got["message"]
        assert got["severity"] == "critical" and got["source"] == "aws-demo"
        with clean.sessions() as session:
            session.add(IngestRun(source="aws-demo", trigger="scheduled", status="succeeded", runner="test",
                                  started_at=datetime(2026, 11, 1, 5, tzinfo=timezone.utc), attempts=1,
                                  deliveries={}, steps=[]))
            session.commit()
        assert triggers.evaluate(clean, now=NOW)["ingest_failures"]["resolved"] == 1
    finally:
        hook.stop()


def test_weekly_digest_per_team(clean):
    hook = Receiver().start()
    try:
        store.create_channel(clean, "data-team", "webhook", hook.url, team="data")
        store.create_rule(clean, "weekly digest", kinds=["digest.weekly"], mode="add", channels=["data-team"],
                          params={"teams": ["data"]})
        store.create_rule(clean, "mute-rest", kinds=["anomaly", "budget.*"], mode="mute")
        triggers.evaluate(clean, as_of=date(2026, 10, 29), now=NOW)
        triggers.evaluate(clean, as_of=date(2026, 10, 29), now=NOW)  # once per period
        (got,) = [r.json["event"] for r in hook.received]
        assert got["kind"] == "digest.weekly" and got["identity"] == "digest.weekly|team:data|2026-10-22"
        facts = dict(got["details"]["facts"])
        from app.costs import parse_query, run_query

        with clean.warehouse.connect(read_only=True) as con:
            q = parse_query(start="2026-10-22", end="2026-10-29", granularity="month", filters=["team=data"],
                            metric="EffectiveCost")
            (row,) = [r for r in run_query(con, q).rows if r["currency"] == "USD"]
        assert facts["Spend (USD)"] == f"{row['cost'].quantize(Decimal('0.01')):,} USD"
        assert any(k.startswith("Mover: ") for k in facts)
    finally:
        hook.stop()


def test_fold_related_keeps_unrelated_and_team_episodes_apart():
    d = date(2026, 9, 21)

    def ep(monitor, impact, first=d, currency="USD"):
        return {"monitor": monitor, "impact": Decimal(impact), "first_day": first, "currency": currency}

    svc = (ep("ServiceName=BigQuery", 500), {"SubAccountId": [{"value": "proj-a"}]})
    acct = (ep("SubAccountId=proj-a", 600), {"ServiceName": [{"value": "BigQuery"}]})
    other = (ep("SubAccountId=proj-b", 300), {})  # same day, not a contributor of BigQuery
    later = (ep("SubAccountId=proj-a", 200, first=date(2026, 9, 25)), {})  # another day
    eur = (ep("SubAccountId=proj-a", 200, currency="EUR"), {})  # another currency
    team = (ep("team=data", 700), {"SubAccountId": [{"value": "proj-a"}]})
    kept = triggers.fold_related([acct, other, later, eur, team, svc])
    assert [(k[0]["monitor"], k[2]) for k in kept] == [
        ("ServiceName=BigQuery", ["SubAccountId=proj-a"]), ("SubAccountId=proj-b", []), ("SubAccountId=proj-a", []),
        ("SubAccountId=proj-a", []), ("team=data", [])]
    assert [k[0]["first_day"] for k in kept][2:4] in ([date(2026, 9, 25), d], [d, date(2026, 9, 25)])


def test_cli_and_api_find_the_demo_spike(demo_rt, monkeypatch):
    from tests.helpers import api_client, cli

    monkeypatch.setenv("CLOUDTALLY_DATA_DIR", str(demo_rt.settings.data_dir))
    r = cli("alerts", "anomalies", "--start", "2026-09-01", "--end", "2026-10-01", "--dimension", "ServiceName",
            "--output", "json")
    assert r.exit_code == 0, r.stderr
    (found,) = __import__("json").loads(r.stdout)
    assert (found["monitor"], found["first_day"], found["days"]) == ("ServiceName=BigQuery", "2026-09-21", 3)
    r = cli("alerts", "anomalies", "--start", "2026-09-01", "--dimension", "ServiceName")
    assert r.exit_code == 0 and "BigQuery" in r.stdout and "2026-09-21 +3" in r.stdout
    assert "2026-09-01 .. 2026-10-01" in r.stdout
    with api_client(demo_rt, "finance") as c:
        body = c.get("/v1/alerts/anomalies", params={"start": "2026-09-01", "end": "2026-10-01",
                                                      "dimension": "ServiceName"}).json()
    (a,) = body["anomalies"]
    assert a["monitor"] == "ServiceName=BigQuery" and a["first_day"] == "2026-09-21" and a["days"] == 3
    assert Decimal(a["actual"]) - Decimal(a["expected"]) == Decimal(a["impact"]) and a["peak_percent"] > 60
    assert [d["day"] for d in a["flagged_days"]] == ["2026-09-21", "2026-09-22", "2026-09-23"]


def test_tag_monitors(clean):
    """A monitor on a tag key (rule params `dimensions: ["tag:team"]`): the spike shows on the tag value too."""
    found = triggers.detect_anomalies(clean, date(2026, 9, 1), date(2026, 10, 1), anomaly.Params(), ("tag:team",))
    assert [(e["monitor"], e["first_day"], e["days"]) for e in found] == [("tag:team=data", date(2026, 9, 21), 3)]
