"""relay plan pending: the note consumer records the plan, the planner writes the tasks

Revision ID: vip_0002
Revises: vip_0001
Create Date: 2026-11-27 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'vip_0002'
down_revision: str | None = 'vip_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('vip_relay_plan', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tickers', sqlmodel.sql.sqltypes.AutoString(length=2000),
                                      nullable=False, server_default=''))
        batch_op.add_column(sa.Column('pending', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_vip_relay_plan_pending'), ['pending'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('vip_relay_plan', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vip_relay_plan_pending'))
        batch_op.drop_column('pending')
        batch_op.drop_column('tickers')
