"""FOCUS Parquet lake: the warehouse as Hive-partitioned Parquet that Spark, Trino, Athena or BigQuery read.

Layout under LOCATION (a local folder or s3://bucket/prefix):

    provider=<ProviderName>/billing_period=<YYYY-MM>/part-<data version>-<n>.parquet
    _cloudtally_lake.json      the manifest (engines skip names starting with "_")

**Rows.** One row per *allocation part* of a cost line (app/allocation: a line claimed by a plain rule or not
claimed at all has one part, a split line one part per target). The FOCUS columns are the line's, under their FOCUS
names and types (money DECIMAL(38,18), date-times as UTC timestamps, Tags as MAP<STRING,STRING>), except the four
cost columns (BilledCost, EffectiveCost, ListCost, ContractedCost), which hold the part's amounts: the parts of a
line sum to the line exactly, so any sum of a cost column over the lake equals the warehouse's, and grouping by an
allocation dimension needs no join. A line without parts (its period's allocation failed) is one row with the
line's amounts and null allocation columns. Quantities and unit prices are the line's on every part: sum them over
`x_AllocationPart = 0` (or `x_AllocationPart IS NULL`) only, or group by x_LineId first.

**Allocation columns** (custom `x_` columns, FOCUS's rule): x_LineId (the warehouse's stable line id),
x_AllocationPart, x_AllocationShare, x_AllocationRule (null: unallocated), x_AllocationRuleVersion, x_Team,
x_CostCenter, x_Service (the allocated internal service, not FOCUS ServiceName), x_Environment, x_Dimensions (the
rule document's custom dimensions, a MAP). Lineage: x_SourceId, x_DeliveryId, x_IngestedAt, x_SourceFile, and the
provider columns x_ResourceGroupName, x_SkuMeterCategory, x_InvoiceSectionName.

**Incremental and atomic.** Each partition has a data version: a digest of the delivery ids of its lines, the
allocation stamp of its billing period (rule version and time) and the lake format. An export rewrites only the
partitions whose version differs from the manifest's (or that the manifest lacks), and removes partitions whose
lines are gone. A partition is written beside its place and checked (row counts and sums per currency read back
from the new files must equal the warehouse's lines, to the last decimal), then swapped in: locally by one atomic
directory exchange (renameat2 RENAME_EXCHANGE; two renames where the file system lacks it), then the manifest is
replaced (write + rename), then the old files are deleted. On S3 the new files get new keys (the data version is in
the name), the manifest is written after them, and only then are the previous version's objects deleted: readers
that follow the manifest always see whole versions; a reader that lists the prefix during those seconds may see a
re-exported partition twice.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import duckdb

from app import __version__
from app.focus import COST_METRICS, FOCUS_COLUMNS, LINEAGE_COLUMNS, PROVIDER_COLUMNS
from app.warehouse import COST_TABLE

LAKE_FORMAT = 1
MANIFEST = "_cloudtally_lake.json"
STAGING = "_cloudtally_staging"
PARTITION_KEYS = ("provider", "billing_period")
FILE_SIZE = "512MB"  # Parquet files per partition are cut at about this size
ALLOCATION_COLUMNS: tuple[tuple[str, str, str], ...] = (  # (lake name, DuckDB type, expression over parts `a`)
    ("x_LineId", "BIGINT", 'l."x_LineId"'),
    ("x_AllocationPart", "INTEGER", "a.part"),
    ("x_AllocationShare", "DECIMAL(38,18)", "a.share"),
    ("x_AllocationRule", "VARCHAR", "a.rule_name"),
    ("x_AllocationRuleVersion", "INTEGER", "a.rule_version"),
    ("x_Team", "VARCHAR", "a.team"),
    ("x_CostCenter", "VARCHAR", "a.cost_center"),
    ("x_Service", "VARCHAR", "a.service"),
    ("x_Environment", "VARCHAR", "a.environment"),
    ("x_Dimensions", "MAP(VARCHAR, VARCHAR)", "a.dims"),
)
Progress = Callable[[str, float], None]


class LakeError(RuntimeError):
    """The lake could not be written (bad location, storage error, or the written files do not reconcile)."""


@dataclass
class LakeResult:
    location: str
    written: list[dict] = field(default_factory=list)
    unchanged: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


# -- columns ------------------------------------------------------------------------------------------------------
def lake_columns() -> list[tuple[str, str]]:
    """(name, DuckDB type) of every column in the lake's files, in order (the partition keys are not in the files:
    they are the folder names, read by the engines as two more VARCHAR columns)."""
    cols = [(c.name, c.sql_type) for c in FOCUS_COLUMNS]
    cols += [(n, "VARCHAR") for n in PROVIDER_COLUMNS] + list(LINEAGE_COLUMNS)
    cols += [(n, t) for n, t, _ in ALLOCATION_COLUMNS]
    return cols


def _select_sql() -> str:
    exprs = []
    for name, _ in lake_columns():
        if name in COST_METRICS:
            exprs.append(f'CASE WHEN a."x_LineId" IS NULL THEN l."{name}" ELSE a."{name}" END AS "{name}"')
        elif name.startswith("x_") and name in {n for n, _, _ in ALLOCATION_COLUMNS}:
            expr = next(e for n, _, e in ALLOCATION_COLUMNS if n == name)
            exprs.append(f'{expr} AS "{name}"')
        else:
            exprs.append(f'l."{name}"')
    return (f"SELECT {', '.join(exprs)} FROM {COST_TABLE} l "
            f'LEFT JOIN cost_allocation a ON a."x_LineId" = l."x_LineId" '
            f'AND a."BillingPeriodStart" = l."BillingPeriodStart" '
            f'WHERE l."ProviderName" = ? AND l."BillingPeriodStart" = ? '
            f'ORDER BY l."ChargePeriodStart", l."x_LineId", a.part')


# -- paths --------------------------------------------------------------------------------------------------------
_HIVE_ESCAPE = set('"#%\'*/:=?\\\x7f{[]^')


def hive_escape(value: str) -> str:
    """A partition value as Hive and Spark write it in a path (FileUtils.escapePathName)."""
    return "".join(f"%{ord(ch):02X}" if ch in _HIVE_ESCAPE or ord(ch) < 0x20 else ch for ch in value)


def partition_path(provider: str, period: str) -> str:
    return f"provider={hive_escape(provider)}/billing_period={period}"


def _period(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m")


# -- what is in the warehouse -------------------------------------------------------------------------------------
def warehouse_partitions(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict]:
    """Per (provider, billing period): its BillingPeriodStart, line count, sums per currency and data version."""
    stamps = {row[0]: (row[1], row[2]) for row in con.execute(
        'SELECT "BillingPeriodStart", rule_version, allocated_at FROM allocation_periods').fetchall()}
    rows = con.execute(
        f'SELECT "ProviderName", "BillingPeriodStart", count(*), '
        f'list(DISTINCT "x_DeliveryId" ORDER BY "x_DeliveryId") FROM {COST_TABLE} GROUP BY ALL').fetchall()
    sums = con.execute(
        'SELECT "ProviderName", "BillingPeriodStart", "BillingCurrency", count(*), '
        + ", ".join(f'sum("{m}")' for m in COST_METRICS)
        + f" FROM {COST_TABLE} GROUP BY ALL ORDER BY ALL").fetchall()
    out: dict[tuple[str, str], dict] = {}
    for provider, start, lines, deliveries in rows:
        stamp = stamps.get(start)
        digest = hashlib.sha256(json.dumps(
            [LAKE_FORMAT, provider, start.isoformat(), deliveries,
             None if stamp is None else [stamp[0], stamp[1].isoformat()]]).encode()).hexdigest()[:16]
        out[(provider, _period(start))] = {
            "provider": provider, "billing_period": _period(start), "start": start, "lines": lines,
            "data_version": digest, "sums": []}
    for provider, start, currency, n, *money in sums:
        out[(provider, _period(start))]["sums"].append(
            {"currency": currency, "lines": n, **{m: _dec(v) for m, v in zip(COST_METRICS, money)}})
    return out


def _dec(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


# -- storage ------------------------------------------------------------------------------------------------------
class _Local:
    def __init__(self, root: Path):
        self.root = root.expanduser().resolve()

    def read_manifest(self) -> dict | None:
        path = self.root / MANIFEST
        return json.loads(path.read_text()) if path.exists() else None

    def write_manifest(self, manifest: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        os.replace(tmp, self.root / MANIFEST)

    def staging_dir(self) -> Path:
        path = self.root / STAGING / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def publish(self, staged: Path, rel: str, files: list[str], commit_manifest: Callable[[], None]) -> None:
        """Swap the staged folder into `rel` atomically, record it in the manifest, then drop the old files."""
        target = self.root / rel
        if target.exists():
            _exchange(staged, target)  # `staged` now holds the old partition
            commit_manifest()
            shutil.rmtree(staged)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, target)
            commit_manifest()

    def remove(self, rel: str, commit_manifest: Callable[[], None]) -> None:
        target = self.root / rel
        if target.exists():
            trash = self.root / STAGING / uuid.uuid4().hex
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target, trash)
            commit_manifest()
            shutil.rmtree(trash)
            try:
                target.parent.rmdir()  # the provider folder, once its last period is gone
            except OSError:
                pass
        else:
            commit_manifest()

    def exists(self, rel: str, files: list[str]) -> bool:
        return all((self.root / rel / f).is_file() for f in files)

    def cleanup(self) -> None:
        shutil.rmtree(self.root / STAGING, ignore_errors=True)


def _exchange(a: Path, b: Path) -> None:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); two renames where it is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        fn = None
    if fn is not None:
        at_fdcwd, rename_exchange = -100, 2
        if fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
            return
    side = a.with_name(a.name + ".old")
    os.rename(b, side)
    os.rename(a, b)
    os.rename(side, a)


class _S3:
    def __init__(self, location: str, options: Mapping[str, str]):
        from connectors.storage import _s3_client

        parsed = urlparse(location)
        if not parsed.netloc:
            raise LakeError(f"not an S3 URL (expected s3://bucket/prefix): {location}")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.client = _s3_client(options)

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def read_manifest(self) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(MANIFEST))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return json.loads(body)

    def write_manifest(self, manifest: dict) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(MANIFEST), ContentType="application/json",
                               Body=(json.dumps(manifest, indent=2, default=str) + "\n").encode())

    def staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="cloudtally-lake-"))

    def _keys(self, rel: str) -> list[str]:
        keys, token = [], None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": self.key(rel) + "/"}
            if token:
                kw["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kw)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def _delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket,
                                       Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    def publish(self, staged: Path, rel: str, files: list[str], commit_manifest: Callable[[], None]) -> None:
        try:
            for name in files:  # new keys (the data version is in the name): nothing current is overwritten
                self.client.upload_file(str(staged / name), self.bucket, f"{self.key(rel)}/{name}")
            commit_manifest()
            new = {f"{self.key(rel)}/{name}" for name in files}
            self._delete([k for k in self._keys(rel) if k not in new])
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def remove(self, rel: str, commit_manifest: Callable[[], None]) -> None:
        commit_manifest()
        self._delete(self._keys(rel))

    def exists(self, rel: str, files: list[str]) -> bool:
        keys = set(self._keys(rel))
        return all(f"{self.key(rel)}/{f}" in keys for f in files)

    def cleanup(self) -> None:
        pass


def _store(location: str, options: Mapping[str, str]):
    if location.startswith("s3://"):
        return _S3(location, options)
    if "://" in location:
        raise LakeError(f"unsupported lake location {location!r}: use a local folder or s3://bucket/prefix")
    return _Local(Path(location))


# -- export -------------------------------------------------------------------------------------------------------
def export_lake(
    con: duckdb.DuckDBPyConnection,
    location: str,
    options: Mapping[str, str] | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> LakeResult:
    """Bring the lake at `location` up to date with the warehouse (see the module docstring). `full` rewrites every
    partition. Raises LakeError; partitions already swapped in stay (and are in the manifest)."""
    from botocore.exceptions import BotoCoreError, ClientError

    options = options or {}
    say = progress or (lambda msg, frac: None)
    try:
        store = _store(location, options)
        old = store.read_manifest()
    except (BotoCoreError, ClientError, OSError, ValueError) as exc:
        raise LakeError(f"cannot read the lake at {location}: {exc}") from exc
    if old is not None and old.get("format") != "cloudtally-lake":
        raise LakeError(f"{location} holds a {MANIFEST} that is not a CloudTally lake manifest")
    if old is not None and old.get("format_version") != LAKE_FORMAT:
        full = True  # another layout: rewrite everything
    current = {(p["provider"], p["billing_period"]): p for p in (old or {}).get("partitions", [])}
    say("reading the warehouse's partitions", 0.0)
    wanted = warehouse_partitions(con)
    result = LakeResult(location)
    manifest = {
        "format": "cloudtally-lake", "format_version": LAKE_FORMAT, "focus_version": "1.2",
        "generator": f"CloudTally {__version__}", "partition_keys": list(PARTITION_KEYS),
        "row_model": "one row per allocation part; cost columns hold the part's amounts (they sum to the lines')",
        "columns": [{"name": n, "type": t} for n, t in lake_columns()],
        "partitions": sorted(current.values(), key=lambda p: (p["provider"], p["billing_period"])),
    }

    def commit(entry: dict | None, key: tuple[str, str]) -> Callable[[], None]:
        def run() -> None:
            if entry is None:
                current.pop(key, None)
            else:
                current[key] = entry
            manifest["partitions"] = sorted(current.values(), key=lambda p: (p["provider"], p["billing_period"]))
            manifest["updated_at"] = datetime.now(timezone.utc).isoformat()
            store.write_manifest(manifest)
        return run

    todo = []
    for key, part in sorted(wanted.items()):
        have = current.get(key)
        rel = partition_path(*key)
        if (not full and have is not None and have.get("data_version") == part["data_version"]
                and store.exists(rel, have.get("files", []))):
            result.unchanged.append(have)
        else:
            todo.append((key, part))
    gone = [key for key in current if key not in wanted]
    con.execute("SET preserve_insertion_order = false")
    try:
        for i, (key, part) in enumerate(todo):
            rel = partition_path(*key)
            say(f"writing {rel}", i / max(1, len(todo)))
            entry = _write_partition(con, store, rel, part)
            store.publish(Path(entry.pop("_staged")), rel, entry["files"], commit(entry, key))
            result.written.append(entry)
        for key in gone:
            say(f"removing {partition_path(*key)}", 1.0)
            result.removed.append(current[key])
            store.remove(partition_path(*key), commit(None, key))
        if not todo and not gone and old is None:
            commit(None, ("", ""))()  # an empty warehouse still gets a manifest
    except (BotoCoreError, ClientError, OSError) as exc:
        raise LakeError(f"writing the lake at {location} failed: {exc}") from exc
    finally:
        con.execute("RESET preserve_insertion_order")
        store.cleanup()
    say("done", 1.0)
    result.manifest = manifest
    return result


def _write_partition(con: duckdb.DuckDBPyConnection, store, rel: str, part: dict) -> dict:
    staged = store.staging_dir()
    out = staged / "copy"
    target = str(out).replace("'", "''")
    con.execute(f"COPY ({_select_sql()}) TO '{target}' (FORMAT parquet, COMPRESSION zstd, "
                f"FILE_SIZE_BYTES '{FILE_SIZE}', ROW_GROUP_SIZE 1000000)", [part["provider"], part["start"]])
    files = []
    for n, f in enumerate(sorted(out.glob("*.parquet"))):
        name = f"part-{part['data_version']}-{n:05d}.parquet"
        f.rename(staged / name)
        files.append(name)
    shutil.rmtree(out, ignore_errors=True)
    # Read the new files back: their rows and sums per currency must equal the warehouse's lines exactly.
    rel_files = [str(staged / f).replace("'", "''") for f in files]
    back = con.execute(
        "SELECT \"BillingCurrency\", count(DISTINCT \"x_LineId\"), count(*), "
        + ", ".join(f'sum("{m}")' for m in COST_METRICS)
        + f" FROM read_parquet({rel_files!r}) GROUP BY ALL ORDER BY ALL").fetchall() if files else []
    got = [{"currency": c, "lines": n, **{m: _dec(v) for m, v in zip(COST_METRICS, money)}}
           for c, n, _rows, *money in back]
    if got != part["sums"]:
        shutil.rmtree(staged, ignore_errors=True)
        raise LakeError(f"{rel}: the written files do not reconcile with the warehouse: files {got}, "
                        f"warehouse {part['sums']}")
    return {"provider": part["provider"], "billing_period": part["billing_period"], "path": rel, "files": files,
            "rows": sum(r[2] for r in back), "lines": part["lines"], "data_version": part["data_version"],
            "sums": part["sums"], "written_at": datetime.now(timezone.utc).isoformat(), "_staged": str(staged)}


# -- registering the lake in other engines -----------------------------------------------------------------------
DIALECTS = ("trino", "athena", "bigquery", "spark")


def _engine_type(duck: str, dialect: str) -> str:
    t = duck.upper()
    if dialect == "trino":
        return {"VARCHAR": "varchar", "TIMESTAMPTZ": "timestamp(6)", "BIGINT": "bigint",
                "INTEGER": "integer", "MAP(VARCHAR, VARCHAR)": "map(varchar, varchar)"}.get(t, t.lower())
    if dialect in ("athena", "spark"):
        return {"VARCHAR": "string", "TIMESTAMPTZ": "timestamp", "BIGINT": "bigint", "INTEGER": "int",
                "MAP(VARCHAR, VARCHAR)": "map<string,string>"}.get(t, t.lower())
    return {"VARCHAR": "STRING", "TIMESTAMPTZ": "TIMESTAMP", "BIGINT": "INT64", "INTEGER": "INT64",
            "MAP(VARCHAR, VARCHAR)": "ARRAY<STRUCT<key STRING, value STRING>>",
            "DECIMAL(38,18)": "BIGNUMERIC(38, 18)"}.get(t, t)


def ddl(dialect: str, location: str, table: str = "focus_cost") -> str:
    """The statements that register the lake at `location` as an external, partitioned table in another engine."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
    loc = location.rstrip("/")
    cols = lake_columns()
    if dialect == "trino":
        body = ",\n".join(f'  "{n.lower()}" {_engine_type(t, dialect)}' for n, t in cols)
        schema, _, name = table.rpartition(".")
        schema = schema or "finops"
        return (f"-- Trino, Hive connector (catalog `hive`); timestamps need hive.timestamp-precision=MICROSECONDS\n"
                f"CREATE SCHEMA IF NOT EXISTS hive.{schema};\n"
                f"CREATE TABLE hive.{schema}.{name} (\n{body},\n  provider varchar,\n  billing_period varchar\n)\n"
                f"WITH (format = 'PARQUET', external_location = '{loc}/',\n"
                f"      partitioned_by = ARRAY['provider', 'billing_period']);\n"
                f"-- after every export that added or removed a partition:\n"
                f"CALL hive.system.sync_partition_metadata('{schema}', '{name}', 'FULL');\n")
    if dialect in ("athena", "spark"):
        body = ",\n".join(f"  `{n}` {_engine_type(t, dialect)}" for n, t in cols)
        using = "STORED AS PARQUET" if dialect == "athena" else "USING PARQUET"
        head = "CREATE EXTERNAL TABLE IF NOT EXISTS" if dialect == "athena" else "CREATE TABLE IF NOT EXISTS"
        parts = ("PARTITIONED BY (provider string, billing_period string)" if dialect == "athena"
                 else "PARTITIONED BY (provider, billing_period)")
        cols_sql = body if dialect == "athena" else body + ",\n  provider string,\n  billing_period string"
        repair = f"MSCK REPAIR TABLE {table};"
        return (f"-- {'Amazon Athena (engine v3)' if dialect == 'athena' else 'Spark SQL (Hive metastore)'}\n"
                f"{head} {table} (\n{cols_sql}\n)\n"
                + (f"{parts}\n{using}\n" if dialect == "athena" else f"{using}\n{parts}\n")
                + f"LOCATION '{loc}/';\n"
                + f"-- after every export that added or removed a partition:\n{repair}\n")
    body = ",\n".join(f"  `{n}` {_engine_type(t, dialect)}" for n, t in cols)
    dataset_table = table if "." in table else f"finops.{table}"
    return ("-- BigQuery external table over Cloud Storage (copy the lake to gs://, or use BigLake Omni for S3);\n"
            "-- Parquet MAP columns (Tags, AllocatedTags, x_Dimensions) read as ARRAY<STRUCT<key, value>>\n"
            f"CREATE OR REPLACE EXTERNAL TABLE `{dataset_table}` (\n{body}\n)\n"
            "WITH PARTITION COLUMNS (provider STRING, billing_period STRING)\n"
            f"OPTIONS (format = 'PARQUET', uris = ['{loc}/provider=*'], hive_partition_uri_prefix = '{loc}/',\n"
            "         decimal_target_types = ['BIGNUMERIC'], require_hive_partition_filter = false);\n")
