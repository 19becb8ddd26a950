#!/usr/bin/env python
"""Ingest benchmark: CloudTally's FOCUS ingest against DuckDB's own load and scan floors.

Generates N rows of FOCUS 1.2 data (one AWS-shaped billing month) with DuckDB SQL, writes it once as Parquet and
once as gzip CSV (cached in the work dir by row count), then measures, each in a fresh subprocess:

  ingest      the real thing: Runtime(Settings(data_dir=<fresh dir>)).init(); app.ingest.ingest(rt, "bench", file)
  load floor  DuckDB reading the same file, casting money to DECIMAL(38,10) and writing 14 FOCUS-named columns
              (Tags as MAP) into a native table in a fresh DuckDB file (see DESIGN.md "Performance yardsticks")
  scan floor  SELECT sum(CAST(BilledCost AS DECIMAL(38,10))), count(*) FROM read_parquet/read_csv(file)

and prints a Markdown table: wall time, rows/s, the ratio of every figure to the load and scan floors of the same
run, peak RSS of the measuring process (VmHWM) and its CPU time; then the ingest's phases (timed by
wrapping the warehouse connection and the hashing function inside the ingest's process; the code is not changed).
It also checks that the delivery landed exactly N rows.

Examples:
  python bench/ingest_bench.py --rows 1000000
  python bench/ingest_bench.py --rows 1000000 --rows 10000000 --formats parquet,csv.gz --json results.json

Progress goes to stderr, the tables to stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GENERATOR_VERSION = 1  # bump when the generated data changes, so cached files are regenerated
FORMATS = ("parquet", "csv.gz")
MEASURES = ("scan", "load", "wide", "ingest")
DEFAULT_MEASURES = ("scan", "load", "ingest")
MONEY_FLOOR = "DECIMAL(38,10)"

# The 14 columns of DESIGN.md's load floor (money, periods, the dimensions the API groups on, tags).
FLOOR_MONEY = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
FLOOR_TIMES = ("ChargePeriodStart", "BillingPeriodStart")
FLOOR_TEXT = ("ServiceName", "ServiceCategory", "SubAccountId", "RegionId", "ResourceId", "SkuId", "PricingCategory")
FLOOR_COLUMNS = FLOOR_MONEY + FLOOR_TIMES + FLOOR_TEXT + ("Tags",)
assert len(FLOOR_COLUMNS) == 14


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def human_rows(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def rate(rows: int, seconds: float) -> str:
    r = rows / seconds if seconds > 0 else float("inf")
    return f"{r / 1e6:.2f}M" if r >= 1e6 else f"{r / 1e3:.0f}k"


# =================================================================================================================
# Data generation (DuckDB SQL over range(); deterministic: every "random" choice is a hash of the row number)
# =================================================================================================================
# (ServiceName, ServiceCategory, ServiceSubcategory, unit, ResourceType, arn service, resource id prefix, usage text)
SERVICES = [
    ("Amazon Elastic Compute Cloud", "Compute", "Virtual Machines", "Hours", "Instance", "ec2", "instance/i-",
     "On Demand Linux instance hour"),
    ("Amazon Simple Storage Service", "Storage", "Object Storage", "GB-Mo", "Bucket", "s3", "bucket/bucket-",
     "Standard storage"),
    ("Amazon Relational Database Service", "Databases", "Relational Databases", "Hours", "DB Instance", "rds",
     "db/db-", "PostgreSQL db instance hour"),
    ("Amazon Elastic Block Store", "Storage", "Block Storage", "GB-Mo", "Volume", "ec2", "volume/vol-",
     "gp3 provisioned storage"),
    ("AWS Lambda", "Compute", "Serverless Compute", "Requests", "Function", "lambda", "function:fn-",
     "Lambda requests"),
    ("Amazon Elastic Kubernetes Service", "Compute", "Containers", "Hours", "Cluster", "eks", "cluster/eks-",
     "EKS cluster hour"),
    ("Amazon CloudFront", "Networking", "Content Delivery", "GB", "Distribution", "cloudfront", "distribution/E",
     "Data transfer out to internet"),
    ("Amazon DynamoDB", "Databases", "NoSQL Databases", "ReadRequestUnits", "Table", "dynamodb", "table/tbl-",
     "On-demand read request units"),
    ("Amazon Virtual Private Cloud", "Networking", "Network Infrastructure", "Hours", "NAT Gateway", "ec2",
     "natgateway/nat-", "NAT gateway hour"),
    ("Amazon CloudWatch", "Management and Governance", "Observability", "Metrics", "Metric", "cloudwatch",
     "metric/metric-", "Custom metrics"),
    ("Amazon ElastiCache", "Databases", "Caching", "Hours", "Cache Node", "elasticache", "cluster/cache-",
     "cache.r6g.large node hour"),
    ("Amazon Simple Queue Service", "Integration", "Messaging", "Requests", "Queue", "sqs", "queue-",
     "Standard queue requests"),
    ("Amazon Redshift", "Databases", "Data Warehouses", "Hours", "Cluster", "redshift", "cluster:rs-",
     "ra3.xlplus node hour"),
    ("AWS Key Management Service", "Security", "Secret Management", "Requests", "Key", "kms", "key/",
     "KMS API requests"),
    ("Amazon Athena", "Analytics", "Data Processing", "TB", "Workgroup", "athena", "workgroup/wg-",
     "Data scanned"),
    ("Amazon Route 53", "Networking", "Network Routing", "Queries", "Hosted Zone", "route53", "hostedzone/Z",
     "DNS queries"),
    ("Amazon Elastic File System", "Storage", "File Storage", "GB-Mo", "File System", "elasticfilesystem",
     "file-system/fs-", "Standard storage"),
    ("Amazon Kinesis", "Analytics", "Streaming Analytics", "Shard Hours", "Stream", "kinesis", "stream/ks-",
     "Shard hour"),
    ("Amazon SageMaker", "AI and Machine Learning", "Machine Learning", "Hours", "Endpoint", "sagemaker",
     "endpoint/ep-", "ml.g5.xlarge hosting hour"),
    ("AWS Backup", "Storage", "Backup Storage", "GB-Mo", "Backup Vault", "backup", "backup-vault:bv-",
     "Warm backup storage"),
]
COMMITTABLE = (1, 3, 5, 11, 13)  # 1-based service positions a Savings Plan / RI can cover (EC2, RDS, ...)
REGIONS = [
    ("us-east-1", "US East (N. Virginia)"), ("us-west-2", "US West (Oregon)"), ("eu-west-1", "Europe (Ireland)"),
    ("eu-central-1", "Europe (Frankfurt)"), ("us-east-2", "US East (Ohio)"), ("ap-southeast-1",
    "Asia Pacific (Singapore)"), ("ap-northeast-1", "Asia Pacific (Tokyo)"), ("eu-west-2", "Europe (London)"),
    ("ap-southeast-2", "Asia Pacific (Sydney)"), ("ca-central-1", "Canada (Central)"),
    ("sa-east-1", "South America (Sao Paulo)"), ("ap-south-1", "Asia Pacific (Mumbai)"),
]
TEAMS = ["payments", "search", "checkout", "platform", "data", "ml", "web", "mobile"]
ENVS = ["prod", "staging", "dev"]


def _sql_str(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def _sql_list(values) -> str:
    return "[" + ", ".join(_sql_str(v) for v in values) + "]"


def _services_sql() -> str:
    keys = ("name", "cat", "sub", "unit", "rtype", "arn", "prefix", "desc")
    return "[" + ", ".join(
        "{" + ", ".join(f"'{k}': {_sql_str(v)}" for k, v in zip(keys, s)) + "}" for s in SERVICES
    ) + "]"


def generator_sql(rows: int) -> str:
    """One SELECT producing `rows` typed FOCUS 1.2 rows: money DECIMAL(38,10), quantities DECIMAL(38,4),
    times TIMESTAMPTZ (UTC), everything else VARCHAR. One billing period: April 2026."""
    n_res = max(1_000, rows // 60)  # ~60 line items per resource and month
    ns, nr = len(SERVICES), len(REGIONS)
    dec = "DECIMAL(38,10)"
    return f"""
