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
    monkeypatch.setattr("app.warehouse.PIN_IDLE_S", 0.2)
    assert read(warehouse) == 0
    deadline = time.monotonic() + 5
    while warehouse._pin is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warehouse._pin is None
