"""`cloudtally alerts …` (registered in app.cli): channels, routing rules, events, the delivery ledger, delivering
and evaluating now, anomalies."""
from __future__ import annotations

import json
from datetime import date
from typing import Optional

import typer
from rich.table import Table

from app.cli_common import err, fail, out, runtime

alerts_app = typer.Typer(help="Alerts to Slack, Teams and signed webhooks: channels, routing rules, events, the "
                         "delivery ledger, anomalies.", no_args_is_help=True)
channels_app = typer.Typer(help="Alert channels: add (a webhook's signing secret is shown once), list, test, "
                           "remove.", no_args_is_help=True)
rules_app = typer.Typer(help="Routing rules (add channels, replace the route, mute) and trigger settings.",
                        no_args_is_help=True)
alerts_app.add_typer(channels_app, name="channels")
alerts_app.add_typer(rules_app, name="rules")



def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{name}: {value!r} is not YYYY-MM-DD", 2)


def _next_month(d: date) -> date:
    m = d.month % 12 + 1
    y = d.year + (d.month == 12)
    try:
        return d.replace(year=y, month=m)
    except ValueError:  # 31 January -> 1 March
        return date(y, m % 12 + 1, 1) if m != 12 else date(y + 1, 1, 1)


def _table(title: str, rows: list[dict], cols: list[str]) -> None:
    table = Table(title=title)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in cols))
    out.print(table)


@channels_app.command("add")
def channels_add(
    name: str = typer.Argument(..., help="Unique channel name."),
    kind: str = typer.Option(..., "--kind", help="slack (incoming webhook, Block Kit), teams (Workflows webhook, "
                             "Adaptive Card) or webhook (signed JSON)."),
    url: str = typer.Option(..., "--url", help="The webhook URL: https (http only to hosts in "
                            "CLOUDTALLY_ALERTS_ALLOW_HOSTS); stored encrypted."),
    team: Optional[str] = typer.Option(None, "--team", help="Receives this team's alerts."),
    finance: bool = typer.Option(False, "--finance", help="Receives finance-wide alerts."),
    quiet: Optional[str] = typer.Option(None, "--quiet-hours", help="HH:MM-HH:MM, optionally @Area/City, e.g. "
                                        "22:00-07:00@Europe/Berlin: deliveries wait until the end."),
    rate_limit: Optional[int] = typer.Option(None, "--rate-limit", help="At most this many messages per hour."),
) -> None:
    """Add a channel; for a generic webhook the signing secret is printed this once (keep it for the receiver)."""
    from app.alerts import store

    quiet_hours = None
    if quiet:
        window, _, tz = quiet.partition("@")
        start, _, end = window.partition("-")
        quiet_hours = {"start": start, "end": end, "timezone": tz or "UTC"}
    try:
        view, secret = store.create_channel(runtime(), name, kind, url, team=team, finance=finance,
                                            quiet_hours=quiet_hours, rate_limit_per_hour=rate_limit)
    except store.AlertConfigError as exc:
        fail(str(exc), 2)
    err.print(f"added channel {view['name']} ({view['kind']} to {view['target']}, id {view['id']})", highlight=False)
    if secret:
        err.print("signing secret (shown once; receivers verify X-CloudTally-Signature with it):")
        print(secret)


@channels_app.command("list")
def channels_list(output: str = typer.Option("table", "--output", help="table or json.")) -> None:
    """Channels (the target shows scheme, host and port only)."""
    from app.alerts import store

    with runtime().sessions() as session:
        _, views = store.list_channels(session, limit=1_000_000)
    if output == "json":
        print(json.dumps(views, indent=2))
        return
    _table("alert channels", views, ["name", "kind", "team", "finance", "target", "signed", "quiet_hours",
                                     "rate_limit_per_hour", "enabled", "id"])


