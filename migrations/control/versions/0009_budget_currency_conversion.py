"""Budgets that count every billing currency (app/itfm/conversion.py): `convert_currencies` converts costs billed
in other currencies into the budget's currency with finance's monthly exchange rates. Existing budgets keep
counting only their own currency (false).

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('budgets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('convert_currencies', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('budgets', schema=None) as batch_op:
        batch_op.drop_column('convert_currencies')
