"""Bad input: a one-line error naming file (row, column), exit code 1, and the warehouse exactly as it was."""
from __future__ import annotations

import csv
import gzip
import io
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.runtime import Runtime
from app.settings import Settings
from app.warehouse import Warehouse
from tests.helpers import cli, cli_json, write_csv

GOOD = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"


@pytest.fixture
def good(samples) -> tuple[list[str], list[list[str]]]:
    with open(samples / GOOD, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _set(header, rows, row_no: int, column: str, value: str):
    """Copy of rows with data row `row_no` (1-based) changed in `column`."""
    rows = [list(r) for r in rows]
    rows[row_no - 1][header.index(column)] = value
    return rows


def _csv_text(header, rows, delimiter=",") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue().encode()


def _parquet(path: Path, header, rows, change=None) -> Path:
    cols = {name: [r[i] or None for r in rows] for i, name in enumerate(header)}
    table = pa.table(cols)
    if change:
        table = change(table)
    pq.write_table(table, path)
    return path


# Each case: (file name, builder(tmp_path, header, rows) -> path, expected fragments of the error)
CASES = {
    "non_numeric_cost": ("bad.csv", lambda p, h, r: write_csv(p, h, _set(h, r, 17, "BilledCost", "12,50")),
                         ["row 17", "column BilledCost", "'12,50' is not a decimal number"]),
    "currency_symbol_cost": ("bad.csv", lambda p, h, r: write_csv(p, h, _set(h, r, 3, "EffectiveCost", "$4.20")),
                             ["row 3", "column EffectiveCost", "not a decimal number"]),
    "unparseable_date": ("bad.csv", lambda p, h, r: write_csv(p, h, _set(h, r, 5, "ChargePeriodStart", "2026-05-32")),
                         ["row 5", "column ChargePeriodStart", "'2026-05-32' is not a date-time"]),
    "malformed_period_date": ("bad.csv", lambda p, h, r: write_csv(
        p, h, _set(h, r, 8, "BillingPeriodStart", "2023-02-01T30:00:00Z")),
        ["row 8", "column BillingPeriodStart", "is not a date-time"]),
    "mandatory_value_missing": ("bad.csv", lambda p, h, r: write_csv(p, h, _set(h, r, 9, "ProviderName", "")),
                                ["row 9", "column ProviderName", "must not be empty"]),
    "unknown_charge_category": ("bad.csv", lambda p, h, r: write_csv(p, h, _set(h, r, 11, "ChargeCategory", "Refund")),
                                ["row 11", "column ChargeCategory", "'Refund' is not one of"]),
    "tags_not_json": ("bad.csv", lambda p, h, r: write_csv(p, h, _set(h, r, 12, "Tags", "{team: payments")),
                      ["row 12", "column Tags", "not a JSON object"]),
    "empty_file": ("bad.csv", lambda p, h, r: (p.write_bytes(b""), p)[1], ["file is empty"]),
    "header_only": ("bad.csv", lambda p, h, r: write_csv(p, h, []), ["header but no data rows"]),
    "duplicate_header": ("bad.csv", lambda p, h, r: write_csv(p, h[:-1] + ["BilledCost"], r),
                         ["duplicate column name 'BilledCost'"]),
    "semicolon_delimiter": ("bad.csv", lambda p, h, r: (p.write_bytes(_csv_text(h, r, ";")), p)[1],
                            ["header: fields are separated by ';'", "comma-separated"]),
    "missing_mandatory_column_csv": ("bad.csv", lambda p, h, r: write_csv(
        p, [c for c in h if c != "BillingCurrency"], [[v for c, v in zip(h, row) if c != "BillingCurrency"] for row in r]),
        ["missing mandatory FOCUS column: BillingCurrency"]),
    "short_row": ("bad.csv", lambda p, h, r: (p.write_bytes(_csv_text(h, r[:20]) + b"AWS,AWS\n"), p)[1],
                  ["CSV error on line 22", "Expected Number of Columns"]),
    "truncated_gzip_early": ("bad.csv.gz", lambda p, h, r: (p.write_bytes(gzip.compress(_csv_text(h, r))[:3000]), p)[1],
                             ["truncated or corrupt"]),
    "truncated_gzip_late": ("bad.csv.gz", lambda p, h, r: (p.write_bytes(
        gzip.compress(_csv_text(h, r * 40))[:-2000]), p)[1], ["gzip data is truncated or corrupt"]),
    "parquet_missing_mandatory_column": ("bad.parquet", lambda p, h, r: _parquet(
        p, h, r, lambda t: t.drop_columns(["BilledCost", "ServiceName"])),
        ["missing mandatory FOCUS columns: BilledCost, ServiceName"]),
    "parquet_wrong_column_type": ("bad.parquet", lambda p, h, r: _parquet(
        p, h, r, lambda t: t.set_column(t.schema.get_field_index("BilledCost"), "BilledCost",
                                        pa.array([True] * t.num_rows))),
        ["column BilledCost", "has type BOOLEAN", "decimal number"]),
    "parquet_non_numeric_text_cost": ("bad.parquet", lambda p, h, r: _parquet(p, h, _set(h, r, 42, "BilledCost", "n/a")),
                                      ["row 42", "column BilledCost", "'n/a' is not a decimal number"]),
    "not_parquet": ("bad.parquet", lambda p, h, r: (p.write_bytes(b"hello, I am not parquet"), p)[1],
                    ["not a Parquet file"]),
}


def _state(data_dir: Path):
    wh = Warehouse(Runtime(Settings(data_dir=data_dir)).settings.resolved_warehouse_path)
    with wh.connect(read_only=True) as con:
        return (
            Warehouse.data_version(con),
            con.execute("SELECT count(*), sum(BilledCost), sum(EffectiveCost), min(x_DeliveryId) "
                        "FROM cost_and_usage").fetchone(),
        )


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_refused_and_changes_nothing(case, good, samples, tmp_path):
    name, build, fragments = CASES[case]
    header, rows = good
    data = tmp_path / "data"
    env = {"CLOUDTALLY_DATA_DIR": str(data)}
    # The source already holds a good delivery of the same billing period.
    cli_json("ingest", str(samples / GOOD), "--source", "aws", "--output", "json", env=env)
    before = _state(data)

    bad = build(tmp_path / name, header, rows)
    result = cli("ingest", str(bad), "--source", "aws", env=env)

    assert result.exit_code == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert str(bad) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert _state(data) == before
    failed = cli_json("deliveries", "--source", "aws", "--status", "failed", "--output", "json", env=env)
    assert len(failed) == 1 and failed[0]["error"] and str(bad) in failed[0]["error"]


def test_exit_code_and_message_from_a_real_process(good, tmp_path):
    header, rows = good
    bad = write_csv(tmp_path / "bills.csv", header, _set(header, rows, 2, "BilledCost", "abc"))
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "ingest", str(bad), "--source", "s"],
        capture_output=True, text=True, env={"CLOUDTALLY_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {bad}, row 2, column BilledCost: 'abc' is not a decimal number"


def test_usage_errors_exit_2(tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}
    assert cli("ingest", "x.csv", env=env).exit_code == 2  # --source missing
    assert cli("costs", "--granularity", "week", env=env).exit_code == 2
    assert cli("costs", "--filter", "ProviderName", env=env).exit_code == 2


def test_missing_path_names_it(tmp_path):
    result = cli("ingest", str(tmp_path / "nope"), "--source", "s", env={"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 1 and "nope" in result.stderr and "no such file" in result.stderr
