"""The recommendation ledger (issue 12, item 4) on SQLite and PostgreSQL: findings stored with inputs and predicted
savings; later data shows which were acted on (resource gone, changed, commitment bought) and the realized
savings; the API's team scope, roles and money strings; the CLI."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from app.allocation import engine
from optimizers import ledger
from optimizers.commitment_kinds import load_kinds
from tests.helpers import api_client, cli_json
from tests.optimizer_fixtures import ingest_rows, line

JUNE = [date(2026, 6, 1) + timedelta(days=i) for i in range(30)]
JULY = [date(2026, 7, 1) + timedelta(days=i) for i in range(14)]
RULES = {"rules": [{"name": "team-tag", "when": {"tag": "team", "exists": True},
                    "set": {"team": {"tag": "team", "lower": True}}}]}
AZ_VM = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-dev"
NET = dict(ServiceCategory="Networking", ServiceSubcategory="Network Connectivity",
           ServiceName="Amazon Virtual Private Cloud")


def june() -> list[dict]:
    rows = []
    for d in JUNE:
        rows.append(line(d, ResourceId="i-web", cost="4.608", Tags='{"team":"payments","env":"prod"}'))
        rows.append(line(d, ResourceId="eipalloc-1", cost="0.12", Tags='{"team":"payments"}',
                         ChargeDescription="$0.005 per Elastic IP address not attached to a running instance per hour",
                         **NET))
        rows.append(line(d, ResourceId="nat-1", cost="1.08", ResourceType="NAT Gateway", Tags='{"team":"platform"}',
                         ChargeDescription="NAT gateway hour", **NET))
        rows.append(line(d, provider="Microsoft", account="az-1", SubAccountId="sub-1", ResourceId=AZ_VM,
                         cost="4.608", PricingQuantity=Decimal(24), Tags='{"team":"Platform","env":"dev"}',
                         ServiceName="Virtual Machines", RegionId="eastus"))
    return rows


def july() -> list[dict]:
    rows = []
    for d in JULY:
        # i-web is now covered by a Savings Plan bought on 1 July at 28% off
        rows.append(line(d, ResourceId="i-web", cost="3.31776", ContractedCost=Decimal("4.608"),
                         ListCost=Decimal("4.608"), BilledCost=Decimal(0), PricingCategory="Committed",
                         CommitmentDiscountId="arn:aws:savingsplans::1:savingsplan/sp-1",
                         CommitmentDiscountType="Savings Plan", CommitmentDiscountCategory="Spend",
                         CommitmentDiscountStatus="Used", CommitmentDiscountQuantity=Decimal("3.31776"),
                         CommitmentDiscountUnit="USD", Tags='{"team":"payments","env":"prod"}'))
        rows.append(line(d, ResourceId="nat-1", cost="1.08", ResourceType="NAT Gateway", Tags='{"team":"platform"}',
                         ChargeDescription="NAT gateway hour", **NET))
        if d.weekday() < 5:  # the dev VM now runs 12 hours on weekdays
            rows.append(line(d, provider="Microsoft", account="az-1", SubAccountId="sub-1", ResourceId=AZ_VM,
                             cost="2.304", PricingQuantity=Decimal(12), Tags='{"team":"Platform","env":"dev"}',
                             ServiceName="Virtual Machines", RegionId="eastus"))
    return rows
    # the idle Elastic IP was released on 30 June: no lines in July


def _by_kind(rt, status="any"):
    with rt.sessions() as s:
        _, rows = ledger.list_recommendations(s, status=None if status == "any" else status, limit=1000)
    return {(r["kind"], r["resource_id"] or r["provider"]): r for r in rows}


def test_ledger_lifecycle_and_accuracy(rt_any, tmp_path):
    rt = rt_any
    ingest_rows(rt, tmp_path / "files", june())
    engine.apply(rt, RULES, note="teams")
    first = ledger.refresh(rt, {})
    assert first["new"] == 5 and first["found"] == 5
    recs = _by_kind(rt)
    assert set(recs) == {("idle_public_ip", "eipalloc-1"), ("idle_network", "nat-1"), ("nonprod_schedule", AZ_VM),
                         ("commitment_purchase", "AWS"), ("commitment_purchase", "Microsoft")}
    ip, vm, sp = recs["idle_public_ip", "eipalloc-1"], recs["nonprod_schedule", AZ_VM], recs["commitment_purchase", "AWS"]
    assert ip["team"] == "payments" and vm["team"] == "platform" and sp["team"] is None
    assert ip["monthly_cost"] == ip["monthly_savings"] == "3.65"  # 0.12 x 14 days x 730 / 336
    assert vm["monthly_cost"] == "140.16" and vm["monthly_savings"] == "90.10"  # x (1 - 60/168)
    # the optimum is (0.192 - 0.13824) x 730 = 39.24 a month; the first tranche is 70% of it (the 30% downside)
    assert sp["evidence"]["tranche_plan"]["optimal_monthly_savings"] == "39.24"
    assert sp["monthly_savings"] == "27.47"  # 0.28 x 0.1344 x 730
    assert sp["evidence"]["optimal_hourly_commitment"] == "0.138" and sp["evidence"]["hourly_commitment"] == "0.097"
    assert ip["inputs"] == {}
    assert ip["data_through"] == "2026-06-30" and ip["status"] == "open"
    # the same data again: the same recommendations, updated, nothing closed
    again = ledger.refresh(rt, {"lookback_days": 30})
    assert again["new"] == 0 and again["updated"] == 5 and again["acted_on"] == again["expired"] == 0

    ingest_rows(rt, tmp_path / "files", july())
    after = ledger.refresh(rt, {})
    # a commitment recommendation is the tranche of one review week: June's reservation tranche (week of 29 June)
    # was not bought and is closed as expired; the week of 13 July has its own, smaller one
    assert after["acted_on"] == 3 and after["updated"] == 1 and after["expired"] == 1 and after["new"] == 1
    recs = _by_kind(rt)
    with rt.sessions() as s:
        _, azure = ledger.list_recommendations(s, status=None, kind="commitment_purchase", limit=10)
    azure = {r["status"]: r for r in azure if r["provider"] == "Microsoft"}
    assert azure["expired"]["evidence"]["tranche_plan"]["review_period_start"] == "2026-06-29"
    # the dev VM's reservation is still recommended, at the half-day level it now runs at
    vm_ri = azure["open"]
    assert vm_ri["evidence"]["short_lookback_level"] == "0.10"
    assert vm_ri["evidence"]["tranche_plan"]["review_period_start"] == "2026-07-13"
    assert Decimal(vm_ri["monthly_savings"]) < Decimal(azure["expired"]["monthly_savings"])
    ip, vm, sp = recs["idle_public_ip", "eipalloc-1"], recs["nonprod_schedule", AZ_VM], recs["commitment_purchase", "AWS"]
    assert ip["status"] == "acted_on" and ip["outcome"]["reason"] == "resource gone"
    assert ip["realized_monthly_savings"] == "3.65"
    assert vm["status"] == "acted_on" and vm["outcome"]["reason"] == "changed"
    # after: 10 weekdays x 2.304 in the 14 days, per 730-hour month: 50.06; before 140.16
    assert vm["realized_monthly_savings"] == "90.10" and vm["measured_through"] == "2026-07-14"
    assert sp["status"] == "acted_on" and sp["outcome"]["commitments"] == ["arn:aws:savingsplans::1:savingsplan/sp-1"]
    # the whole optimum was bought, not just the tranche: realized 39.24 against 27.47 predicted
    assert sp["realized_monthly_savings"] == "39.24"  # (4.608 - 3.31776) per day x 730 / 24
    nat = recs["idle_network", "nat-1"]
    assert nat["status"] == "open" and nat["data_through"] == "2026-07-14"
    with rt.sessions() as s:
        acc = {(k["kind"], k["currency"]): k for k in ledger.accuracy(s)["kinds"]}
        assert acc["idle_public_ip", "USD"]["realized_to_predicted"] == "1.0000"
        assert acc["commitment_purchase", "USD"]["acted_on"] == 1
        assert acc["idle_network", "USD"]["open"] == 1 and acc["idle_network", "USD"]["acted_on"] == 0
        assert ledger.accuracy(s, team="payments")["kinds"][0]["kind"] == "idle_public_ip"


def test_api_scope_roles_and_money(rt, tmp_path):
    ingest_rows(rt, tmp_path / "files", june())
    engine.apply(rt, RULES, note="teams")
    admin = api_client(rt, "admin")
    r = admin.post("/v1/recommendations/refresh")
    assert r.status_code == 200 and r.json()["new"] == 5
    every = admin.get("/v1/recommendations").json()
    assert every["total"] == 5
    money = [x["monthly_savings"] for x in every["recommendations"]]
    assert money == sorted(money, key=Decimal, reverse=True) and all(isinstance(m, str) for m in money)
    payments = api_client(rt, "team:payments")
    mine = payments.get("/v1/recommendations").json()
    assert [x["resource_id"] for x in mine["recommendations"]] == ["eipalloc-1"]  # not the account-wide purchase
    sp = next(x for x in every["recommendations"] if x["kind"] == "commitment_purchase" and x["provider"] == "AWS")
    plan = admin.get(f"/v1/recommendations/{sp['id']}").json()["evidence"]["tranche_plan"]
    assert sp["monthly_savings"] == plan["tranche_monthly_savings"] == "27.47" and plan["downside"] == "0.3"
    assert plan["next_review"] == "2026-07-06" and len(plan["schedule_if_usage_holds"]) == 4
    whole = admin.post("/v1/recommendations/refresh", params={"commitment_downside": 0})
    assert whole.status_code == 200 and whole.json()["updated"] == 5
    sp = admin.get(f"/v1/recommendations/{sp['id']}").json()
    assert sp["monthly_savings"] == "39.24" and sp["evidence"]["tranche_plan"]["strategy"] == "all at once"
    assert admin.post("/v1/recommendations/refresh", params={"commitment_downside": 1}).status_code in (400, 422)
    escape = payments.get("/v1/recommendations", params={"team": "platform"})
    assert escape.status_code == 403 and escape.json()["errors"][0]["parameter"] == "team"
    other = next(x["id"] for x in every["recommendations"] if x["team"] == "platform")
    assert payments.get(f"/v1/recommendations/{other}").status_code == 403
    assert payments.get(f"/v1/recommendations/{mine['recommendations'][0]['id']}").status_code == 200
    assert payments.get("/v1/commitments/utilization").status_code == 403
    assert payments.post("/v1/recommendations/refresh").status_code == 403
    assert api_client(rt, "finance").post("/v1/recommendations/refresh").status_code == 403
    assert [k["kind"] for k in payments.get("/v1/recommendations/accuracy").json()["kinds"]] == ["idle_public_ip"]
    assert admin.get("/v1/recommendations/nope").status_code == 404
    util = api_client(rt, "finance").get("/v1/commitments/utilization", params={"start": "2026-06"}).json()
    assert util["start"] == "2026-06" and util["end"] == "2026-07" and util["commitments"] == []
    bad = admin.get("/v1/commitments/utilization", params={"start": "2026-13"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["parameter"] == "start"
    backwards = admin.get("/v1/commitments/utilization", params={"start": "2026-07", "end": "2026-06"})
    assert backwards.status_code == 400 and backwards.json()["errors"][0]["parameter"] == "end"


def test_cli(rt, tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDTALLY_DATA_DIR", str(rt.settings.data_dir))
    ingest_rows(rt, tmp_path / "files", june())
    from tests.helpers import cli

    result = cli("recommend", "refresh", "--only", "waste")
    assert result.exit_code == 0, result.stderr
    assert "found 3: 3 new" in result.stdout
    listed = cli_json("recommend", "list", "--format", "json")
    assert listed["total"] == 3 and {r["kind"] for r in listed["recommendations"]} == {
        "idle_public_ip", "idle_network", "nonprod_schedule"}
    shown = cli_json("recommend", "show", listed["recommendations"][0]["id"][:8])
    assert shown["id"] == listed["recommendations"][0]["id"]
    assert cli("recommend", "refresh", "--only", "nothing").exit_code == 2
    # the tranche settings: the whole optimum at once, reviewed fortnightly
    whole = cli("recommend", "refresh", "--only", "commitments", "--downside", "0", "--review-days", "14")
    assert whole.exit_code == 0, whole.stderr
    bought = cli_json("recommend", "list", "--kind", "commitment_purchase", "--format", "json")["recommendations"]
    sp = next(r for r in bought if r["provider"] == "AWS")
    plan = cli_json("recommend", "show", sp["id"])["evidence"]["tranche_plan"]
    assert plan["strategy"] == "all at once" and plan["review_every_days"] == 14 and plan["downside"] == "0"
    assert sp["monthly_savings"] == plan["optimal_monthly_savings"] == "39.24"
    assert cli("recommend", "refresh", "--downside", "1").exit_code == 2
    util = cli_json("recommend", "commitments", "--start", "2026-06", "--format", "json")
    assert util["providers"][0]["provider"] == "AWS" and util["providers"][0]["coverage"] == "0.0000"
    assert cli("recommend", "commitments", "--start", "June").exit_code == 2


def test_finding_gone_on_the_same_data_expires(rt, tmp_path):
    """Nothing was done and no new data arrived, but the finding is no longer found (the settings changed):
    expired, with no realized savings."""
    ingest_rows(rt, tmp_path / "files", june())
    ledger.refresh(rt, {}, only=["waste"])
    summary = ledger.refresh(rt, {"nonprod_envs": ["test"]}, only=["waste"])
    assert summary["expired"] == 1 and summary["acted_on"] == 0
    vm = _by_kind(rt)["nonprod_schedule", AZ_VM]
    assert vm["status"] == "expired" and vm["realized_monthly_savings"] is None and vm["closed_at"]
    assert "thresholds" in vm["outcome"]["reason"]
    assert ledger.refresh(rt, {}, only=["waste"])["new"] == 1  # found again: a new open row, the old stays expired
    with rt.sessions() as s:
        assert ledger.accuracy(s)["kinds"] and len(ledger.list_recommendations(s, status="expired")[1]) == 1


def test_a_failing_metrics_source_spares_the_other_optimizers(rt, tmp_path, monkeypatch):
    """Rightsizing against an endpoint nothing listens on: the error is reported (CLI exit 1), commitments and waste
    still run, and nothing open is closed for it."""
    monkeypatch.setenv("CLOUDTALLY_DATA_DIR", str(rt.settings.data_dir))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    ingest_rows(rt, tmp_path / "files", june())
    from tests.helpers import cli

    result = cli("recommend", "refresh", "--metrics", "aws:endpoint_url=http://127.0.0.1:9,region=us-east-1")
    assert result.exit_code == 1 and "optimizer rightsizing" in result.stderr
    assert "found 5" in result.stdout


def test_after_ingest_step(rt, tmp_path, monkeypatch):
    """A configured source's run refreshes the ledger as its last after-ingest step when
    CLOUDTALLY_RECOMMEND_AFTER_INGEST is on, and records that it did not when off."""
    from app import sources
    from app.runs import run_source
    from tests.optimizer_fixtures import write_focus

    write_focus(tmp_path / "bills" / "june.csv", june())
    sources.add(rt, "bills", "focus", "focus", str(tmp_path / "bills"))
    monkeypatch.delenv("CLOUDTALLY_RECOMMEND_AFTER_INGEST", raising=False)
    run = run_source(rt, "bills", "cli")
    step = run.steps[-1]
    assert step["name"] == "recommendations" and step["status"] == "succeeded" and step["ran"] is False
    assert _by_kind(rt) == {}
    monkeypatch.setenv("CLOUDTALLY_RECOMMEND_AFTER_INGEST", "1")
    write_focus(tmp_path / "bills" / "july.csv", july())
    run = run_source(rt, "bills", "cli")
    step = run.steps[-1]
    # on data to 14 July: the NAT gateway is still idle and the dev VM still worth a small reservation; the IP is
    # gone, the VM runs weekdays only, and the Savings Plan already covers i-web
    assert step["status"] == "succeeded" and step["ran"] is True and step["found"] == step["new"] == 2
    assert set(_by_kind(rt)) == {("idle_network", "nat-1"), ("commitment_purchase", "Microsoft")}


def _covered(d: date, sp: str, level: Decimal) -> dict:
    """i-web's hour share covered by Savings Plan `sp` absorbing `level` an hour at 28% off, for day `d`."""
    return line(d, ResourceId="i-web", cost=str(level * 24 * Decimal("0.72")), ContractedCost=level * 24,
                ListCost=level * 24, BilledCost=Decimal(0), PricingCategory="Committed",
                CommitmentDiscountId=f"arn:aws:savingsplans::1:savingsplan/{sp}", CommitmentDiscountType="Savings Plan",
                CommitmentDiscountCategory="Spend", CommitmentDiscountStatus="Used")


