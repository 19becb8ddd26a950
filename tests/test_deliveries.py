"""Delivery semantics on both control databases: replace never doubles, same files change nothing, failures roll
back, the ledger holds raw and landed figures."""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.control import Delivery
from app.ingest import SourceConflict, ingest
from app.warehouse import FileLoadError, PeriodLoad, ReconciliationError, StagedFile, Totals, Warehouse
from connectors.base import IngestError
from tests.helpers import read_rows, sums, write_csv

AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"
FF10 = "finops-foundation-focus-1.0/focus_sample.csv"


def warehouse_totals(rt, source=None):
    with rt.warehouse.connect(read_only=True) as con:
        where, params = ("WHERE x_SourceId = ?", [source]) if source else ("", [])
        rows, billed = con.execute(f"SELECT count(*), sum(BilledCost) FROM cost_and_usage {where}", params).fetchone()
        return rows, billed, Warehouse.data_version(con)


def ledger(rt, **where):
    with rt.sessions() as s:
        stmt = select(Delivery).order_by(Delivery.started_at, Delivery.billing_period_start)
        for k, v in where.items():
            stmt = stmt.where(getattr(Delivery, k) == v)
        return list(s.scalars(stmt))


def test_ledger_records_raw_and_landed_figures(rt_any, samples):
    result = ingest(rt_any, "aws", str(samples / AWS))
    (d,) = result.loaded
    rows = read_rows(samples / AWS)
    assert d.status == "loaded"
    assert d.billing_period_start == datetime(2026, 5, 1, tzinfo=timezone.utc)
    assert d.billing_period_end == datetime(2026, 6, 1, tzinfo=timezone.utc)
    assert d.raw_rows == d.landed_rows == len(rows)
    assert d.raw_billed_cost == d.landed_billed_cost == sums(rows, "BilledCost")
    assert d.raw_effective_cost == d.landed_effective_cost == sums(rows, "EffectiveCost")
    assert d.duration_ms is not None and d.finished_at >= d.started_at
    (f,) = d.files
    assert f["rows"] == len(rows) and Decimal(f["billed_cost"]) == sums(rows, "BilledCost") and len(f["sha256"]) == 64
    # Re-read from the database: exact decimals survive the round trip on both backends.
    (again,) = ledger(rt_any, id=d.id)
    assert again.raw_billed_cost == sums(rows, "BilledCost")
    assert isinstance(again.raw_billed_cost, Decimal)


def test_same_files_again_change_nothing(rt_any, samples):
    first = ingest(rt_any, "ff", str(samples / FF10))
    before = warehouse_totals(rt_any)
    second = ingest(rt_any, "ff", str(samples / FF10))
    assert second.loaded == []
    assert sorted(d.id for d in second.unchanged) == sorted(d.id for d in first.loaded)
    assert warehouse_totals(rt_any) == before  # same rows, same data version
    assert len(ledger(rt_any)) == 2


def test_redelivered_period_replaces_never_doubles(rt_any, samples, tmp_path):
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    i = header.index("BilledCost")
    first_file = write_csv(tmp_path / "may.csv", header, rows)
    ingest(rt_any, "aws", str(first_file))
    # The provider restates May: one line gets a refund-sized change and 10 lines are dropped.
    restated = [list(r) for r in rows[10:]]
    restated[0][i] = str(Decimal(restated[0][i]) - Decimal("1.25"))
    second_file = write_csv(tmp_path / "may-v2.csv", header, restated)
    result = ingest(rt_any, "aws", str(second_file))

    expected = sum((Decimal(r[i]) for r in restated), Decimal(0))
    rows_now, billed_now, _ = warehouse_totals(rt_any, "aws")
    assert (rows_now, billed_now) == (len(restated), expected)
    old, new = ledger(rt_any)
    assert (old.status, old.replaced_by) == ("replaced", new.id)
    assert new.status == "loaded" and result.loaded[0].id == new.id
    with rt_any.warehouse.connect(read_only=True) as con:
        assert con.execute("SELECT DISTINCT x_DeliveryId FROM cost_and_usage").fetchall() == [(new.id,)]


