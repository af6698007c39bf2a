from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from services.common import migrations
from services.common.db import Database
from services.directory.models import Staff
from services.directory.server import SPEC


async def test_database_errors_carry_no_personal_data(tmp_path: Path, database_url: str) -> None:
    """Exception text reaches logs and parked-event reasons: no SQL parameters in it."""
    url = (database_url.replace("{service}", "directory") if database_url
           else f"sqlite+aiosqlite:///{tmp_path}/d.db")
    db = Database(url, service="directory")
    await migrations.upgrade(db, SPEC.migrations)
    now = datetime.now(UTC)
    async with db.transaction() as session:
        session.add(Staff(id="s1", employee_no="E1", display_name="Zhang San", roles="broker",
                          created_at=now))
    with pytest.raises(IntegrityError) as err:
        async with db.transaction() as session:
            session.add(Staff(id="s2", employee_no="E1", display_name="Li Si Private",
                              roles="broker", created_at=now))
    assert "Li Si Private" not in str(err.value)
    async with db.read() as session:
        assert (await session.get(Staff, "s2")) is None  # nothing half-written
    await db.dispose()


async def test_fetch_one_reads_committed_rows_without_a_session(tmp_path: Path,
                                                               database_url: str) -> None:
    """Database.fetch_one (the hot single-row read): a Core row with the ORM's types (aware
    UTC times), None when absent, the latest commit visible, and its threads gone after
    dispose (SQLite)."""
    from sqlalchemy import bindparam, select

    url = (database_url.replace("{service}", "directory") if database_url
           else f"sqlite+aiosqlite:///{tmp_path}/d.db")
    db = Database(url, service="directory")
    await migrations.upgrade(db, SPEC.migrations)
    table = Staff.__table__  # type: ignore[attr-defined]
    by_id = select(table).where(table.c.id == "s1")
    assert await db.fetch_one(by_id) is None
    now = datetime.now(UTC)
    async with db.transaction() as session:
        session.add(Staff(id="s1", employee_no="E1", display_name="x", roles="broker",
                          created_at=now))
    row = await db.fetch_one(by_id)
    assert row is not None and row.employee_no == "E1" and row.created_at == now
    assert row.created_at.tzinfo is not None
    async with db.transaction() as session:
        staff = await session.get(Staff, "s1")
        assert staff is not None
        staff.employee_no = "E2"
    assert (await db.fetch_one(by_id)).employee_no == "E2"  # type: ignore[union-attr]
    by_param = select(table.c.employee_no, table.c.created_at).where(
        table.c.id == bindparam("id"))
    row = await db.fetch_one(by_param, {"id": "s1"})
    assert row is not None and tuple(row) == ("E2", now)  # only the columns selected
    assert await db.fetch_one(by_param, {"id": "nobody"}) is None
    if database_url:  # PostgreSQL: its pooled connections dropped, the read still answers
        import asyncpg

        name = url.rpartition("/")[2]
        admin = await asyncpg.connect(url.rpartition("/")[0].replace(
            "postgresql+asyncpg://", "postgresql://") + "/postgres")
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
        finally:
            await admin.close()
        assert (await db.fetch_one(by_id)) is not None
    await db.dispose()
    assert db._sync_reads is None
