"""/v1/alerts: channels CRUD (the secret shown once, the URL never), the test message, rules, events and the
delivery ledger, roles and the team scope (escape attempts), problem+json naming the parameter; the CLI."""
from __future__ import annotations

import json

from app.alerts import channels as payloads
from app.alerts.events import raise_event
from tests.alerts_fixtures import allow_local, receiver, receivers  # noqa: F401
from tests.helpers import api_client, cli


def _raise(rt, team, kind="anomaly", message="m"):
    with rt.sessions() as session:
        e, _ = raise_event(session, kind, message, team=team)
        session.commit()
        return e.id


def test_channels_crud_test_message_and_ledger(rt_any, receivers):
    rt = allow_local(rt_any)
    with api_client(rt) as c:
        r = c.post("/v1/alerts/channels", json={"name": "pay-hook", "kind": "webhook", "url": receivers["webhook"].url,
                                                "team": "payments"})
        assert r.status_code == 201, r.text
        created = r.json()
        secret = created["secret"]
        assert secret.startswith("whsec_") and created["signed"] and "secret-token" not in r.text
        listed = c.get("/v1/alerts/channels").json()
        assert listed["total"] == 1 and "secret" not in listed["channels"][0]
        assert secret not in json.dumps(listed) and "secret-token" not in json.dumps(listed)
        assert c.get(f"/v1/alerts/channels/{created['id']}").json()["name"] == "pay-hook"
        # the test message: signed, in the ledger
        r = c.post("/v1/alerts/channels/pay-hook/test")
        assert r.status_code == 200 and r.json()["status"] == "succeeded"
        (got,) = receivers["webhook"].received
        assert payloads.verify(secret, got.headers["x-cloudtally-timestamp"], got.body,
                               got.headers["x-cloudtally-signature"])
        assert got.json["event"]["kind"] == "test"
        # rotate: the old secret no longer verifies
        new = c.post("/v1/alerts/channels/pay-hook/rotate-secret").json()["secret"]
        assert new != secret
        c.post("/v1/alerts/channels/pay-hook/test")
        last = receivers["webhook"].received[-1]
        assert payloads.verify(new, last.headers["x-cloudtally-timestamp"], last.body,
                               last.headers["x-cloudtally-signature"])
        assert not payloads.verify(secret, last.headers["x-cloudtally-timestamp"], last.body,
                                   last.headers["x-cloudtally-signature"])
        # an event routed and delivered through the API
        event_id = _raise(rt, "payments")
        assert c.post("/v1/alerts/deliver").json()["succeeded"] == 1
        d = c.get("/v1/alerts/deliveries", params={"event_id": event_id}).json()
        assert d["total"] == 1 and d["deliveries"][0]["attempt_log"][0]["status_code"] == 200
        assert c.get(f"/v1/alerts/events/{event_id}").json()["delivery_status"] == "delivered"
        assert c.get("/v1/alerts/deliveries", params={"status": "succeeded"}).json()["total"] == 3
        # patch and delete
        r = c.patch("/v1/alerts/channels/pay-hook", json={"rate_limit_per_hour": 5,
                                                          "quiet_hours": {"start": "22:00", "end": "06:00"}})
        assert r.status_code == 200 and r.json()["rate_limit_per_hour"] == 5
        assert r.json()["quiet_hours"] == {"start": "22:00", "end": "06:00", "timezone": "UTC"}
        assert c.delete("/v1/alerts/channels/pay-hook").status_code == 200
        assert c.get("/v1/alerts/channels/pay-hook").status_code == 404
        assert c.get("/v1/alerts/deliveries").json()["total"] == 3  # history stays


def test_bad_input_is_problem_json_naming_the_parameter(rt):
    with api_client(rt) as c:
        r = c.post("/v1/alerts/channels", json={"name": "x", "kind": "slack", "team": "payments",
                                                "url": "https://169.254.169.254/latest/meta-data/"})
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"] == [{"parameter": "url", "detail": r.json()["errors"][0]["detail"]}]
        assert "metadata" in r.json()["detail"]
        r = c.post("/v1/alerts/channels", json={"name": "x", "kind": "slack", "url": "http://127.0.0.1:1/x",
                                                "team": "payments"})
        assert r.status_code == 400 and r.json()["errors"][0]["parameter"] == "url"
        r = c.post("/v1/alerts/channels", json={"name": "x", "kind": "email", "url": "https://x.example/"})
        assert r.status_code == 400 and r.json()["errors"][0]["parameter"] == "kind"
        r = c.post("/v1/alerts/rules", json={"name": "r", "kinds": ["anomaly"], "mode": "add", "channels": ["nope"]})
        assert r.status_code == 400 and r.json()["errors"][0]["parameter"] == "channels[0]"
        assert c.post("/v1/alerts/channels/nope/test").status_code == 404
        r = c.get("/v1/alerts/anomalies", params={"start": "2026-10-01", "end": "2026-09-01"})
        assert r.status_code == 400 and r.json()["errors"][0]["parameter"] == "end"


