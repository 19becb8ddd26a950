"""The delivery ledger against real receivers: retries on 500 and 429 (Retry-After honoured), bounded, failed
events visible; a receiver down for a while gets every alert once it is back, also across a restart; routing,
rule overrides, dedupe by identity, quiet hours and the per-channel rate limit."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from app.alerts import delivery, store
from app.alerts.events import raise_event, resolve
from app.control import AlertEvent
from app.quality import pending_alerts
from tests.alerts_fixtures import Receiver, allow_local, receiver, receivers  # noqa: F401
from tests.conftest import make_runtime

NOW = datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc)


def _raise(rt, team="payments", kind="anomaly", identity=None, message="spend jumped", now=NOW, **kw):
    with rt.sessions() as session:
        event, what = raise_event(session, kind, message, team=team, identity=identity, now=now, **kw)
        session.commit()
        return event.id, what


def _views(rt, **kw):
    with rt.sessions() as session:
        return delivery.list_deliveries(session, **kw)[1]


def _next(rt, pick=min):
    with rt.sessions() as session:
        from app.alerts.models import AlertDelivery

        return pick(d.next_attempt_at for d in session.scalars(select(AlertDelivery).where(
            AlertDelivery.status == "pending")))


def test_500_and_429_are_retried_honouring_retry_after(rt_any, receiver):
    rt = allow_local(rt_any, retry_base_delay=10, retry_max_delay=3600)
    store.create_channel(rt, "hook", "webhook", receiver.url, team="payments")
    receiver.script = [(429, {"Retry-After": "300"}), (503, {}), (200, {})]
    event_id, _ = _raise(rt)
    assert delivery.deliver_due(rt, NOW)["retrying"] == 1
    first_retry = _next(rt)
    assert first_retry >= NOW + timedelta(seconds=300)  # Retry-After wins over the 5-10 s backoff
    assert delivery.deliver_due(rt, NOW + timedelta(seconds=299))["retrying"] == 0  # not due yet
    assert len(receiver.received) == 1
    assert delivery.deliver_due(rt, first_retry)["retrying"] == 1
    second = _next(rt)
    assert first_retry + timedelta(seconds=10) <= second <= first_retry + timedelta(seconds=20)  # 2nd: 10-20 s
    assert delivery.deliver_due(rt, second)["succeeded"] == 1
    (view,) = _views(rt)
    assert [a["status_code"] for a in view["attempt_log"]] == [429, 503, 200]
    assert view["attempt_log"][0]["retry_after"] == 300 and view["attempt_log"][1]["error"] == "HTTP 503"
    assert view["status"] == "succeeded" and view["attempts"] == 3
    # the receiver got the same event three times, each signed with its own timestamp
    assert len({r.body for r in receiver.received}) == 1
    with rt.sessions() as session:
        assert session.get(AlertEvent, event_id).delivery_status == "delivered"


def test_retries_are_bounded_and_the_failed_event_stays_visible(rt_any, receiver):
    rt = allow_local(rt_any, max_attempts=3, retry_base_delay=1)
    store.create_channel(rt, "hook", "slack", receiver.url, team="payments")
    receiver.script = [(500, {})] * 10
    event_id, _ = _raise(rt)
    t = NOW
    for _ in range(5):
        delivery.deliver_due(rt, t)
        t += timedelta(hours=1)
    assert len(receiver.received) == 3
    (view,) = _views(rt)
    assert view["status"] == "failed" and view["last_error"] == "HTTP 500 (gave up after 3 attempts)"
    with rt.sessions() as session:
        event = session.get(AlertEvent, event_id)
        assert event.delivery_status == "failed" and event.delivered_at is None
        assert event_id in [e["id"] for e in pending_alerts(session)]  # GET /v1/alert-events still lists it


def test_a_receiver_down_for_a_while_gets_every_alert_after_a_restart(tmp_path, control_url):
    rt = allow_local(make_runtime(tmp_path / "data", control_url))
    down = Receiver().start()
    port = down.port
    down.stop()  # nothing listens on the port now
    store.create_channel(rt, "hook", "webhook", f"http://127.0.0.1:{port}/hook", team="payments")
    ids = [_raise(rt, message=f"alert {i}")[0] for i in range(3)]
    t = NOW
    for _ in range(3):  # three rounds against a closed port: connection refused, retried later
        counts = delivery.deliver_due(rt, t)
        assert counts["retrying"] == 3 and counts["failed"] == 0
        t = _next(rt, max)
    rt.close()  # the process goes away; the pending deliveries are rows in the control DB
    back = Receiver().start(port)
    try:
        rt2 = allow_local(make_runtime(tmp_path / "data", control_url))
        assert delivery.pending_count(rt2) == 3
        counts = delivery.deliver_due(rt2, t + timedelta(hours=2))
        assert counts["succeeded"] == 3
        assert sorted(r.json["event"]["message"] for r in back.received) == ["alert 0", "alert 1", "alert 2"]
        for v in _views(rt2):
            assert v["attempts"] == 4 and v["status"] == "succeeded"
            assert all(a["error"].startswith("ConnectionRefusedError") for a in v["attempt_log"][:3])
        with rt2.sessions() as session:
            assert all(session.get(AlertEvent, i).delivery_status == "delivered" for i in ids)
        rt2.close()
    finally:
        back.stop()


def test_routing_team_finance_and_rule_overrides(rt_any, receivers):
    rt = allow_local(rt_any)
    pay, _ = store.create_channel(rt, "pay", "slack", receivers["slack"].url, team="payments")
    fin, _ = store.create_channel(rt, "fin", "teams", receivers["teams"].url, finance=True)
    ops, _ = store.create_channel(rt, "ops", "webhook", receivers["webhook"].url, finance=True)
    store.create_rule(rt, "dq-to-ops-only", kinds=["data_quality.*"], mode="replace", channels=["ops"])
    store.create_rule(rt, "payments-anomalies-to-finance", kinds=["anomaly"], team="payments", mode="add",
                      channels=["fin"])
    store.create_rule(rt, "mute-search", kinds=["*"], team="search", mode="mute")
    _raise(rt, team="payments", kind="anomaly")  # pay (team) + fin (rule)
    _raise(rt, team="payments", kind="budget.actual")  # pay only
    _raise(rt, team=None, kind="budget.actual")  # finance channels: fin + ops
    _raise(rt, team=None, kind="data_quality.freshness")  # replaced: ops only
    _raise(rt, team="search", kind="anomaly")  # muted
    _raise(rt, team="mobile", kind="anomaly")  # no channel for mobile
    delivery.deliver_due(rt, NOW)
    got = {(v["event_id"], v["channel"]) for v in _views(rt)}
    with rt.sessions() as session:
        events = {e.id: e for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id))}
    by_event: dict[int, set] = {i: set() for i in events}
    for event_id, ch in got:
        by_event[event_id].add(ch)
    assert list(by_event.values()) == [{"pay", "fin"}, {"pay"}, {"fin", "ops"}, {"ops"}, set(), set()]
    assert [events[i].delivery_status for i in sorted(events)] == ["delivered"] * 4 + ["no_route"] * 2
    assert len(receivers["slack"].received) == 2 and len(receivers["teams"].received) == 2
    assert len(receivers["webhook"].received) == 2
    del pay, fin, ops


def test_once_not_a_flood_identity_escalation_and_resolution(rt_any, receiver):
    rt = allow_local(rt_any)
    store.create_channel(rt, "pay", "webhook", receiver.url, team="payments")
    ident = "budget.actual|team:payments|2026-10|80"
    first, what = _raise(rt, kind="budget.actual", identity=ident, message="80% reached")
    assert what == "created"
    for day in range(1, 4):  # the next evaluations find the same condition: updates, no messages
        again, what = _raise(rt, kind="budget.actual", identity=ident, message="still over 80%",
                             now=NOW + timedelta(days=day))
        assert (again, what) == (first, "updated")
        delivery.deliver_due(rt, NOW + timedelta(days=day))
    assert len(receiver.received) == 1
    again, what = _raise(rt, kind="budget.actual", identity=ident, message="now 95%", escalate=True,
                         severity="critical", now=NOW + timedelta(days=4))
    assert (again, what) == (first, "escalated")
    delivery.deliver_due(rt, NOW + timedelta(days=4))
    assert len(receiver.received) == 2
    update = receiver.received[1].json["event"]
    assert update["update"] is True and update["title"].startswith("Update:") and update["occurrences"] == 5
    with rt.sessions() as session:
        resolve(session, ident, NOW + timedelta(days=5))
        session.commit()
    new, what = _raise(rt, kind="budget.actual", identity=ident, now=NOW + timedelta(days=6))
    assert what == "created" and new != first
    delivery.deliver_due(rt, NOW + timedelta(days=6))
    assert len(receiver.received) == 3


def test_quiet_hours_defer_and_rate_limit_spreads(rt_any, receiver):
    rt = allow_local(rt_any)
    store.create_channel(rt, "pay", "slack", receiver.url, team="payments",
                         quiet_hours={"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"},
                         rate_limit_per_hour=2)
    night = datetime(2026, 10, 5, 23, 30, tzinfo=timezone.utc)  # 01:30 in Berlin (CEST)
    for i in range(3):
        _raise(rt, message=f"a{i}", now=night)
    counts = delivery.deliver_due(rt, night)
    assert counts["deferred"] == 3 and receiver.received == []
    morning = datetime(2026, 10, 6, 5, 0, tzinfo=timezone.utc)  # 07:00 Berlin
    assert _next(rt) == morning
    assert "quiet hours" in _views(rt)[0]["deferred"]
    counts = delivery.deliver_due(rt, morning)
    assert counts["succeeded"] == 2 and counts["deferred"] == 1  # 2 per hour
    assert _next(rt) == morning + timedelta(hours=1)
    assert delivery.deliver_due(rt, morning + timedelta(hours=1))["succeeded"] == 1
    assert sorted(r.json["text"].split(": ")[1] for r in receiver.received) == ["a0", "a1", "a2"]


def test_two_workers_never_send_one_delivery_twice(rt_any, receiver):
    rt = allow_local(rt_any)
    store.create_channel(rt, "pay", "slack", receiver.url, team="payments")
    _raise(rt)
    delivery.route(rt, NOW)
    (delivery_id,) = delivery.due(rt, NOW)
    with rt.sessions() as session:
        assert delivery._claim(session, delivery_id, NOW, 120)
        assert not delivery._claim(session, delivery_id, NOW, 120)  # claimed
    assert delivery.deliver_one(rt, delivery_id, NOW) is None
    # a worker that died holding the claim: after the lease the delivery is due again and sent once
    assert delivery.due(rt, NOW + timedelta(seconds=60)) == []
    assert delivery.due(rt, NOW + timedelta(seconds=121)) == [delivery_id]
    assert delivery.deliver_due(rt, NOW + timedelta(seconds=121))["succeeded"] == 1
    assert len(receiver.received) == 1


def test_resolve_without_open_event_is_harmless(rt):
    with rt.sessions() as session:
        assert resolve(session, "nothing") is None


def test_the_serve_scheduler_delivers_pending_alerts(rt, receiver):
    import time as _time

    from app.scheduler import IngestScheduler

    rt = allow_local(rt, deliver_seconds=0.2)
    store.create_channel(rt, "pay", "slack", receiver.url, team="payments")
    _raise(rt, now=datetime.now(timezone.utc))
    scheduler = IngestScheduler(rt)
    scheduler.start()
    try:
        assert {j.id for j in scheduler.scheduler.get_jobs(jobstore="local")} >= {"alerts-deliver", "alerts-evaluate"}
        deadline = _time.monotonic() + 15
        while not receiver.received and _time.monotonic() < deadline:
            _time.sleep(0.1)
    finally:
        scheduler.shutdown()
    assert len(receiver.received) == 1
    assert _views(rt)[0]["status"] == "succeeded"


def test_an_ingest_run_delivers_its_data_quality_alerts(rt, receiver, samples, tmp_path):
    """End to end: a scheduled-style run ingests, its data-quality checks raise events (app.quality), and its
    `alerts` after-ingest step routes and delivers them to the finance channel."""
    import shutil

    from app import sources
    from app.runs import run_source

    rt = allow_local(rt)
    store.create_channel(rt, "ops", "webhook", receiver.url, finance=True)
    folder = tmp_path / "bills"
    folder.mkdir()
    shutil.copy(samples / "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv", folder)
    sources.add(rt, "aws", "focus", "focus", str(folder))
    run = run_source(rt, "aws", "cli")
    (step,) = [s for s in run.steps if s["name"] == "alerts"]
    assert step["status"] == "succeeded" and "events" in step, step
    with rt.sessions() as session:
        raised = [e.kind for e in session.scalars(select(AlertEvent).order_by(AlertEvent.id))]
    assert raised and all(k.startswith("data_quality.") for k in raised)
    assert sorted(r.json["event"]["kind"] for r in receiver.received) == sorted(raised)
    assert step["delivery"]["succeeded"] == len(raised)
