"""The FOCUS Parquet lake (issue 13, item 2): layout, names and types, reconciliation, manifest, incremental and
atomic rewrites, local folders and S3 (moto server mode)."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from app import lake
from app.export import export_focus
from app.focus import COST_METRICS
from app.ingest import ingest
from tests.helpers import cli
from tests.lake_fixtures import demo_rt, load_demo  # noqa: F401  (fixture)


def read_lake(root: Path | str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW lake AS SELECT * FROM read_parquet('{root}/provider=*/billing_period=*/*.parquet', "
                "hive_partitioning = true)")
    return con


def warehouse(rt, sql, params=None):
    with rt.warehouse.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def export(rt, location, **kw):
    with rt.warehouse.connect(read_only=True) as con:
        return lake.export_lake(con, str(location), **kw)


def test_layout_names_types_and_sums(demo_rt, tmp_path):
    root = tmp_path / "lake"
    result = export(demo_rt, root)
    periods = warehouse(demo_rt, "SELECT DISTINCT ProviderName, strftime(BillingPeriodStart, '%Y-%m') "
                                 "FROM cost_and_usage ORDER BY ALL")
    assert len(periods) == 9 and {p for p, _ in periods} == {"AWS", "Google Cloud", "Microsoft"}
    assert sorted((p["provider"], p["billing_period"]) for p in result.written) == periods
    for provider, period in periods:
        files = list((root / f"provider={provider}" / f"billing_period={period}").glob("*.parquet"))
        assert files and all(f.name.startswith("part-") for f in files)
    assert not (root / lake.STAGING).exists()

    con = read_lake(root)
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE lake)").fetchall())
    for m in COST_METRICS + ("ListUnitPrice", "ConsumedQuantity", "x_AllocationShare"):
        assert types[m] == "DECIMAL(38,18)", m
    assert types["Tags"] == types["x_Dimensions"] == "MAP(VARCHAR, VARCHAR)"
    assert types["ChargePeriodStart"] == types["BillingPeriodStart"] == "TIMESTAMP WITH TIME ZONE"
    assert types["provider"] == types["billing_period"] == "VARCHAR"
    assert [n for n in types if n not in ("provider", "billing_period")] == [n for n, _ in lake.lake_columns()]

    # Every cost column sums to the warehouse's lines per provider, period and currency, to the last decimal.
    sums = ", ".join(f"sum({m})" for m in COST_METRICS)
    lines = warehouse(demo_rt, f"SELECT ProviderName, strftime(BillingPeriodStart, '%Y-%m'), BillingCurrency, "
                               f"count(*), {sums} FROM cost_and_usage GROUP BY ALL ORDER BY ALL")
    got = con.execute(f"SELECT provider, billing_period, BillingCurrency, count(DISTINCT x_LineId), {sums} "
                      "FROM lake GROUP BY ALL ORDER BY ALL").fetchall()
    assert got == lines
    # By allocation dimension: the lake's rows are the parts.
    parts = warehouse(demo_rt, "SELECT ProviderName, strftime(BillingPeriodStart, '%Y-%m'), team, cost_center, "
                               "sum(EffectiveCost), count(*) FROM cost_allocation GROUP BY ALL ORDER BY ALL")
    assert con.execute("SELECT provider, billing_period, x_Team, x_CostCenter, sum(EffectiveCost), count(*) "
                       "FROM lake GROUP BY ALL ORDER BY ALL").fetchall() == parts
    teams = {t for _, _, t, *_ in parts}
    assert {"payments", "data", "platform", "unallocated"} <= teams
    # Split lines have several parts; the FOCUS columns repeat the line's, the tags are a real map.
    split = con.execute("SELECT count(*) FROM (SELECT x_LineId FROM lake GROUP BY 1 HAVING count(*) > 1)").fetchone()
    assert split[0] > 0
    assert con.execute("SELECT count(*) FROM lake WHERE Tags['team'] IS NOT NULL").fetchone()[0] > 0

    manifest = json.loads((root / lake.MANIFEST).read_text())
    assert manifest["format"] == "cloudtally-lake" and manifest["partition_keys"] == ["provider", "billing_period"]
    assert [c["name"] for c in manifest["columns"]] == [n for n, _ in lake.lake_columns()]
    by_key = {(p["provider"], p["billing_period"]): p for p in manifest["partitions"]}
    assert sorted(by_key) == periods
    for (provider, period, currency, n, *money) in lines:
        entry = by_key[(provider, period)]
        s = next(x for x in entry["sums"] if x["currency"] == currency)
        assert s["lines"] == n
        assert [None if s[m] is None else Decimal(s[m]) for m in COST_METRICS] == money
        assert sorted(entry["files"]) == sorted(f.name for f in (root / entry["path"]).iterdir())
        assert len(entry["data_version"]) == 16
    rows = con.execute("SELECT provider, billing_period, count(*) FROM lake GROUP BY ALL").fetchall()
    assert {(p, b): n for p, b, n in rows} == {k: v["rows"] for k, v in by_key.items()}


def test_incremental_rewrites_only_changed_periods_and_removes_vanished_ones(tmp_path):
    rt = load_demo(tmp_path / "demo")
    root = tmp_path / "lake"
    export(rt, root)
    before = {p.relative_to(root): p.stat().st_ino for p in root.rglob("*.parquet")}
    manifest0 = json.loads((root / lake.MANIFEST).read_text())

    again = export(rt, root)
    assert again.written == [] and len(again.unchanged) == 9 and again.removed == []
    assert {p.relative_to(root): p.stat().st_ino for p in root.rglob("*.parquet")} == before

    # A new delivery into September (a second AWS source with a copy of September's AWS lines): September is
    # re-allocated, so its three partitions change; August and October are untouched, file for file.
    (aws_source,), = warehouse(rt, "SELECT DISTINCT x_SourceId FROM cost_and_usage WHERE ProviderName = 'AWS'")
    with rt.warehouse.connect(read_only=True) as con:
        export_focus(con, tmp_path / "sept", fmt="csv", source=aws_source,
                     billing_period=datetime(2026, 9, 1, tzinfo=timezone.utc))
    ingest(rt, "aws-extra", str(tmp_path / "sept" / "focus_cost_and_usage.csv"))
    result = export(rt, root)
    assert sorted((p["provider"], p["billing_period"]) for p in result.written) == [
        ("AWS", "2026-09"), ("Google Cloud", "2026-09"), ("Microsoft", "2026-09")]
    after = {p.relative_to(root): p.stat().st_ino for p in root.rglob("*.parquet")}
    for rel, ino in before.items():
        if "2026-09" in str(rel):
            assert rel not in after  # the old version's files are gone (new names carry the new version)
        else:
            assert after[rel] == ino
    manifest = json.loads((root / lake.MANIFEST).read_text())
    old_v = {(p["provider"], p["billing_period"]): p["data_version"] for p in manifest0["partitions"]}
    new_v = {(p["provider"], p["billing_period"]): p["data_version"] for p in manifest["partitions"]}
    assert {k for k in new_v if new_v[k] != old_v[k]} == {("AWS", "2026-09"), ("Google Cloud", "2026-09"),
                                                          ("Microsoft", "2026-09")}
    con = read_lake(root)
    assert con.execute("SELECT sum(EffectiveCost) FROM lake WHERE provider = 'AWS'").fetchone() == warehouse(
        rt, "SELECT sum(EffectiveCost) FROM cost_and_usage WHERE ProviderName = 'AWS'")[0]

    # Lines gone from the warehouse: their partition leaves the lake and the manifest.
    with rt.warehouse.connect() as wcon:
        wcon.execute("DELETE FROM cost_allocation WHERE ProviderName = 'Microsoft' AND "
                     "BillingPeriodStart = TIMESTAMPTZ '2026-08-01 00:00:00+00'")
        wcon.execute("DELETE FROM cost_and_usage WHERE ProviderName = 'Microsoft' AND "
                     "BillingPeriodStart = TIMESTAMPTZ '2026-08-01 00:00:00+00'")
    result = export(rt, root)
    assert [(p["provider"], p["billing_period"]) for p in result.removed] == [("Microsoft", "2026-08")]
    assert not (root / "provider=Microsoft" / "billing_period=2026-08").exists()
    assert ("Microsoft", "2026-08") not in {(p["provider"], p["billing_period"])
                                           for p in json.loads((root / lake.MANIFEST).read_text())["partitions"]}
    rt.close()


def test_a_failed_export_leaves_whole_partitions_and_a_true_manifest(demo_rt, tmp_path, monkeypatch):
    root = tmp_path / "lake"
    calls = {"n": 0}
    real = lake._Local.publish

    def flaky(self, staged, rel, files, commit):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full (injected)")
        return real(self, staged, rel, files, commit)

    monkeypatch.setattr(lake._Local, "publish", flaky)
    with pytest.raises(lake.LakeError, match="disk full"):
        export(demo_rt, root)
    manifest = json.loads((root / lake.MANIFEST).read_text())
    assert len(manifest["partitions"]) == 3  # the three partitions swapped in before the failure, and only them
    for p in manifest["partitions"]:
        assert sorted(f.name for f in (root / p["path"]).iterdir()) == sorted(p["files"])
    assert len(list(root.rglob("*.parquet"))) == 3 and not (root / lake.STAGING).exists()
    monkeypatch.setattr(lake._Local, "publish", real)
    result = export(demo_rt, root)
    assert len(result.written) == 6 and len(result.unchanged) == 3


def test_readers_see_the_old_or_the_new_partition_never_a_mix(demo_rt, tmp_path):
    """While --full exports rewrite every partition again and again, a reader summing one partition's files by
    listing the folder always gets the warehouse's figure (the swap is one atomic directory exchange)."""
    root = tmp_path / "lake"
    export(demo_rt, root)
    part = root / "provider=AWS" / "billing_period=2026-09"
    expected = warehouse(demo_rt, "SELECT sum(EffectiveCost) FROM cost_and_usage WHERE ProviderName = 'AWS' AND "
                                  "BillingPeriodStart = TIMESTAMPTZ '2026-09-01 00:00:00+00'")[0][0]
    stop, seen, errors = threading.Event(), [], []

    def reader():
        con = duckdb.connect()
        while not stop.is_set():
            try:
                seen.append(con.execute(f"SELECT sum(EffectiveCost) FROM read_parquet('{part}/*.parquet')")
                            .fetchone()[0])
            except duckdb.Error as exc:  # the listed file was swapped away between listing and opening
                errors.append(str(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(4):
            export(demo_rt, root, full=True)
    finally:
        stop.set()
        t.join()
    assert seen and all(v == expected for v in seen)


def test_s3_lake_through_moto(demo_rt, s3, s3_endpoint, tmp_path):
    client, bucket = s3
    location = f"s3://{bucket}/finops/lake"
    options = {"endpoint_url": s3_endpoint}
    first = export(demo_rt, location, options=options)
    assert len(first.written) == 9

    def keys():
        return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="finops/lake/")
                      .get("Contents", []))

    k1 = keys()
    assert "finops/lake/_cloudtally_lake.json" in k1
    assert any(k.startswith("finops/lake/provider=Google Cloud/billing_period=2026-10/part-") for k in k1)
    manifest = json.loads(client.get_object(Bucket=bucket, Key="finops/lake/_cloudtally_lake.json")["Body"].read())
    assert len(manifest["partitions"]) == 9
    # Read the objects back: the lake's sums are the warehouse's.
    local = tmp_path / "copy"
    for k in k1:
        if k.endswith(".parquet"):
            dest = local / k.removeprefix("finops/lake/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, k, str(dest))
    con = read_lake(local)
    assert con.execute("SELECT provider, billing_period, sum(BilledCost), sum(EffectiveCost) FROM lake "
                       "GROUP BY ALL ORDER BY ALL").fetchall() == warehouse(
        demo_rt, "SELECT ProviderName, strftime(BillingPeriodStart, '%Y-%m'), sum(BilledCost), sum(EffectiveCost) "
                 "FROM cost_and_usage GROUP BY ALL ORDER BY ALL")

    again = export(demo_rt, location, options=options)
    assert again.written == [] and keys() == k1
    full = export(demo_rt, location, options=options, full=True)  # new keys in, old keys out, manifest last
    assert len(full.written) == 9 and keys() == k1  # same data version, so the same names
    # A stale object from a crashed earlier run inside a partition is cleaned up by the next rewrite.
    client.put_object(Bucket=bucket, Key="finops/lake/provider=AWS/billing_period=2026-08/part-stale-00000.parquet",
                      Body=b"x")
    export(demo_rt, location, options=options, full=True)
    assert keys() == k1


def test_cli_export_lake_and_ddl(demo_rt, tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(demo_rt.settings.data_dir)}
    out = cli("export", "lake", str(tmp_path / "lake"), "--output", "json", env=env)
    assert out.exit_code == 0, out.stderr
    body = json.loads(out.stdout)
    assert len(body["written"]) == 9 and body["unchanged"] == []
    out = cli("export", "lake", str(tmp_path / "lake"), env=env)
    assert out.exit_code == 0 and "0 written, 9 unchanged, 0 removed" in out.stdout
    assert cli("export", "lake", "azure://acct/c/lake", env=env).exit_code == 1
    assert cli("export", "lake", str(tmp_path / "x"), "--output", "yaml", env=env).exit_code == 2
    for dialect in lake.DIALECTS:
        out = cli("export", "lake-ddl", dialect, "s3://bucket/lake", env=env)
        assert out.exit_code == 0 and "billing_period" in out.stdout and "x_Team".lower() in out.stdout.lower()
    assert cli("export", "lake-ddl", "oracle", "s3://b/l", env=env).exit_code == 2
    assert "lake" in cli("export", "--help").stdout


def test_hive_escaping_of_partition_values():
    assert lake.partition_path("Google Cloud", "2026-10") == "provider=Google Cloud/billing_period=2026-10"
    assert lake.hive_escape("a/b=c%d") == "a%2Fb%3Dc%25d"
