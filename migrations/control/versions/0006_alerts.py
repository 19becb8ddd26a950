"""alerts: channels, routing rules, the delivery ledger (deliveries and their attempts); alert_events gain an
identity, a team scope, a status and a delivery outcome

Revision ID: 0006
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alert_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identity', sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column('team', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('severity', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('status', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('occurrences', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('routed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delivery_status', sa.String(length=20), nullable=True))
        batch_op.create_index('ix_alert_events_identity', ['identity'], unique=False)
        batch_op.create_index('ix_alert_events_unrouted', ['routed_at'], unique=False)

    op.create_table('alert_channels',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('finance', sa.Boolean(), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('target_hint', sa.String(length=300), nullable=False),
    sa.Column('secret', sa.Text(), nullable=True),
    sa.Column('quiet_hours', sa.JSON(), nullable=True),
    sa.Column('rate_limit_per_hour', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', name='uq_alert_channels_name'),
    )
    op.create_table('alert_rules',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kinds', sa.JSON(), nullable=False),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('mode', sa.String(length=20), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', name='uq_alert_rules_name'),
    )
    op.create_table('alert_deliveries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.String(length=36), nullable=True),
    sa.Column('channel_name', sa.String(length=200), nullable=False),
    sa.Column('channel_kind', sa.String(length=20), nullable=False),
    sa.Column('update', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deferred', sa.Text(), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['alert_events.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['channel_id'], ['alert_channels.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_alert_deliveries_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_alert_deliveries_event', ['event_id'], unique=False)
        batch_op.create_index('ix_alert_deliveries_channel', ['channel_id'], unique=False)
    op.create_table('alert_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('retry_after', sa.Float(), nullable=True),
    sa.Column('response', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['alert_deliveries.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('alert_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_alert_attempts_delivery', ['delivery_id'], unique=False)
        batch_op.create_index('ix_alert_attempts_started_at', ['started_at'], unique=False)


def downgrade() -> None:
    op.drop_table('alert_attempts')
    op.drop_table('alert_deliveries')
    op.drop_table('alert_rules')
    op.drop_table('alert_channels')
    with op.batch_alter_table('alert_events', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_events_unrouted')
        batch_op.drop_index('ix_alert_events_identity')
        for col in ('delivery_status', 'routed_at', 'resolved_at', 'updated_at', 'occurrences', 'status',
                    'severity', 'team', 'identity'):
            batch_op.drop_column(col)
