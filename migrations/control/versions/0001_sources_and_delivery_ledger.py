"""sources and delivery ledger

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# Exact money: NUMERIC where the database has it, text on SQLite (whose NUMERIC is a float).
MONEY = sa.Numeric(38, 18).with_variant(sa.String(60), "sqlite")


def upgrade() -> None:
    op.create_table('sources',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('format', sa.String(length=30), nullable=False),
    sa.Column('location', sa.Text(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('schedule', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('deliveries',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('source_id', sa.String(length=36), nullable=False),
    sa.Column('billing_period_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('billing_period_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('identity', sa.String(length=64), nullable=True),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('raw_rows', sa.Integer(), nullable=True),
    sa.Column('raw_billed_cost', MONEY, nullable=True),
    sa.Column('raw_effective_cost', MONEY, nullable=True),
    sa.Column('landed_rows', sa.Integer(), nullable=True),
    sa.Column('landed_billed_cost', MONEY, nullable=True),
    sa.Column('landed_effective_cost', MONEY, nullable=True),
    sa.Column('tolerated', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('replaced_by', sa.String(length=36), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['source_id'], ['sources.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deliveries_billing_period_start'), ['billing_period_start'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_identity'), ['identity'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_source_id'), ['source_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deliveries_status'))
        batch_op.drop_index(batch_op.f('ix_deliveries_source_id'))
        batch_op.drop_index(batch_op.f('ix_deliveries_identity'))
        batch_op.drop_index(batch_op.f('ix_deliveries_billing_period_start'))

    op.drop_table('deliveries')
    op.drop_table('sources')
