"""Control-database tables of ITFM (migration 0005): budgets, their amounts per version and period, and forecast
backtests per scope."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.control import Base, Money, UTCDateTime, new_id, utcnow


class Budget(Base):
    """A budget: a scope (any combination of the allocation dimensions team, service, cost_center and of provider
    and account; None = any), a period kind (month, quarter, fiscal_year) with the fiscal year's first month, a
    currency and a metric. Its amounts live in BudgetAmount, per version and period."""

    __tablename__ = "budgets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    team: Mapped[str | None] = mapped_column(String(200), index=True)
    service: Mapped[str | None] = mapped_column(String(200))
    cost_center: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(200))
    account: Mapped[str | None] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(20), nullable=False)  # month | quarter | fiscal_year
    fiscal_year_start: Mapped[int] = mapped_column(Integer, nullable=False, default=1)  # month 1-12
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    metric: Mapped[str] = mapped_column(String(20), nullable=False, default="EffectiveCost")
    # false: only costs billed in `currency` count; true: costs in other billing currencies count too, converted
    # with finance's monthly exchange rates (migration 0009)
    convert_currencies: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    amounts: Mapped[list[BudgetAmount]] = relationship(back_populates="budget", cascade="all, delete-orphan",
                                                        passive_deletes=True, order_by="BudgetAmount.period_start")


class BudgetAmount(Base):
    """One budget amount: a version (`plan`, `reforecast-1`, `reforecast-2`, ...) of one period [start, end)."""

    __tablename__ = "budget_amounts"
    __table_args__ = (UniqueConstraint("budget_id", "version", "period_start", name="uq_budget_amounts_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    budget_id: Mapped[str] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False, index=True)
    version: Mapped[str] = mapped_column(String(40), nullable=False)
    period_start: Mapped[date] = mapped_column(Date, nullable=False)
    period_end: Mapped[date] = mapped_column(Date, nullable=False)  # exclusive
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)

    budget: Mapped[Budget] = relationship(back_populates="amounts")


class ForecastBacktest(Base):
    """A rolling-origin backtest of the forecast of one scope (app.itfm.backtest): its accuracy figures and its
    windows, for the data that ended on `data_end`."""

    __tablename__ = "forecast_backtests"
    __table_args__ = (UniqueConstraint("scope_key", "currency", "metric", "data_end", name="uq_forecast_backtests_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope_key: Mapped[str] = mapped_column(String(1200), nullable=False, index=True)  # e.g. "team=payments"
    team: Mapped[str | None] = mapped_column(String(200), index=True)
    scope: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    metric: Mapped[str] = mapped_column(String(20), nullable=False)
    model: Mapped[str] = mapped_column(String(100), nullable=False)
    data_start: Mapped[date] = mapped_column(Date, nullable=False)
    data_end: Mapped[date] = mapped_column(Date, nullable=False)  # the last day the backtest saw
    horizon: Mapped[int] = mapped_column(Integer, nullable=False)
    windows: Mapped[int] = mapped_column(Integer, nullable=False)
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    metrics: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    details: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
