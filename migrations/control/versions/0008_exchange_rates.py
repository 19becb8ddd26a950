"""Exchange rates (app/currency.py): what one unit of a currency is worth in another for one month, set by finance
and used by cost queries that ask for one reporting currency. Also joins the three branches that grew from 0004
(budgets 0005, alerts 0006, recommendations 0007) into one head.

Revision ID: 0008
Revises: 0005, 0006, 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = ('0005', '0006', '0007')
branch_labels = None
depends_on = None

MONEY = sa.Numeric(38, 18).with_variant(sa.String(60), "sqlite")


def upgrade() -> None:
    op.create_table('exchange_rates',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('to_currency', sa.String(length=3), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('rate', MONEY, nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('currency', 'to_currency', 'month', name='uq_exchange_rates_pair_month'),
    )
    with op.batch_alter_table('exchange_rates', schema=None) as batch_op:
        batch_op.create_index('ix_exchange_rates_to_currency', ['to_currency'], unique=False)


def downgrade() -> None:
    op.drop_table('exchange_rates')
