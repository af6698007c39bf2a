from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select as sm_select

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


async def test_write_commits_everything_or_nothing(tmp_path: Path, database_url: str) -> None:
    """Database.write: the queued statements commit together,
    the after-commit hooks see the work's notes; a unique violation in the last statement
    leaves none of the earlier ones written and runs no hook."""
    from sqlalchemy import insert, select

    from services.common.db import Committed, Write

    url = (database_url.replace("{service}", "directory") if database_url
           else f"sqlite+aiosqlite:///{tmp_path}/d.db")
    db = Database(url, service="directory")
    await migrations.upgrade(db, SPEC.migrations)
    seen: list[dict[object, object]] = []

    def hook(done: Committed) -> None:
        seen.append(dict(done.info))

    db.after_commit_hooks.append(hook)
    table = Staff.__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC)

    def staff(i: int, employee_no: str) -> dict[str, object]:
        return {"id": f"s{i}", "employee_no": employee_no, "display_name": f"n{i}",
                "roles": "broker", "active": True, "team_lead_id": "", "search_text": "",
                "created_at": now, "deactivated_at": None}

    def two(w: Write) -> str:
        assert w.conn.execute(select(table.c.id)).first() is None  # reads see the database
        w.add(insert(table).values(staff(1, "E1")))
        w.add(insert(table).values(staff(2, "E2")))
        w.info["note"] = True
        return "done"

    assert await db.write(two) == "done"
    assert seen == [{"note": True}]

    def clash(w: Write) -> None:
        w.add(insert(table).values(staff(3, "E3")))
        w.add(insert(table).values(staff(4, "E1")))  # E1 is taken

    with pytest.raises(IntegrityError):
        await db.write(clash)
    async with db.read() as session:
        ids = {s.id for s in (await session.exec(sm_select(Staff))).all()}
    assert ids == {"s1", "s2"} and len(seen) == 1
    await db.dispose()
    assert db._sync_writes is None


@pytest.mark.postgres
async def test_writes_after_the_database_dropped_its_connections(database_url: str) -> None:
    """PostgreSQL: every pooled connection terminated (a database restart); the next write,
    by a session or by Database.write, is on a new connection, not an error (the checkout
    ping finds the dead one)."""
    import asyncpg
    from sqlalchemy import insert

    from services.common.db import Write

    if not database_url:
        pytest.skip("PostgreSQL only")
    url = database_url.replace("{service}", "directory")
    db = Database(url, service="directory", pool_size=2)
    await migrations.upgrade(db, SPEC.migrations)
    table = Staff.__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC)

    def add(i: int) -> Callable[[Write], None]:
        def work(w: Write) -> None:
            w.add(insert(table).values(id=f"w{i}", employee_no=f"W{i}", display_name="x",
                                       roles="broker", active=True, team_lead_id="",
                                       search_text="", created_at=now))
        return work

    async def session_write(i: int) -> None:
        async with db.transaction() as session:
            session.add(Staff(id=f"t{i}", employee_no=f"T{i}", display_name="x",
                              roles="broker", created_at=now))

    await asyncio.gather(session_write(1), db.write(add(1)))  # two pooled connections
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(url.rpartition("/")[0].replace(
        "postgresql+asyncpg://", "postgresql://") + "/postgres")
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
    finally:
        await admin.close()
    assert killed >= 1
    await session_write(2)
    await db.write(add(2))
    async with db.read() as session:
        ids = {s.id for s in (await session.exec(sm_select(Staff))).all()}
    assert {"t1", "t2", "w1", "w2"} <= ids
    await db.dispose()
