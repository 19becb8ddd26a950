#!/usr/bin/env python
"""CUR 2.0 benchmark (issue 4): CloudTally normalizing one generated AWS Data Exports month, against DuckDB floors.

Generates N CUR 2.0 line items for one billing month (April 2026) with DuckDB SQL over range(), written the way a
Data Exports delivery lands (Parquet parts of ~1.5M rows under data/BILLING_PERIOD=2026-04/ and a manifest under
metadata/BILLING_PERIOD=2026-04/; cached in the work dir by row count), then measures, each in a fresh subprocess:

  scan floor  the issue's yardstick: SELECT sum(line_item_unblended_cost) FROM read_parquet([the parts])
  load floor  DESIGN.md's yardstick: DuckDB reading the same parts and writing 14 FOCUS-named columns (money
              cast to DECIMAL(38,10), tags as MAP) into a native table in a fresh DuckDB file
  wide floor  (optional) the same, for every column of the parts (45)
  ingest      the real thing: sources.add(rt, "bench", "aws", "cur2", <export folder>); ingest(rt, "bench")

and prints a Markdown table (wall, rows/s of raw CUR lines, ratios to both floors, peak RSS as VmHWM, CPU time,
CPU stall, whether the landed BilledCost / EffectiveCost equal the sums computed from the files) and the ingest's
phases (discovery, hashing, raw stats per part, the INSERT, landed sums, commit), timed inside the ingest process
by wrapping the warehouse connection; no application code is changed.

Examples:
  python bench/cur2_bench.py --rows 1000000
  python bench/cur2_bench.py --rows 1000000 --rows 10000000 --repeat 2 --json cur2.json

Progress goes to stderr, the tables to stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from decimal import Decimal
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(BENCH), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)

import ingest_bench as ib  # noqa: E402  (shared helpers: logging, RSS, PSI, machine info, the timed connection)
from ingest_bench import human_rows, log, median_run, proc_status_mb, rate  # noqa: E402

GENERATOR_VERSION = 1  # bump when the generated data changes, so cached deliveries are regenerated
EXPORT_NAME = "cur2-bench"
PERIOD = "2026-04"
PERIOD_START = "TIMESTAMPTZ '2026-04-01 00:00:00+00'"
PERIOD_END = "TIMESTAMPTZ '2026-05-01 00:00:00+00'"
HOURS = 720
PAYER = "100000000001"
MEASURES = ("scan", "load", "wide", "ingest")
DEFAULT_MEASURES = ("scan", "load", "ingest")
MONEY_FLOOR = "DECIMAL(38,10)"
DEC = "DECIMAL(38,10)"

# CUR 2.0 columns written as money/quantities (DOUBLE, as AWS's Parquet has them) and as rate text (VARCHAR, as
# public Athena DDLs of CUR 2.0 declare line_item_unblended_rate and pricing_public_on_demand_rate).
MONEY_COLUMNS = (
    "line_item_usage_amount", "line_item_unblended_cost", "pricing_public_on_demand_cost",
    "reservation_effective_cost", "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee", "reservation_unused_quantity", "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date", "savings_plan_used_commitment",
)
RATE_COLUMNS = ("line_item_unblended_rate", "pricing_public_on_demand_rate")
TIME_COLUMNS = ("bill_billing_period_start_date", "bill_billing_period_end_date", "line_item_usage_start_date",
                "line_item_usage_end_date")

# The 14 columns of DESIGN.md's load floor, fed from the CUR column that holds the closest raw value.
FLOOR_SOURCES = {
    "BilledCost": "line_item_unblended_cost",
    "EffectiveCost": "coalesce(savings_plan_savings_plan_effective_cost, reservation_effective_cost, "
                     "line_item_unblended_cost)",
    "ListCost": "pricing_public_on_demand_cost",
    "ContractedCost": "line_item_unblended_cost",
    "ChargePeriodStart": "line_item_usage_start_date",
    "BillingPeriodStart": "bill_billing_period_start_date",
    "ServiceName": "product_product_name",
    "ServiceCategory": "product_product_family",
    "SubAccountId": "line_item_usage_account_id",
    "RegionId": "product_region_code",
    "ResourceId": "line_item_resource_id",
    "SkuId": "product_sku",
    "PricingCategory": "pricing_term",
    "Tags": "resource_tags",
}
assert len(FLOOR_SOURCES) == 14

# =================================================================================================================
# The generated month
# =================================================================================================================
# Line item types. Rows come in pairs (2e, 2e+1): SP_PAIRS_PER_MILLE of the pairs are a Savings Plan covered line
# and its negation (same account, hour, resource, usage type, operation and plan), so 20% of the rows are
# SavingsPlanCoveredUsage and 20% SavingsPlanNegation. The other rows draw their type independently.
SP_PAIRS_PER_MILLE = 400
OTHER_TYPES = [  # (type, cumulative per mille of the non-SP rows)
    ("Usage", 865), ("DiscountedUsage", 965), ("SavingsPlanRecurringFee", 975), ("RIFee", 977), ("Tax", 990),
    ("Credit", 997), ("EdpDiscount", 999), ("Refund", 1000),
]
ACCOUNTS = 250
SAVINGS_PLANS = 6
RESERVATIONS = 60
# Resources: ~N/80 (an instance running all month has 720 hourly lines, most resources have far fewer). The first
# 30% are EC2 instances (what Savings Plans and RIs cover), then 6% RDS and 2% ElastiCache (RI-coverable), the rest
# spread over the other profiles with a long tail.
SHARE_EC2, SHARE_RDS, SHARE_CACHE = 0.30, 0.06, 0.02

# Usage profiles: (product code, product family, usage type, operation, pricing unit, on-demand rate, hourly,
# amount scale, resource id prefix, ARN service ('' = plain id), has an availability zone)
EC2_PROFILES = [
    ("AmazonEC2", "Compute Instance", f"BoxUsage:{t}", "RunInstances", "Hrs", r, True, 1, "i-", "", True)
    for t, r in (("m5.large", "0.096"), ("c5.xlarge", "0.17"), ("r5.2xlarge", "0.504"), ("t3.medium", "0.0416"),
                 ("m6i.4xlarge", "0.768"), ("g5.xlarge", "1.006"))
]
RDS_PROFILE = ("AmazonRDS", "Database Instance", "InstanceUsage:db.r6g.large", "CreateDBInstance:0014", "Hrs",
               "0.225", True, 1, "db:db-", "rds", True)
CACHE_PROFILE = ("AmazonElastiCache", "Cache Instance", "NodeUsage:cache.r6g.large", "CreateCacheCluster:0000",
                 "Hrs", "0.206", True, 1, "cluster:cache-", "elasticache", True)
TAIL_PROFILES = [  # most frequent first; then every other product code of connectors/aws/services.py
    ("AmazonEC2", "Storage", "EBS:VolumeUsage.gp3", "CreateVolume-Gp3", "GB-Mo", "0.08", False, "0.002", "vol-", "",
     True),
    ("AmazonS3", "Storage", "TimedStorage-ByteHrs", "StandardStorage", "GB-Mo", "0.023", False, "0.01",
     "bucket-", "", False),
    ("AWSDataTransfer", "Data Transfer", "DataTransfer-Out-Bytes", "RunInstances", "GB", "0.09", False, "0.01",
     "i-", "", False),
    ("AmazonCloudWatch", "Metric", "CW:MetricMonitorUsage", "MetricStorage", "Metrics", "0.3", False, "0.001",
     "metric/m-", "cloudwatch", False),
    ("AWSLambda", "Serverless", "Lambda-GB-Second", "Invoke", "Lambda-GB-Second", "0.0000166667", False, "10",
     "function:fn-", "lambda", False),
    ("AmazonDynamoDB", "Amazon DynamoDB PayPerRequest Throughput", "ReadRequestUnits", "GetItem",
     "ReadRequestUnits", "0.00000025", False, "1000", "table/tbl-", "dynamodb", False),
    ("AmazonVPC", "NAT Gateway", "NatGateway-Hours", "NatGateway", "Hrs", "0.045", True, 1, "natgateway/nat-",
     "ec2", False),
    ("AWSELB", "Load Balancer-Application", "LoadBalancerUsage", "LoadBalancing:Application", "Hrs", "0.0225", True,
     1, "loadbalancer/app/lb-", "elasticloadbalancing", False),
    ("AmazonS3", "API Request", "Requests-Tier1", "PutObject", "Requests", "0.000005", False, "100", "bucket-", "",
     False),
    ("AmazonEKS", "Compute", "AmazonEKS-Hours:perCluster", "CreateOperation", "Hrs", "0.1", True, 1,
     "cluster/eks-", "eks", False),
    ("AmazonCloudFront", "Data Transfer", "DataTransfer-Out-Bytes", "GET", "GB", "0.085", False, "0.01",
     "distribution/E", "cloudfront", False),
    ("AmazonRedshift", "Compute Instance", "Node:ra3.xlplus", "RunComputeNode:0001", "Hrs", "1.086", True, 1,
     "cluster:rs-", "redshift", False),
    ("awskms", "Encryption Key", "KMS-Requests", "GenerateDataKey", "Requests", "0.000003", False, "100", "key/",
     "kms", False),
    ("AWSQueueService", "API Request", "Requests-RBP", "ReceiveMessage", "Requests", "0.0000004", False, "1000",
     "queue-", "sqs", False),
    ("AmazonSageMaker", "ML Instance", "Host:ml.g5.xlarge", "RunInstance", "Hrs", "1.408", True, 1,
     "endpoint/ep-", "sagemaker", False),
    ("AmazonEFS", "Storage", "TimedStorage-ByteHrs", "StandardStorage", "GB-Mo", "0.3", False, "0.002",
     "file-system/fs-", "elasticfilesystem", False),
    ("AmazonRoute53", "DNS Query", "DNS-Queries", "Query", "Queries", "0.0000004", False, "1000",
     "hostedzone/Z", "route53", False),
]
# (code, usage type prefix, price factor)
REGIONS = [
    ("us-east-1", "", "1.00"), ("us-west-2", "USW2-", "1.00"), ("eu-west-1", "EU-", "1.08"),
    ("eu-central-1", "EUC1-", "1.15"), ("us-east-2", "USE2-", "1.00"), ("ap-southeast-1", "APS1-", "1.20"),
    ("ap-northeast-1", "APN1-", "1.25"), ("eu-west-2", "EUW2-", "1.12"), ("ap-southeast-2", "APS2-", "1.22"),
    ("ca-central-1", "CAN1-", "1.10"), ("sa-east-1", "SAE1-", "1.55"), ("ap-south-1", "APS3-", "1.05"),
]
REGION_NAMES = dict(ib.REGIONS)


def profiles() -> list[tuple]:
    """All usage profiles: EC2 (1-6), RDS (7), ElastiCache (8), then the long tail (9-…): the explicit tail, then
    one generic profile per remaining product code of services.py (so every mapped service appears)."""
    from connectors.aws.services import AWS_SERVICES

    used = {p[0] for p in EC2_PROFILES + [RDS_PROFILE, CACHE_PROFILE] + TAIL_PROFILES}
    generic = []
    for code, (_name, category, _sub) in AWS_SERVICES.items():
        if code in used:
            continue
        price = f"{(zlib.crc32(code.encode()) % 100000) / 100000 + 0.0001:.6f}"
        generic.append((code, category, f"{code}-Usage", "Usage", "Units", price, False, "0.1",
                        "resource/r-", code.lower(), False))
    return EC2_PROFILES + [RDS_PROFILE, CACHE_PROFILE] + TAIL_PROFILES + generic


def _s(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


def _profiles_sql() -> str:
    from connectors.aws.services import AWS_SERVICES

    out = []
    for code, fam, ut, op, unit, price, hourly, scale, rid, arn, az in profiles():
        out.append(
            f"{{'code': {_s(code)}, 'name': {_s(AWS_SERVICES[code][0])}, 'family': {_s(fam)}, 'ut': {_s(ut)}, "
            f"'op': {_s(op)}, 'unit': {_s(unit)}, 'rate': CAST({_s(price)} AS {DEC}), 'hourly': {str(hourly).lower()}, "
            f"'scale': CAST({_s(scale)} AS DECIMAL(18,6)), 'rid': {_s(rid)}, 'arn': {_s(arn)}, "
            f"'az': {str(az).lower()}}}"
        )
    return "[" + ", ".join(out) + "]"


def _regions_sql() -> str:
    return "[" + ", ".join(
        f"{{'id': {_s(c)}, 'name': {_s(REGION_NAMES[c])}, 'prefix': {_s(p)}, 'factor': CAST({_s(f)} AS DECIMAL(4,2))}}"
        for c, p, f in REGIONS) + "]"


def generator_sql(rows: int, parts: int) -> str:
    """One SELECT of `rows` CUR 2.0 line items (money as exact DECIMAL(38,10), rates as DECIMAL) plus `part`."""
    n_res = max(2_000, rows // 80)
    n_ec2, n_rds, n_cache = int(n_res * SHARE_EC2), int(n_res * SHARE_RDS), int(n_res * SHARE_CACHE)
    n_ri_cov = n_ec2 + n_rds + n_cache
    n_prof = len(profiles())
    n_tail = n_prof - 8
    nreg = len(REGIONS)
    types = " ".join(f"WHEN u < {c} THEN '{t}'" for t, c in OTHER_TYPES)
    teams, envs = ib._sql_list(ib.TEAMS), ib._sql_list(ib.ENVS)
    return f"""
