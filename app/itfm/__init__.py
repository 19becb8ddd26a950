"""ITFM: budgets, forecasts with measured accuracy, variance, chargeback statements and the TBM mapping.

`budget_statuses(rt, as_of=None)` is the entry point for budget alerts (app.alerts): the status of every budget in
its current period (see app.itfm.budgets.BudgetStatus).
"""
from __future__ import annotations

from datetime import date

from app.itfm.budgets import BudgetStatus

__all__ = ["BudgetStatus", "budget_statuses"]


def budget_statuses(rt, as_of: date | None = None, *, team: str | None = None) -> list[BudgetStatus]:
    """Every budget's status in its current period: the period holding the last day counted (the day before
    `as_of`; default: the warehouse's last day of data). Budgets without an amount in that period are left out.
    team: only budgets scoped to that team (a team key's view). Each status carries the budget id, its scope
    (team, service, cost_center, provider, account), period, currency, budget, actual, forecast EAC, % of budget
    actual and forecast, and the projected crossing date."""
    from app.itfm import budgets

    with rt.sessions() as session:
        _, found = budgets.list_budgets(session, team)
        if not found:
            return []
        with rt.warehouse.connect(read_only=True) as con:
            return budgets.statuses(con, found, as_of, rates=budgets.rates_from(session))