WITH g AS (
    SELECT i,
           hash(i, 11) % {n_res} AS r,
           hash(i, 7) % 1000 AS cat_u,
           hash(i, 14) % 720 AS hr,
           hash(i, 6) AS q_h,
           hash(i, 23) % 1000 AS unused_u
    FROM range({rows}) t(i)
), a AS (
    SELECT g.*,
           1 + least({ns - 1}, floor({ns} * pow((hash(r, 1) % 1000000) / 1e6, 2.0)))::BIGINT AS s,
           hash(r, 2) % 150 AS acct,
           1 + least({nr - 1}, floor({nr} * pow((hash(r, 3) % 1000000) / 1e6, 1.6)))::BIGINT AS reg,
           hash(r, 4) % 24 AS sku,
           hash(r, 8) % 100 AS commit_u,
           hash(r, 15) % 100 AS tag_u
    FROM g
), b AS (
    SELECT a.*,
           {_services_sql()}[s] AS svc,
           {_sql_list(r for r, _ in REGIONS)}[reg] AS region_id,
           {_sql_list(n for _, n in REGIONS)}[reg] AS region_name,
           CASE WHEN cat_u < 962 THEN 'Usage' WHEN cat_u < 977 THEN 'Purchase' WHEN cat_u < 990 THEN 'Tax'
                WHEN cat_u < 998 THEN 'Credit' ELSE 'Adjustment' END AS cat,
           printf('%012d', 210000000000 + acct * 7919) AS sub_id,
           CASE WHEN hash(r, 24) % 100 < 15 THEN {_sql_list(TEAMS)}[1 + (hash(r, 25) % {len(TEAMS)})::BIGINT]
                ELSE {_sql_list(TEAMS)}[1 + (hash(acct, 12) % {len(TEAMS)})::BIGINT] END AS team,
           {_sql_list(ENVS)}[1 + (hash(acct, 13) % {len(ENVS)})::BIGINT] AS env,
           CAST(round(0.0001 + (hash(s, sku, 5) % 2500000) / 1e6, 6) AS {dec}) AS lup,
           CAST(1 - (hash(acct, 16) % 16) / 100 AS DECIMAL(4, 2)) AS disc_factor,
           CAST(((q_h % 50000000) + 1) / 10000.0 AS DECIMAL(38,4)) AS qty,
           CAST(((q_h >> 20) % 5000000 + 1) / 1000.0 AS {dec}) AS flat_amount,
           'arn:aws:savingsplans::100000000001:savingsplan/' || printf('%08x', hash(acct % 6, 22) >> 32)
               || '-sp' || (acct % 6)::VARCHAR AS sp_arn,
           printf('SKU-%016X', hash(s, sku, 21)) AS sku_id
    FROM a
), c AS (
    SELECT b.*,
           CASE WHEN cat <> 'Usage' THEN 'Standard'
                WHEN list_contains({list(COMMITTABLE)}, s) AND commit_u < 30 THEN 'Committed'
                WHEN s = 1 AND commit_u >= 96 THEN 'Dynamic' ELSE 'Standard' END AS pricing,
           CAST(lup * disc_factor AS {dec}) AS cup
    FROM b
), d AS (
    SELECT c.*,
           CAST(lup * qty AS {dec}) AS list_cost_u,
           CAST(cup * qty AS {dec}) AS contracted_cost_u,
           pricing = 'Committed' AND unused_u < 3 AS unused,
           CAST(-flat_amount * 0.01 AS {dec}) AS credit_amt
    FROM c
)
SELECT
    'AWS' AS ProviderName,
    'AWS' AS PublisherName,
    'AWS' AS InvoiceIssuerName,
    'INV-2026-04-' || printf('%06d', acct % 3) AS InvoiceId,
    '100000000001' AS BillingAccountId,
    'ExampleCorp Payer' AS BillingAccountName,
    sub_id AS SubAccountId,
    env || '-' || team || '-' || acct::VARCHAR AS SubAccountName,
    TIMESTAMPTZ '2026-04-01 00:00:00+00' AS BillingPeriodStart,
    TIMESTAMPTZ '2026-05-01 00:00:00+00' AS BillingPeriodEnd,
    CASE WHEN cat = 'Usage' THEN TIMESTAMPTZ '2026-04-01 00:00:00+00' + hr * INTERVAL 1 HOUR
         ELSE TIMESTAMPTZ '2026-04-01 00:00:00+00' END AS ChargePeriodStart,
    CASE WHEN cat = 'Usage' THEN TIMESTAMPTZ '2026-04-01 01:00:00+00' + hr * INTERVAL 1 HOUR
         ELSE TIMESTAMPTZ '2026-05-01 00:00:00+00' END AS ChargePeriodEnd,
    cat AS ChargeCategory,
    CASE WHEN cat = 'Adjustment' THEN 'Correction' END AS ChargeClass,
    CASE cat WHEN 'Usage' THEN svc.desc || ' (' || region_id || ')'
             WHEN 'Purchase' THEN 'Savings Plan recurring fee' WHEN 'Tax' THEN 'Tax for ' || svc.name
             WHEN 'Credit' THEN 'Promotional credit' ELSE 'Billing correction' END AS ChargeDescription,
    CASE cat WHEN 'Usage' THEN 'Usage-Based' WHEN 'Purchase' THEN 'Recurring' WHEN 'Tax' THEN 'Recurring'
             ELSE 'One-Time' END AS ChargeFrequency,
    CASE WHEN cat = 'Usage' THEN
            CASE pricing WHEN 'Committed' THEN CAST(0 AS {dec})
                         WHEN 'Dynamic' THEN CAST(contracted_cost_u * 0.35 AS {dec}) ELSE contracted_cost_u END
         WHEN cat IN ('Credit', 'Adjustment') THEN credit_amt ELSE flat_amount END AS BilledCost,
    CASE WHEN cat = 'Usage' THEN
            CASE pricing WHEN 'Committed' THEN CAST(contracted_cost_u * 0.62 AS {dec})
                         WHEN 'Dynamic' THEN CAST(contracted_cost_u * 0.35 AS {dec}) ELSE contracted_cost_u END
         WHEN cat = 'Purchase' THEN CAST(0 AS {dec})
         WHEN cat IN ('Credit', 'Adjustment') THEN credit_amt ELSE flat_amount END AS EffectiveCost,
    CASE WHEN cat = 'Usage' THEN list_cost_u WHEN cat IN ('Credit', 'Adjustment') THEN credit_amt
         ELSE flat_amount END AS ListCost,
    CASE WHEN cat = 'Usage' THEN contracted_cost_u WHEN cat IN ('Credit', 'Adjustment') THEN credit_amt
         ELSE flat_amount END AS ContractedCost,
    CASE WHEN cat = 'Usage' THEN lup WHEN cat = 'Purchase' THEN CAST(1 AS {dec}) END AS ListUnitPrice,
    CASE WHEN cat = 'Usage' THEN cup WHEN cat = 'Purchase' THEN CAST(1 AS {dec}) END AS ContractedUnitPrice,
    CASE WHEN cat IN ('Usage', 'Purchase') THEN pricing END AS PricingCategory,
    CASE WHEN cat = 'Usage' THEN qty WHEN cat = 'Purchase' THEN CAST(flat_amount AS DECIMAL(38,4)) END
        AS PricingQuantity,
    CASE WHEN cat = 'Usage' THEN svc.unit WHEN cat = 'Purchase' THEN 'USD' END AS PricingUnit,
    'USD' AS BillingCurrency,
    CASE WHEN cat = 'Usage' THEN qty END AS ConsumedQuantity,
    CASE WHEN cat = 'Usage' THEN svc.unit END AS ConsumedUnit,
    svc.name AS ServiceName,
    svc.cat AS ServiceCategory,
    svc.sub AS ServiceSubcategory,
    CASE WHEN cat = 'Usage' THEN sku_id END AS SkuId,
    CASE WHEN cat = 'Usage' THEN sku_id || '.' ||
        CASE pricing WHEN 'Committed' THEN 'SP1YNU' WHEN 'Dynamic' THEN 'SPOT' ELSE 'OD' END END AS SkuPriceId,
    CASE WHEN cat = 'Usage' THEN 'arn:aws:' || svc.arn || ':' || region_id || ':' || sub_id || ':'
            || svc.prefix || printf('%017x', hash(r, 20) >> 4)
         WHEN cat = 'Purchase' THEN sp_arn END AS ResourceId,
    CASE WHEN cat = 'Usage' THEN svc.rtype || '-' || printf('%06d', r) END AS ResourceName,
    CASE WHEN cat = 'Usage' THEN svc.rtype WHEN cat = 'Purchase' THEN 'Savings Plan' END AS ResourceType,
    CASE WHEN cat <> 'Credit' THEN region_id END AS RegionId,
    CASE WHEN cat <> 'Credit' THEN region_name END AS RegionName,
    CASE WHEN cat = 'Usage' AND svc.unit = 'Hours' THEN region_id || chr(97 + (hash(r, 26) % 3)::INTEGER) END
        AS AvailabilityZone,
    CASE WHEN pricing = 'Committed' OR cat = 'Purchase' THEN sp_arn END AS CommitmentDiscountId,
    CASE WHEN pricing = 'Committed' OR cat = 'Purchase' THEN 'Spend' END AS CommitmentDiscountCategory,
    CASE WHEN pricing = 'Committed' OR cat = 'Purchase' THEN 'Compute Savings Plan' END AS CommitmentDiscountType,
    CASE WHEN pricing = 'Committed' THEN CASE WHEN unused THEN 'Unused' ELSE 'Used' END END
        AS CommitmentDiscountStatus,
    CASE WHEN tag_u < 8 THEN NULL
         WHEN tag_u < 12 THEN '{{}}'
         WHEN tag_u < 30 THEN '{{"team":"' || team || '","env":"' || env || '","cost-center":"cc-'
             || (1000 + hash(team) % 9000)::VARCHAR || '"}}'
         ELSE '{{"team":"' || team || '","env":"' || env || '"}}' END AS Tags
