"""allocation rule versions

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('allocation_rule_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('rule_count', sa.Integer(), nullable=False),
    sa.Column('periods', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('allocation_rule_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_allocation_rule_versions_active'), ['active'], unique=False)
        batch_op.create_index(batch_op.f('ix_allocation_rule_versions_checksum'), ['checksum'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('allocation_rule_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_allocation_rule_versions_checksum'))
        batch_op.drop_index(batch_op.f('ix_allocation_rule_versions_active'))
    op.drop_table('allocation_rule_versions')
