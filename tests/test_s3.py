"""FOCUS files from S3 through boto3, against moto's real HTTP server (no mocks inside the process)."""
from __future__ import annotations

import gzip
from decimal import Decimal

import pytest

from app.ingest import ingest
from connectors.base import IngestError
from tests.helpers import read_rows, sums

GEN = "generated-focus-data-toolkit/focus-1.2"


def test_ingest_from_s3_prefix_reconciles_and_is_idempotent(rt_any, s3, s3_endpoint, samples):
    client, bucket = s3
    aws_csv = (samples / GEN / "focus_1_2_cost_and_usage_aws.csv").read_bytes()
    client.put_object(Bucket=bucket, Key="focus/aws/part-0.csv.gz", Body=gzip.compress(aws_csv, mtime=0))
    client.put_object(Bucket=bucket, Key="focus/gcp/part-0.parquet",
                      Body=(samples / GEN / "focus_1_2_cost_and_usage_aws.typed.parquet").read_bytes())
    client.put_object(Bucket=bucket, Key="focus/manifest.json", Body=b"{}")  # not data: ignored
    client.put_object(Bucket=bucket, Key="focusother/x.csv", Body=b"not under the prefix")

    options = {"endpoint_url": s3_endpoint}
    result = ingest(rt_any, "s3src", f"s3://{bucket}/focus", options=options)
    (d,) = result.loaded
    uris = sorted(f["uri"] for f in d.files)
    assert uris == [f"s3://{bucket}/focus/aws/part-0.csv.gz", f"s3://{bucket}/focus/gcp/part-0.parquet"]
    rows = read_rows(samples / GEN / "focus_1_2_cost_and_usage_aws.csv")
    assert d.landed_rows == 2 * len(rows)
    assert d.landed_billed_cost == 2 * sums(rows, "BilledCost")
    with rt_any.warehouse.connect(read_only=True) as con:
        files = {f for (f,) in con.execute("SELECT DISTINCT x_SourceFile FROM cost_and_usage").fetchall()}
    assert files == set(uris)

    again = ingest(rt_any, "s3src", f"s3://{bucket}/focus/", options=options)
    assert again.loaded == [] and [u.id for u in again.unchanged] == [d.id]


def test_redelivered_object_replaces(rt, s3, s3_endpoint, samples, tmp_path):
    client, bucket = s3
    path = samples / GEN / "focus_1_2_cost_and_usage_aws.csv"
    client.put_object(Bucket=bucket, Key="exp/bill.csv", Body=path.read_bytes())
    ingest(rt, "s", f"s3://{bucket}/exp", options={"endpoint_url": s3_endpoint})
    lines = path.read_text().splitlines(keepends=True)
    client.put_object(Bucket=bucket, Key="exp/bill.csv", Body="".join(lines[:101]).encode())  # header + 100 rows
    result = ingest(rt, "s", f"s3://{bucket}/exp", options={"endpoint_url": s3_endpoint})
    assert result.loaded[0].landed_rows == 100
    expected = sums(read_rows(path)[:100], "BilledCost")
    with rt.warehouse.connect(read_only=True) as con:
        assert con.execute("SELECT count(*), sum(BilledCost) FROM cost_and_usage").fetchone() == (100, expected)


def test_missing_bucket_is_a_clear_error(rt, s3_endpoint):
    with pytest.raises(IngestError, match=r"s3://no-such-bucket-xyz/p.*NoSuchBucket"):
        ingest(rt, "s", "s3://no-such-bucket-xyz/p", options={"endpoint_url": s3_endpoint})


def test_empty_prefix_is_a_clear_error(rt, s3, s3_endpoint):
    _, bucket = s3
    with pytest.raises(IngestError, match="no data files found"):
        ingest(rt, "s", f"s3://{bucket}/nothing-here", options={"endpoint_url": s3_endpoint})


def test_cli_option_endpoint_url(s3, s3_endpoint, samples, tmp_path):
    from tests.helpers import cli_json

    client, bucket = s3
    client.put_object(Bucket=bucket, Key="f/bill.parquet",
                      Body=(samples / GEN / "focus_1_2_cost_and_usage_aws.typed.parquet").read_bytes())
    ledger = cli_json("ingest", f"s3://{bucket}/f", "--source", "s", "--option", f"endpoint_url={s3_endpoint}",
                      "--output", "json", env={"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")})
    assert ledger[0]["raw"] == ledger[0]["landed"]
    assert Decimal(ledger[0]["landed"]["billed_cost"]) == sums(
        read_rows(samples / GEN / "focus_1_2_cost_and_usage_aws.csv"), "BilledCost")
