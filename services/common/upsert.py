"""INSERT .. ON CONFLICT DO NOTHING in the database's dialect (SQLite or PostgreSQL): the claim
that lets replicas race for one piece of work and only one of them win."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession


async def insert_if_absent(
    session: AsyncSession, table: Table, values: Mapping[str, Any], keys: Sequence[str], *,
    sqlite: bool,
) -> bool:
    """Insert one row unless a row with the same unique `keys` exists (possibly written by
    another replica at this moment). True when this call inserted it."""
    dialect_insert = sqlite_insert if sqlite else postgresql_insert
    statement = dialect_insert(table).values(**values).on_conflict_do_nothing(
        index_elements=list(keys))
    result = await session.exec(statement)  # type: ignore[call-overload]
    return bool(result.rowcount == 1)
