"""no truncate: the append-only tables refuse TRUNCATE on PostgreSQL too

The first migration's triggers refuse UPDATE and DELETE row by row; PostgreSQL's TRUNCATE
fires no row trigger, so it would have emptied the distribution ledger. SQLite has no
TRUNCATE (its DELETE without WHERE fires the row trigger).

Revision ID: research_0002
Revises: research_0001
Create Date: 2026-11-27 01:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'research_0002'
down_revision: str | None = 'research_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("research_ledger", "research_note_revision", "research_note_review")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION research_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
