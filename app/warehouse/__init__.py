"""The DuckDB warehouse: the FOCUS cost table, its versioned DDL, and the one way billing data gets in.

`Warehouse.replace_deliveries` is the only writer of cost rows: inside one DuckDB transaction it deletes what a
source had for each billing period being delivered, inserts the new rows, recounts what landed and compares it with
the raw counts and sums the connector computed straight from the files. Any mismatch or error rolls everything
back, so the previous data for those periods stays.

Serving reads (the pinned read-only instance API requests share, and the read cache on it) is
app.warehouse.reads, a mixin of `Warehouse`.
"""
from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from importlib import resources
from pathlib import Path

import duckdb

from app import MONEY_PRECISION
from app.warehouse.reads import ReadServing

COST_TABLE = "cost_and_usage"
# Every inserted line takes its stable id (x_LineId, migrations/warehouse/0004) from this sequence.
LINE_ID_SEQUENCE = "cost_line_id"
MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


class WarehouseBusy(RuntimeError):
    """Another process holds the DuckDB file for longer than the configured lock timeout."""


class ReconciliationError(RuntimeError):
    """What landed in the warehouse differs from what the raw files hold."""


class FileLoadError(RuntimeError):
    """The database refused the rows of one staged file (bad value, constraint); the load was rolled back."""

    def __init__(self, uri: str, cause: Exception):
        self.uri, self.cause = uri, cause
        super().__init__(f"{uri}: {cause}")


@dataclass(frozen=True)
class Totals:
    """Row count and cost sums of a set of billing lines (raw file or landed rows)."""

    rows: int = 0
    billed_cost: Decimal = Decimal(0)
    effective_cost: Decimal = Decimal(0)

    def __add__(self, other: Totals) -> Totals:
        with localcontext(prec=MONEY_PRECISION):  # DECIMAL(38,18) sums exceed the default 28 digits
            return Totals(
                self.rows + other.rows,
                self.billed_cost + other.billed_cost,
                self.effective_cost + other.effective_cost,
            )

    def differences(self, landed: Totals, rows: bool = True) -> list[str]:
        """What differs between raw and landed; `rows=False` for mappings that legitimately add or net rows."""
        out = []
        for name in ("rows", "billed_cost", "effective_cost")[0 if rows else 1:]:
            raw_v, landed_v = getattr(self, name), getattr(landed, name)
            if raw_v != landed_v:
                out.append(f"{name}: raw {raw_v} vs landed {landed_v}")
        return out


@dataclass(frozen=True)
class PeriodLoad:
    """One delivery to apply: the rows of `billing_period_start` in the staged selects replace the source's."""

    delivery_id: str
    billing_period_start: datetime
    raw: Totals
    # False when the provider mapping adds rows (unused commitments) or nets them (AWS negations): the sums still
    # must match to the last decimal, the counts are recorded but not compared.
    check_rows: bool = True


@dataclass(frozen=True)
class StagedFile:
    """A SELECT producing warehouse-named columns for one raw file (lineage columns are added by the loader)."""

    uri: str
    select_sql: str
    # True when the SELECT yields x_SourceFile itself (a delivery read from several files at once).
    provides_source_file: bool = False
    # Set when the SELECT also yields LINE_COLUMN, a number unique among its rows in [0, line_count) (Parquet's
    # file_row_number): the loader then numbers the lines from a block of x_LineIds reserved for the file, and
    # DuckDB runs the INSERT on every core. Without it the lines take nextval() one by one, which DuckDB runs on
    # one thread (bench/RESULTS.md: 1.8x the INSERT's wall time on 2 cores).
    line_count: int | None = None


LINE_COLUMN = "__line"
# Every use of the line-id sequence in this process (a block reservation, or an INSERT calling nextval) holds this
# lock, so a reserved block is contiguous; another process cannot write the warehouse at the same time.
_LINE_IDS = threading.Lock()