@channels_app.command("test")
def channels_test(channel: str = typer.Argument(..., help="Channel name or id.")) -> None:
    """Send a test message now (one attempt); exit 1 if it did not get a 2xx."""
    from app.alerts import store

    try:
        view = store.send_test(runtime(), channel)
    except LookupError as exc:
        fail(str(exc), 2)
    a = view["attempt_log"][0]
    out.print(f"{view['channel']}: {view['status']} (HTTP {a['status_code']}, {a['latency_ms']} ms"
              f"{', ' + a['error'] if a['error'] else ''})", highlight=False)
    if view["status"] != "succeeded":
        raise typer.Exit(1)


@channels_app.command("remove")
def channels_remove(channel: str = typer.Argument(..., help="Channel name or id.")) -> None:
    """Delete a channel (its pending deliveries fail; the ledger keeps their history)."""
    from app.alerts import store

    try:
        view = store.delete_channel(runtime(), channel)
    except LookupError as exc:
        fail(str(exc), 2)
    out.print(f"removed channel {view['name']}")


@rules_app.command("add")
def rules_add(
    name: str = typer.Argument(..., help="Unique rule name."),
    kind: list[str] = typer.Option(..., "--kind", help="Event kind or pattern (repeat): anomaly, budget.*, "
                                   "data_quality.*, ingest.failure, digest.weekly; `budget`/`anomaly` for trigger "
                                   "settings."),
    mode: str = typer.Option("add", "--mode", help="add, replace or mute."),
    channel: list[str] = typer.Option([], "--channel", help="Channel name or id (repeat)."),
    team: Optional[str] = typer.Option(None, "--team", help="Only events of this team."),
    params: Optional[str] = typer.Option(None, "--params", help='Trigger settings as JSON, e.g. '
                                         '\'{"thresholds": [50, 80, 100]}\'.'),
    priority: int = typer.Option(100, "--priority", help="Lower runs first."),
) -> None:
    """Add a routing rule (or trigger settings: a mute rule of kind `budget` with params only sets thresholds)."""
    from app.alerts import store

    try:
        parsed = json.loads(params) if params else {}
    except json.JSONDecodeError as exc:
        fail(f"--params is not JSON: {exc}", 2)
    try:
        view = store.create_rule(runtime(), name, kinds=kind, mode=mode, channels=channel, team=team, params=parsed,
                                 priority=priority)
    except store.AlertConfigError as exc:
        fail(str(exc), 2)
    out.print(f"added rule {view['name']} ({view['mode']} {', '.join(view['kinds'])})")


@rules_app.command("list")
def rules_list(output: str = typer.Option("table", "--output", help="table or json.")) -> None:
    """Rules in the order they apply."""
    from app.alerts import store

    with runtime().sessions() as session:
        _, views = store.list_rules(session, limit=1_000_000)
    if output == "json":
        print(json.dumps(views, indent=2))
        return
    _table("alert rules", views, ["priority", "name", "kinds", "team", "mode", "channels", "params", "enabled"])


@rules_app.command("remove")
def rules_remove(rule: str = typer.Argument(..., help="Rule name or id.")) -> None:
    from app.alerts import store

    try:
        view = store.delete_rule(runtime(), rule)
    except LookupError as exc:
        fail(str(exc), 2)
    out.print(f"removed rule {view['name']}")


