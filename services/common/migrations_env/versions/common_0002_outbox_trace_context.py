"""outbox trace context: the W3C trace context of the call that wrote each event

Revision ID: common_0002
Revises: common_0001
Create Date: 2026-12-01 03:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'common_0002'
down_revision: str | None = 'common_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trace_context',
                                      sqlmodel.sql.sqltypes.AutoString(length=600),
                                      nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_column('trace_context')