def reserve_line_ids(con: duckdb.DuckDBPyConnection, count: int) -> int:
    """The first of `count` consecutive x_LineIds taken from the sequence for one file (the caller holds
    _LINE_IDS). Sequence values are never handed out twice, even when the transaction rolls back."""
    first, last = con.execute(f"SELECT min(v), max(v) FROM (SELECT nextval('{LINE_ID_SEQUENCE}') AS v "
                              "FROM range(?))", [count]).fetchone()
    if last - first + 1 != count:
        raise RuntimeError(f"line ids {first}..{last} are not a block of {count}: another writer used the sequence")
    return first


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every versioned warehouse DDL file, in order."""
    folder = resources.files("migrations") / "warehouse"
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text()))
    return sorted(out)


def configure(
    con: duckdb.DuckDBPyConnection,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: Path | str | None = None,
    max_temp_size: str | None = None,
    instance_wide: bool = False,
) -> None:
    """Session settings every warehouse connection needs: all timestamps are UTC; progress is tracked (for our own
    bars) but DuckDB never prints its bar into the CLI's output; the resource bounds (memory limit, threads, where
    and how much to spill). The bounds are the database instance's, shared by every connection to the same file in
    this process; the temp directory is only set when it differs (DuckDB refuses to move one in use).
    instance_wide: the time zone for every connection of the instance (the pinned reader; its reads then need no
    SET of their own, which costs ~0.3 ms each)."""
    con.execute(f"SET {'GLOBAL ' if instance_wide else ''}TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    if memory_limit and memory_limit.strip().lower() != "none":
        con.execute(f"SET memory_limit = '{_size(memory_limit, 'memory limit')}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if max_temp_size and max_temp_size.strip().lower() != "none":
        con.execute(f"SET max_temp_directory_size = '{_size(max_temp_size, 'temp size')}'")
    if temp_directory:
        wanted = str(Path(temp_directory).resolve())
        current = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        if current != wanted:
            con.execute("SET temp_directory = ?", [wanted])


def _size(value: str, what: str) -> str:
    if not MEMORY_SIZE.match(value.strip()):
        raise ValueError(f"{what} {value!r} is not a size such as 1GB or 512MB")
    return value.strip()


@dataclass(frozen=True)
class Resources:
    """The bounds of the warehouse's DuckDB instance (app.settings: CLOUDTALLY_WAREHOUSE_*)."""

    memory_limit: str | None = None
    threads: int | None = None
    temp_directory: Path | None = None
    max_temp_size: str | None = None