FROM d
"""


DECIMAL_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice",
                   "ContractedUnitPrice", "PricingQuantity", "ConsumedQuantity")
TIME_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")


def data_file(workdir: Path, rows: int, fmt: str, money: str) -> Path:
    suffix = f"{money}.parquet" if fmt == "parquet" else "csv.gz"
    return workdir / "data" / f"focus12-v{GENERATOR_VERSION}-{rows}.{suffix}"


def generate(path: Path, rows: int, fmt: str, money: str) -> None:
    """Write the generated rows to `path` (Parquet: money as `money`; CSV: text, ISO-8601 UTC, trimmed decimals)."""
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    base = generator_sql(rows)
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM ({base}) LIMIT 0").fetchall()]
    if fmt == "parquet":
        if money == "double":
            exprs = [f"CAST({c} AS DOUBLE) AS {c}" if c in DECIMAL_COLUMNS else c for c in cols]
        else:
            exprs = cols
        copy = f"COPY (SELECT {', '.join(exprs)} FROM ({base})) TO '{tmp}' (FORMAT parquet, COMPRESSION snappy)"
    else:
        exprs = []
        for c in cols:
            if c in DECIMAL_COLUMNS:  # "12.5000000000" -> "12.5", the way exports write decimals
                exprs.append(f"rtrim(rtrim(CAST({c} AS VARCHAR), '0'), '.') AS {c}")
            elif c in TIME_COLUMNS:
                exprs.append(f"strftime({c}, '%Y-%m-%dT%H:%M:%SZ') AS {c}")
            else:
                exprs.append(c)
        copy = (f"COPY (SELECT {', '.join(exprs)} FROM ({base})) TO '{tmp}' "
                f"(FORMAT csv, HEADER, COMPRESSION gzip)")
    t0 = time.perf_counter()
    with progress_watch(con, f"generating {path.name}"):
        con.execute(copy)
    con.close()
    os.replace(tmp, path)
    log(f"generated {path.name}: {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")


@contextlib.contextmanager
def progress_watch(con, label: str, every: float = 10.0):
    """Log DuckDB's progress estimate for the running statement every `every` seconds."""
    done = threading.Event()

    def watch():
        t0 = time.monotonic()
        while not done.wait(every):
            with contextlib.suppress(Exception):
                pct = con.query_progress()
                if pct is not None and pct >= 0:
                    log(f"  {label}: {pct:.0f}% ({time.monotonic() - t0:.0f} s)")

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    try:
        yield
    finally:
        done.set()
        th.join()


