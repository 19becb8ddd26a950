"""The stores' schemas: the warehouse DDL matches the FOCUS catalogue, money is never floating point, migrations
apply once and upgrade older files; the control database migrates on SQLite and PostgreSQL and keeps exact money."""
from __future__ import annotations

from decimal import Decimal

import duckdb
from sqlalchemy import inspect, select

from app.control import Delivery, Source
from app.focus import DECIMAL_SQL, FOCUS_COLUMNS, LINE_ID_COLUMN, LINEAGE_COLUMNS, MANDATORY, PROVIDER_COLUMNS
from app.warehouse import Warehouse, migration_files
from tests.conftest import make_runtime


def _columns(con) -> dict[str, tuple[str, str]]:
    return {
        name: (typ, nullable)
        for name, typ, nullable in con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'cost_and_usage' ORDER BY ordinal_position"
        ).fetchall()
    }


def test_warehouse_table_is_the_focus_catalogue(rt):
    with rt.warehouse.connect(read_only=True) as con:
        cols = _columns(con)
    expected = [c.name for c in FOCUS_COLUMNS] + [n for n, _ in LINEAGE_COLUMNS] + list(PROVIDER_COLUMNS) + [LINE_ID_COLUMN]
    assert cols[LINE_ID_COLUMN] == ("BIGINT", "YES")
    assert list(cols) == expected
    assert all(cols[n] == ("VARCHAR", "YES") for n in PROVIDER_COLUMNS)
    for c in FOCUS_COLUMNS:
        typ, nullable = cols[c.name]
        assert typ == c.sql_type.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"), c.name
        assert (nullable == "NO") == (not c.nullable), c.name
    money = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingCurrencyEffectiveCost")
    assert all(cols[m][0] == DECIMAL_SQL for m in money)
    assert not any(t in ("DOUBLE", "FLOAT", "REAL") for t, _ in cols.values())
    assert cols["Tags"][0] == "MAP(VARCHAR, VARCHAR)"
    assert {"BilledCost", "EffectiveCost", "ServiceName", "BillingPeriodStart"} <= set(MANDATORY)


def test_warehouse_migrations_apply_once(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    latest = max(v for v, _, _ in migration_files())
    assert wh.migrate() == latest
    assert wh.migrate() == latest
    with wh.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM warehouse_migrations").fetchone()[0] == len(migration_files())
        assert Warehouse.data_version(con) == 0


def test_an_older_warehouse_file_is_upgraded(tmp_path):
    """A file at schema version 1 (as an earlier release wrote it) gets every newer DDL file, keeping its rows."""
    path = tmp_path / "old.duckdb"
    (version, name, sql), *_ = migration_files()
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.execute("CREATE TABLE warehouse_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL)")
    con.execute("INSERT INTO warehouse_migrations VALUES (?, ?, now())", [version, name])
    con.execute("UPDATE warehouse_state SET data_version = 41")
    con.close()
    wh = Warehouse(path)
    assert wh.migrate() == max(v for v, _, _ in migration_files())
    with wh.connect(read_only=True) as con:
        assert Warehouse.data_version(con) == 41


def test_control_database_migrates_and_keeps_exact_money(tmp_path, control_url):
    rt = make_runtime(tmp_path / "d", control_url)
    tables = set(inspect(rt.engine).get_table_names())
    assert {"sources", "deliveries", "alembic_version"} <= tables
    big = Decimal("12345678901234567890.123456789012345678")  # 38 digits, 18 places
    tiny = Decimal("-0.000000000000000001")
    with rt.sessions() as s:
        src = Source(name="x", provider="focus", format="focus", location="/tmp")
        s.add(src)
        s.flush()
        s.add(Delivery(source_id=src.id, status="loaded", raw_billed_cost=big, raw_effective_cost=tiny))
        s.commit()
    with rt.sessions() as s:
        d = s.scalar(select(Delivery))
        assert d.raw_billed_cost == big and d.raw_effective_cost == tiny
    rt.init()  # idempotent
    rt.close()


def test_a_warehouse_made_by_an_older_version_migrates_forward_keeping_its_rows(tmp_path, monkeypatch):
    """A DuckDB file at schema 1 (before the provider columns and the GCP price table) with loaded rows gets the
    later DDL on the next start; the rows stay, the new columns are null."""
    from app import warehouse as wh

    every = wh.migration_files()
    assert [v for v, _, _ in every][:3] == [1, 2, 3]
    monkeypatch.setattr(wh, "migration_files", lambda: every[:1])
    old = make_runtime(tmp_path)
    with old.warehouse.connect() as con:
        cols = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = "
                           "'cost_and_usage' AND is_nullable = 'NO'").fetchall()
        value = {"VARCHAR": "'x'", "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ '2026-10-01'"}
        con.execute(f"INSERT INTO cost_and_usage ({', '.join(c for c, _ in cols)}) "
                    f"SELECT {', '.join(value.get(t, '1.25') for _, t in cols)}")
    old.close()
    monkeypatch.setattr(wh, "migration_files", lambda: every)
    new = make_runtime(tmp_path)
    try:
        with new.warehouse.connect(read_only=True) as con:
            assert con.execute("SELECT max(version) FROM warehouse_migrations").fetchone()[0] == every[-1][0]
            assert con.execute("SELECT BilledCost, x_ResourceGroupName FROM cost_and_usage").fetchall() == \
                [(Decimal("1.25"), None)]
            assert con.execute("SELECT count(*) FROM gcp_sku_prices").fetchone()[0] == 0
    finally:
        new.close()
