"""Reader pinning (Warehouse.keep_readers_open, used by the API server): requests reuse one open DuckDB instance,
and writers, in this process or another one, still get in and are seen by the next read."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app.warehouse import Warehouse, WarehouseBusy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WRITER = """
import sys, time
from app.warehouse import Warehouse
w = Warehouse(sys.argv[1], lock_timeout=float(sys.argv[3]))
t = time.monotonic()
with w.connect() as con:
    con.execute("CREATE OR REPLACE TABLE pin_probe AS SELECT ?::INTEGER AS v", [int(sys.argv[2])])
print(round(time.monotonic() - t, 3))
"""


@pytest.fixture
def warehouse(tmp_path):
    w = Warehouse(tmp_path / "warehouse.duckdb", lock_timeout=10)
    w.migrate()
    with w.connect() as con:
        con.execute("CREATE TABLE pin_probe AS SELECT 0::INTEGER AS v")
    w.keep_readers_open()
    yield w
    w.keep_readers_open(False)


def read(w: Warehouse) -> int:
    with w.connect(read_only=True) as con:
        return con.execute("SELECT v FROM pin_probe").fetchone()[0]


def write_from_another_process(w: Warehouse, value: int, timeout: float = 10) -> float:
    done = subprocess.run([sys.executable, "-c", WRITER, str(w.path), str(value), str(timeout)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_pinned_reads_reuse_the_open_instance(warehouse):
    assert read(warehouse) == 0
    pin = warehouse._pin
    assert pin is not None
    for _ in range(20):
        assert read(warehouse) == 0
    assert warehouse._pin is pin  # the same instance served every read (the speed is bench/api_bench.py's)


def test_a_writer_in_another_process_gets_in_without_any_request_here(warehouse):
    assert read(warehouse) == 0  # pinned now; no further reads until the writer is done
    waited = write_from_another_process(warehouse, 7)
    assert waited < 5, f"the other process waited {waited} s for the pinned reader"
    assert read(warehouse) == 7  # the next read opens the file afresh and sees the write


def test_a_writer_in_this_process_gets_in_and_reads_wait_for_it(warehouse):
    assert read(warehouse) == 0
    with warehouse.connect() as con:
        con.execute("CREATE OR REPLACE TABLE pin_probe AS SELECT 3::INTEGER AS v")
        assert warehouse._pin is None
    assert read(warehouse) == 3


def test_readers_hold_off_while_a_writer_has_announced_itself(warehouse, tmp_path):
    assert read(warehouse) == 0
    intent = warehouse.path.with_name(f"{warehouse.path.name}.write-intent.{os.getpid()}.test")
    intent.touch()
    try:
        with pytest.raises(WarehouseBusy, match="writer is waiting"):
            with warehouse.connect(read_only=True, timeout=0.3):
                pass
    finally:
        intent.unlink()
    assert read(warehouse) == 0


def test_a_dead_writers_intent_is_ignored_and_removed(warehouse):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    intent = warehouse.path.with_name(f"{warehouse.path.name}.write-intent.{dead.pid}.gone")
    intent.touch()
    assert read(warehouse) == 0
    assert not intent.exists()


def test_an_idle_pin_is_let_go(warehouse, monkeypatch):
    monkeypatch.setattr("app.warehouse.reads.PIN_IDLE_S", 0.2)
    assert read(warehouse) == 0
    deadline = time.monotonic() + 5
    while warehouse._pin is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warehouse._pin is None


# -- the read cache (Warehouse.read_through): answers kept while the pinned instance stays open -------------------
def cached_read(w: Warehouse, calls: list) -> int:
    def compute(con):
        calls.append(1)
        return con.execute("SELECT v FROM pin_probe").fetchone()[0]

    return w.read_through(("probe",), compute, size=lambda v: 8)


def test_read_through_answers_repeats_until_another_process_writes(warehouse):
    warehouse.cache_limit_bytes = 1 << 20
    calls: list = []
    assert [cached_read(warehouse, calls) for _ in range(5)] == [0] * 5
    assert len(calls) == 1  # computed once, then answered from memory
    write_from_another_process(warehouse, 9)
    assert read(warehouse) == 9  # a plain read pins the file again before the cached read asks
    assert cached_read(warehouse, calls) == 9 and len(calls) == 2  # the writer ended the epoch: computed afresh
    assert cached_read(warehouse, calls) == 9 and len(calls) == 2


def test_read_through_forgets_on_a_write_in_this_process(warehouse):
    warehouse.cache_limit_bytes = 1 << 20
    calls: list = []
    assert cached_read(warehouse, calls) == 0 and cached_read(warehouse, calls) == 0 and len(calls) == 1
    with warehouse.connect() as con:
        con.execute("CREATE OR REPLACE TABLE pin_probe AS SELECT 4::INTEGER AS v")
    assert read(warehouse) == 4
    assert cached_read(warehouse, calls) == 4 and len(calls) == 2


def test_read_through_is_off_without_a_budget_or_a_pin(warehouse):
    calls: list = []
    warehouse.cache_limit_bytes = 0
    assert cached_read(warehouse, calls) == 0 and cached_read(warehouse, calls) == 0 and len(calls) == 2
    warehouse.cache_limit_bytes = 1 << 20
    warehouse.keep_readers_open(False)  # a CLI process: every read computes
    assert cached_read(warehouse, calls) == 0 and cached_read(warehouse, calls) == 0 and len(calls) == 4


def test_an_answer_computed_while_a_writer_came_is_not_kept(warehouse):
    warehouse.cache_limit_bytes = 1 << 20
    calls: list = []

    def compute(con):
        calls.append(1)
        value = con.execute("SELECT v FROM pin_probe").fetchone()[0]
        warehouse._release_pin()  # as the watcher does when a writer announces itself mid-query
        return value

    assert warehouse.read_through(("racy",), compute, size=lambda v: 8) == 0
    assert warehouse.read_through(("racy",), compute, size=lambda v: 8) == 0
    assert len(calls) == 2  # the first answer belonged to an epoch that had ended: never served again


def test_read_through_stays_within_its_budget(warehouse):
    warehouse.cache_limit_bytes = 400  # entries of 100 "bytes": at most four kept, least recently used first out
    calls: list = []

    def read_key(k):
        return warehouse.read_through(("k", k), lambda con: calls.append(k) or k, size=lambda v: 100)

    for k in range(6):
        read_key(k)
    assert warehouse._cache_bytes <= 400 and len(warehouse._cache) == 4
    calls.clear()
    read_key(5), read_key(2)
    assert calls == []  # the four most recent stayed
    read_key(0)
    assert calls == [0]  # the oldest went


def test_a_read_longer_than_the_idle_time_keeps_its_pin_and_answer(warehouse, monkeypatch):
    monkeypatch.setattr("app.warehouse.reads.PIN_IDLE_S", 0.2)
    warehouse.cache_limit_bytes = 1 << 20
    calls: list = []

    def slow(con):
        calls.append(1)
        time.sleep(0.8)  # a long query: four idle periods, but a read is in flight
        return con.execute("SELECT v FROM pin_probe").fetchone()[0]

    assert warehouse.read_through(("slow",), slow, size=lambda v: 8) == 0
    assert warehouse.read_through(("slow",), slow, size=lambda v: 8) == 0
    assert len(calls) == 1


def test_per_epoch_facts_are_asked_once_per_pinned_instance(warehouse):
    """Warehouse.per_epoch (e.g. whether the rollups are current, asked by every cost query): computed once while
    the pinned instance stays open, again after any write, every time without a pin; whatever the cache budget."""
    warehouse.cache_limit_bytes = 0
    calls: list = []

    def fact():
        with warehouse.connect(read_only=True) as con:
            return warehouse.per_epoch("probe", con, lambda c: calls.append(1) or c.execute(
                "SELECT v FROM pin_probe").fetchone()[0])

    assert [fact() for _ in range(4)] == [0] * 4 and len(calls) == 1
    with warehouse.connect() as con:
        con.execute("CREATE OR REPLACE TABLE pin_probe AS SELECT 6::INTEGER AS v")
    assert fact() == 6 and fact() == 6 and len(calls) == 2
    write_from_another_process(warehouse, 8)
    assert read(warehouse) == 8
    assert fact() == 8 and len(calls) == 3
    warehouse.keep_readers_open(False)
    assert fact() == 8 and fact() == 8 and len(calls) == 5
