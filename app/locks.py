"""One ingest at a time per source, across processes, through the control database.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a 64-bit key derived from the source name,
taken on a connection dedicated to the run and held until it ends. The server drops it when that connection dies,
so a killed process never leaves it behind.

SQLite (and any other database): a row in `source_locks` (the source name is the primary key, so only one insert
wins), with its owner (`host:pid:token`), a heartbeat the holder renews every `lock_ttl / 4` seconds and an
expiry `lock_ttl` after the last heartbeat. A row whose owner is a dead process on this host, or whose expiry
has passed, is taken over by a conditional UPDATE (only one taker wins).

Both are non-blocking: `source_lock()` yields False at once when another run holds the source.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.control import SourceLock, utcnow

log = logging.getLogger(__name__)


def runner_id() -> str:
    """This process, as run records and lock rows name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def advisory_key(source: str) -> int:
    """A signed 64-bit key for pg_try_advisory_lock, stable across processes and versions."""
    digest = hashlib.sha256(f"cloudtally-ingest:{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def source_lock(engine: Engine, source: str, ttl: float = 120.0) -> Iterator[bool]:
    """Hold the source's run lock for the block; yields whether it was acquired (False: another run holds it)."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, source) as got:
            yield got
    else:
        with _row_lock(engine, source, ttl) as got:
            yield got


@contextmanager
def _advisory_lock(engine: Engine, source: str) -> Iterator[bool]:
    key = advisory_key(source)
    con = engine.connect()
    got = False
    try:
        got = bool(con.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        con.commit()  # the lock is session-level: it outlives the transaction, which must not stay open
        yield got
    finally:
        try:
            if got:
                con.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                con.commit()
            con.close()
        except Exception:  # noqa: BLE001 - never hand a connection that may still hold the lock back to the pool
            log.exception("releasing the advisory lock of %s failed; dropping the connection", source)
            con.invalidate()


def _alive_here(owner: str) -> bool | None:
    """Whether the owner process is alive, if it runs on this host (None: another host, cannot tell)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_row(engine: Engine, source: str, owner: str, ttl: float) -> bool:
    now = utcnow()
    values = dict(owner=owner, acquired_at=now, heartbeat_at=now, expires_at=now + timedelta(seconds=ttl))
    try:
        with engine.begin() as con:
            con.execute(insert(SourceLock).values(source=source, **values))
        return True
    except IntegrityError:
        pass
    with engine.begin() as con:
        row = con.execute(select(SourceLock.owner, SourceLock.expires_at).where(SourceLock.source == source)).first()
        if row is None:  # released between our insert and this read: one more try
            try:
                con.execute(insert(SourceLock).values(source=source, **values))
                return True
            except IntegrityError:
                return False
        held_by, expires_at = row
        dead = _alive_here(held_by) is False
        if not (expires_at < now or dead):
            return False
        log.warning("taking over the lock of source %s from %s (%s)", source, held_by,
                    "its process is gone" if dead else "its heartbeat expired")
        taken = con.execute(update(SourceLock).where(SourceLock.source == source, SourceLock.owner == held_by)
                            .values(**values))
        return taken.rowcount == 1


@contextmanager
def _row_lock(engine: Engine, source: str, ttl: float) -> Iterator[bool]:
    owner = f"{runner_id()}:{uuid.uuid4().hex[:8]}"
    if not _take_row(engine, source, owner, ttl):
        yield False
        return
    stop = threading.Event()

    def heartbeat():
        while not stop.wait(ttl / 4):
            try:
                now = utcnow()
                with engine.begin() as con:
                    con.execute(update(SourceLock).where(SourceLock.source == source, SourceLock.owner == owner)
                                .values(heartbeat_at=now, expires_at=now + timedelta(seconds=ttl)))
            except Exception:  # noqa: BLE001 - a missed beat is retried; the expiry leaves room for several
                log.warning("heartbeat of the lock of %s failed", source, exc_info=True)

    beat = threading.Thread(target=heartbeat, name=f"lock-heartbeat-{source}", daemon=True)
    beat.start()
    try:
        yield True
    finally:
        stop.set()
        beat.join()
        with engine.begin() as con:
            con.execute(delete(SourceLock).where(SourceLock.source == source, SourceLock.owner == owner))