def test_roles_and_team_scope(rt_any, receivers):
    rt = allow_local(rt_any)
    with api_client(rt) as admin:
        for name, team, kind in (("pay", "payments", "slack"), ("search", "search", "teams")):
            assert admin.post("/v1/alerts/channels", json={"name": name, "kind": kind, "team": team,
                                                           "url": receivers[kind].url}).status_code == 201
    pay_event, search_event = _raise(rt, "payments"), _raise(rt, "search")
    fin_event = _raise(rt, None, kind="budget.actual")
    with api_client(rt, "admin") as admin:
        admin.post("/v1/alerts/deliver")
    with api_client(rt, "team:payments") as team:
        assert [c["name"] for c in team.get("/v1/alerts/channels").json()["channels"]] == ["pay"]
        assert team.get("/v1/alerts/channels/search").status_code == 404
        events = team.get("/v1/alerts/events").json()
        assert [e["id"] for e in events["events"]] == [pay_event]
        assert team.get(f"/v1/alerts/events/{search_event}").status_code == 404
        assert team.get(f"/v1/alerts/events/{fin_event}").status_code == 404
        r = team.get("/v1/alerts/events", params={"team": "search"})
        assert r.status_code == 403 and r.json()["errors"][0]["parameter"] == "team"
        ds = team.get("/v1/alerts/deliveries").json()["deliveries"]
        assert {d["event_id"] for d in ds} == {pay_event}
        assert team.get("/v1/alerts/deliveries", params={"event_id": search_event}).json()["total"] == 0
        assert team.get("/v1/alerts/deliveries", params={"channel": "search"}).json()["total"] == 0
        # team keys cannot write or see rules, run triggers or the anomaly scan
        assert team.post("/v1/alerts/channels", json={"name": "x", "kind": "slack", "team": "payments",
                                                      "url": receivers["slack"].url}).status_code == 403
        assert team.post("/v1/alerts/channels/pay/test").status_code == 403
        assert team.get("/v1/alerts/rules").status_code == 403
        assert team.post("/v1/alerts/evaluate").status_code == 403
        assert team.get("/v1/alerts/anomalies", params={"start": "2026-09-01", "end": "2026-10-01"}).status_code \
            == 403
    with api_client(rt, "finance") as fin:
        assert fin.get("/v1/alerts/events").json()["total"] == 3
        assert fin.get("/v1/alerts/rules").status_code == 200
        assert fin.delete("/v1/alerts/channels/pay").status_code == 403
        # the older endpoint still lists undelivered events (here: the finance-wide one had no channel)
        pending = fin.get("/v1/alert-events").json()
        assert [e["id"] for e in pending["events"]] == [fin_event]
    with api_client(rt) as admin:
        assert admin.get("/v1/alerts/events", params={"delivery_status": "no_route"}).json()["total"] == 1


def test_cli_channels_rules_deliver(rt, receiver, monkeypatch):
    monkeypatch.setenv("CLOUDTALLY_DATA_DIR", str(rt.settings.data_dir))
    monkeypatch.setenv("CLOUDTALLY_ALERTS_ALLOW_HOSTS", "127.0.0.1")
    r = cli("alerts", "channels", "add", "ops", "--kind", "webhook", "--url", receiver.url, "--finance",
            "--quiet-hours", "22:00-07:00@Europe/Berlin", "--rate-limit", "10")
    assert r.exit_code == 0, r.stderr
    secret = r.stdout.strip()
    assert secret.startswith("whsec_")
    r = cli("alerts", "channels", "list", "--output", "json")
    (ch,) = json.loads(r.stdout)
    assert ch["quiet_hours"] == {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}
    assert secret not in r.stdout and "secret-token" not in r.stdout
    assert cli("alerts", "channels", "test", "ops").exit_code == 0
    assert cli("alerts", "rules", "add", "dq", "--kind", "data_quality.*", "--mode", "replace", "--channel",
               "ops").exit_code == 0
    assert cli("alerts", "channels", "add", "bad", "--kind", "slack", "--url",
               "https://10.0.0.1/x", "--team", "a").exit_code == 2
    receiver.script = [(500, {})]
    assert cli("alerts", "channels", "test", "ops").exit_code == 1
    r = cli("alerts", "deliveries", "--output", "json")
    assert [d["status"] for d in json.loads(r.stdout)] == ["failed", "succeeded"]
    r = cli("alerts", "deliver")
    assert r.exit_code == 0 and "routed" in r.stdout
