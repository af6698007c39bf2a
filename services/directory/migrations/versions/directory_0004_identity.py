"""identity: signing keys, passwords, refresh tokens

Revision ID: directory_0004
Revises: directory_people_search
Create Date: 2026-12-01 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.common.db

revision: str = 'directory_0004'
down_revision: str | None = 'directory_people_search'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('directory_signing_key',
    sa.Column('kid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('private_pem', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.Column('public_jwk', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.Column('created_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', services.common.db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kid')
    )
    op.create_table('directory_credential',
    sa.Column('staff_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('must_change', sa.Boolean(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('locked_until', services.common.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('changed_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['directory_staff.id'], ),
    sa.PrimaryKeyConstraint('staff_id')
    )
    op.create_table('directory_refresh_token',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('family_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('staff_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('created_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('used_at', services.common.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', services.common.db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('directory_refresh_token', schema=None) as batch_op:
        batch_op.create_index('ix_directory_refresh_token_family', ['family_id'], unique=False)
        batch_op.create_index('ix_directory_refresh_token_staff', ['staff_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('directory_refresh_token', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_refresh_token_staff')
        batch_op.drop_index('ix_directory_refresh_token_family')
    op.drop_table('directory_refresh_token')
    op.drop_table('directory_credential')
    op.drop_table('directory_signing_key')
