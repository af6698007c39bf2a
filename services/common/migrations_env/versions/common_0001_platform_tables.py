"""platform tables: outbox, processed events, audit, idempotency

Every service's database has these tables; they are defined once, in this branch
(services/common/migrations_env/versions), which each service's first revision depends on.

A database made before this branch existed already has them (its service's 0001 created
them): each table is created only where absent, so such a database upgrades with its rows
untouched.

Revision ID: common_0001
Revises:
Create Date: 2026-12-01 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.common.db

revision: str = 'common_0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ('common',)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if 'audit_record' not in present:
        op.create_table('audit_record',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('staff_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('resource', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('time', services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('audit_record', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_audit_record_method'), ['method'], unique=False)
            batch_op.create_index(batch_op.f('ix_audit_record_staff_id'), ['staff_id'], unique=False)

    if 'idempotency_record' not in present:
        op.create_table('idempotency_record',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('staff_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('response', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('staff_id', 'method', 'request_id', name='uq_idempotency_record')
        )

    if 'outbox_event' not in present:
        op.create_table('outbox_event',
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('ce_type', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('ce_subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('data_schema', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column('sent_at', services.common.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('seq'),
        sa.UniqueConstraint('event_id')
        )
        with op.batch_alter_table('outbox_event', schema=None) as batch_op:
            batch_op.create_index('ix_outbox_event_unsent', ['sent_at', 'seq'], unique=False)

    if 'processed_event' not in present:
        op.create_table('processed_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('consumer', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('handled_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('consumer', 'event_id', name='uq_processed_event')
        )


def downgrade() -> None:
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_event_unsent')
    with op.batch_alter_table('audit_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_record_staff_id'))
        batch_op.drop_index(batch_op.f('ix_audit_record_method'))
    for table in ('processed_event', 'outbox_event', 'idempotency_record', 'audit_record'):
        op.drop_table(table)
