"""ITFM: budgets, budget amounts per version and period, forecast backtests per scope

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# Exact money: NUMERIC where the database has it, text on SQLite (whose NUMERIC is a float).
MONEY = sa.Numeric(38, 18).with_variant(sa.String(60), "sqlite")


def upgrade() -> None:
    op.create_table('budgets',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('service', sa.String(length=200), nullable=True),
    sa.Column('cost_center', sa.String(length=200), nullable=True),
    sa.Column('provider', sa.String(length=200), nullable=True),
    sa.Column('account', sa.String(length=200), nullable=True),
    sa.Column('period', sa.String(length=20), nullable=False),
    sa.Column('fiscal_year_start', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('metric', sa.String(length=20), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    )
    op.create_index('ix_budgets_team', 'budgets', ['team'], unique=False)
    op.create_table('budget_amounts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('budget_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('amount', MONEY, nullable=False),
    sa.ForeignKeyConstraint(['budget_id'], ['budgets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('budget_id', 'version', 'period_start', name='uq_budget_amounts_key'),
    )
    op.create_index('ix_budget_amounts_budget_id', 'budget_amounts', ['budget_id'], unique=False)
    op.create_table('forecast_backtests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('scope_key', sa.String(length=1200), nullable=False),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('metric', sa.String(length=20), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('data_start', sa.Date(), nullable=False),
    sa.Column('data_end', sa.Date(), nullable=False),
    sa.Column('horizon', sa.Integer(), nullable=False),
    sa.Column('windows', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scope_key', 'currency', 'metric', 'data_end', name='uq_forecast_backtests_key'),
    )
    op.create_index('ix_forecast_backtests_scope_key', 'forecast_backtests', ['scope_key'], unique=False)
    op.create_index('ix_forecast_backtests_team', 'forecast_backtests', ['team'], unique=False)


def downgrade() -> None:
    op.drop_table('forecast_backtests')
    op.drop_table('budget_amounts')
    op.drop_index('ix_budgets_team', table_name='budgets')
    op.drop_table('budgets')
