"""Allocation benchmark (issue 7): apply 200 rules to N generated FOCUS lines, against a copy-the-columns floor.

    python bench/allocation_bench.py --rows 1000000
    python bench/allocation_bench.py --rows 10000000 --workdir /tmp/alloc-bench

The lines are written straight into a fresh warehouse with one DuckDB INSERT over range(N) (hash-derived values:
20 services x 12 regions x 150 sub-accounts, tags team/env/app on ~85% of lines, money with 10 decimals), so the
run is reproducible. The rule document has 200 rules: 180 plain rules (equals/in/regex on columns and tags, some
with effective dates), a tag-valued rule (team = the team tag, lower-cased), 8 even splits, 8 percent splits and 3
proportional splits. Each measure runs in a child process so its peak RSS (ru_maxrss) is its own:
- floor: `CREATE TABLE AS SELECT` of the columns cost_allocation holds, from cost_and_usage (a plain copy);
- apply: `app.allocation.engine.apply(...)` of the document (compile, the one INSERT, the sum check, totals).
Markdown to stdout, progress to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SERVICES = ["AmazonEC2", "AmazonS3", "AmazonRDS", "AWSLambda", "AmazonEKS", "AmazonCloudFront", "AmazonVPC",
            "AmazonDynamoDB", "AmazonElastiCache", "AmazonRedshift", "AmazonSQS", "AmazonSNS", "AWSCloudTrail",
            "AmazonCloudWatch", "AWSSupportBusiness", "AmazonRoute53", "AWSGlue", "AmazonKinesis", "AmazonECR",
            "AWSKMS"]
CATEGORIES = ["Compute", "Storage", "Databases", "Compute", "Compute", "Networking", "Networking", "Databases",
              "Databases", "Analytics", "Integration", "Integration", "Management and Governance",
              "Management and Governance", "Management and Governance", "Networking", "Analytics", "Analytics",
              "Compute", "Security"]
REGIONS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-central-1",
           "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1", "ca-central-1"]
TEAMS = [f"team-{i:02d}" for i in range(40)]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate(rows: int, data_dir: Path) -> None:
    from app.runtime import Runtime
    from app.settings import Settings

    rt = Runtime(Settings(data_dir=data_dir))
    rt.init()
    svc = "[" + ", ".join(f"'{s}'" for s in SERVICES) + "]"
    cat = "[" + ", ".join(f"'{c}'" for c in CATEGORIES) + "]"
    reg = "[" + ", ".join(f"'{r}'" for r in REGIONS) + "]"
    teams = "[" + ", ".join(f"'{t}'" for t in TEAMS) + "]"
    h = "CAST(hash(range * 7919 + {k}) % 1000000000000 AS BIGINT)"
    sql = f"""
    INSERT INTO cost_and_usage BY NAME
    SELECT 'AWS' ProviderName, 'AWS' PublisherName, 'AWS' InvoiceIssuerName, '111111111111' BillingAccountId,
      TIMESTAMPTZ '2026-04-01' BillingPeriodStart, TIMESTAMPTZ '2026-05-01' BillingPeriodEnd,
      TIMESTAMPTZ '2026-04-01' + to_hours(CAST(range % 720 AS INTEGER)) ChargePeriodStart,
      TIMESTAMPTZ '2026-04-01' + to_hours(CAST(range % 720 AS INTEGER) + 1) ChargePeriodEnd,
      CASE WHEN range % 77 = 0 THEN 'Tax' ELSE 'Usage' END ChargeCategory,
      CAST(({h.format(k=1)} % 100000000000) AS DECIMAL(38,18)) / 10000000000 * 3 BilledCost,
      CAST(({h.format(k=1)} % 100000000000) AS DECIMAL(38,18)) / 10000000000 * 3 EffectiveCost,
      CAST(({h.format(k=1)} % 100000000000) AS DECIMAL(38,18)) / 10000000000 * 4 ListCost,
      CAST(({h.format(k=1)} % 100000000000) AS DECIMAL(38,18)) / 10000000000 * 3 ContractedCost,
      1 PricingQuantity, 'Hours' PricingUnit, 'USD' BillingCurrency,
      {svc}[1 + {h.format(k=2)} % 20] ServiceName, {cat}[1 + {h.format(k=2)} % 20] ServiceCategory,
      lpad(CAST({h.format(k=3)} % 150 AS VARCHAR), 12, '0') SubAccountId,
      {reg}[1 + {h.format(k=4)} % 12] RegionId,
      'arn:aws:ec2:r:1:i-' || CAST({h.format(k=5)} % {max(rows // 60, 1)} AS VARCHAR) ResourceId,
      'SKU' || CAST({h.format(k=6)} % 500 AS VARCHAR) SkuId,
      CASE WHEN {h.format(k=7)} % 100 < 85 THEN MAP {{
        (CASE WHEN range % 3 = 0 THEN 'Team' ELSE 'team' END): {teams}[1 + {h.format(k=8)} % 40],
        'env': ['prod', 'staging', 'dev'][1 + {h.format(k=9)} % 3],
        'app': 'app-' || CAST({h.format(k=10)} % 60 AS VARCHAR)}} END Tags,
      'bench' x_SourceId, 'bench-delivery' x_DeliveryId, now() x_IngestedAt, 'generated' x_SourceFile,
      nextval('cost_line_id') x_LineId
    FROM range({rows})"""
    with rt.warehouse.connect() as con:
        con.execute(sql)
    rt.close()


def rules_document() -> str:
    rules = []
    for i in range(60):  # service x region pairs
        rules.append({"name": f"svc-region-{i}", "when": {"all": [
            {"column": "ServiceName", "equals": SERVICES[i % 20]}, {"column": "RegionId", "equals": REGIONS[i % 12]},
            {"column": "SubAccountId", "in": [f"{k:012d}" for k in range(i, i + 5)]}]},
            "set": {"team": TEAMS[i % 40], "cost_center": f"CC-{i % 17}"}})
    for i in range(60):  # sub-account ranges by regex, some with effective dates
        rule = {"name": f"account-{i}", "when": {"all": [
            {"column": "SubAccountId", "regex": f"^0+{i}[0-9]$"}, {"tag": "env", "in": ["prod", "staging"]}]},
            "set": {"team": TEAMS[(i * 7) % 40], "environment": "prod"}}
        if i % 4 == 0:
            rule["effective_from"] = "2026-04-10"
        rules.append(rule)
    for i in range(60):  # tag value matches
        rules.append({"name": f"tag-{i}", "when": {"any": [
            {"tag": "app", "equals": f"app-{i}"}, {"all": [{"tag": "team", "missing": True},
                                                           {"column": "ResourceId", "regex": f"i-{i}7$"}]}]},
            "set": {"team": TEAMS[i % 40], "service": f"svc-{i}"}})
    for i in range(8):
        rules.append({"name": f"even-{i}", "when": {"column": "SkuId", "equals": f"SKU{i}"},
                      "split": {"even": [{"team": TEAMS[(i + k) % 40]} for k in range(3)]}})
    for i in range(8):
        rules.append({"name": f"percent-{i}", "when": {"column": "SkuId", "equals": f"SKU{100 + i}"},
                      "split": {"percent": [{"set": {"team": TEAMS[i]}, "percent": 50},
                                            {"set": {"team": TEAMS[i + 1]}, "percent": 30},
                                            {"set": {"team": TEAMS[i + 2]}, "percent": 20}]}})
    for i, cat in enumerate(["Networking", "Management and Governance", "Security"]):
        rules.append({"name": f"shared-{i}", "when": {"all": [{"column": "ServiceCategory", "equals": cat},
                                                              {"tag": "team", "missing": True}]},
                      "split": {"proportional_to": {"dimension": "team", "metric": "EffectiveCost",
                                                    "where": {"column": "ServiceCategory", "equals": "Compute"}}}})
    rules.append({"name": "team-tag", "when": {"tag": "team", "exists": True},
                  "set": {"team": {"tag": "team", "lower": True}}})
    assert len(rules) == 200, len(rules)
    return json.dumps({"dimensions": ["team", "service", "cost_center", "environment"],
                       "tag_aliases": {"team": ["Team", "owner_team", "user:team"]}, "rules": rules})


def child(measure: str, data_dir: Path, doc_path: Path) -> dict:
    from app.runtime import Runtime
    from app.settings import Settings

    rt = Runtime(Settings(data_dir=data_dir))
    rt.init()
    t0 = time.perf_counter()
    if measure == "floor":
        with rt.warehouse.connect() as con:
            con.execute("DROP TABLE IF EXISTS floor_copy")
            con.execute("CREATE TABLE floor_copy AS SELECT x_LineId, x_SourceId, BillingPeriodStart, "
                        "ChargePeriodStart, BillingCurrency, ProviderName, BilledCost, EffectiveCost, ListCost, "
                        "ContractedCost FROM cost_and_usage")
            con.execute("DROP TABLE floor_copy")
        extra = {}
    else:
        from app.allocation import engine

        result = engine.apply(rt, doc_path.read_text(), note=f"bench {time.time()}")
        with rt.warehouse.connect(read_only=True) as con:
            parts, unalloc = con.execute("SELECT count(*), count(*) FILTER (WHERE rule_name IS NULL) "
                                         "FROM cost_allocation").fetchone()
        extra = {"version": result.version, "parts": parts, "unallocated_parts": unalloc}
    seconds = time.perf_counter() - t0
    rt.close()
    return {"measure": measure, "seconds": round(seconds, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **extra}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cloudtally-alloc-bench")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--keep", action="store_true", help="keep the generated warehouse")
    args = ap.parse_args()
    data_dir = args.workdir / f"rows-{args.rows}"
    doc_path = args.workdir / "rules-200.json"
    if args.child:
        print(json.dumps(child(args.child, data_dir, doc_path)))
        return
    shutil.rmtree(data_dir, ignore_errors=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    doc_path.write_text(rules_document())
    log(f"generating {args.rows:,} lines into {data_dir}")
    t = time.perf_counter()
    generate(args.rows, data_dir)
    log(f"generated in {time.perf_counter() - t:.1f} s")
    results = {}
    for measure in ("floor", "apply"):
        log(f"running {measure}")
        out = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--workdir", str(args.workdir),
                              "--child", measure], check=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        results[measure] = json.loads(out.stdout.strip().splitlines()[-1])
        log(json.dumps(results[measure]))
    floor, apply_ = results["floor"], results["apply"]
    sys.path.insert(0, str(REPO / "bench"))
    import ingest_bench  # noqa: E402  (machine_info: the host matters, the floor ratio compares across hosts)

    info = ingest_bench.machine_info()
    print(f"Machine: {info['nproc']} cores, {info['cpu']}, {info['ram_gb']} GB; code {info['git']}; "
          f"{info['date']}; load average {' '.join(f'{x:.2f}' for x in info['loadavg'])}\n")
    print("| lines | rules | floor (CTAS copy) s | apply s | ratio | apply peak RSS MB | parts | unallocated parts |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.rows:,} | 200 | {floor['seconds']} | {apply_['seconds']} | "
          f"{apply_['seconds'] / max(floor['seconds'], 0.01):.1f}x | {apply_['peak_rss_mb']} | {apply_['parts']:,} | "
          f"{apply_['unallocated_parts']:,} |")
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
