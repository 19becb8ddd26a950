"""Request dependencies: the runtime, a read-only warehouse connection and a control-database session."""
from __future__ import annotations

from collections.abc import Iterator

import duckdb
from fastapi import Request
from sqlalchemy.orm import Session

from app.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def warehouse(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection, so a CLI ingest in another process can take the file between requests."""
    with get_runtime(request).warehouse.connect(read_only=True) as con:
        yield con


def db_session(request: Request) -> Iterator[Session]:
    with get_runtime(request).sessions() as session:
        yield session