def test_tranches_bought_in_turn_are_measured_apart(rt, tmp_path):
    """A laddered purchase in the ledger: week 1's tranche is bought (sp-1), the week after recommends the next
    tranche on what is still on demand, that one is bought too (sp-2). Each recommendation is acted on by its own
    commitment, and re-measuring the first does not count the second's savings."""
    ingest_rows(rt, tmp_path / "files", [line(d, ResourceId="i-web", cost="4.608") for d in JUNE])
    ledger.refresh(rt, {"lookback_days": 30}, only=["commitments"])
    [first] = _by_kind(rt).values()
    assert first["evidence"]["optimal_hourly_commitment"] == "0.138" and first["monthly_savings"] == "27.47"
    level1 = Decimal("0.1344")  # the tranche, 70% of the 0.192 an hour it optimally absorbs

    def july_rows(days: int, sp2: Decimal | None) -> list[dict]:
        rows = []
        for d in JULY[:days]:
            rows.append(_covered(d, "sp-1", level1))
            rest = Decimal("0.192") - level1
            if sp2 is not None and d >= date(2026, 7, 8):
                rows.append(_covered(d, "sp-2", sp2))
                rest -= sp2
            rows.append(line(d, ResourceId="i-web", cost=str(rest * 24)))
        return rows

    ingest_rows(rt, tmp_path / "files", july_rows(7, None))  # through Tuesday 7 July: the week of 6 July
    week2 = ledger.refresh(rt, {"lookback_days": 30}, only=["commitments"])
    assert week2["acted_on"] == 1 and week2["new"] == 1
    with rt.sessions() as s:
        rows = {r["status"]: r for r in ledger.list_recommendations(s, status=None)[1]}
    assert rows["acted_on"]["id"] == first["id"]
    assert rows["acted_on"]["outcome"]["commitments"] == ["arn:aws:savingsplans::1:savingsplan/sp-1"]
    assert rows["acted_on"]["realized_monthly_savings"] == "27.47"  # 0.1344 x 0.28 x 730: as predicted
    second = rows["open"]
    # the guard sees the last 3 days' 0.0576 an hour still on demand: the next tranche is 70% of it
    assert second["evidence"]["short_lookback_level"] == "0.06"
    assert second["evidence"]["optimal_hourly_commitment"] == "0.041"  # 0.0576 x 0.72
    assert second["evidence"]["hourly_commitment"] == "0.029"
    assert second["evidence"]["tranche_plan"]["review_period_start"] == "2026-07-06"

    ingest_rows(rt, tmp_path / "files", july_rows(14, Decimal("0.04032")))  # sp-2 bought on 8 July
    week3 = ledger.refresh(rt, {"lookback_days": 30}, only=["commitments"])
    assert week3["acted_on"] == 1 and week3["remeasured"] == 1  # the first tranche
    with rt.sessions() as s:
        rows = {r["id"]: r for r in ledger.list_recommendations(s, status="acted_on")[1]}
    assert rows[second["id"]]["outcome"]["commitments"] == ["arn:aws:savingsplans::1:savingsplan/sp-2"]
    assert rows[second["id"]]["realized_monthly_savings"] == "8.24"  # 0.04032 x 0.28 x 730
    assert rows[first["id"]]["realized_monthly_savings"] == "27.47"  # sp-1 alone, not sp-1 + sp-2


