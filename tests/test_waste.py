"""Billing-only waste findings (issue 12, item 3): 100% recall and no false positives on labelled lines, each
threshold tested at its edge, savings priced at the observed effective rate."""
from __future__ import annotations

from decimal import Decimal

import pytest

from optimizers import waste
from tests.optimizer_fixtures import demo_rt, ingest_rows, waste_lines  # noqa: F401 - fixtures


@pytest.fixture(scope="module")
def waste_rt(tmp_path_factory):
    from tests.conftest import make_runtime

    root = tmp_path_factory.mktemp("waste")
    rt = make_runtime(root / "data")
    rows, labels = waste_lines()
    ingest_rows(rt, root / "files", rows)
    yield rt, rows, labels
    rt.close()


def test_recall_and_precision_on_labelled_lines(waste_rt):
    rt, rows, labels = waste_rt
    with rt.warehouse.connect(read_only=True) as con:
        found = waste.find(con, {})
    got = {(r.resource_id, r.kind) for r in found}
    assert got == set((rid, kind) for rid, kind in labels.items())  # every label found, nothing else
    assert len(found) == len(got)


def test_savings_are_the_observed_cost_scaled_to_a_month(waste_rt):
    rt, rows, labels = waste_rt
    with rt.warehouse.connect(read_only=True) as con:
        found = {r.resource_id: r for r in waste.find(con, {})}
    window_start = "2026-06-17"
    for rid, rec in found.items():
        cost = sum((r["EffectiveCost"] for r in rows if r["ResourceId"] == rid
                    and r["ChargePeriodStart"][:10] >= window_start), Decimal(0))
        assert Decimal(rec.evidence["window_cost"]) == cost
        share = {"gp2_to_gp3": Decimal("0.2"), "nonprod_schedule": 1 - Decimal(60) / 168}.get(rec.kind, Decimal(1))
        assert rec.monthly_savings == (cost * share * 730 / (14 * 24)).quantize(Decimal("0.01"))
        assert rec.monthly_cost == (cost * 730 / (14 * 24)).quantize(Decimal("0.01"))
        assert str(rec.data_through) == "2026-06-30" and rec.assumptions
    ip = found["eipalloc-idle"]
    assert ip.monthly_savings == (Decimal("0.12") * 14 * 730 / 336).quantize(Decimal("0.01")) == Decimal("3.65")


def test_thresholds_move_the_edges(waste_rt):
    rt, _, labels = waste_rt
    with rt.warehouse.connect(read_only=True) as con:
        strict = {(r.resource_id, r.kind) for r in waste.find(con, {"snapshot_days": 91, "idle_network_quantity": 0,
                                                                     "always_on_ratio": "0.81"})}
        loose = {(r.resource_id, r.kind) for r in waste.find(con, {"always_on_ratio": "0.79",
                                                                    "idle_network_quantity": 5})}
    assert ("snap-90d", "old_snapshot") not in strict and ("nat-1gb", "idle_network") not in strict
    assert not any(rid.endswith("vm-staging-80") for rid, _ in strict)
    assert any(rid.endswith("vm-test-79") for rid, _ in loose) and ("nat-busy", "idle_network") in loose


def test_demo_findings(demo_rt):
    with demo_rt.warehouse.connect(read_only=True) as con:
        found = waste.find(con, {})
    # the demo's always-on dev resources: Azure's two dev AKS clusters, the GCP search project's Cloud SQL and GKE;
    # volumes no VM is billed beside (the billing proxy): the GCP search project's two disks (europe-west1 has no
    # Compute Engine VM) and one platform EBS volume whose availability zone none of the platform VMs landed in
    kinds = sorted((r.provider, r.kind) for r in found)
    assert kinds == [("AWS", "unattached_volume"), ("Google Cloud", "nonprod_schedule"),
                     ("Google Cloud", "nonprod_schedule"), ("Google Cloud", "unattached_volume"),
                     ("Google Cloud", "unattached_volume"), ("Microsoft", "nonprod_schedule"),
                     ("Microsoft", "nonprod_schedule")]
    assert all(r.monthly_savings > 0 for r in found)