# =================================================================================================================
# Measurements (each runs in a fresh child process: `ingest_bench.py --child TASK.json`)
# =================================================================================================================
def relation(path: Path, fmt: str) -> str:
    if fmt == "parquet":
        return f"read_parquet('{path}')"
    return f"read_csv('{path}', header = true, all_varchar = true, compression = 'gzip')"


def floor_select(path: Path, fmt: str) -> str:
    exprs = [f"CAST({c} AS {MONEY_FLOOR}) AS {c}" for c in FLOOR_MONEY]
    exprs += [f"CAST({c} AS TIMESTAMPTZ) AS {c}" for c in FLOOR_TIMES]
    exprs += list(FLOOR_TEXT)
    exprs.append("CAST(json_transform(Tags, '\"MAP(VARCHAR, VARCHAR)\"') AS MAP(VARCHAR, VARCHAR)) AS Tags")
    return f"SELECT {', '.join(exprs)} FROM {relation(path, fmt)}"


def proc_status_mb(field: str = "VmRSS") -> float:
    """VmRSS (current) or VmHWM (peak since exec) of this process, in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def wide_select(con, path: Path, fmt: str) -> tuple[str, str]:
    """Every column of the file with the load floor's casts: (column definitions, SELECT)."""
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation(path, fmt)}").fetchall()]
    defs, exprs = [], []
    for c in cols:
        if c in DECIMAL_COLUMNS:
            defs.append(f"{c} {MONEY_FLOOR}")
            exprs.append(f"CAST({c} AS {MONEY_FLOOR})")
        elif c in TIME_COLUMNS:
            defs.append(f"{c} TIMESTAMPTZ")
            exprs.append(f"CAST({c} AS TIMESTAMPTZ)")
        elif c == "Tags":
            defs.append("Tags MAP(VARCHAR, VARCHAR)")
            exprs.append("CAST(json_transform(Tags, '\"MAP(VARCHAR, VARCHAR)\"') AS MAP(VARCHAR, VARCHAR))")
        else:
            defs.append(f"{c} VARCHAR")
            exprs.append(c)
    return ", ".join(defs), f"SELECT {', '.join(exprs)} FROM {relation(path, fmt)}"