@alerts_app.command("events")
def events(
    status: Optional[str] = typer.Option(None, "--status", help="open or resolved."),
    delivery_status: Optional[str] = typer.Option(None, "--delivery", help="pending, delivered, failed, no_route."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind (or kinds under it)."),
    limit: int = typer.Option(50, "--limit", help="Newest first, at most this many."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Alert events with their identity, team, status and delivery outcome."""
    from app.alerts.events import list_events

    with runtime().sessions() as session:
        _, views = list_events(session, kind=kind, status=status, delivery_status=delivery_status, limit=limit)
    if output == "json":
        print(json.dumps(views, indent=2))
        return
    _table("alert events", views, ["id", "created_at", "kind", "team", "severity", "status", "occurrences",
                                   "delivery_status", "message"])


@alerts_app.command("deliveries")
def deliveries(
    status: Optional[str] = typer.Option(None, "--status", help="pending, sending, succeeded or failed."),
    limit: int = typer.Option(50, "--limit", help="Newest first, at most this many."),
    output: str = typer.Option("table", "--output", help="table or json (with payloads and every attempt)."),
) -> None:
    """The delivery ledger: every delivery and its attempts (status code, latency, error)."""
    from app.alerts.delivery import list_deliveries

    with runtime().sessions() as session:
        _, views = list_deliveries(session, status=status, limit=limit)
    if output == "json":
        print(json.dumps(views, indent=2))
        return
    for v in views:
        codes = ",".join(str(a["status_code"] or "-") for a in v["attempt_log"])
        v["codes"], v["latency_ms"] = codes, ",".join(str(a["latency_ms"]) for a in v["attempt_log"])
    _table("alert deliveries", views, ["id", "event_id", "channel", "status", "attempts", "codes", "latency_ms",
                                       "next_attempt_at", "deferred", "last_error"])


@alerts_app.command("deliver")
def deliver() -> None:
    """Route new events and attempt every due delivery once (what `serve` does every few seconds); exit 1 if a
    delivery failed for good in this pass."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from app.alerts.delivery import deliver_due

    rt = runtime()
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), console=err) as bar:
        task = bar.add_task("delivering", total=None)
        counts = deliver_due(rt, progress=lambda i, n: bar.update(task, total=n, completed=i))
    out.print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    if counts["failed"]:
        raise typer.Exit(1)


@alerts_app.command("evaluate")
def evaluate(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="YYYY-MM-DD: evaluate as if the data ended the day "
                                        "before (default: the warehouse's last day)."),
    no_deliver: bool = typer.Option(False, "--no-deliver", help="Raise events only; deliver later."),
) -> None:
    """Evaluate every trigger (ingestion failures, anomalies, budgets, digests) and deliver."""
    from app.alerts.triggers import evaluate as run

    counts = run(runtime(), as_of=_date(as_of, "--as-of"), deliver=not no_deliver)
    print(json.dumps(counts, indent=2, default=str))


@alerts_app.command("anomalies")
def anomalies(
    start: str = typer.Option(..., "--start", help="YYYY-MM-DD: episodes ending on or after this day."),
    end: Optional[str] = typer.Option(None, "--end", help="YYYY-MM-DD exclusive (default: the same day a month "
                                      "after start)."),
    dimension: list[str] = typer.Option(["ServiceName", "SubAccountId", "team"], "--dimension",
                                        help="Monitored dimension (repeat): ServiceName, SubAccountId, RegionId, "
                                        "team, cost_center, tag:<key>."),
    output: str = typer.Option("table", "--output", help="table or json."),
) -> None:
    """Find cost anomalies (read-only: no events are raised)."""
    from app.alerts import anomaly
    from app.alerts.triggers import detect_anomalies

    s = _date(start, "--start")
    e = _date(end, "--end") or _next_month(s)
    found = detect_anomalies(runtime(), s, e, anomaly.Params(), tuple(dimension))
    if output == "json":
        print(json.dumps(found, indent=2, default=str))
        return
    rows = [{**f, "peak": f"+{f['peak_percent'] * 100:.0f}%", "actual": f"{f['actual']:.2f}",
             "impact": f"{f['actual'] - f['expected']:.2f}", "days": f"{f['first_day']} +{f['days']}",
             "dimension": f["monitor"].partition("=")[0], "value": f["monitor"].partition("=")[2]} for f in found]
    for r in rows:
        r["impact"] = f"{r['impact']} {r['currency']}"
    _table(f"anomalies {s} .. {e} (end exclusive; --output json for actual, expected, days)", rows,
           ["dimension", "value", "days", "impact", "peak"])
