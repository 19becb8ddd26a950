"""The protocol every provider connector follows, and the types that cross it.

A connector answers three questions, and nothing else:
  discover  — which raw files (grouped into candidate deliveries) are at a location?
  inspect   — for a candidate's fetched files: are they readable, what are their raw row counts and cost sums per
              billing period (computed straight from the files), and what SELECT maps them to FOCUS columns?
Fetching files (storage.py) and loading/reconciling them (app.ingest, app.warehouse) are shared by all providers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping, Protocol

import duckdb

from app.warehouse import StagedFile, Totals


class IngestError(Exception):
    """Bad input. The message names the file and, where there is one, the row and the column.

    Rows count data rows from 1, as a spreadsheet user sees them below the header; row 0 is the header."""

    recorded = False  # set once a failed ledger row names this error

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None, column: str | None = None):
        self.message, self.file, self.row, self.column = message, file, row, column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [self.file] if self.file else []
        if self.row == 0:
            where.append("header")
        elif self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column}")
        return (", ".join(where) + ": " if where else "") + self.message


@dataclass(frozen=True)
class RemoteFile:
    """A raw file where the provider left it: a local path or an object-store URL."""

    uri: str
    size: int | None = None
    version: str | None = None  # ETag, or mtime for local files
    modified: float | None = None  # POSIX time of the last write, to pick the newest manifest
    role: str | None = None  # what the file is within its delivery, when a format joins two datasets (Azure)


@dataclass(frozen=True)
class LocalFile:
    """A raw file on this machine, with the content hash that identifies it across re-deliveries."""

    uri: str
    path: Path
    size: int
    sha256: str
    role: str | None = None  # carried over from the RemoteFile


@dataclass(frozen=True)
class Candidate:
    """Files that together make one or more deliveries.

    A manifest-based export says which billing period its files state and gives the delivery an identity (AWS
    assemblyId, Data Exports execution, Azure run): then an identity already loaded is skipped before any download,
    and every row must belong to that period. Without them (plain FOCUS files) each billing period found in the
    rows is a delivery, identified by the content hashes of its files."""

    files: tuple[RemoteFile, ...]
    label: str = ""
    billing_period: datetime | None = None
    identity: str | None = None
    problem: str | None = None  # found but unusable (e.g. a manifest naming a missing file): fails this delivery


@dataclass
class PeriodStats:
    period_start: datetime
    period_end: datetime
    raw: Totals


@dataclass
class FileReport:
    """One raw file's figures for the ledger: raw counts and sums per billing period, what was tolerated."""

    file: LocalFile
    periods: list[PeriodStats]
    tolerated: list[str] = field(default_factory=list)


@dataclass
class Inspection:
    """A candidate's files, checked and counted, and the SELECTs that map them to the warehouse's columns."""

    files: list[FileReport]
    staged: list[StagedFile]
    # Turns a database error raised while loading the staged SELECT of `uri` into an IngestError naming the bad
    # row and column.
    diagnose: Callable[[str, Exception], IngestError] | None = None
    # False when the mapping adds or nets rows; the money sums are always compared.
    rows_reconcile: bool = True


class Connector(Protocol):
    provider: str
    formats: tuple[str, ...]

    def discover(self, location: str, options: Mapping[str, str], fmt: str) -> list[Candidate]: ...

    def inspect(self, con: duckdb.DuckDBPyConnection, files: list[LocalFile], fmt: str) -> Inspection: ...