def vm_rss_mb() -> float:
    return proc_status_mb("VmRSS")


def child_scan(task: dict) -> dict:
    import duckdb

    path, fmt = Path(task["file"]), task["format"]
    con = duckdb.connect()
    base = vm_rss_mb()
    t0 = time.perf_counter()
    total, n = con.execute(
        f"SELECT sum(CAST(BilledCost AS {MONEY_FLOOR})), count(*) FROM {relation(path, fmt)}"
    ).fetchone()
    wall = time.perf_counter() - t0
    con.close()
    return {"wall": wall, "rows": n, "check_rows": n, "billed_sum": str(total), "base_rss_mb": base}


def child_load(task: dict) -> dict:
    import duckdb

    path, fmt, db = Path(task["file"]), task["format"], Path(task["db"])
    base = vm_rss_mb()
    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    if task["measure"] == "wide":
        cols, select = wide_select(con, path, fmt)
    else:
        cols = ", ".join(
            f"{c} {MONEY_FLOOR if c in FLOOR_MONEY else 'TIMESTAMPTZ' if c in FLOOR_TIMES else 'VARCHAR'}"
            for c in FLOOR_COLUMNS[:-1]
        ) + ", Tags MAP(VARCHAR, VARCHAR)"
        select = floor_select(path, fmt)
    con.execute(f"CREATE TABLE cost_floor ({cols})")
    con.execute(f"INSERT INTO cost_floor {select}")
    con.close()
    wall = time.perf_counter() - t0
    con = duckdb.connect(str(db), read_only=True)
    n, total = con.execute("SELECT count(*), sum(BilledCost) FROM cost_floor").fetchone()
    con.close()
    return {"wall": wall, "rows": n, "check_rows": n, "billed_sum": str(total), "base_rss_mb": base,
            "db_mb": db.stat().st_size / 1e6}


