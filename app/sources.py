"""Configured sources: where a provider's billing data lives and in which export format.

A source row holds provider, format, location, options (never secrets: credentials come from the environment or
the cloud SDK's own chain) and an optional cron schedule. Removing a source removes its rows from the warehouse
and its ledger, in that order, so no cost row is left without its delivery.
"""
from __future__ import annotations

from sqlalchemy import select

from app.control import Source
from app.runtime import Runtime
from app.allocation.engine import after_ingest
from app.warehouse import COST_TABLE

FORMATS: dict[str, tuple[str, ...]] = {
    "focus": ("focus",),
    "aws": ("cur", "cur2", "focus"),
    # actual+amortized: an ActualCost and an AmortizedCost export joined (option amortized_location names the second)
    "azure": ("actual", "amortized", "actual+amortized", "focus"),
    "gcp": ("bigquery", "export"),
}
SECRET_OPTION_WORDS = ("secret", "password", "key", "token", "credential")


class SourceError(ValueError):
    """A source definition that cannot work; the message says why, `parameter` which field is at fault."""

    def __init__(self, message: str, parameter: str = "name"):
        super().__init__(message)
        self.parameter = parameter


def validate(name: str, provider: str, fmt: str, location: str, options: dict[str, str],
             schedule: str | None = None) -> None:
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise SourceError(f"source name {name!r}: use letters, digits, - and _", "name")
    if provider not in FORMATS:
        raise SourceError(f"provider {provider!r} is not one of {', '.join(FORMATS)}", "provider")
    if fmt not in FORMATS[provider]:
        raise SourceError(f"format {fmt!r} is not one of {provider}'s: {', '.join(FORMATS[provider])}", "format")
    if not location:
        raise SourceError("a location is required (s3://bucket/prefix/name, azure://account/container/prefix "
                          "or a local folder)", "location")
    secret = [k for k in options if any(w in k.lower() for w in SECRET_OPTION_WORDS)]
    if secret:
        raise SourceError(f"option {secret[0]!r} looks like a secret; CloudTally never stores secrets: use the "
                          f"environment or the cloud SDK's credential chain", "options")
    if schedule is not None:
        from app.scheduler import make_trigger

        try:
            make_trigger(schedule)
        except ValueError as exc:
            raise SourceError(str(exc), "schedule") from exc


def add(rt: Runtime, name: str, provider: str, fmt: str, location: str, options: dict[str, str] | None = None,
        schedule: str | None = None) -> Source:
    options = dict(options or {})
    validate(name, provider, fmt, location, options, schedule)
    with rt.sessions() as session:
        if session.scalar(select(Source).where(Source.name == name)):
            raise SourceError(f"a source named {name!r} exists already")
        source = Source(name=name, provider=provider, format=fmt, location=location, options=options,
                        schedule=schedule)
        session.add(source)
        session.commit()
        return source


def get(rt: Runtime, name: str) -> Source | None:
    with rt.sessions() as session:
        return session.scalar(select(Source).where(Source.name == name))


def list_all(rt: Runtime) -> list[Source]:
    with rt.sessions() as session:
        return list(session.scalars(select(Source).order_by(Source.name)))


def remove(rt: Runtime, name: str) -> int:
    """Delete the source's warehouse rows, then the source and its ledger. Returns the number of rows deleted."""
    with rt.sessions() as session:
        source = session.scalar(select(Source).where(Source.name == name))
        if source is None:
            raise SourceError(f"no source named {name!r}")
        with rt.warehouse.connect() as con:
            periods = [p for (p,) in con.execute(
                f"SELECT DISTINCT BillingPeriodStart FROM {COST_TABLE} WHERE x_SourceId = ?", [name]).fetchall()]
            con.begin()
            (deleted,) = con.execute(f"DELETE FROM {COST_TABLE} WHERE x_SourceId = ?", [name]).fetchone()
            con.execute("UPDATE warehouse_state SET data_version = data_version + 1")
            con.commit()
            if periods:  # the remaining lines of those periods (proportional drivers may have changed)
                after_ingest(rt, con, periods)
        session.delete(source)
        session.commit()
        return deleted


def view(source: Source) -> dict:
    return {"name": source.name, "provider": source.provider, "format": source.format, "location": source.location,
            "options": source.options, "schedule": source.schedule,
            "created_at": source.created_at.isoformat().replace("+00:00", "Z")}


def test(rt: Runtime, name: str) -> dict:
    """Discovery only: which deliveries an ingest of the source would look at now, and what it would do with each
    (nothing is downloaded or loaded; a gcp/bigquery source's discovery does pull changed days into its local
    cache, as its ingest would). Raises SourceError for an unknown source and the connector's error (IngestError
    naming the location, or a cloud SDK error) when discovery fails."""
    from connectors import get_connector

    from app.control import Delivery

    source = get(rt, name)
    if source is None:
        raise SourceError(f"no source named {name!r}")
    candidates = get_connector(source.provider).discover(source.location, dict(source.options), source.format)
    with rt.sessions() as session:
        loaded = {(d.billing_period_start, d.identity) for d in session.scalars(
            select(Delivery).where(Delivery.source_id == source.id, Delivery.status == "loaded"))}
    out = []
    for c in candidates:
        sizes = [f.size for f in c.files]
        if c.problem:
            would = f"fail: {c.problem}"
        elif c.identity is not None and (c.billing_period, c.identity) in loaded:
            would = "skip: already loaded"
        elif c.identity is not None:
            would = "load"
        else:
            would = "read: the files' content decides (unchanged periods are skipped)"
        out.append({"label": c.label, "billing_period": f"{c.billing_period:%Y-%m}" if c.billing_period else None,
                    "files": len(c.files), "bytes": sum(sizes) if None not in sizes else None,
                    "identity": c.identity, "would": would})
    return {"source": source.name, "provider": source.provider, "format": source.format,
            "location": source.location, "deliveries": out}
