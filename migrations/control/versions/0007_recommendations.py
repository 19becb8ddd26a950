"""Recommendation ledger (optimizers/ledger.py): every recommendation with its inputs and predicted monthly savings,
whether it was acted on, and the savings realized since

Revision ID: 0007
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0004'
branch_labels = None
depends_on = None

MONEY = sa.Numeric(38, 18).with_variant(sa.String(60), "sqlite")


def upgrade() -> None:
    op.create_table('recommendations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('category', sa.String(length=20), nullable=False),
    sa.Column('provider', sa.String(length=100), nullable=False),
    sa.Column('currency', sa.String(length=10), nullable=False),
    sa.Column('billing_account_id', sa.String(length=200), nullable=True),
    sa.Column('sub_account_id', sa.String(length=200), nullable=True),
    sa.Column('resource_id', sa.Text(), nullable=True),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('monthly_savings', MONEY, nullable=False),
    sa.Column('monthly_cost', MONEY, nullable=False),
    sa.Column('first_monthly_savings', MONEY, nullable=False),
    sa.Column('under_commitment', sa.Boolean(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('assumptions', sa.JSON(), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('data_through', sa.String(length=10), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.Column('realized_monthly_savings', MONEY, nullable=True),
    sa.Column('measured_through', sa.String(length=10), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.create_index('ix_recommendations_status_kind', ['status', 'kind'], unique=False)
        batch_op.create_index('ix_recommendations_team', ['team'], unique=False)
        batch_op.create_index('ix_recommendations_key', ['key'], unique=False)


def downgrade() -> None:
    op.drop_table('recommendations')