WITH g AS (
    SELECT i, i % 2 AS b, hash(i // 2, 3) % 1000 < {SP_PAIRS_PER_MILLE} AS sp_pair, hash(i, 4) % 1000 AS u
    FROM range({rows}) t(i)
), t AS (
    SELECT *,
           CASE WHEN sp_pair THEN CASE WHEN b = 0 THEN 'SavingsPlanCoveredUsage' ELSE 'SavingsPlanNegation' END
                {types} END AS lit,
           CASE WHEN sp_pair THEN (i // 2) * 2 ELSE i * 2 + 1 END AS kk   -- the pair shares its key
    FROM g
), r AS (
    SELECT *,
           CASE WHEN sp_pair THEN hash(kk, 11) % {n_ec2}
                WHEN lit = 'DiscountedUsage' THEN hash(kk, 11) % {n_ri_cov}
                ELSE hash(kk, 11) % {n_res} END AS r,
           hash(kk, 14) % {HOURS} AS hr,
           hash(kk, 6) AS qh,
           hash(kk, 22) % {SAVINGS_PLANS} AS sp
    FROM t
), a AS (
    SELECT *,
           hash(r, 2) % {ACCOUNTS} AS acct,
           1 + least({nreg - 1}, floor({nreg} * pow((hash(r, 3) % 1000000) / 1e6, 1.6)))::BIGINT AS reg,
           CASE WHEN r < {n_ec2} THEN 1 + hash(r, 5) % 6
                WHEN r < {n_ec2 + n_rds} THEN 7
                WHEN r < {n_ri_cov} THEN 8
                ELSE 9 + least({n_tail - 1}, floor({n_tail} * pow((hash(r, 5) % 1000000) / 1e6, 2.5)))::BIGINT
           END::BIGINT AS prof,
           hash(r, 15) % 100 AS tag_u,
           CASE WHEN lit = 'DiscountedUsage' THEN hash(r, 23) ELSE hash(kk, 23) END % {RESERVATIONS} AS ri
    FROM r
), b AS (
    SELECT *,
           {_profiles_sql()}[prof] AS p,
           {_regions_sql()}[reg] AS rg,
           printf('%012d', 210000000000 + acct * 7919) AS acct_id,
           {envs}[1 + (hash(acct, 13) % 3)::BIGINT] || '-' || {teams}[1 + (hash(acct, 12) % 8)::BIGINT] || '-'
               || acct::VARCHAR AS acct_name,
           CASE WHEN hash(r, 24) % 100 < 15 THEN {teams}[1 + (hash(r, 25) % 8)::BIGINT]
                ELSE {teams}[1 + (hash(acct, 12) % 8)::BIGINT] END AS team,
           {envs}[1 + (hash(acct, 13) % 3)::BIGINT] AS env,
           'arn:aws:savingsplans::{PAYER}:savingsplan/' || printf('%08x-%04x-%04x', hash(sp, 40) >> 32,
               hash(sp, 41) % 65536, hash(sp, 42) % 65536) AS sp_arn,
           CAST(10 + (hash(sp, 43) % 4000) / 100 AS {DEC}) AS sp_fee,
           printf('%012d', 210000000000 + (hash(ri, 44) % {ACCOUNTS}) * 7919) AS ri_acct_id,
           CAST(0.03 + (hash(ri, 45) % 2700) / 10000 AS {DEC}) AS ri_rate,
           printf('%017x', hash(r, 20) >> 4) AS hexid
    FROM a
), c AS (
    SELECT *,
           lit IN ('Usage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'DiscountedUsage') AS is_use,
           lit = 'Usage' AND prof <= 6 AND hash(kk, 9) % 100 < 5 AS spot,
           CAST(p.rate * rg.factor AS {DEC}) AS od,
           CASE WHEN p.hourly THEN CAST(1 AS DECIMAL(38,6))
                ELSE CAST(((qh >> 8) % 5000000 + 1) * p.scale / 1000 AS DECIMAL(38,6)) END AS amount,
           'arn:aws:ec2:us-east-1:' || ri_acct_id || ':reserved-instances/' || printf('%08x-%04x', hash(ri, 46) >> 32,
               hash(ri, 47) % 65536) AS ri_arn,
           CASE WHEN p.arn = '' THEN p.rid || hexid
                ELSE 'arn:aws:' || p.arn || ':' || rg.id || ':' || acct_id || ':' || p.rid || hexid END AS res_id,
           upper(printf('%016x', hash(prof, reg, 21))) AS sku
    FROM b
), d AS (
    SELECT *,
           CASE WHEN lit = 'Usage' AND spot THEN CAST(od * 0.3 AS {DEC})
                WHEN lit = 'DiscountedUsage' THEN CAST(0 AS {DEC})
                WHEN lit IN ('Usage', 'SavingsPlanCoveredUsage') THEN od END AS unbl_rate,
           CAST(od * amount AS {DEC}) AS od_cost,
           CASE WHEN spot THEN replace(p.ut, 'BoxUsage', 'SpotUsage') ELSE p.ut END AS ut0
    FROM c
), e AS (
    SELECT *,
           CASE lit
               WHEN 'Usage' THEN CAST(unbl_rate * amount AS {DEC})
               WHEN 'SavingsPlanCoveredUsage' THEN od_cost
               WHEN 'SavingsPlanNegation' THEN -od_cost
               WHEN 'DiscountedUsage' THEN CAST(0 AS {DEC})
               WHEN 'SavingsPlanRecurringFee' THEN sp_fee
               WHEN 'RIFee' THEN CAST(ri_rate * {HOURS} AS {DEC})
               WHEN 'Tax' THEN CAST(((qh >> 4) % 50000 + 1) / 100 AS {DEC})
               WHEN 'Credit' THEN -CAST(((qh >> 4) % 20000 + 1) / 100 AS {DEC})
               WHEN 'EdpDiscount' THEN -CAST(((qh >> 4) % 100000 + 1) / 10000 AS {DEC})
               ELSE -CAST(((qh >> 4) % 10000 + 1) / 100 AS {DEC}) END AS cost
    FROM d
)
SELECT
    md5(i::VARCHAR) || substr(md5((-1 - i)::VARCHAR), 1, 20) AS identity_line_item_id,
    'Anniversary' AS bill_bill_type,
    'AWS' AS bill_billing_entity,
    'EUINUS26-' || printf('%06d', 400000 + acct % 2) AS bill_invoice_id,
    '{PAYER}' AS bill_payer_account_id,
    'ExampleCorp Payer' AS bill_payer_account_name,
    {PERIOD_START} AS bill_billing_period_start_date,
    {PERIOD_END} AS bill_billing_period_end_date,
    CASE lit WHEN 'SavingsPlanRecurringFee' THEN '{PAYER}' WHEN 'RIFee' THEN ri_acct_id ELSE acct_id END
        AS line_item_usage_account_id,
    CASE lit WHEN 'SavingsPlanRecurringFee' THEN 'ExampleCorp Payer' WHEN 'RIFee' THEN 'ri-holder-' || ri_acct_id
        ELSE acct_name END AS line_item_usage_account_name,
    lit AS line_item_line_item_type,
    CASE WHEN lit IN ('RIFee', 'Tax', 'Credit', 'Refund') THEN {PERIOD_START}
         ELSE {PERIOD_START} + hr * INTERVAL 1 HOUR END AS line_item_usage_start_date,
    CASE WHEN lit IN ('RIFee', 'Tax', 'Credit', 'Refund') THEN {PERIOD_END}
         ELSE {PERIOD_START} + (hr + 1) * INTERVAL 1 HOUR END AS line_item_usage_end_date,
    CASE lit WHEN 'SavingsPlanRecurringFee' THEN 'ComputeSavingsPlans' WHEN 'RIFee' THEN 'AmazonEC2'
        ELSE p.code END AS line_item_product_code,
    CASE WHEN is_use THEN rg.prefix || ut0
         WHEN lit = 'RIFee' THEN 'HeavyUsage:m5.large'
         WHEN lit = 'SavingsPlanRecurringFee' THEN 'ComputeSP:1yrNoUpfront' END AS line_item_usage_type,
    CASE WHEN is_use THEN p.op WHEN lit = 'RIFee' THEN 'RunInstances' END AS line_item_operation,
    CASE WHEN is_use AND p.az THEN rg.id || chr(97 + (hash(r, 26) % 3)::INTEGER) END AS line_item_availability_zone,
    CASE WHEN is_use AND hash(kk, 27) % 100 >= 3 THEN res_id END AS line_item_resource_id,
    CASE WHEN is_use AND lit <> 'SavingsPlanNegation' THEN amount
         WHEN lit = 'RIFee' THEN CAST({HOURS} AS DECIMAL(38,6))
         WHEN lit = 'SavingsPlanRecurringFee' THEN CAST(1 AS DECIMAL(38,6)) END AS line_item_usage_amount,
    'USD' AS line_item_currency_code,
    CASE WHEN lit IN ('Usage', 'SavingsPlanCoveredUsage', 'DiscountedUsage') THEN unbl_rate
         WHEN lit = 'RIFee' THEN ri_rate WHEN lit = 'SavingsPlanRecurringFee' THEN sp_fee END
        AS line_item_unblended_rate,
    cost AS line_item_unblended_cost,
    CASE lit
        WHEN 'Usage' THEN '$' || rtrim(rtrim(CAST(unbl_rate AS VARCHAR), '0'), '.') || ' per '
            || CASE WHEN spot THEN 'Spot ' ELSE 'On Demand ' END || p.ut || ' ' || p.unit || ' in ' || rg.name
        WHEN 'SavingsPlanCoveredUsage' THEN 'Compute Savings Plan covered usage of ' || p.ut || ' in ' || rg.name
        WHEN 'SavingsPlanNegation' THEN 'SavingsPlanNegation used by AccountId : ' || acct_id
            || ' and UsageSku : ' || sku
        WHEN 'DiscountedUsage' THEN 'USD 0.0 per ' || p.ut || ' reserved instance applied'
        WHEN 'RIFee' THEN 'USD ' || rtrim(CAST(ri_rate AS VARCHAR), '0') || ' hourly fee per Linux/UNIX, m5.large'
        WHEN 'SavingsPlanRecurringFee' THEN '1 year No Upfront Compute Savings Plan'
        WHEN 'Tax' THEN 'Tax for product code ' || p.code
        WHEN 'Credit' THEN 'AWS Credits'
        WHEN 'EdpDiscount' THEN 'Enterprise Discount Program discount'
        ELSE 'Refund for ' || p.code END AS line_item_line_item_description,
    'Amazon Web Services, Inc.' AS line_item_legal_entity,
    CASE lit WHEN 'SavingsPlanRecurringFee' THEN 'Savings Plans for AWS Compute usage'
        WHEN 'RIFee' THEN 'Amazon Elastic Compute Cloud' ELSE p.name END AS product_product_name,
    CASE WHEN is_use THEN rg.id WHEN lit = 'RIFee' THEN 'us-east-1' END AS product_region_code,
    CASE WHEN is_use THEN rg.name WHEN lit = 'RIFee' THEN 'US East (N. Virginia)' END AS product_location,
    CASE WHEN is_use THEN sku END AS product_sku,
    CASE WHEN is_use THEN p.family WHEN lit = 'RIFee' THEN 'Compute Instance' END AS product_product_family,
    CASE WHEN is_use AND lit <> 'SavingsPlanNegation' THEN od_cost END AS pricing_public_on_demand_cost,
    CASE WHEN is_use AND lit <> 'SavingsPlanNegation' THEN od END AS pricing_public_on_demand_rate,
    CASE WHEN spot THEN 'Spot' WHEN is_use THEN 'OnDemand' WHEN lit = 'RIFee' THEN 'Reserved' END AS pricing_term,
    CASE WHEN is_use AND lit <> 'SavingsPlanNegation' THEN p.unit WHEN lit IN ('RIFee', 'SavingsPlanRecurringFee')
        THEN 'Hrs' END AS pricing_unit,
    CASE WHEN is_use THEN sku || CASE WHEN lit = 'DiscountedUsage' THEN '.4NA7Y494T4.6YS6EN2CT7'
        ELSE '.JRTCKXETXF.6YS6EN2CT7' END END AS pricing_rate_code,
    CASE WHEN lit IN ('DiscountedUsage', 'RIFee') THEN ri_arn END AS reservation_reservation_a_r_n,
    CASE WHEN lit = 'DiscountedUsage' THEN CAST(od_cost * 0.6 AS {DEC}) END AS reservation_effective_cost,
    CASE WHEN lit = 'RIFee' THEN CASE WHEN hash(kk, 48) % 100 < 25
        THEN CAST(cost * ((hash(kk, 49) % 30) / 100) AS {DEC}) ELSE CAST(0 AS {DEC}) END END
        AS reservation_unused_amortized_upfront_fee_for_billing_period,
    CASE WHEN lit = 'RIFee' THEN CASE WHEN hash(kk, 48) % 100 < 25
        THEN CAST(cost * ((hash(kk, 50) % 10) / 100) AS {DEC}) ELSE CAST(0 AS {DEC}) END END
        AS reservation_unused_recurring_fee,
    CASE WHEN lit = 'RIFee' THEN CASE WHEN hash(kk, 48) % 100 < 25
        THEN CAST(hash(kk, 51) % 200 AS {DEC}) ELSE CAST(0 AS {DEC}) END END AS reservation_unused_quantity,
    CASE WHEN lit IN ('SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'SavingsPlanRecurringFee') THEN sp_arn END
        AS savings_plan_savings_plan_a_r_n,
    CASE WHEN lit = 'SavingsPlanCoveredUsage' THEN CAST(od_cost * 0.72 AS {DEC}) END
        AS savings_plan_savings_plan_effective_cost,
    CASE WHEN lit = 'SavingsPlanRecurringFee' THEN sp_fee END AS savings_plan_total_commitment_to_date,
    CASE WHEN lit = 'SavingsPlanRecurringFee' THEN CASE WHEN hash(kk, 52) % 100 < 70 THEN sp_fee
        ELSE CAST(sp_fee * ((80 + hash(kk, 53) % 20) / 100) AS {DEC}) END END AS savings_plan_used_commitment,
    CASE WHEN NOT is_use OR lit = 'SavingsPlanNegation' OR tag_u < 12 THEN NULL
         ELSE map_from_entries(list_filter([
             {{'key': 'user_team', 'value': team}},
             {{'key': 'user_env', 'value': env}},
             {{'key': 'user_cost_center', 'value': CASE WHEN tag_u < 40
                 THEN 'cc-' || (1000 + hash(team) % 9000)::VARCHAR END}},
             {{'key': 'user_app', 'value': CASE WHEN tag_u % 3 = 0 THEN 'svc-' || (hash(r, 28) % 800)::VARCHAR END}},
             {{'key': 'aws_createdBy', 'value': CASE WHEN tag_u >= 95
                 THEN 'AssumedRole:AROA' || upper(printf('%012x', hash(acct, 29) >> 16)) || ':terraform' END}}
         ], lambda x: x.value IS NOT NULL)) END AS resource_tags,
    hash(i, 99) % {parts} AS part
FROM e
"""


def _amortized_sql(col) -> str:
    """AWS's amortized cost of a line (the CUR query library's formula), written independently of connectors/."""
    return f"""CASE line_item_line_item_type
        WHEN 'SavingsPlanCoveredUsage' THEN {col('savings_plan_savings_plan_effective_cost')}
        WHEN 'SavingsPlanRecurringFee' THEN {col('savings_plan_total_commitment_to_date')}
             - {col('savings_plan_used_commitment')}
        WHEN 'SavingsPlanNegation' THEN 0
        WHEN 'DiscountedUsage' THEN {col('reservation_effective_cost')}
        WHEN 'RIFee' THEN {col('reservation_unused_amortized_upfront_fee_for_billing_period')}
             + {col('reservation_unused_recurring_fee')}
        ELSE {col('line_item_unblended_cost')} END"""


class Dataset:
    """A generated delivery on disk: <dir>/<export>/{data,metadata}/BILLING_PERIOD=…, plus expected.json."""

    def __init__(self, workdir: Path, rows: int, money: str):
        self.dir = workdir / f"v{GENERATOR_VERSION}-{rows}-{money}"
        self.rows, self.money = rows, money
        self.export = self.dir / EXPORT_NAME
        self.data = self.export / "data" / f"BILLING_PERIOD={PERIOD}"
        self.manifest = self.export / "metadata" / f"BILLING_PERIOD={PERIOD}" / f"{EXPORT_NAME}-Manifest.json"
        self.expected_path = self.dir / "expected.json"

    def exists(self) -> bool:
        return self.expected_path.exists() and self.manifest.exists()

    @property
    def files(self) -> list[Path]:
        return sorted(self.data.glob("*.parquet"))

    @property
    def expected(self) -> dict:
        return json.loads(self.expected_path.read_text())

    def size_mb(self) -> float:
        return sum(f.stat().st_size for f in self.files) / 1e6


def generate(ds: Dataset, part_rows: int) -> None:
    """Write the delivery: parts of ~part_rows rows (rows spread over parts by a hash, so a covered line and its
    negation usually sit in different parts), the manifest, and the expected figures computed from the parts."""
    import duckdb

    parts = max(1, round(ds.rows / part_rows))
    tmp = ds.dir.with_name(ds.dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    out = tmp / "partitioned"
    tmp.mkdir(parents=True)
    con = duckdb.connect(str(tmp / "gen.duckdb"))  # a file, so DuckDB can spill while sorting partitions
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    base = generator_sql(ds.rows, parts)
    exprs = []
    for name, typ, *_ in con.execute(f"DESCRIBE SELECT * FROM ({base}) LIMIT 0").fetchall():
        if ds.money == "double" and name in MONEY_COLUMNS:
            # through text, so the double is the one nearest to the decimal and reads back as the same decimal
            exprs.append(f"CAST(CAST({name} AS VARCHAR) AS DOUBLE) AS {name}")
        elif ds.money == "double" and name in RATE_COLUMNS:
            exprs.append(f"CAST({name} AS VARCHAR) AS {name}")
        else:
            exprs.append(name)
    t0 = time.perf_counter()
    with ib.progress_watch(con, f"generating {human_rows(ds.rows)} CUR 2.0 rows"):
        con.execute(f"COPY (SELECT {', '.join(exprs)} FROM ({base})) TO '{out}' "
                    f"(FORMAT parquet, COMPRESSION snappy, PARTITION_BY (part))")
    con.close()
    data = tmp / EXPORT_NAME / "data" / f"BILLING_PERIOD={PERIOD}"
    data.mkdir(parents=True)
    n = 0
    for part_dir in sorted(out.glob("part=*"), key=lambda p: int(p.name.split("=")[1])):
        for f in sorted(part_dir.glob("*.parquet")):
            n += 1
            f.rename(data / f"{EXPORT_NAME}-{n:05d}.snappy.parquet")
    shutil.rmtree(out)
    (tmp / "gen.duckdb").unlink()
    files = sorted(data.glob("*.parquet"))
    meta = tmp / EXPORT_NAME / "metadata" / f"BILLING_PERIOD={PERIOD}"
    meta.mkdir(parents=True)
    (meta / f"{EXPORT_NAME}-Manifest.json").write_text(json.dumps({
        "executionId": f"bench-v{GENERATOR_VERSION}-{ds.rows}-{ds.money}",
        "exportName": EXPORT_NAME,
        "billingPeriod": {"start": "2026-04-01T00:00:00.000Z", "end": "2026-05-01T00:00:00.000Z"},
        "dataFiles": [f"s3://bench-bucket/exports/{EXPORT_NAME}/data/BILLING_PERIOD={PERIOD}/{f.name}"
                      for f in files],
    }, indent=2))
    gen_s = time.perf_counter() - t0
    log(f"generated {len(files)} parts, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB in {gen_s:.1f} s")
    expected = expected_figures(files, ds.money)
    expected["generation_s"] = round(gen_s, 1)
    (tmp / "expected.json").write_text(json.dumps(expected, indent=2))
    shutil.rmtree(ds.dir, ignore_errors=True)
    tmp.rename(ds.dir)


def expected_figures(files: list[Path], money: str) -> dict:
    """Counts and exact sums from the parts, with SQL of this file (not the connector's): the check figures."""
    import duckdb

    con = duckdb.connect()

    def col(c):  # exact decimal of a money cell (doubles through their shortest text, as written)
        if money == "double":
            return f"coalesce(CAST(CAST({c} AS VARCHAR) AS DECIMAL(38,18)), 0)"
        return f"coalesce(CAST({c} AS DECIMAL(38,18)), 0)"

    rel = f"read_parquet({[str(f) for f in files]}, hive_partitioning = false)"
    n, billed, amortized, unused = con.execute(
        f"SELECT count(*), sum({col('line_item_unblended_cost')}), sum({_amortized_sql(col)}), "
        f"count(*) FILTER (WHERE (line_item_line_item_type = 'SavingsPlanRecurringFee' AND "
        f"{col('savings_plan_total_commitment_to_date')} <> {col('savings_plan_used_commitment')}) OR "
        f"(line_item_line_item_type = 'RIFee' AND {col('reservation_unused_amortized_upfront_fee_for_billing_period')}"
        f" + {col('reservation_unused_recurring_fee')} <> 0)) FROM {rel}"
    ).fetchone()
    by_type = dict(con.execute(
        f"SELECT line_item_line_item_type, count(*) FROM {rel} GROUP BY 1 ORDER BY 2 DESC").fetchall())
    per_part = [con.execute(f"SELECT count(*) FROM read_parquet('{f}')").fetchone()[0] for f in files]
    # Every negation matches a covered line (same key) by construction: each is netted away.
    landed = n - by_type.get("SavingsPlanNegation", 0) + unused
    cards = con.execute(
        f"SELECT count(DISTINCT line_item_usage_account_id), count(DISTINCT line_item_product_code), "
        f"count(DISTINCT line_item_resource_id), count(DISTINCT product_sku) FROM {rel}").fetchone()
    con.close()
    return {"rows": n, "billed": str(billed), "amortized": str(amortized), "landed_rows": landed,
            "by_type": by_type, "rows_per_part": per_part,
            "distinct": dict(zip(("accounts", "product_codes", "resource_ids", "skus"), cards))}


# =================================================================================================================
# Measurements (each in a fresh child process: `cur2_bench.py --child TASK.json`)
# =================================================================================================================
def _files_sql(files: list[str]) -> str:
    return "[" + ", ".join(f"'{f}'" for f in files) + "]"


def child_scan(task: dict) -> dict:
    import duckdb

    con = duckdb.connect()
    t0 = time.perf_counter()
    # The floor, verbatim.
    (total,) = con.execute(f"SELECT sum(line_item_unblended_cost) FROM read_parquet({_files_sql(task['files'])})"
                           ).fetchone()
    wall = time.perf_counter() - t0
    con.close()
    return {"wall": wall, "billed_sum": str(total)}


def _floor_expr(target: str, source: str, money: str) -> str:
    if target in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        return f"CAST({source} AS {MONEY_FLOOR}) AS {target}"
    if target in ("ChargePeriodStart", "BillingPeriodStart"):
        return f"CAST({source} AS TIMESTAMPTZ) AS {target}"
    if target == "Tags":
        return f"CAST({source} AS MAP(VARCHAR, VARCHAR)) AS {target}"
    return f"{source} AS {target}"


def child_load(task: dict) -> dict:
    import duckdb

    db = Path(task["db"])
    rel = f"read_parquet({_files_sql(task['files'])}, hive_partitioning = false)"
    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    if task["measure"] == "wide":
        exprs = []
        for name, typ, *_ in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall():
            if name in MONEY_COLUMNS or name in RATE_COLUMNS:
                exprs.append(f"CAST({name} AS {MONEY_FLOOR}) AS {name}")
            elif name == "resource_tags":
                exprs.append(f"CAST({name} AS MAP(VARCHAR, VARCHAR)) AS {name}")
            elif name in TIME_COLUMNS:
                exprs.append(f"CAST({name} AS TIMESTAMPTZ) AS {name}")
            else:
                exprs.append(name)
    else:
        exprs = [_floor_expr(t, s, task["money"]) for t, s in FLOOR_SOURCES.items()]
    con.execute(f"CREATE TABLE cost_floor AS SELECT {', '.join(exprs)} FROM {rel} LIMIT 0")
    con.execute(f"INSERT INTO cost_floor SELECT {', '.join(exprs)} FROM {rel}")
    con.close()
    wall = time.perf_counter() - t0
    con = duckdb.connect(str(db), read_only=True)
    n = con.execute("SELECT count(*) FROM cost_floor").fetchone()[0]
    con.close()
    return {"wall": wall, "check_rows": n, "db_mb": db.stat().st_size / 1e6}


class Tracker:
    """Phase times, per-part raw-stats times, and the peak RSS / DuckDB spill seen while each phase ran."""

    def __init__(self, spill_dirs: list[Path]):
        self.times: dict[str, float] = {}
        self.raw_parts: list[float] = []
        self.peak_rss: dict[str, float] = {}
        self.peak_spill: dict[str, float] = {}
        self.current = "Python (outside the timed calls)"
        self.spill_dirs = spill_dirs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def add(self, name: str, seconds: float) -> None:
        self.times[name] = self.times.get(name, 0.0) + seconds

    @contextlib.contextmanager
    def phase(self, name: str):
        prev, self.current = self.current, name
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)
            self.current = prev

    def _spill_mb(self) -> float:
        total = 0
        for d in self.spill_dirs:
            with contextlib.suppress(OSError):
                for f in d.iterdir():
                    with contextlib.suppress(OSError):
                        total += f.stat().st_size
        return total / 1e6

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            rss, spill, name = proc_status_mb("VmRSS"), self._spill_mb(), self.current
            self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), rss)
            self.peak_spill[name] = max(self.peak_spill.get(name, 0.0), spill)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


PHASE_ORDER = (
    "discovery (list files, read manifest)",
    "fetch: sha256 of the parts (4 threads)",
    "open parts (DESCRIBE + count(*) each)",
    "raw stats (1 scan per part)",
    "unmapped-codes check (1 scan of all parts)",
    "ledger lookups, DELETE, settings (SQL)",
    "INSERT (normalize, net negations, map, write)",
    "landed sums (re-read inserted rows)",
    "COMMIT",
    "close connection (checkpoint)",
)


def classify_cur_sql(sql: str) -> str:
    up = " ".join(str(sql).split()).upper()
    if up.startswith("INSERT INTO COST_AND_USAGE"):
        return PHASE_ORDER[6]
    if up.startswith("DESCRIBE") or up.startswith("SELECT COUNT(*) FROM READ_PARQUET"):
        return PHASE_ORDER[2]
    if up.startswith("SELECT BILL_BILLING_PERIOD_START_DATE, MAX(BILL_BILLING_PERIOD_END_DATE), COUNT(*)"):
        return PHASE_ORDER[3]
    if up.startswith("SELECT LIST(DISTINCT LINE_ITEM_PRODUCT_CODE)"):
        return PHASE_ORDER[4]
    if up.startswith("SELECT X_DELIVERYID, COUNT(*)"):
        return PHASE_ORDER[7]
    if "__ROW" in up or "ORDERED" in up:
        return "diagnose (should not run)"
    return PHASE_ORDER[5]


class CurTimedConnection(ib.TimedConnection):
    """ingest_bench's timed connection, with CUR phase names and the tracker's current phase kept up to date."""

    def __init__(self, con, tracker: Tracker):
        super().__init__(con, tracker.times)
        self._tracker = tracker

    def execute(self, sql, *args, **kwargs):
        name = classify_cur_sql(sql)
        t0 = time.perf_counter()
        with self._tracker.phase(name):
            try:
                return self._con.execute(sql, *args, **kwargs)
            finally:
                if name == PHASE_ORDER[3]:
                    self._tracker.raw_parts.append(time.perf_counter() - t0)

    def commit(self):
        with self._tracker.phase("COMMIT"):
            return self._con.commit()


def instrument(tracker: Tracker) -> list[str]:
    """Wrap the warehouse connection, AWS discovery and the fetch/hash step of the running process."""
    missing = []
    try:
        import app.warehouse as wh

        orig_connect = wh.Warehouse.connect

        @contextlib.contextmanager
        def connect(self, *args, **kwargs):
            cm = orig_connect(self, *args, **kwargs)
            con = cm.__enter__()
            try:
                yield CurTimedConnection(con, tracker)
            except BaseException:
                if not cm.__exit__(*sys.exc_info()):
                    raise
            else:
                with tracker.phase(PHASE_ORDER[9]):
                    cm.__exit__(None, None, None)

        wh.Warehouse.connect = connect
    except (ImportError, AttributeError) as exc:
        missing.append(f"warehouse connection: {exc}")
    try:
        from connectors.aws import AwsConnector

        orig_discover = AwsConnector.discover

        def discover(self, *args, **kwargs):
            with tracker.phase(PHASE_ORDER[0]):
                return orig_discover(self, *args, **kwargs)

        AwsConnector.discover = discover
    except (ImportError, AttributeError) as exc:
        missing.append(f"discovery: {exc}")
    try:
        import app.ingest as ingest_mod

        orig_fetch_all = ingest_mod._fetch_all

        def fetch_all(*args, **kwargs):
            with tracker.phase(PHASE_ORDER[1]):
                return orig_fetch_all(*args, **kwargs)

        ingest_mod._fetch_all = fetch_all
    except (ImportError, AttributeError) as exc:
        missing.append(f"fetch: {exc}")
    return missing


def child_ingest(task: dict) -> dict:
    import duckdb

    from app import sources
    from app.ingest import ingest
    from app.runtime import Runtime
    from app.settings import Settings

    data_dir = Path(task["data_dir"])
    overrides = {}
    if task.get("memory_limit") is not None:
        overrides["warehouse_memory_limit"] = None if task["memory_limit"] == "none" else task["memory_limit"]
    settings = Settings(data_dir=data_dir, **overrides)
    rt = Runtime(settings)
    rt.init()
    sources.add(rt, "bench", "aws", "cur2", task["export"])
    wh_path = settings.resolved_warehouse_path
    tracker = Tracker([wh_path.with_name(wh_path.name + ".tmp"), data_dir / ".tmp"])
    missing = instrument(tracker)
    base = proc_status_mb("VmRSS")
    t0 = time.perf_counter()
    last = [0.0]

    def progress(msg: str, frac: float) -> None:
        now = time.perf_counter() - t0
        if now - last[0] >= 10 or not msg.startswith("loading"):
            last[0] = now
            log(f"    ingest {now:6.1f} s  {frac * 100:3.0f}%  {msg}")

    tracker.start()
    try:
        result = ingest(rt, "bench", progress=progress)
    finally:
        wall = time.perf_counter() - t0
        tracker.stop()
    delivery = result.loaded[0] if result.loaded else None
    con = duckdb.connect(str(wh_path), read_only=True)
    n, billed, effective = con.execute(
        "SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM cost_and_usage WHERE x_DeliveryId = ?",
        [delivery.id if delivery else ""]).fetchone()
    con.close()
    rt.close()
    return {
        "wall": wall, "base_rss_mb": base, "deliveries": len(result.loaded),
        "check_rows": n, "landed_billed": str(billed), "landed_effective": str(effective),
        "ledger_raw_rows": delivery.raw_rows if delivery else None,
        "ledger_landed_rows": delivery.landed_rows if delivery else None,
        "ledger_raw_billed": str(delivery.raw_billed_cost) if delivery else None,
        "ledger_raw_effective": str(delivery.raw_effective_cost) if delivery else None,
        "tolerated": list(delivery.tolerated or []) if delivery else [],
        "phases": tracker.times, "raw_parts": tracker.raw_parts, "phase_peak_rss": tracker.peak_rss,
        "phase_peak_spill": tracker.peak_spill, "instrumentation_missing": missing,
        "memory_limit": settings.warehouse_memory_limit,
        "db_mb": wh_path.stat().st_size / 1e6 if wh_path.exists() else None,
    }


def child_main(task_path: str) -> None:
    task = json.loads(Path(task_path).read_text())
    fn = {"scan": child_scan, "load": child_load, "wide": child_load, "ingest": child_ingest}[task["measure"]]
    out = fn(task)
    out["peak_rss_mb"] = proc_status_mb("VmHWM")  # this process's own peak since exec (see ingest_bench.py)
    Path(task["out"]).write_text(json.dumps(out, default=str))


def run_child(task: dict, scratch: Path) -> dict:
    task_file = scratch / "task.json"
    task["out"] = str(scratch / "out.json")
    task_file.write_text(json.dumps(task))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDTALLY_")}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    psi0, t0 = ib.cpu_pressure_us(), time.monotonic()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(task_file)],
                            cwd=str(scratch), env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{task['measure']} {task['rows']} failed (exit {code})")
    out = json.loads(Path(task["out"]).read_text())
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    psi1, elapsed = ib.cpu_pressure_us(), time.monotonic() - t0
    out["cpu_stall_pct"] = None if psi0 is None or psi1 is None else 100 * (psi1 - psi0) / 1e6 / elapsed
    return out


# =================================================================================================================
# Orchestration and report
# =================================================================================================================
def measure_all(args, workdir: Path) -> list[dict]:
    results = []
    scratch_root = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    try:
        for rows in args.rows:
            ds = Dataset(workdir, rows, args.money)
            if args.regenerate or not ds.exists():
                log(f"generating {human_rows(rows)} CUR 2.0 rows ({args.money} money) -> {ds.export}")
                generate(ds, args.part_rows)
            else:
                log(f"reusing {ds.export} ({len(ds.files)} parts, {ds.size_mb():.0f} MB)")
            exp = ds.expected
            entry = {"rows": rows, "parts": len(ds.files), "data_mb": ds.size_mb(), "expected": exp}
            for measure in args.measures:
                runs = []
                for rep in range(args.repeat):
                    scratch = scratch_root / f"{measure}-{rows}-{rep}"
                    scratch.mkdir(parents=True)
                    task = {"measure": measure, "rows": rows, "money": args.money, "rep": rep,
                            "files": [str(f) for f in ds.files], "export": str(ds.export),
                            "db": str(scratch / "floor.duckdb"), "data_dir": str(scratch / "data"),
                            "memory_limit": args.memory_limit}
                    log(f"{human_rows(rows)}: {measure} (run {rep + 1}/{args.repeat})")
                    out = run_child(task, scratch)
                    stall = out["cpu_stall_pct"]
                    log(f"  -> {out['wall']:.2f} s, {rate(rows, out['wall'])} rows/s, peak RSS "
                        f"{out['peak_rss_mb']:.0f} MB, CPU {out['cpu_s']:.1f} s"
                        + (f", CPU stall {stall:.0f}%" if stall is not None else ""))
                    if measure == "ingest":
                        ok = check_ingest(out, exp)
                        log("  -> landed sums " + ("equal the raw sums" if ok else "DIFFER from the raw sums"))
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


def check_ingest(out: dict, exp: dict) -> bool:
    """Landed BilledCost = sum of unblended cost and EffectiveCost = amortized cost, computed from the files by this
    script; the ledger's raw figures agree; the landed row count is the expected one (N - negations + unused)."""
    d = Decimal
    return (d(out["landed_billed"]) == d(exp["billed"]) and d(out["landed_effective"]) == d(exp["amortized"])
            and d(out["ledger_raw_billed"]) == d(exp["billed"]) and d(out["ledger_raw_effective"]) == d(exp["amortized"])
            and out["ledger_raw_rows"] == exp["rows"] and out["check_rows"] == exp["landed_rows"]
            and out["ledger_landed_rows"] == exp["landed_rows"])


LABELS = {"scan": "scan floor (issue: `sum(line_item_unblended_cost)`)", "load": "load floor (14 columns)",
          "wide": "wide load floor (all 45 columns)", "ingest": "**CloudTally CUR 2.0 ingest**"}


def render(results: list[dict], info: dict, argv: list[str]) -> str:
    loadavg = " ".join(f"{x:.2f}" for x in info["loadavg"])
    out = [
        (f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gb']} GB RAM, Python {info['python']}, "
         f"DuckDB {info['duckdb']}; {info['date']}; load average at the end {loadavg}"),
        f"Code: {info['git'] or 'unknown'}; command: `python bench/cur2_bench.py {' '.join(argv)}`",
        "",
        "| rows | parts, MB | measure | wall s | rows/s | × scan floor | × load floor | peak RSS MB | CPU s "
        "| CPU stall % | check |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for e in results:
        scan, load = e.get("scan"), e.get("load")
        for m in MEASURES:
            r = e.get(m)
            if r is None:
                continue
            walls = r["walls"]
            wall = f"{r['wall']:.2f}" + (f" ({min(walls):.2f}–{max(walls):.2f})" if len(walls) > 1 else "")
            x_scan = f"{r['wall'] / scan['wall']:.0f}×" if scan else "–"
            x_load = f"{r['wall'] / load['wall']:.2f}×" if load else "–"
            stall = "–" if r.get("cpu_stall_pct") is None else f"{r['cpu_stall_pct']:.0f}"
            if m == "ingest":
                ok = check_ingest(r, e["expected"])
                check = (("sums equal" if ok else "**MISMATCH**")
                         + f"; landed {r['check_rows']:,} rows (expected {e['expected']['landed_rows']:,})")
            elif m == "scan":
                check = "–"
            else:
                check = "ok" if r["check_rows"] == e["rows"] else "**row count differs**"
            out.append(
                f"| {human_rows(e['rows'])} | {e['parts']}, {e['data_mb']:.0f} | {LABELS[m]} | {wall} | "
                f"{rate(e['rows'], r['wall'])} | {x_scan} | {x_load} | {r['peak_rss_mb']:.0f} | {r['cpu_s']:.1f} | "
                f"{stall} | {check} |")
    out += ["", (
        "rows/s: raw CUR line items / wall. wall s: median of the runs (min–max when repeated). × columns: wall over "
        "the floor's wall in the same invocation. peak RSS: VmHWM of the measuring process (the ingest's includes "
        "the interpreter, SQLAlchemy and the app). CPU s: user + system of that process. CPU stall %: share of the "
        "run during which some task waited for a CPU (Linux PSI); above ~10% another process competed and the "
        "wall times are inflated. check: landed sum(BilledCost) = the files' sum of line_item_unblended_cost and "
        "sum(EffectiveCost) = AWS's amortized cost (both computed from the files by this script), the ledger's raw "
        "figures agree, and the landed row count is N - negations + unused-commitment rows.")]
    ingests = [e for e in results if "ingest" in e]
    if ingests:
        mem = {str(e["ingest"].get("memory_limit")) for e in ingests}
        out += ["", f"Where the ingest's time goes (seconds, median run; warehouse memory_limit {', '.join(mem)}; "
                    "peak RSS and peak DuckDB spill while the phase ran):", ""]
        names = [n for n in PHASE_ORDER if any(n in e["ingest"]["phases"] for e in ingests)]
        names += sorted({n for e in ingests for n in e["ingest"]["phases"]} - set(names))
        head = [human_rows(e["rows"]) for e in ingests]
        out.append("| phase | " + " | ".join(f"{h} s (share) | {h} RSS / spill MB" for h in head) + " |")
        out.append("|---|" + "---:|---:|" * len(head))
        for name in names:
            cells = []
            for e in ingests:
                r = e["ingest"]
                v = r["phases"].get(name)
                rss, spill = r["phase_peak_rss"].get(name), r["phase_peak_spill"].get(name)
                cells.append("–" if v is None else f"{v:.2f} ({100 * v / r['wall']:.0f}%)")
                cells.append("–" if rss is None else f"{rss:.0f} / {spill:.0f}")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        cells = []
        for e in ingests:
            r = e["ingest"]
            rest = r["wall"] - sum(r["phases"].values())
            name = "Python (outside the timed calls)"
            cells += [f"{rest:.2f} ({100 * rest / r['wall']:.0f}%)",
                      f"{r['phase_peak_rss'].get(name, 0):.0f} / {r['phase_peak_spill'].get(name, 0):.0f}"]
        out.append("| rest (Python: planning SQL, ledger, SQLAlchemy) | " + " | ".join(cells) + " |")
        out.append("| **total ingest wall** | " + " | ".join(f"{e['ingest']['wall']:.2f} | " for e in ingests) + "")
        out[-1] = out[-1].rstrip() + ("" if out[-1].endswith("|") else " |")
        out += ["", "Raw stats per part (s): " + "; ".join(
            f"{human_rows(e['rows'])}: " + ", ".join(f"{t:.2f}" for t in e["ingest"]["raw_parts"]) for e in ingests)]
        notes = sorted({n.split(": ", 1)[-1] for e in ingests for n in e["ingest"].get("tolerated", [])})
        if notes:
            out += ["", "Ledger notes (tolerated): " + "; ".join(notes)]
        missing = sorted({m for e in ingests for m in e["ingest"].get("instrumentation_missing", [])})
        if missing:
            out += ["", "Phase timing incomplete: " + "; ".join(missing)]
    out += ["", "Generated data:"]
    for e in results:
        x = e["expected"]
        types = ", ".join(f"{t} {100 * c / x['rows']:.1f}%" for t, c in x["by_type"].items())
        dist = x["distinct"]
        out.append(f"- {human_rows(e['rows'])}: {e['parts']} parts ({', '.join(f'{n:,}' for n in x['rows_per_part'])}"
                   f" rows), {e['data_mb']:.0f} MB; {types}; {dist['accounts']} accounts, {dist['product_codes']} "
                   f"product codes, {dist['resource_ids']:,} resource ids, {dist['skus']:,} SKUs; sum of unblended "
                   f"cost {Decimal(x['billed']):,.2f}, amortized {Decimal(x['amortized']):,.2f}")
    return "\n".join(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="cur2_bench.py",
        description="Benchmark CloudTally's AWS CUR 2.0 ingest (sources.add(..., 'aws', 'cur2', folder) + "
        "ingest) on a generated Data Exports delivery, against the issue's scan floor (SELECT "
        "sum(line_item_unblended_cost) FROM read_parquet(...)) and DESIGN.md's load floor, each measured in a "
        "fresh subprocess. Markdown table on stdout, progress on stderr.",
    )
    p.add_argument("--rows", type=int, action="append", metavar="N",
                   help="CUR line items to generate and ingest; repeat the option for several sizes "
                   "(default: 1000000)")
    p.add_argument("--measures", default=",".join(DEFAULT_MEASURES),
                   help=f"comma-separated measurements, from: {', '.join(MEASURES)} (default: "
                   f"{','.join(DEFAULT_MEASURES)}; the ratios need scan and load). 'wide' loads every column of the "
                   "parts with the load floor's casts")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   default=Path(tempfile.gettempdir()) / "cloudtally-bench" / "cur2",
                   help="where generated deliveries are cached (DIR/v<version>-<rows>-<money>/) and the runs happen "
                   "(default: %(default)s)")
    p.add_argument("--part-rows", type=int, default=1_500_000, metavar="N",
                   help="approximate rows per Parquet part, as AWS splits a month (default: %(default)s; "
                   "changing it needs --regenerate for cached sizes)")
    p.add_argument("--money", choices=("double", "decimal"), default="double",
                   help="Parquet type of the money and quantity columns: double (as AWS writes CUR 2.0; rates are "
                   "then text) or decimal (DECIMAL(38,10) for money, quantities and rates); default: double")
    p.add_argument("--memory-limit", metavar="SIZE",
                   help="override the warehouse memory_limit of the ingest (e.g. 4GB, or 'none' for DuckDB's "
                   "default of 80%% of RAM); default: the application's own default setting")
    p.add_argument("--repeat", type=int, default=1, metavar="K",
                   help="run every measurement K times and report the run with the median wall time (default: 1)")
    p.add_argument("--keep", action="store_true",
                   help="keep the ingest data dirs and floor databases of the runs (generated data is always kept)")
    p.add_argument("--regenerate", action="store_true", help="regenerate the deliveries even if cached")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write all figures as JSON to PATH")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    args.rows = args.rows or [1_000_000]
    if any(n <= 0 for n in args.rows):
        p.error("--rows must be positive")
    if args.part_rows <= 0:
        p.error("--part-rows must be positive")
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
    info = ib.machine_info()
    print(render(results, info, argv))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "argv": argv, "results": results}, indent=2, default=str))
    log(f"finished in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