class Warehouse(ReadServing):
    def __init__(self, path: Path, lock_timeout: float = 30.0, memory_limit: str | None = None,
                 resources: Resources | None = None):
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.memory_limit = memory_limit
        self.resources = resources or Resources()
        self._init_reads()  # reader pinning and the read cache (app.warehouse.reads)

    @contextmanager
    def connect(self, read_only: bool = False, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A configured connection; waits (at most `timeout`, default the lock timeout) while another process
        holds the file, or while this process holds it with the other mode (DuckDB cannot open one file read-only
        and read-write at once in one process: the scheduler's ingest and the API's reads in `cloudtally serve`)."""
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no warehouse at {self.path}; run `cloudtally init` or ingest data first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + (self.lock_timeout if timeout is None else timeout)
        with (nullcontext() if read_only else self._write_intent()):
            con = self._open(read_only, deadline)
            pinned = self._local.epoch is not None
            try:
                if not pinned:  # a connection to the pinned instance is configured already
                    self._configure(con)
                yield con
            finally:
                con.close()
                if pinned:  # a read in flight is not idleness: a query longer than PIN_IDLE_S keeps its epoch
                    self._end_pinned_read()

    def _configure(self, con: duckdb.DuckDBPyConnection, instance_wide: bool = False) -> None:
        r = self.resources
        configure(con, self.memory_limit, r.threads, r.temp_directory, r.max_temp_size, instance_wide=instance_wide)

    def _open(self, read_only: bool, deadline: float) -> duckdb.DuckDBPyConnection:
        delay = 0.05
        while True:
            pinning = read_only and self._pin_enabled
            if pinning and self._writer_waiting():
                self._release_pin()  # let the writer in; our in-flight readers finish on their own
                exc: Exception | None = None
            else:
                try:
                    self._local.epoch = None
                    if not pinning:
                        return duckdb.connect(str(self.path), read_only=read_only)
                    return self._connect_pinned()
                except (duckdb.IOException, duckdb.ConnectionException) as e:
                    if "lock" not in str(e).lower() and "different configuration" not in str(e).lower():
                        raise
                    exc = e
            if time.monotonic() >= deadline:
                what = exc or "a writer is waiting for it"
                raise WarehouseBusy(f"warehouse {self.path} is in use by another process: {what}")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # -- schema ---------------------------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply the versioned DDL files not yet applied; returns the schema version."""
        with self.connect() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS warehouse_migrations "
                "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            applied = {v for (v,) in con.execute("SELECT version FROM warehouse_migrations").fetchall()}
            current = max(applied, default=0)
            for version, name, sql in migration_files():
                if version in applied:
                    continue
                con.begin()
                try:
                    con.execute(sql)
                    con.execute(
                        "INSERT INTO warehouse_migrations VALUES (?, ?, ?)",
                        [version, name, datetime.now(timezone.utc)],
                    )
                    con.commit()
                except Exception:
                    con.rollback()
                    raise
                current = version
            return current

    @staticmethod
    def data_version(con: duckdb.DuckDBPyConnection) -> int:
        return con.execute("SELECT data_version FROM warehouse_state").fetchone()[0]

    # -- the one writer -------------------------------------------------------------------------------------------
    def replace_deliveries(
        self,
        con: duckdb.DuckDBPyConnection,
        source_id: str,
        loads: list[PeriodLoad],
        files: list[StagedFile],
        on_progress: Callable[[str, float], None] | None = None,
    ) -> dict[str, Totals]:
        """Replace the source's rows of each delivered billing period with the staged rows, proving the sums.

        Rows of the staged files whose BillingPeriodStart is not among `loads` are not loaded (their period's
        delivery is unchanged). Returns the landed totals per delivery id. Raises ReconciliationError (or the
        database error) after rolling back.
        """
        ingested_at = datetime.now(timezone.utc)
        periods = [p.billing_period_start for p in loads]
        in_periods = ", ".join("?" for _ in loads)
        # Literal periods rather than a join against a period table: the join made DuckDB hold ~0.9 GB more at
        # 10M rows (bench/RESULTS.md). The rows' order in the table means nothing, so DuckDB need not keep it.
        delivery_case = "CASE s.BillingPeriodStart " + " ".join("WHEN ? THEN ?" for _ in loads) + " END"
        case_params = [v for p in loads for v in (p.billing_period_start, p.delivery_id)]
        con.execute("SET preserve_insertion_order = false")
        con.begin()
        try:
            con.execute(
                f"DELETE FROM {COST_TABLE} WHERE x_SourceId = ? AND BillingPeriodStart IN ({in_periods})",
                [source_id, *periods],
            )
            for i, staged in enumerate(files):
                source_file = "" if staged.provides_source_file else ", ? AS x_SourceFile"
                file_param = [] if staged.provides_source_file else [staged.uri]
                params = [source_id, *case_params, ingested_at, *file_param, *periods]
                if staged.line_count is not None:
                    with _LINE_IDS:
                        first = reserve_line_ids(con, staged.line_count)
                    n = int(staged.line_count)
                    columns = f"s.* EXCLUDE ({LINE_COLUMN})"
                    line_id = (f"CASE WHEN s.{LINE_COLUMN} >= 0 AND s.{LINE_COLUMN} < {n} THEN {int(first)} + "
                               f"s.{LINE_COLUMN} ELSE error('line number ' || s.{LINE_COLUMN} || ' is outside the "
                               f"{n} lines the file had when it was opened') END")
                    hold = nullcontext()
                else:  # nextval() as the INSERT goes: no block can be reserved meanwhile
                    columns, line_id, hold = "s.*", f"nextval('{LINE_ID_SEQUENCE}')", _LINE_IDS
                sql = (
                    f"INSERT INTO {COST_TABLE} BY NAME "
                    f"SELECT {columns}, ? AS x_SourceId, {delivery_case} AS x_DeliveryId, ? AS x_IngestedAt"
                    f"{source_file}, CAST({line_id} AS BIGINT) AS x_LineId "
                    f"FROM ({staged.select_sql}) s WHERE s.BillingPeriodStart IN ({in_periods})"
                )
                try:
                    with hold:
                        if on_progress is None:
                            con.execute(sql, params)
                        else:
                            _execute_with_progress(
                                con, sql, params, lambda f, i=i: on_progress(staged.uri, (i + f) / len(files))
                            )
                except duckdb.Error as exc:
                    raise FileLoadError(staged.uri, exc) from exc
            landed = {
                delivery_id: Totals(rows, billed or Decimal(0), effective or Decimal(0))
                for delivery_id, rows, billed, effective in con.execute(
                    f"SELECT x_DeliveryId, count(*), sum(BilledCost), sum(EffectiveCost) FROM {COST_TABLE} "
                    f"WHERE x_DeliveryId IN ({in_periods}) GROUP BY x_DeliveryId", [p.delivery_id for p in loads]
                ).fetchall()
            }
            problems = []
            for p in loads:
                diff = p.raw.differences(landed.get(p.delivery_id, Totals()), rows=p.check_rows)
                if diff:
                    problems.append(f"billing period {p.billing_period_start:%Y-%m-%d}: " + "; ".join(diff))
            if problems:
                raise ReconciliationError("landed rows do not reconcile with the raw files: " + " | ".join(problems))
            _test_pause_in_load()
            con.execute("UPDATE warehouse_state SET data_version = data_version + 1")
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            con.execute("RESET preserve_insertion_order")
        return {p.delivery_id: landed.get(p.delivery_id, Totals()) for p in loads}


def _test_pause_in_load() -> None:
    """Test hook for the crash test (tests/test_reliability.py); a no-op unless CLOUDTALLY_TEST_PAUSE_IN_LOAD is set.

    When it names a file, the load creates that file once its rows are written but not committed, then sleeps
    CLOUDTALLY_TEST_PAUSE_SECONDS (default 60), so a test can SIGKILL the process inside the load transaction."""
    marker = os.environ.get("CLOUDTALLY_TEST_PAUSE_IN_LOAD")
    if not marker:
        return
    Path(marker).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("CLOUDTALLY_TEST_PAUSE_SECONDS", "60")))


def _execute_with_progress(con, sql, params, report: Callable[[float], None]) -> None:
    """Run one statement while a watcher thread reports DuckDB's own progress estimate (0..1)."""
    done = threading.Event()

    def watch():
        while not done.wait(0.2):
            try:
                pct = con.query_progress()
            except Exception:  # the connection may be between states; progress is best-effort
                continue
            if pct is not None and pct >= 0:
                report(min(pct, 100.0) / 100.0)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        con.execute(sql, params)
    finally:
        done.set()
        watcher.join()
    report(1.0)
