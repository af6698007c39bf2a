"""Two directory writers inserting the same missing row at once (SQLite, and PostgreSQL when
configured): the bootstrap admin (two replicas starting together) and a corporate action
named by two imports. Each was read, found missing and inserted by both writers; the
second failed on the duplicate key. Now each is one INSERT .. ON CONFLICT statement."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import migrations
from services.common.db import Database
from services.directory import corporate_actions
from services.directory.models import CorporateAction, Staff
from services.directory.server import SPEC
from services.directory.service import admin_row
from tests.harness import make_settings, overlapped

NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path, nats_url: str, database_url: str) -> AsyncIterator[Database]:
    url = make_settings(tmp_path, nats_url, database_url).database_url_for("directory")
    database = Database(url, service="directory")
    await migrations.upgrade(database, SPEC.migrations)
    yield database
    await database.dispose()


async def test_two_replicas_create_the_bootstrap_admin(db: Database) -> None:
    async with db.transaction() as s:
        await s.exec(delete(Staff).where(col(Staff.employee_no) == "ADMIN"))
    await overlapped(db, lambda s: admin_row(s, NOW))
    async with db.read() as s:
        admins = (await s.exec(select(Staff).where(Staff.employee_no == "ADMIN"))).all()
    assert [a.roles for a in admins] == ["admin"]
    assert admins[0].search_text  # the name search finds the admin like any staff member


async def test_two_imports_store_the_same_new_corporate_action(db: Database) -> None:
    bonus = ca_pb2.CorporateAction(ticker="600519", ex_date="2026-02-27",
                                   kind=ca_pb2.CORPORATE_ACTION_KIND_BONUS,
                                   shares_per_10="3")
    v, values = corporate_actions.check_action(bonus, NOW)
    assert not v
    stored: list[bool] = []

    async def write(s: AsyncSession) -> None:
        stored.append(await corporate_actions.upsert(s, bonus, values, NOW))

    await overlapped(db, write)
    async with db.read() as s:
        rows = (await s.exec(select(CorporateAction))).all()
    assert [(r.ticker, r.shares_per_10) for r in rows] == [("600519", values["shares_per_10"])]
    assert len(stored) == 2
