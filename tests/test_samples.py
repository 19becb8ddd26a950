"""Every public FOCUS sample ingests, and `cloudtally costs` totals equal sums read straight from the file."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.helpers import METRICS, cli, cli_json, read_rows, sums

SAMPLES = [
    "finops-foundation-focus-1.0/focus_sample.csv",
    "finops-foundation-focus-1.0/by_provider/focus_sample_aws.csv",
    "finops-foundation-focus-1.0/by_provider/focus_sample_azure.csv",
    "finops-foundation-focus-1.0/by_provider/focus_sample_oci.csv",
    "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv",
    "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.typed.parquet",
    "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_azure.csv",
    "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_gcp.csv",
    "generated-focus-data-toolkit/focus-1.3/focus_1_3_cost_and_usage_gcp.csv",
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.rsplit("/", 1)[-1])
def test_sample_totals_equal_the_file_to_the_last_decimal(sample, samples, tmp_path):
    path = samples / sample
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "data")}
    ledger = cli_json("ingest", str(path), "--source", "sample", "--output", "json", env=env)
    rows = read_rows(path)
    assert sum(d["raw"]["rows"] for d in ledger) == len(rows)
    assert all(d["raw"] == d["landed"] for d in ledger)

    currencies = sorted({r["BillingCurrency"] for r in rows})
    for metric in METRICS:
        result = cli_json("costs", "--start", "2000-01", "--end", "2100-01", "--metric", metric,
                          "--format", "json", env=env)
        got = {t["currency"]: t["cost"] for t in result["totals"]}
        for cur in currencies:
            expected = sums(rows, metric, cur)
            # Compare as exact decimals: "20.52" and "20.5200" are the same amount.
            assert Decimal(got[cur]) == expected, (metric, cur)


def test_focus_1_0_sample_reports_what_it_tolerated(samples, tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "data")}
    ledger = cli_json("ingest", str(samples / SAMPLES[0]), "--source", "ff", "--output", "json", env=env)
    # 999 September rows and one Oracle row billed in October: two billing periods, two deliveries.
    assert [(d["billing_period_start"], d["raw"]["rows"]) for d in ledger] == [
        ("2024-09-01T00:00:00Z", 999), ("2024-10-01T00:00:00Z", 1)]
    notes = " | ".join(ledger[0]["tolerated"])
    assert "literal NULL" in notes
    assert "Id" in notes and "ignored" in notes
    assert "'Usage-based' normalized to 'Usage-Based' on 7 rows" in notes
    assert "ContractedCost is null on 7 rows" in notes


def test_parquet_and_csv_of_the_same_data_land_identically(samples, tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "data")}
    base = samples / "generated-focus-data-toolkit/focus-1.2"
    cli_json("ingest", str(base / "focus_1_2_cost_and_usage_aws.csv"), "--source", "csv", "--output", "json", env=env)
    cli_json("ingest", str(base / "focus_1_2_cost_and_usage_aws.typed.parquet"), "--source", "pq", "--output", "json",
             env=env)
    by_source = cli_json("costs", "--start", "2026-05", "--end", "2026-06", "-g", "x_SourceId", "-g", "ServiceName",
                         "-g", "tag:Owner", "--metric", "BilledCost", "--format", "json", env=env)["rows"]
    csv_rows = sorted((r["ServiceName"], r["tag:Owner"] or "", r["cost"]) for r in by_source if r["x_SourceId"] == "csv")
    pq_rows = sorted((r["ServiceName"], r["tag:Owner"] or "", r["cost"]) for r in by_source if r["x_SourceId"] == "pq")
    assert csv_rows == pq_rows and len(csv_rows) > 10


@pytest.mark.parametrize("sample", [
    "spec-examples-focus-1.2/commitment_discount_scenarios/commitment_discount_usage_scenario_3.csv",
    "generated-focus-data-toolkit/focus-1.3/focus_1_3_contract_commitment_gcp.csv",
])
def test_partial_or_other_dataset_files_are_refused_naming_missing_columns(sample, samples, tmp_path):
    result = cli("ingest", str(samples / sample), "--source", "partial",
                 env={"CLOUDTALLY_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 1
    assert "missing mandatory FOCUS columns" in result.stderr
    assert "ServiceName" in result.stderr and sample.rsplit("/", 1)[-1] in result.stderr.replace("\n", "")


def test_folder_names_are_layout_not_columns(samples, tmp_path):
    """Exports sit in folders like BillingPeriodStart=2026-05/; those must not become (or clash with) columns."""
    src = samples / "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.typed.parquet"
    folder = tmp_path / "exp" / "BillingPeriodStart=1999-01" / "ServiceName=x"
    folder.mkdir(parents=True)
    (folder / "part-0.parquet").write_bytes(src.read_bytes())
    (folder / "part-1.csv").write_bytes((src.parent / "focus_1_2_cost_and_usage_gcp.csv").read_bytes())
    ledger = cli_json("ingest", str(tmp_path / "exp"), "--source", "s", "--output", "json",
                      env={"CLOUDTALLY_DATA_DIR": str(tmp_path / "data")})
    assert [d["billing_period_start"] for d in ledger] == ["2026-05-01T00:00:00Z"]
    assert not any("ignored" in note for note in ledger[0]["tolerated"])
