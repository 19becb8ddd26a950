"""Test helpers that read billing files WITHOUT DuckDB (csv module, pyarrow, Decimal), so reconciliation tests
compare the warehouse against an independent reading of the same bytes."""
from __future__ import annotations

import csv
import gzip
import io
import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

NULLS = ("", "NULL", "null")
METRICS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")


def read_rows(path: Path) -> list[dict]:
    """Rows as dicts of text (None for nulls), from CSV, gzip CSV or Parquet."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        out = []
        for rec in table.to_pylist():
            # repr() of a float is its shortest round-trip text, the same rule the ingest uses for DOUBLE columns.
            out.append({k: (None if v is None else (repr(v) if isinstance(v, float) else str(v))) for k, v in rec.items()})
        return out
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8-sig")
    return [{k: (None if v in NULLS else v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def sums(rows: list[dict], metric: str, currency: str | None = None) -> Decimal:
    return sum(
        (Decimal(r[metric]) for r in rows if r.get(metric) is not None
         and (currency is None or r.get("BillingCurrency") == currency)),
        Decimal(0),
    )


def write_csv(path: Path, header: list[str], rows: list[list[str]], gz: bool = False) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def cli(*args: str, env: dict | None = None):
    """Run the CLI in-process; returns the click Result (exit_code, stdout, stderr)."""
    from app.cli import app

    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def cli_json(*args: str, env: dict | None = None):
    result = cli(*args, env=env)
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def api_client(rt, role: str = "admin", name: str | None = None):
    """A TestClient of the API with a fresh key of `role` in its Authorization header (auth stays on)."""
    from fastapi.testclient import TestClient

    from app.access import create_key
    from app.api import create_app

    _, key = create_key(rt, name or f"test-{role}", role)
    return TestClient(create_app(rt), headers={"Authorization": f"Bearer {key}"})


FOCUS_AWS = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_aws.csv"
FOCUS_AZURE = "generated-focus-data-toolkit/focus-1.2/focus_1_2_cost_and_usage_azure.csv"


def allocated_samples(data_dir: Path, samples: Path, rules: str):
    """A runtime holding the public AWS and Azure FOCUS samples, allocated by `rules` (the caller closes it)."""
    from app.allocation import engine
    from app.ingest import ingest
    from tests.conftest import make_runtime

    rt = make_runtime(data_dir)
    ingest(rt, "aws", str(samples / FOCUS_AWS))
    ingest(rt, "azure", str(samples / FOCUS_AZURE))
    engine.apply(rt, rules)
    return rt