def test_a_reserved_instance_for_another_family_does_not_act_on_a_recommendation(rt, tmp_path):
    """Family-bound kinds (reserved instances, EC2 Instance Savings Plans) are recommended per instance family: a
    reservation bought for c6i acts on the c6i recommendation only, never on the m6i one in the same region."""
    import yaml

    kinds = [k for k in load_kinds() if k["name"] == "aws-ec2-reserved-instance"]
    table = tmp_path / "rates.yaml"
    table.write_text(yaml.safe_dump({"kinds": kinds}))
    config = {"lookback_days": 30, "rates": str(table)}

    def ec2(d, rid, itype, daily, **cols):
        return line(d, ResourceId=rid, cost=daily, RegionId="us-east-1",
                    ChargeDescription=f"On Demand Linux {itype} Instance Hour", **cols)

    ingest_rows(rt, tmp_path / "files", [r for d in JUNE for r in (ec2(d, "i-m", "m6i.xlarge", "4.608"),
                                                                   ec2(d, "i-c", "c6i.xlarge", "4.08"))])
    ledger.refresh(rt, config, only=["commitments"])
    june_recs = {r["evidence"]["instance_family"]: r for r in ledger_rows(rt)}
    assert set(june_recs) == {"m6i", "c6i"}
    # July: c6i runs under a reservation bought on 1 July; m6i stays on demand
    ri = "arn:aws:ec2:us-east-1:111111111111:reserved-instances/ri-c6i"
    july = [r for d in JULY for r in (
        ec2(d, "i-m", "m6i.xlarge", "4.608"),
        ec2(d, "i-c", "c6i.xlarge", "2.57", ContractedCost=Decimal("4.08"), ListCost=Decimal("4.08"),
            BilledCost=Decimal(0), PricingCategory="Committed", CommitmentDiscountId=ri,
            CommitmentDiscountType="Reserved Instance", CommitmentDiscountCategory="Usage",
            CommitmentDiscountStatus="Used"))]
    ingest_rows(rt, tmp_path / "files", july)
    ledger.refresh(rt, config, only=["commitments"])
    after = {r["id"]: r for r in ledger_rows(rt)}
    c6i, m6i = after[june_recs["c6i"]["id"]], after[june_recs["m6i"]["id"]]
    assert c6i["status"] == "acted_on" and c6i["outcome"]["commitments"] == [ri]
    assert m6i["status"] != "acted_on", m6i["outcome"]


def ledger_rows(rt) -> list[dict]:
    with rt.sessions() as s:
        return ledger.list_recommendations(s, status=None, limit=1000)[1]
