"""Legacy CUR files made by koku-nise (run as a command: it is AGPL, never imported) ingest and reconcile.

nise departs from real CUR in ways the connector must survive and report, not hide: Savings Plan covered lines
without their negation lines and without the plan's ARN, the text `None` in empty numeric cells, timestamps as
`2026-10-01 00:00:00+00:00`. The reconciliation below uses the same formulas on the raw CSV text, in Python.
"""
from __future__ import annotations

import csv
import gzip
import io
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from app import sources
from app.ingest import ingest
from tests.conftest import unavailable


def nise_report(folder: Path) -> Path:
    nise = Path(sys.executable).parent / "nise"
    if not nise.exists():
        unavailable("koku-nise is not installed (pip install -e '.[dev]')")
    bucket = folder / "bucket"
    bucket.mkdir(parents=True)
    proc = subprocess.run(
        [str(nise), "report", "aws", "-s", "2026-10-01", "-e", "2026-10-03", "--aws-s3-bucket-name", str(bucket),
         "--aws-s3-report-name", "cur", "--aws-s3-report-prefix", "prefix"],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return bucket / "prefix" / "cur"


def python_sums(report: Path) -> tuple[int, D, D]:
    def num(row, col):
        v = row.get(col)
        return D(0) if v in (None, "", "None") else D(v)

    rows = billed = amortized = 0
    for part in report.rglob("*.csv.gz"):
        for r in csv.DictReader(io.StringIO(gzip.decompress(part.read_bytes()).decode())):
            t = r["lineItem/LineItemType"]
            rows += 1
            billed += num(r, "lineItem/UnblendedCost")
            amortized += {
                "SavingsPlanCoveredUsage": num(r, "savingsPlan/SavingsPlanEffectiveCost"),
                "SavingsPlanRecurringFee": num(r, "savingsPlan/TotalCommitmentToDate")
                - num(r, "savingsPlan/UsedCommitment"),
                "SavingsPlanNegation": D(0), "SavingsPlanUpfrontFee": D(0),
                "DiscountedUsage": num(r, "reservation/EffectiveCost"),
                "RIFee": num(r, "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod")
                + num(r, "reservation/UnusedRecurringFee"),
            }.get(t, D(0) if t == "Fee" and r.get("reservation/ReservationARN") else num(r, "lineItem/UnblendedCost"))
    return rows, billed, amortized


@pytest.mark.slow
def test_nise_legacy_cur_from_s3_reconciles_to_the_cent(rt, s3, s3_endpoint, tmp_path):
    report = nise_report(tmp_path)
    client, bucket = s3
    for p in sorted(report.rglob("*")):
        if p.is_file():
            client.put_object(Bucket=bucket, Key=f"prefix/cur/{p.relative_to(report).as_posix()}",
                              Body=p.read_bytes())
    sources.add(rt, "nise", "aws", "cur", f"s3://{bucket}/prefix/cur", {"endpoint_url": s3_endpoint})
    (d,) = ingest(rt, "nise").loaded
    rows, billed, amortized = python_sums(report)
    # Python reads every digit nise wrote; the warehouse keeps 18 decimal places. Equal to the cent and far below.
    assert d.raw_rows == rows
    assert abs(d.landed_billed_cost - billed) < D("1e-12") and abs(d.landed_effective_cost - amortized) < D("1e-12")
    assert (d.raw_billed_cost, d.raw_effective_cost) == (d.landed_billed_cost, d.landed_effective_cost)
    notes = " | ".join(d.tolerated)
    assert "koku-nise artefact" in notes and "name no Savings Plan / reservation ARN" in notes
