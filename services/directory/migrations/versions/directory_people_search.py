"""search: client and staff search columns and indexes, assignment grants

Revision ID: directory_people_search
Revises: directory_0003
Create Date: 2026-12-01 02:53:45.625587

Adds search_text (name|pinyin|initials) to clients and staff and phone_normalized to clients,
backfilled from the existing rows with the same code that keeps them current
(services/directory/search.py); indexes them with pg_trgm on PostgreSQL and an FTS5 trigram
table (kept by triggers) on SQLite; adds the assignment grant table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import services.common.db
from services.directory.search import SQLITE_CLIENT_FTS, normalize_phone, search_text

revision: str = 'directory_people_search'
down_revision: str | None = 'directory_0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# names by substring, account numbers and ids by prefix, phones and ids by suffix
PG_TRIGRAM_INDEXES = [
    ("ix_directory_client_search", "directory_client", "search_text"),
    ("ix_directory_client_account_trgm", "directory_client", "account_no"),
    ("ix_directory_client_phone_trgm", "directory_client", "phone_normalized"),
    ("ix_directory_client_id_trgm", "directory_client", "id"),
    ("ix_directory_staff_search", "directory_staff", "search_text"),
]
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER {SQLITE_CLIENT_FTS}_ai AFTER INSERT ON directory_client BEGIN
      INSERT INTO {SQLITE_CLIENT_FTS}(id, search_text, phone)
      VALUES (new.id, new.search_text, new.phone_normalized);
    END""",
    f"""CREATE TRIGGER {SQLITE_CLIENT_FTS}_ad AFTER DELETE ON directory_client BEGIN
      DELETE FROM {SQLITE_CLIENT_FTS} WHERE id = old.id;
    END""",
    f"""CREATE TRIGGER {SQLITE_CLIENT_FTS}_au
    AFTER UPDATE OF search_text, phone_normalized ON directory_client BEGIN
      DELETE FROM {SQLITE_CLIENT_FTS} WHERE id = old.id;
      INSERT INTO {SQLITE_CLIENT_FTS}(id, search_text, phone)
      VALUES (new.id, new.search_text, new.phone_normalized);
    END""",
]


def upgrade() -> None:
    op.create_table('directory_assignment_grant',
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('source_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('staff_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('granted_at', services.common.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', services.common.db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('source', 'source_id', 'staff_id')
    )
    with op.batch_alter_table('directory_assignment_grant', schema=None) as batch_op:
        batch_op.create_index('ix_directory_grant_staff_client', ['staff_id', 'client_id'],
                              unique=False)

    with op.batch_alter_table('directory_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_normalized',
                                      sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=False, server_default=''))
        batch_op.add_column(sa.Column('search_text', sqlmodel.sql.sqltypes.AutoString(length=400),
                                      nullable=False, server_default=''))
        batch_op.create_index('ix_directory_client_phone', ['phone_normalized'], unique=False)

    with op.batch_alter_table('directory_staff', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sqlmodel.sql.sqltypes.AutoString(length=400),
                                      nullable=False, server_default=''))

    _backfill()
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, table, column in PG_TRIGRAM_INDEXES:
            op.execute(f"CREATE INDEX {name} ON {table} USING gin ({column} gin_trgm_ops)")
    elif bind.dialect.name == "sqlite":
        # every column trigram-indexed: names (substring), phones and ids (suffix)
        op.execute(f"CREATE VIRTUAL TABLE {SQLITE_CLIENT_FTS} USING fts5("
                   "id, search_text, phone, tokenize='trigram')")
        op.execute(f"INSERT INTO {SQLITE_CLIENT_FTS}(id, search_text, phone) "
                   "SELECT id, search_text, phone_normalized FROM directory_client")
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)


def _backfill() -> None:
    bind = op.get_bind()
    client = sa.table('directory_client', sa.column('id', sa.String),
                      sa.column('display_name', sa.String), sa.column('phone', sa.String),
                      sa.column('phone_normalized', sa.String),
                      sa.column('search_text', sa.String))
    rows = bind.execute(sa.select(client.c.id, client.c.display_name, client.c.phone)).all()
    for row in rows:
        bind.execute(client.update().where(client.c.id == row.id).values(
            search_text=search_text(row.display_name),
            phone_normalized=normalize_phone(row.phone)))
    staff = sa.table('directory_staff', sa.column('id', sa.String),
                     sa.column('display_name', sa.String), sa.column('search_text', sa.String))
    for row in bind.execute(sa.select(staff.c.id, staff.c.display_name)).all():
        bind.execute(staff.update().where(staff.c.id == row.id).values(
            search_text=search_text(row.display_name)))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, _, _ in PG_TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    elif bind.dialect.name == "sqlite":
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {SQLITE_CLIENT_FTS}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {SQLITE_CLIENT_FTS}")
    with op.batch_alter_table('directory_staff', schema=None) as batch_op:
        batch_op.drop_column('search_text')

    with op.batch_alter_table('directory_client', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_client_phone')
        batch_op.drop_column('search_text')
        batch_op.drop_column('phone_normalized')

    with op.batch_alter_table('directory_assignment_grant', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_grant_staff_client')

    op.drop_table('directory_assignment_grant')
