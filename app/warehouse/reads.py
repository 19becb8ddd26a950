"""Serving reads from the warehouse: the pinned read-only DuckDB instance that API requests share, and the read
cache on top of it.

`ReadServing` is a mixin of `app.warehouse.Warehouse` (it uses the warehouse's `path`, `connect()` and
`_configure()`): `keep_readers_open` pins one read-only instance while serving, writers announce themselves with an
intent file so the pin lets go of the file for them, the pin's epoch changes whenever the pinned instance is
(re)opened, and `read_through` remembers answers for as long as one epoch lasts.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb

PIN_IDLE_S = 2.0  # a pinned reader instance is let go after this long without reads


class ReadServing:
    """Reader pinning and the read cache of a Warehouse (see _init_reads)."""

    def _init_reads(self) -> None:
        # Reader pinning (keep_readers_open(), used by the API server): opening the DuckDB file costs tens of ms
        # (catalog, WAL), a connection to an instance already open in this process well under 1 ms. While pinned,
        # one read-only connection stays open so every request's connect() reuses the instance. Writers announce
        # themselves with an intent file beside the warehouse (this process or another one: `cloudtally ingest`
        # while `serve` runs); a pinned reader that sees it lets go of the file and waits until the writer is done.
        self._pin_enabled = False
        self._pin: duckdb.DuckDBPyConnection | None = None
        self._pin_lock = threading.Lock()
        self._pin_watcher: threading.Thread | None = None
        self._last_read = 0.0
        self._reading = 0  # connections to the pinned instance now open (under _pin_lock)
        # The pin's epoch: a number that changes whenever the pinned instance is (re)opened. While one pinned
        # instance stays open nobody can write the file (DuckDB's read lock; in this process a read-write open of
        # the same file waits for it, see connect), so anything computed from it stays true until the pin goes:
        # the read cache (read_through) keys on the epoch and forgets everything when it changes.
        self._epoch = 0
        self._local = threading.local()  # the epoch the calling thread's last read connection was opened under
        self._cache: dict[tuple, tuple[object, int]] = {}
        self._cache_epoch = -1
        self._cache_bytes = 0
        self._cache_lock = threading.Lock()
        self.cache_limit_bytes = 0  # 0: read_through computes every time
        self._facts: dict[str, tuple[int, object]] = {}  # per_epoch: key -> (epoch, value)

    def keep_readers_open(self, enabled: bool = True) -> None:
        """Pin a read-only instance while serving (see _init_reads); disabling releases it. A watcher thread lets
        go of the file within ~0.1 s of a writer's announcement (another process needs no request here to get in)
        and after PIN_IDLE_S without reads."""
        self._pin_enabled = enabled
        if not enabled:
            self._release_pin()
            return
        if self._pin_watcher is None or not self._pin_watcher.is_alive():
            self._pin_watcher = threading.Thread(target=self._watch_pin, name="warehouse-pin", daemon=True)
            self._pin_watcher.start()

    def _watch_pin(self) -> None:
        while self._pin_enabled:
            time.sleep(0.1)
            idle = self._reading == 0 and time.monotonic() - self._last_read > PIN_IDLE_S
            if self._pin is not None and (idle or self._writer_waiting()):
                self._release_pin()

    def _release_pin(self) -> None:
        with self._pin_lock:
            pin, self._pin = self._pin, None
            if pin is not None:
                self._epoch += 1  # the epoch ends before the file can change: no cache hit from here on
                pin.close()

    def _writer_waiting(self) -> bool:
        """Whether a live writer (any process) has announced itself (`<warehouse>.write-intent.<pid>.<token>`);
        a dead writer's intent file (killed mid-write) is removed."""
        waiting = False
        for intent in self.path.parent.glob(self.path.name + ".write-intent.*"):
            try:
                os.kill(int(intent.name.rsplit(".", 2)[-2]), 0)
                waiting = True
            except ProcessLookupError:
                intent.unlink(missing_ok=True)
            except (PermissionError, ValueError):
                waiting = True
        return waiting

    @contextmanager
    def _write_intent(self) -> Iterator[None]:
        intent = self.path.with_name(f"{self.path.name}.write-intent.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        intent.touch()
        self._release_pin()
        try:
            yield
        finally:
            intent.unlink(missing_ok=True)

    def _connect_pinned(self) -> duckdb.DuckDBPyConnection:
        """A connection to the pinned instance, opening (and configuring) the pin first if it is not open; records
        the epoch it belongs to for the calling thread. Lock errors go to Warehouse._open's retry."""
        self._last_read = time.monotonic()
        with self._pin_lock:  # the pin cannot go while we connect: this is its instance
            if self._pin is None:
                pin = duckdb.connect(str(self.path), read_only=True)
                self._configure(pin, instance_wide=True)
                self._pin = pin
            con = duckdb.connect(str(self.path), read_only=True)
            self._local.epoch = self._epoch
            self._reading += 1
        return con

    def _end_pinned_read(self) -> None:
        """A connection to the pinned instance was closed."""
        with self._pin_lock:
            self._reading -= 1
            self._last_read = time.monotonic()

    def per_epoch(self, key: str, con: duckdb.DuckDBPyConnection,
                  compute: Callable[[duckdb.DuckDBPyConnection], object]) -> object:
        """compute(con) for a connection `read_through` (or connect) just opened, remembered for as long as the pinned
        instance it reads stays open (computed every time when not pinned): small facts every read needs, such as
        whether the rollups are current, which cannot change while the pin holds the file."""
        epoch = self._local.epoch
        if epoch is None:
            return compute(con)
        with self._cache_lock:
            hit = self._facts.get(key)
            if hit is not None and hit[0] == epoch:
                return hit[1]
        value = compute(con)
        with self._cache_lock:
            self._facts[key] = (epoch, value)
        return value

    def read_through(self, key: tuple, compute: Callable[[duckdb.DuckDBPyConnection], object],
                     size: Callable[[object], int] = len) -> object:
        """compute(con) on a read-only connection, remembered under `key` for as long as the pinned instance it
        was read from stays open (the data cannot change meanwhile, see _init_reads); the API answers repeated
        queries from here. Off (computes every time) unless pinned and cache_limit_bytes > 0. Entries are dropped
        least recently used first beyond cache_limit_bytes (as measured by `size`), and all at once when the
        epoch changes (a writer came, or the pin idled out)."""
        if self.cache_limit_bytes > 0 and self._pin_enabled:
            with self._cache_lock:
                if self._pin is not None and self._cache_epoch == self._epoch and key in self._cache:
                    value, nbytes = self._cache.pop(key)
                    self._cache[key] = (value, nbytes)  # most recently used last
                    self._last_read = time.monotonic()
                    return value
        with self.connect(read_only=True) as con:
            epoch = self._local.epoch
            value = compute(con)
        nbytes = size(value)
        if epoch is None or self.cache_limit_bytes <= 0 or nbytes > self.cache_limit_bytes // 4:
            return value
        with self._cache_lock:
            if self._cache_epoch != epoch:
                if epoch != self._epoch:  # computed under an epoch that has ended: do not keep it
                    return value
                self._cache.clear()
                self._cache_bytes, self._cache_epoch = 0, epoch
            old = self._cache.pop(key, None)
            self._cache_bytes += nbytes - (old[1] if old else 0)
            self._cache[key] = (value, nbytes)
            while self._cache_bytes > self.cache_limit_bytes:
                oldest = next(iter(self._cache))
                self._cache_bytes -= self._cache.pop(oldest)[1]
        return value
