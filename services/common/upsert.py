"""Insert-if-missing and insert-or-update of one row, each as ONE statement.

A "read, then insert if missing" loses to another writer inserting the same key between the
read and the insert (two replicas consuming the same event, a request racing the event that
announced its client): on PostgreSQL the loser's duplicate key surfaced as INTERNAL, or made
an event consumer take the whole event for a replica's duplicate. INSERT .. ON CONFLICT
waits for the other writer and then does nothing or updates, in SQLite and PostgreSQL alike.
Every local copy of another service's row (clients, roster entries, relay plans) and every
settings-like row keyed by a natural key is written through these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

# either dialect's INSERT: both have .excluded, on_conflict_do_nothing and on_conflict_do_update
Insert = PostgresqlInsert | SqliteInsert


def dialect_insert(dialect: str, model: Any) -> Insert:
    """INSERT into the model's table in the named dialect ("sqlite" or "postgresql"), the
    kind of statement that has on_conflict_do_nothing / on_conflict_do_update."""
    table = getattr(model, "__table__", model)
    if dialect == "postgresql":
        return postgresql_insert(table)
    return sqlite_insert(table)


async def session_insert(session: AsyncSession, model: Any) -> Insert:
    """dialect_insert for the database the session talks to."""
    return dialect_insert((await session.connection()).dialect.name, model)


async def insert_missing(session: AsyncSession, model: Any, row: Mapping[str, Any],
                         key: Sequence[str]) -> bool:
    """INSERT row .. ON CONFLICT (key) DO NOTHING, in the session's transaction.

    Returns True when this statement inserted the row, False when a row with that key was
    there already (or was being inserted by another transaction, which it waited for)."""
    table = getattr(model, "__table__", model)
    stmt = (await session_insert(session, model)).values(**row)
    returning = stmt.on_conflict_do_nothing(index_elements=list(key)).returning(
        *(table.c[k] for k in key))
    result = await session.exec(returning)
    return result.first() is not None


async def upsert(session: AsyncSession, model: Any, row: Mapping[str, Any],
                 key: Sequence[str], *, update: Iterable[str] | None = None,
                 keep_if_null: Iterable[str] = ()) -> None:
    """INSERT row .. ON CONFLICT (key) DO UPDATE, in the session's transaction.

    update: the columns a present row takes from `row` (default: every column of row but the
    key); keep_if_null: of those, the ones a NULL in `row` leaves as they are."""
    table = getattr(model, "__table__", model)
    stmt = (await session_insert(session, model)).values(**row)
    columns = [c for c in (row if update is None else update) if c not in key]
    keep = set(keep_if_null)
    set_ = {c: (func.coalesce(stmt.excluded[c], table.c[c]) if c in keep else stmt.excluded[c])
            for c in columns}
    if not set_:
        await insert_missing(session, model, row, key)
        return
    await session.exec(stmt.on_conflict_do_update(
        index_elements=list(key), set_=set_))
