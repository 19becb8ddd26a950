"""Optimizers: each reads the warehouse and returns recommendations worth money, with evidence and assumptions.

The protocol is small on purpose. An optimizer is a callable `find(con, config) -> list[Recommendation]` over a
read-only DuckDB connection to the warehouse; `optimizers.ledger.refresh` runs them all, stores what they find
in the control database (table `recommendations`) and checks earlier recommendations against newer data.

One module per kind:
- `optimizers.commitments`: commitment purchase recommendations (the newsvendor quantile, with the
  short-lookback guard), with `optimizers.commitment_kinds` (the rate table) and
  `optimizers.commitment_utilization` (utilization and coverage from the FOCUS commitment columns);
- `optimizers.waste`: billing-only findings (idle public IPs, unattached volumes, old snapshots, idle NAT gateways
  and load balancers, gp2 -> gp3, non-production resources running 24x7);
- `optimizers.rightsizing` with `optimizers.metrics.{aws,azure,gcp}`: idle, over-provisioned and
  previous-generation VMs from CPU metrics;
- `optimizers.ledger`: the recommendation ledger and its measured accuracy.

Money: every amount a recommendation carries is a Decimal. Sums over bill lines are DECIMAL sums in DuckDB; a
monthly figure is such a sum scaled to a 730-hour month in Decimal arithmetic and quantized to the cent. Models
(the commitment quantile, metric percentiles) may compute in float; their money outputs are quantized Decimals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Protocol

import duckdb

HOURS_PER_MONTH = Decimal(730)  # AWS's and Azure's month for commitments and monthly estimates
CENT = Decimal("0.01")


def money(value: Decimal | float | int | str) -> Decimal:
    """A money amount quantized to the cent (half up). Floats go through their shortest text, never binary."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    return Decimal(value).quantize(CENT, ROUND_HALF_UP)


def monthly(window_cost: Decimal, hours: int | Decimal) -> Decimal:
    """A cost observed over `hours` hours, as a 730-hour month, to the cent (exact Decimal arithmetic)."""
    if not hours:
        return Decimal("0.00")
    return money(Decimal(window_cost) * HOURS_PER_MONTH / Decimal(hours))


def jsonable(value: Any) -> Any:
    """Evidence as JSON: Decimals as strings (exact), dates as ISO text."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


@dataclass
class Recommendation:
    """One action worth money. `key` identifies the same finding across refreshes (kind, provider, account,
    resource or commitment scope), so the ledger updates instead of duplicating it."""

    kind: str  # e.g. commitment_purchase, idle_public_ip, nonprod_schedule, rightsize_downsize
    category: str  # commitment | waste | rightsizing
    key: str
    provider: str
    currency: str
    action: str  # what to do, in one sentence
    monthly_savings: Decimal  # predicted, at the effective rate observed in the bill
    monthly_cost: Decimal  # what the lines the recommendation acts on cost per month now (the baseline)
    billing_account_id: str | None = None
    sub_account_id: str | None = None
    resource_id: str | None = None
    region: str | None = None
    under_commitment: bool = False  # part of its usage is covered by a commitment discount
    data_through: date | None = None  # last day of data the finding used
    evidence: dict = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    team: str | None = None  # the team its lines are allocated to (most EffectiveCost), filled by the ledger

    def to_json(self) -> dict:
        return jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


def window_floor(con: duckdb.DuckDBPyConnection, days: int) -> str:
    """SQL literal: the earliest start of any provider's last `days` days of usage. Queries filter on it as a
    constant, which DuckDB pushes into the scan (zone maps), before the exact per-provider window."""
    from app.warehouse import COST_TABLE

    lo = con.execute(f"SELECT min(hi) FROM (SELECT max(\"ChargePeriodEnd\") AS hi FROM {COST_TABLE} "
                     "WHERE \"ChargeCategory\" = 'Usage' GROUP BY \"ProviderName\")").fetchall()[0][0]
    if lo is None:
        return "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
    return f"TIMESTAMPTZ '{(lo - timedelta(days=int(days))).isoformat(sep=' ')}'"


class Optimizer(Protocol):
    def __call__(self, con: duckdb.DuckDBPyConnection, config: dict) -> list[Recommendation]: ...


def registry() -> dict[str, Callable[[duckdb.DuckDBPyConnection, dict], list[Recommendation]]]:
    """The optimizers `recommend refresh` runs, by name (imported lazily: the CLI starts fast)."""
    from optimizers import commitments, rightsizing, waste

    return {"commitments": commitments.find, "waste": waste.find, "rightsizing": rightsizing.find}