class TimedConnection:
    """Forwards everything to a DuckDB connection; times execute/commit and files the time under a phase name."""

    def __init__(self, con, phases: dict):
        self._con, self._phases = con, phases

    def _add(self, name: str, seconds: float) -> None:
        self._phases[name] = self._phases.get(name, 0.0) + seconds

    def execute(self, sql, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            self._add(classify_sql(sql), time.perf_counter() - t0)

    def executemany(self, sql, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._con.executemany(sql, *args, **kwargs)
        finally:
            self._add("other SQL", time.perf_counter() - t0)

    def commit(self):
        t0 = time.perf_counter()
        try:
            return self._con.commit()
        finally:
            self._add("COMMIT", time.perf_counter() - t0)

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._con.__exit__(*exc)


def classify_sql(sql: str) -> str:
    s = " ".join(str(sql).split())
    up = s.upper()
    if up.startswith("INSERT INTO COST_AND_USAGE"):
        return "INSERT mapped rows (2nd file scan + write)"
    if up.startswith("DESCRIBE"):
        return "open file: DESCRIBE"
    if up.startswith("SELECT COUNT(*) FROM READ_"):
        return "open file: count(*)"
    if "GROUP BY P" in up and "COUNT(*)" in up:
        return "raw_stats (1st file scan: counts, sums, enum checks)"
    if up.startswith("SELECT X_DELIVERYID, COUNT(*)"):
        return "landed sums (re-read inserted rows)"
    if up.startswith("DELETE FROM"):
        return "DELETE previous rows"
    if up.startswith("SELECT DISTINCT X_DELIVERYID"):
        return "present deliveries"
    if "JSON_TRANSFORM" in up or "ORDERED" in up or "__ROW" in up:
        return "diagnose (should not run)"
    return "other SQL"


def instrument(phases: dict) -> list[str]:
    """Wrap the warehouse connection and the file hashing of the running process; returns what could not be."""
    missing = []

    def add(name, seconds):
        phases[name] = phases.get(name, 0.0) + seconds

    try:
        import app.warehouse as wh

        orig_connect = wh.Warehouse.connect

        @contextlib.contextmanager
        def connect(self, *args, **kwargs):
            cm = orig_connect(self, *args, **kwargs)
            con = cm.__enter__()
            try:
                yield TimedConnection(con, phases)
            except BaseException:
                if not cm.__exit__(*sys.exc_info()):
                    raise
            else:
                t0 = time.perf_counter()
                cm.__exit__(None, None, None)
                add("close warehouse connection (checkpoint)", time.perf_counter() - t0)

        wh.Warehouse.connect = connect
    except (ImportError, AttributeError) as exc:
        missing.append(f"warehouse connection: {exc}")
    try:
        from connectors import storage

        orig_sha = storage.sha256_of

        def sha256_of(path):
            t0 = time.perf_counter()
            try:
                return orig_sha(path)
            finally:
                add("sha256 of the file (Python hashlib)", time.perf_counter() - t0)

        storage.sha256_of = sha256_of
    except (ImportError, AttributeError) as exc:
        missing.append(f"sha256_of: {exc}")
    return missing


def child_ingest(task: dict) -> dict:
    t_import = time.perf_counter()
    from app.ingest import ingest
    from app.runtime import Runtime
    from app.settings import Settings

    data_dir = Path(task["data_dir"])
    rt = Runtime(Settings(data_dir=data_dir))
    rt.init()
    setup = time.perf_counter() - t_import
    phases: dict[str, float] = {}
    missing = instrument(phases)
    progress_log: list[tuple[float, str]] = []
    last = [0.0]
    t0 = time.perf_counter()

    def progress(msg: str, frac: float) -> None:
        now = time.perf_counter() - t0
        if not progress_log or progress_log[-1][1] != msg:
            progress_log.append((round(now, 3), msg))
        if now - last[0] >= 5 or msg in ("done", "unchanged") or not msg.startswith("loading"):
            last[0] = now
            log(f"    ingest {now:6.1f} s  {frac * 100:3.0f}%  {msg}")

    base = vm_rss_mb()
    result = ingest(rt, "bench", task["file"], progress=progress)
    wall = time.perf_counter() - t0
    loaded = result.loaded
    delivery = loaded[0] if loaded else None
    with rt.warehouse.connect(read_only=True) as con:
        n = con.execute(
            "SELECT count(*) FROM cost_and_usage WHERE x_DeliveryId = ?", [delivery.id if delivery else ""]
        ).fetchone()[0]
    rt.close()
    wh_path = rt.settings.resolved_warehouse_path
    return {
        "wall": wall, "rows": task["rows"], "check_rows": n, "setup": setup, "base_rss_mb": base,
        "deliveries": len(loaded), "ledger_raw_rows": delivery.raw_rows if delivery else None,
        "ledger_landed_rows": delivery.landed_rows if delivery else None,
        "billed_sum": str(delivery.landed_billed_cost) if delivery else None,
        "tolerated": list(delivery.tolerated or []) if delivery else [],
        "phases": phases, "instrumentation_missing": missing, "progress": progress_log,
        "db_mb": wh_path.stat().st_size / 1e6 if wh_path.exists() else None,
    }


def child_main(task_path: str) -> None:
    task = json.loads(Path(task_path).read_text())
    fn = {"scan": child_scan, "load": child_load, "wide": child_load, "ingest": child_ingest}[task["measure"]]
    out = fn(task)
    # Peak RSS of this process since exec. Not getrusage().ru_maxrss: on Linux a child's ru_maxrss starts from
    # the size of the (forked) parent at exec time, which here holds the generator's DuckDB memory.
    out["peak_rss_mb"] = proc_status_mb("VmHWM")
    Path(task["out"]).write_text(json.dumps(out, default=str))


def cpu_pressure_us() -> int | None:
    """System-wide time (µs) during which some runnable task waited for a CPU (Linux PSI), or None."""
    try:
        with open("/proc/pressure/cpu") as fh:
            for line in fh:
                if line.startswith("some"):
                    return int(line.split("total=")[1])
    except (OSError, IndexError, ValueError):
        return None
    return None


def run_child(task: dict, scratch: Path) -> dict:
    """Run one measurement in a fresh interpreter; add its CPU time (user + system) from wait4()."""
    task_file = scratch / f"task-{task['measure']}-{task['format']}-{task['rows']}-{task['rep']}.json"
    task["out"] = str(task_file.with_suffix(".out.json"))
    task_file.write_text(json.dumps(task))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDTALLY_")}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    psi0, t0, load0 = cpu_pressure_us(), time.monotonic(), os.getloadavg()[0]
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(task_file)],
                            cwd=str(scratch), env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{task['measure']} {task['format']} {task['rows']} failed (exit {proc.returncode})")
    out = json.loads(Path(task["out"]).read_text())
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    psi1, elapsed = cpu_pressure_us(), time.monotonic() - t0
    # Share of the child's lifetime during which some task on the machine waited for a CPU: a noise indicator
    # (our own threads contribute a little; another process running at the same time contributes a lot).
    out["cpu_stall_pct"] = None if psi0 is None or psi1 is None else 100 * (psi1 - psi0) / 1e6 / elapsed
    out["loadavg_start"] = load0
    return out


# =================================================================================================================
# Orchestration and report
# =================================================================================================================
def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time (the lower middle one for an even count; its own RSS/CPU/phases), plus
    the spread of wall times."""
    ordered = sorted(runs, key=lambda r: r["wall"])
    pick = dict(ordered[(len(ordered) - 1) // 2])
    pick["walls"] = [r["wall"] for r in runs]
    return pick


def measure_all(args, workdir: Path) -> list[dict]:
    results = []
    scratch_root = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    try:
        for rows in args.rows:
            for fmt in args.formats:
                path = data_file(workdir, rows, fmt, args.parquet_money)
                if args.regenerate and path.exists():
                    path.unlink()
                if path.exists():
                    log(f"reusing {path} ({path.stat().st_size / 1e6:.0f} MB)")
                else:
                    log(f"generating {human_rows(rows)} rows as {fmt} -> {path}")
                    generate(path, rows, fmt, args.parquet_money)
                entry = {"rows": rows, "format": fmt, "file": str(path), "file_mb": path.stat().st_size / 1e6}
                for measure in args.measures:
                    runs = []
                    for rep in range(args.repeat):
                        scratch = scratch_root / f"{measure}-{fmt}-{rows}-{rep}"
                        scratch.mkdir(parents=True)
                        task = {"measure": measure, "format": fmt, "rows": rows, "file": str(path), "rep": rep,
                                "db": str(scratch / "floor.duckdb"), "data_dir": str(scratch / "data")}
                        log(f"{human_rows(rows)} {fmt}: {measure} (run {rep + 1}/{args.repeat})")
                        out = run_child(task, scratch)
                        log(f"  -> {out['wall']:.2f} s, {rate(rows, out['wall'])} rows/s, "
                            f"peak RSS {out['peak_rss_mb']:.0f} MB")
                        if out["check_rows"] != rows:
                            log(f"  !! row check failed: {out['check_rows']} rows, expected {rows}")
                        runs.append(out)
                        if not args.keep:
                            shutil.rmtree(scratch, ignore_errors=True)
                    entry[measure] = median_run(runs)
                results.append(entry)
    finally:
        if not args.keep:
            shutil.rmtree(scratch_root, ignore_errors=True)
        else:
            log(f"kept warehouses and floor databases under {scratch_root}")
    return results


def machine_info() -> dict:
    import duckdb

    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    # model name alone ("AMD EPYC") does not tell two hosts apart; family and model numbers do
    fields = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in fields:
                fields[key] = value.strip()
            if not line.strip():
                break
    cpu = fields.get("model name", "")
    if "cpu family" in fields:
        cpu += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    git = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "app", "connectors",
                                "migrations"], capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        git = head + (" + uncommitted changes in app/connectors/migrations" if dirty else "")
    return {"git": git, "nproc": os.cpu_count(), "ram_gb": round(mem_kb / 1024 / 1024, 1), "cpu": cpu,
            "python": platform.python_version(), "duckdb": duckdb.__version__,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "loadavg": os.getloadavg()}


LABELS = {"scan": "scan floor", "load": "load floor", "wide": "wide load floor", "ingest": "**CloudTally ingest**"}


def render(results: list[dict], info: dict, argv: list[str]) -> str:
    with_wide = any("wide" in e for e in results)
    loadavg = " ".join(f"{x:.2f}" for x in info["loadavg"])
    header = ("| rows | format | file MB | measure | wall s | rows/s | × load floor | × scan floor "
              + ("| × wide floor " if with_wide else "") + "| peak RSS MB | CPU s | CPU stall % | rows check |")
    rule = "|---:|---|---:|---|---:|---:|---:|---:|" + ("---:|" if with_wide else "") + "---:|---:|---:|---|"
    out = [
        (f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gb']} GB RAM, Python {info['python']}, "
         f"DuckDB {info['duckdb']}; {info['date']}; load average at the end {loadavg}"),
        f"Code: {info['git'] or 'unknown'}; command: `python bench/ingest_bench.py {' '.join(argv)}`",
        "",
        header,
        rule,
    ]
    for e in results:
        load, scan = e.get("load"), e.get("scan")
        for m in MEASURES:
            r = e.get(m)
            if r is None:
                continue
            walls = r["walls"]
            wall = f"{r['wall']:.2f}" + (f" ({min(walls):.2f}–{max(walls):.2f})" if len(walls) > 1 else "")
            x_load = f"{r['wall'] / load['wall']:.2f}×" if load else "–"
            x_scan = f"{r['wall'] / scan['wall']:.1f}×" if scan else "–"
            x_wide = ""
            if with_wide:
                x_wide = (f"{r['wall'] / e['wide']['wall']:.2f}× | " if "wide" in e else "– | ")
            ok = r["check_rows"] == e["rows"]
            if m == "ingest":
                ok = ok and r.get("ledger_landed_rows") == e["rows"] and r.get("ledger_raw_rows") == e["rows"]
            check = ("ok" if ok else "**MISMATCH**") + (
                f" (landed {r['check_rows']:,})" if m == "ingest" else "")
            stall = "–" if r.get("cpu_stall_pct") is None else f"{r['cpu_stall_pct']:.0f}"
            out.append(
                f"| {human_rows(e['rows'])} | {e['format']} | {e['file_mb']:.0f} | {LABELS[m]} | {wall} | "
                f"{rate(e['rows'], r['wall'])} | {x_load} | {x_scan} | {x_wide}{r['peak_rss_mb']:.0f} | "
                f"{r['cpu_s']:.1f} | {stall} | {check} |"
            )
    legend = (
        "wall s: the median of the runs (the lower middle one for an even count; min–max when repeated); rows/s = "
        "rows / wall; × columns: wall over the floor's wall in the same run; peak RSS: VmHWM of the measuring "
        "process (includes the Python interpreter and, for the ingest, SQLAlchemy and the app); CPU s: user + "
        "system time of that process; CPU stall %: share of the run during which some task on the machine waited "
        "for a CPU (Linux PSI), i.e. how busy the machine was with other work (a few % is our own threads)."
    )
    out += ["", legend]
    ingests = [e for e in results if "ingest" in e]
    if ingests:
        out += ["", "Where the ingest's time goes (seconds, median run; measured inside the ingest process):", ""]
        names: list[str] = []
        for e in ingests:
            for name in e["ingest"]["phases"]:
                if name not in names:
                    names.append(name)
        head = [f"{human_rows(e['rows'])} {e['format']}" for e in ingests]
        out.append("| phase | " + " | ".join(head) + " |")
        out.append("|---|" + "---:|" * len(head))
        for name in names:
            cells = []
            for e in ingests:
                r = e["ingest"]
                v = r["phases"].get(name)
                cells.append("–" if v is None else f"{v:.2f} ({100 * v / r['wall']:.0f}%)")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        cells = []
        for e in ingests:
            r = e["ingest"]
            rest = r["wall"] - sum(r["phases"].values())
            cells.append(f"{rest:.2f} ({100 * rest / r['wall']:.0f}%)")
        out.append("| rest (Python, control DB/ledger, connect) | " + " | ".join(cells) + " |")
        out.append("| **total ingest wall** | " + " | ".join(f"{e['ingest']['wall']:.2f}" for e in ingests) + " |")
        out.append("| load floor wall, same run | " + " | ".join(
            f"{e['load']['wall']:.2f}" if "load" in e else "–" for e in ingests) + " |")
        notes = sorted({n.split(": ", 1)[-1] for e in ingests for n in e["ingest"].get("tolerated", [])})
        if notes:
            out += ["", "Ingest notes (tolerated, any file): " + "; ".join(notes)]
        missing = sorted({m for e in ingests for m in e["ingest"].get("instrumentation_missing", [])})
        if missing:
            out += ["", "Phase timing incomplete: " + "; ".join(missing)]
    return "\n".join(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="ingest_bench.py",
        description="Benchmark CloudTally's FOCUS ingest against DuckDB's load floor and scan floor "
        "(DESIGN.md, 'Performance yardsticks'). Generates FOCUS 1.2 data, measures each figure in a fresh "
        "subprocess, prints a Markdown table to stdout; progress goes to stderr.",
    )
    p.add_argument("--rows", type=int, action="append", metavar="N",
                   help="rows to generate and ingest; repeat the option for several sizes (default: 1000000)")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"comma-separated file formats to measure, from: {', '.join(FORMATS)} (default: both)")
    p.add_argument("--measures", default=",".join(DEFAULT_MEASURES),
                   help=f"comma-separated measurements, from: {', '.join(MEASURES)} (default: "
                   f"{','.join(DEFAULT_MEASURES)}; the ratios need scan and load). 'wide' is an extra yardstick: "
                   "the load floor's casts applied to every column of the file, i.e. DuckDB writing a table as wide "
                   "as the ingest's")
    p.add_argument("--workdir", type=Path, metavar="DIR", default=Path(tempfile.gettempdir()) / "cloudtally-bench",
                   help="where generated files are cached (DIR/data/, keyed by row count) and the runs happen "
                   "(default: %(default)s)")
    p.add_argument("--keep", action="store_true",
                   help="keep the ingest data dirs and floor databases of the runs (generated files are always "
                   "kept)")
    p.add_argument("--repeat", type=int, default=1, metavar="K",
                   help="run every measurement K times and report the run with the median wall time (default: 1)")
    p.add_argument("--parquet-money", choices=("double", "decimal"), default="double",
                   help="type of the money and quantity columns in the Parquet file: double (what AWS's FOCUS "
                   "export writes) or decimal (DECIMAL(38,10)); default: double")
    p.add_argument("--regenerate", action="store_true", help="regenerate the data files even if cached")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write all figures as JSON to PATH")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    args.rows = args.rows or [1_000_000]
    if any(n <= 0 for n in args.rows):
        p.error("--rows must be positive")
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    bad = [f for f in args.formats if f not in FORMATS]
    if bad or not args.formats:
        p.error(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    args.measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    bad = [m for m in args.measures if m not in MEASURES]
    if bad or not args.measures:
        p.error(f"unknown measure(s) {', '.join(bad)}; choose from {', '.join(MEASURES)}")
    args.measures = [m for m in MEASURES if m in args.measures]  # floors first
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = measure_all(args, workdir)
    info = machine_info()
    table = render(results, info, argv)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "argv": argv, "results": results}, indent=2, default=str))
    log(f"finished in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
