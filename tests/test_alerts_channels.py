"""Alert channels against real HTTP receivers on 127.0.0.1: the exact Slack, Teams and webhook payloads, the
webhook signature, safe targets (SSRF refusals), no redirects, secrets encrypted at rest and never logged."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from app.alerts import channels as payloads
from app.alerts import delivery, store
from app.alerts.events import raise_event
from app.alerts.safety import UnsafeTarget, check_url
from tests.alerts_fixtures import allow_local, receiver, receivers  # noqa: F401

NOW = datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc)


def _raise(rt, team="payments", **kw):
    with rt.sessions() as session:
        event, _ = raise_event(session, kw.pop("kind", "budget.actual"), kw.pop("message", "payments spent 80% of its "
                               "October budget"), team=team, identity=kw.pop("identity", None),
                               details=kw.pop("details", {"title": "Budget 80% reached",
                                                          "facts": [["Budget", "1000.00 USD"],
                                                                    ["Actual", "812.34 USD"]]}), now=NOW, **kw)
        session.commit()
        return event.id


def test_each_channel_type_gets_its_exact_payload(rt_any, receivers):
    rt = allow_local(rt_any)
    slack, _ = store.create_channel(rt, "pay-slack", "slack", receivers["slack"].url, team="payments")
    teams, _ = store.create_channel(rt, "pay-teams", "teams", receivers["teams"].url, team="payments")
    hook, secret = store.create_channel(rt, "pay-hook", "webhook", receivers["webhook"].url, team="payments")
    assert secret.startswith("whsec_") and slack["target"] == f"http://127.0.0.1:{receivers['slack'].port}/…"
    event_id = _raise(rt)
    before = int(time.time())
    counts = delivery.deliver_due(rt, NOW)
    assert counts["routed"] == 3 and counts["succeeded"] == 3
    facts = [{"type": "mrkdwn", "text": "*Budget*\n1000.00 USD"}, {"type": "mrkdwn", "text": "*Actual*\n812.34 USD"},
             {"type": "mrkdwn", "text": "*Scope*\nteam payments"}]
    (got,) = receivers["slack"].received
    assert got.path == "/hook/T000/B000/secret-token"
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert got.json == {
        "text": "Budget 80% reached: payments spent 80% of its October budget",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Budget 80% reached", "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": ":warning: payments spent 80% of its October budget"}},
            {"type": "section", "fields": facts},
            {"type": "context", "elements": [{"type": "mrkdwn",
                                              "text": f"CloudTally · budget.actual · event {event_id} · warning"}]},
        ]}
    (got,) = receivers["teams"].received
    assert got.json == {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": "Budget 80% reached", "weight": "Bolder", "size": "Medium",
                 "wrap": True, "color": "Warning"},
                {"type": "TextBlock", "text": "payments spent 80% of its October budget", "wrap": True},
                {"type": "FactSet", "facts": [{"title": "Budget", "value": "1000.00 USD"},
                                              {"title": "Actual", "value": "812.34 USD"},
                                              {"title": "Scope", "value": "team payments"}]},
                {"type": "TextBlock", "text": f"CloudTally · budget.actual · event {event_id}", "isSubtle": True,
                 "size": "Small", "wrap": True},
            ]}}]}
    (got,) = receivers["webhook"].received
    body = got.json["event"]
    assert body["id"] == event_id and body["kind"] == "budget.actual" and body["team"] == "payments"
    assert body["title"] == "Budget 80% reached" and body["update"] is False
    assert body["details"]["facts"] == [["Budget", "1000.00 USD"], ["Actual", "812.34 USD"]]
    # the signature: HMAC-SHA256(secret, timestamp + "." + raw body), a fresh timestamp
    ts, sig = got.headers["x-cloudtally-timestamp"], got.headers["x-cloudtally-signature"]
    assert before - 1 <= int(ts) <= time.time() + 1
    assert payloads.verify(secret, ts, got.body, sig)
    assert not payloads.verify(secret, ts, got.body + b" ", sig)  # tampered body
    assert not payloads.verify("whsec_other", ts, got.body, sig)  # wrong secret
    assert not payloads.verify(secret, str(int(ts) - 1), got.body, sig)  # another timestamp
    assert not payloads.verify(secret, ts, got.body, sig, now=int(ts) + 301)  # a replay after 5 minutes
    # the ledger: one delivery per channel, the payload as sent, one attempt each with status and latency
    with rt.sessions() as session:
        total, views = delivery.list_deliveries(session, event_id=event_id)
    assert total == 3 and {v["status"] for v in views} == {"succeeded"}
    for v in views:
        assert v["attempts"] == 1 and v["attempt_log"][0]["status_code"] == 200
        assert v["attempt_log"][0]["latency_ms"] >= 0 and v["attempt_log"][0]["error"] is None
    assert {v["channel"]: v["payload"] for v in views}["pay-slack"] == receivers["slack"].received[0].json
    with rt.sessions() as session:
        from app.control import AlertEvent

        ev = session.get(AlertEvent, event_id)
        assert ev.delivery_status == "delivered" and ev.delivered_at == NOW


def test_credentials_are_encrypted_at_rest_and_never_logged(rt_any, receiver, caplog):
    rt = allow_local(rt_any)
    _, secret = store.create_channel(rt, "hook", "webhook", receiver.url, team="payments")
    receiver.script = [(500, {})] * 10
    _raise(rt)
    with caplog.at_level(logging.DEBUG):
        delivery.deliver_due(rt, NOW)
        store.send_test(rt, "hook", NOW)
    assert "secret-token" not in caplog.text and secret not in caplog.text
    with rt.engine.connect() as con:
        row = con.execute(text("SELECT target, secret, target_hint FROM alert_channels")).one()
    assert "secret-token" not in row.target and secret not in row.secret and "secret-token" not in row.target_hint
    with rt.sessions() as session:
        _, views = store.list_channels(session)
    assert "secret-token" not in str(views) and secret not in str(views)


def test_test_message_goes_through_the_ledger(rt, receiver):
    rt = allow_local(rt)
    store.create_channel(rt, "ops", "slack", receiver.url, finance=True)
    view = store.send_test(rt, "ops")
    assert view["status"] == "succeeded" and view["attempt_log"][0]["status_code"] == 200
    assert receiver.received[0].json["blocks"][0]["text"]["text"] == "CloudTally test message"
    receiver.script = [(404, {})]
    view = store.send_test(rt, "ops")
    assert view["status"] == "failed" and view["last_error"] == "HTTP 404"


def test_redirects_are_not_followed(rt, receivers):
    rt = allow_local(rt)
    store.create_channel(rt, "hook", "slack", receivers["slack"].url, team="payments")
    receivers["slack"].script = [(302, {"Location": receivers["teams"].url})]
    _raise(rt)
    counts = delivery.deliver_due(rt, NOW)
    assert counts["failed"] == 1
    assert receivers["teams"].received == []  # never followed
    with rt.sessions() as session:
        (view,) = delivery.list_deliveries(session)[1]
    assert view["status"] == "failed" and "redirects are not followed" in view["last_error"]


# -- SSRF -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, addresses, allow, reason", [
    ("http://hooks.example.com/x", ["93.184.216.34"], "", "plain http"),
    ("ftp://hooks.example.com/x", ["93.184.216.34"], "", "https://"),
    ("https://user:pw@hooks.example.com/x", ["93.184.216.34"], "", "credentials"),
    ("https://169.254.169.254/latest/meta-data/", ["169.254.169.254"], "", "metadata"),
    ("https://169.254.169.254/latest/meta-data/", ["169.254.169.254"], "169.254.0.0/16", "metadata"),
    ("https://meta.example.com/", ["169.254.169.254"], "meta.example.com", "metadata"),
    ("https://[fd00:ec2::254]/", ["fd00:ec2::254"], "", "metadata"),
    ("https://mapped.example.com/", ["::ffff:169.254.169.254"], "", "metadata"),
    ("https://link.example.com/", ["169.254.10.1"], "", "link-local"),
    ("https://10.0.0.5/hook", ["10.0.0.5"], "", "not a public address"),
    ("https://intranet.example.com/hook", ["192.168.1.20"], "", "not a public address"),
    ("https://cgnat.example.com/hook", ["100.64.0.9"], "", "not a public address"),
    ("https://localhost/hook", ["127.0.0.1"], "", "not a public address"),
    ("https://[::1]/hook", ["::1"], "", "not a public address"),
    ("https://ula.example.com/hook", ["fd12:3456::1"], "", "not a public address"),
    # every address is checked: one private address among public ones is enough to refuse (DNS rebinding)
    ("https://mixed.example.com/hook", ["93.184.216.34", "10.1.2.3"], "", "not a public address"),
    ("https://0.0.0.0/hook", ["0.0.0.0"], "", "not a public address"),
    ("http://127.0.0.1:8080/hook", ["127.0.0.1"], "10.0.0.0/8", "not a public address"),
])
def test_unsafe_targets_are_refused(url, addresses, allow, reason):
    with pytest.raises(UnsafeTarget, match=reason):
        check_url(url, allow, resolver=lambda h, p: addresses)


@pytest.mark.parametrize("url, addresses, allow", [
    ("https://hooks.slack.com/services/T/B/x", ["54.0.0.1"], ""),
    ("https://10.0.0.5/hook", ["10.0.0.5"], "10.0.0.0/8"),
    ("http://hooks.internal/hook", ["10.9.9.9"], "hooks.internal"),
    ("http://127.0.0.1:8080/hook", ["127.0.0.1"], "127.0.0.1"),
])
def test_allowed_targets(url, addresses, allow):
    assert check_url(url, allow, resolver=lambda h, p: addresses).addresses == tuple(addresses)


def test_unresolvable_host_is_refused():
    with pytest.raises(UnsafeTarget, match="does not resolve"):
        check_url("https://no-such-host.invalid/hook")


def test_create_channel_refuses_unsafe_urls_and_delivery_rechecks(rt, receiver):
    with pytest.raises(store.AlertConfigError, match="not a public address") as info:
        store.create_channel(rt, "x", "slack", receiver.url, team="payments")  # 127.0.0.1 not allow-listed
    assert info.value.parameter == "url"
    with pytest.raises(store.AlertConfigError, match="metadata"):
        store.create_channel(rt, "x", "webhook", "https://169.254.169.254/latest/meta-data/", team="payments")
    allow_local(rt)
    store.create_channel(rt, "x", "slack", receiver.url, team="payments")
    _raise(rt)
    rt.alert_settings.allow_hosts = ""  # the allow-list changed after the channel was made: refused at send time
    counts = delivery.deliver_due(rt, NOW)
    assert counts["failed"] == 1 and receiver.received == []
    with rt.sessions() as session:
        (view,) = delivery.list_deliveries(session)[1]
    assert view["last_error"].startswith("unsafe target refused") and view["attempts"] == 1


def test_https_target_pinned_to_the_checked_address_verifies_the_certificate(rt, tmp_path, monkeypatch):
    """TLS through the pinned connection: the certificate is checked against the host name (SNI), not the IP."""
    from tests.alerts_fixtures import https_receiver, self_signed

    ca, cert, key = self_signed(tmp_path, "localhost")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # trust the throw-away CA (ssl's default verify paths)
    r = https_receiver(cert, key)
    try:
        rt = allow_local(rt)
        rt.alert_settings.allow_hosts = "localhost"  # https to a loopback name: allowed by name only
        store.create_channel(rt, "tls", "slack", f"https://localhost:{r.port}/hook", team="payments")
        view = store.send_test(rt, "tls")
        assert view["status"] == "succeeded", view
        assert r.received[0].json["blocks"][0]["text"]["text"] == "CloudTally test message"
        # a certificate for another name is refused (an attempt with a TLS error, nothing received)
        (tmp_path / "other").mkdir()
        ca2, cert2, key2 = self_signed(tmp_path / "other", "other.example")
        monkeypatch.setenv("SSL_CERT_FILE", str(ca2))
        r2 = https_receiver(cert2, key2)
        try:
            store.create_channel(rt, "tls2", "slack", f"https://localhost:{r2.port}/hook", team="payments")
            view = store.send_test(rt, "tls2")
            assert view["status"] == "failed" and "CERTIFICATE_VERIFY_FAILED" in view["last_error"]
            assert r2.received == []
        finally:
            r2.stop()
    finally:
        r.stop()
