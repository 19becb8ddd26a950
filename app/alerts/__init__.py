"""Alerts to chat (issue 11): channels (Slack Block Kit, Teams Adaptive Card, signed generic webhook) with safe
targets, routing and dedupe, an audited delivery ledger with retries, triggers and anomaly detection.

Modules: models (tables), config (settings), safety (SSRF checks, pinned connections), secrets (credentials at
rest), channels (payloads, signing), events (identity, dedupe), store (channels, rules, test message), delivery
(routing, worker, ledger), anomaly (detection), triggers (what raises events).
"""