def test_each_billing_period_is_its_own_delivery(rt_any, samples):
    result = ingest(rt_any, "ff", str(samples / FF10))
    assert [(d.billing_period_start.month, d.raw_rows) for d in result.loaded] == [(9, 999), (10, 1)]
    assert len({d.identity for d in result.loaded}) == 2


def test_sources_do_not_replace_each_other(rt_any, samples):
    ingest(rt_any, "a", str(samples / AWS))
    ingest(rt_any, "b", str(samples / AWS))
    assert warehouse_totals(rt_any, "a")[:2] == warehouse_totals(rt_any, "b")[:2]
    assert warehouse_totals(rt_any)[0] == 2 * warehouse_totals(rt_any, "a")[0]


def test_failed_ingest_keeps_previous_period_and_records_failure(rt_any, samples, tmp_path):
    ingest(rt_any, "aws", str(samples / AWS))
    before = warehouse_totals(rt_any)
    with open(samples / AWS, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    rows[150][header.index("EffectiveCost")] = "oops"
    bad = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(IngestError, match=r"row 151, column EffectiveCost"):
        ingest(rt_any, "aws", str(bad))
    assert warehouse_totals(rt_any) == before
    failed = ledger(rt_any, status="failed")
    assert len(failed) == 1 and "row 151" in failed[0].error
    assert ledger(rt_any, status="loaded")[0].landed_rows == 200


def test_source_kind_conflict_is_refused(rt_any, samples):
    ingest(rt_any, "aws", str(samples / AWS))
    with rt_any.sessions() as s:
        from app.ingest import get_or_create_source

        with pytest.raises(SourceConflict):
            get_or_create_source(s, "aws", "aws", "cur2", "s3://x/y")


def test_reconciliation_mismatch_rolls_back(rt, samples):
    """If landed figures differ from the raw ones, nothing of the delivery stays (the loader's own proof)."""
    ingest(rt, "aws", str(samples / AWS))
    before = warehouse_totals(rt)
    staged = StagedFile("memory", "SELECT * EXCLUDE (x_SourceId, x_DeliveryId, x_IngestedAt, x_SourceFile, x_LineId) "
                                  "FROM cost_and_usage")
    period = datetime(2026, 5, 1, tzinfo=timezone.utc)
    wrong = PeriodLoad("d-1", period, Totals(200, Decimal("0.01"), Decimal("0.01")))
    with rt.warehouse.connect() as con:
        with pytest.raises(ReconciliationError, match="billed_cost: raw 0.01 vs landed"):
            rt.warehouse.replace_deliveries(con, "aws", [wrong], [staged])
    assert warehouse_totals(rt) == before


def test_interrupted_delivery_is_settled_on_next_run(rt, samples):
    result = ingest(rt, "aws", str(samples / AWS))
    (d,) = result.loaded
    with rt.sessions() as s:  # simulate a crash between the warehouse commit and the ledger update
        s.get(Delivery, d.id).status = "running"
        s.commit()
    again = ingest(rt, "aws", str(samples / AWS))
    (settled,) = ledger(rt, id=d.id)
    assert settled.status == "loaded" and settled.landed_rows == 200
    assert again.loaded == [] and [u.id for u in again.unchanged] == [d.id]


def test_parquet_lines_take_a_reserved_block_of_ids_and_csv_lines_take_the_sequence(rt, samples, tmp_path):
    """A Parquet file's lines are numbered from a block of x_LineIds reserved for the file (the INSERT runs on
    every core; StagedFile.line_count); CSV lines take nextval() one by one. Both come from one sequence: ids are
    unique across sources and re-deliveries, and a re-delivered line gets a new id."""
    import threading

    import duckdb

    from app.warehouse import _LINE_IDS

    parquet = tmp_path / "aws.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * FROM read_csv('{samples / AWS}', all_varchar = true)) TO '{parquet}' "
                    "(FORMAT parquet)")
    n = len(read_rows(samples / AWS))

    def ids(source):
        with rt.warehouse.connect(read_only=True) as con:
            return [i for (i,) in con.execute("SELECT x_LineId FROM cost_and_usage WHERE x_SourceId = ? "
                                              "ORDER BY x_LineId", [source]).fetchall()]

    ingest(rt, "pq", str(parquet))
    first = ids("pq")
    assert len(first) == n and first == list(range(first[0], first[0] + n))  # one block, every id used once
    ingest(rt, "csv", str(samples / AWS))
    assert len(ids("csv")) == n and min(ids("csv")) > max(first)
    # a re-delivery (one cost changed) replaces the rows: new ids from a new block
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * REPLACE (CASE WHEN BilledCost = (SELECT max(BilledCost) FROM "
                    f"read_parquet('{parquet}')) THEN '0' ELSE BilledCost END AS BilledCost) FROM "
                    f"read_parquet('{parquet}')) TO '{tmp_path / 'aws-v2.parquet'}' (FORMAT parquet)")
    ingest(rt, "pq", str(tmp_path / "aws-v2.parquet"))
    second = ids("pq")
    assert len(second) == n and min(second) > max(ids("csv")) and second == list(range(second[0], second[0] + n))
    with rt.warehouse.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) = count(DISTINCT x_LineId) FROM cost_and_usage").fetchone() == (True,)
        # the block follows the file's row order: line k of the file has the block's k-th id
        assert con.execute("SELECT count(*) FROM cost_and_usage c JOIN (SELECT file_row_number, BilledCost, "
                           f"ResourceId FROM read_parquet('{tmp_path / 'aws-v2.parquet'}', file_row_number = true)) "
                           "f ON c.x_LineId = ? + f.file_row_number WHERE c.x_SourceId = 'pq' AND "
                           "c.ResourceId IS NOT DISTINCT FROM f.ResourceId", [second[0]]).fetchone() == (n,)
    # a line number outside the reserved block (the file changed after it was opened) fails the load, naming the
    # file, instead of giving two lines one id; nothing of the delivery stays
    before = warehouse_totals(rt)
    staged = StagedFile("changed.parquet", "SELECT * EXCLUDE (x_SourceId, x_DeliveryId, x_IngestedAt, x_SourceFile, "
                                           "x_LineId), row_number() OVER () - 1 AS __line FROM cost_and_usage "
                                           "WHERE x_SourceId = 'pq'", line_count=n - 1)
    load = PeriodLoad("d-x", datetime(2026, 5, 1, tzinfo=timezone.utc), Totals(n, Decimal(0), Decimal(0)))
    with rt.warehouse.connect() as con:
        with pytest.raises(FileLoadError, match=f"changed.parquet.*outside the {n - 1} lines"):
            rt.warehouse.replace_deliveries(con, "pq2", [load], [staged])
    assert warehouse_totals(rt) == before
    # a path DuckDB would read as a glob is numbered with nextval() (file_row_number restarts in every match)
    odd = tmp_path / "aws[1].parquet"
    odd.write_bytes(parquet.read_bytes())
    ingest(rt, "glob", str(odd))
    assert len(set(ids("glob"))) == n and min(ids("glob")) > max(ids("pq"))
    # while a nextval() INSERT holds the sequence, a reservation waits for it instead of interleaving
    with rt.warehouse.connect() as con:
        got = {}
        _LINE_IDS.acquire()
        t = threading.Thread(target=lambda: got.setdefault("first", reserve_line_ids_locked(con, 5)))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not got  # blocked
        con.execute("SELECT nextval('cost_line_id') FROM range(3)").fetchall()
        _LINE_IDS.release()
        t.join(10)
        assert got["first"] > max(second) + 3


def reserve_line_ids_locked(con, count):
    from app.warehouse import _LINE_IDS, reserve_line_ids

    with _LINE_IDS:
        return reserve_line_ids(con.cursor(), count)
