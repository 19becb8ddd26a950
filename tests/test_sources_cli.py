"""`cloudtally sources add|list|remove` and `cloudtally ingest NAME [--period]`."""
from __future__ import annotations

import json

from tests import aws_fixtures as fx
from tests.helpers import cli, cli_json


def test_add_list_ingest_remove(tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 9))
    fx.write_cur2(tmp_path, "e", fx.month_lines(2026, 10))
    added = cli("sources", "add", "aws", "--provider", "aws", "--format", "cur2", "--location", str(tmp_path / "e"),
                env=env)
    assert added.exit_code == 0, added.stderr
    listed = cli_json("sources", "list", "--output", "json", env=env)
    assert [(s["name"], s["provider"], s["format"]) for s in listed] == [("aws", "aws", "cur2")]

    october = cli_json("ingest", "aws", "--period", "2026-10", "--output", "json", env=env)
    assert [d["billing_period_start"] for d in october] == ["2026-10-01T00:00:00Z"]
    both = cli_json("ingest", "aws", "--output", "json", env=env)
    assert [(d["billing_period_start"][:7], d["outcome"]) for d in both] == [("2026-09", "loaded"),
                                                                            ("2026-10", "unchanged")]
    assert all(d["raw"]["billed_cost"] == d["landed"]["billed_cost"] for d in both)

    removed = cli("sources", "remove", "aws", "--yes", env=env)
    assert removed.exit_code == 0 and "cost rows" in removed.stdout
    assert cli_json("sources", "list", "--output", "json", env=env) == []
    totals = cli_json("costs", "--start", "2026-01", "--end", "2027-01", "--format", "json", env=env)["totals"]
    assert totals == []  # its rows went with it


def test_refusals(tmp_path):
    env = {"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")}
    secret = cli("sources", "add", "x", "--provider", "aws", "--format", "cur2", "--location", "s3://b/p",
                 "--option", "aws_secret_access_key=abc", env=env)
    assert secret.exit_code == 2 and "never stores secrets" in secret.stderr
    bad_format = cli("sources", "add", "x", "--provider", "aws", "--format", "csv", "--location", "s3://b/p", env=env)
    assert bad_format.exit_code == 2 and "cur, cur2, focus" in bad_format.stderr
    unknown = cli("ingest", "nope", env=env)
    assert unknown.exit_code == 2 and "no source named 'nope'" in unknown.stderr
    bad_period = cli("ingest", "nope", "--period", "2026-13", env=env)
    assert bad_period.exit_code == 2
    assert cli("sources", "add", "x", "--provider", "aws", "--format", "cur2", "--location", str(tmp_path),
               env=env).exit_code == 0
    again = cli("sources", "add", "x", "--provider", "aws", "--format", "cur2", "--location", str(tmp_path), env=env)
    assert again.exit_code == 2 and "exists already" in again.stderr
    assert json.loads(cli("sources", "list", "--output", "json", env=env).stdout)[0]["name"] == "x"


def test_cur_given_to_the_focus_quick_path_gets_a_hint(tmp_path):
    delivered = fx.write_legacy(tmp_path, "cur", fx.month_lines())
    result = cli("ingest", str(delivered.files[0]), "--source", "s", env={"CLOUDTALLY_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 1 and "looks like an AWS Cost and Usage Report" in result.stderr
