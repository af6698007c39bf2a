"""The platform tables (outbox, processed events, audit, idempotency) live in one Alembic
branch owned by services/common. A fresh database gets them from it; a database made by the
migrations as they were before (each service's 0001 created them itself) upgrades with its
rows kept. tests/common/legacy_migrations/ holds those earlier revisions, frozen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from services.common import migrations
from services.common.clock import FakeClock
from services.common.db import Database
from services.common.events import OutboxRelay
from services.common.models import COMMON_TABLES
from services.common.nats_link import NatsLink
from services.common.server import ServiceSpec
from services.directory.server import SPEC as DIRECTORY
from services.vip.server import SPEC as VIP

LEGACY = Path(__file__).parent / "legacy_migrations"
NOW = datetime(2026, 11, 30, 16, 5, tzinfo=UTC)  # 00:05 in Shanghai, just after midnight


def _url(database_url: str, tmp_path: Path, service: str) -> str:
    if database_url:
        return database_url.replace("{service}", service)
    return f"sqlite+aiosqlite:///{tmp_path}/{service}.db"


async def _legacy_database(url: str, service: str) -> Database:
    """A database made by the earlier migrations alone, as deployed before this change."""
    db = Database(url, service=service)

    def run(sync_conn: Connection) -> None:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(migrations.ENV_DIR))
        cfg.set_main_option("version_locations", str(LEGACY / service))
        cfg.set_main_option("path_separator", "os")
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "head")

    async with db.engine.connect() as conn:
        conn = await conn.execution_options(branch_write=True)
        async with conn.begin():
            await conn.run_sync(run)
    return db


async def _rows(db: Database, sql: str) -> list[tuple[Any, ...]]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


async def _heads(db: Database) -> set[str]:
    return {r[0] for r in await _rows(db, "SELECT version_num FROM alembic_version")}


async def _columns(db: Database, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(
            lambda c: {col["name"] for col in inspect(c).get_columns(table)})


async def _platform_drift(db: Database) -> list[Any]:
    """Differences between the models and the database, platform tables only."""
    async with db.engine.connect() as conn:
        def diff(sync_conn: Connection) -> list[Any]:
            ctx = MigrationContext.configure(sync_conn, opts={
                "include_object": lambda obj, name, type_, r, c:
                    type_ != "table" or name in COMMON_TABLES,
                "compare_type": True})
            drift: list[Any] = compare_metadata(ctx, SQLModel.metadata)
            return drift
        return await conn.run_sync(diff)


@pytest.mark.parametrize("spec", [DIRECTORY, VIP], ids=["directory", "vip"])
async def test_fresh_database_gets_the_platform_tables_from_the_common_branch(
        tmp_path: Path, database_url: str, spec: ServiceSpec) -> None:
    db = Database(_url(database_url, tmp_path, spec.name), service=spec.name)
    try:
        await migrations.upgrade(db, spec.migrations)
        heads = await _heads(db)
        assert "common_0002" in heads
        assert any(h.startswith(f"{spec.name}_") for h in heads)
        assert "trace_context" in await _columns(db, "outbox_event")
        assert await _platform_drift(db) == []
        await migrations.upgrade(db, spec.migrations)  # a second start changes nothing
        assert await _heads(db) == heads
    finally:
        await db.dispose()


@pytest.mark.parametrize("spec", [DIRECTORY, VIP], ids=["directory", "vip"])
async def test_database_made_by_the_earlier_migrations_upgrades_with_its_rows(
        tmp_path: Path, database_url: str, spec: ServiceSpec) -> None:
    db = await _legacy_database(_url(database_url, tmp_path, spec.name), spec.name)
    try:
        assert "common_0001" not in await _heads(db)
        assert "trace_context" not in await _columns(db, "outbox_event")
        async with db.engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO outbox_event (event_id, subject, ce_type, ce_subject, data_schema,"
                " data, created_at, sent_at) VALUES ('e1', 'branch.x.y.z', 'branch.x.y.z',"
                " 'c1', 'branch.x.v1.Y', :data, :now, NULL)"), {"data": b"\x08\x01", "now": NOW})
            await conn.execute(text(
                "INSERT INTO processed_event (consumer, event_id, handled_at)"
                " VALUES ('vip-notes', 'e0', :now)"), {"now": NOW})
            await conn.execute(text(
                "INSERT INTO audit_record (id, staff_id, method, resource, request_id, time,"
                " outcome) VALUES ('a1', 's1', 'CreateClient', 'c1', 'r1', :now, 'OK')"),
                {"now": NOW})
            await conn.execute(text(
                "INSERT INTO idempotency_record (staff_id, method, request_id, response,"
                " created_at) VALUES ('s1', 'CreateClient', 'r1', :resp, :now)"),
                {"resp": b"\x0a\x02c1", "now": NOW})

        await migrations.upgrade(db, spec.migrations)

        heads = await _heads(db)
        assert "common_0002" in heads
        assert any(h.startswith(f"{spec.name}_") for h in heads)
        assert await _rows(db, "SELECT event_id, ce_subject, data, sent_at, trace_context"
                               " FROM outbox_event") == [("e1", "c1", b"\x08\x01", None, "")]
        assert await _rows(db, "SELECT consumer, event_id FROM processed_event") == [
            ("vip-notes", "e0")]
        assert await _rows(db, "SELECT id, staff_id, outcome FROM audit_record") == [
            ("a1", "s1", "OK")]
        assert await _rows(db, "SELECT request_id, response FROM idempotency_record") == [
            ("r1", b"\x0a\x02c1")]
        assert await _platform_drift(db) == []
        # the relay still finds the unsent row, and publishes it with the columns it has now
        relay = OutboxRelay(db, NatsLink("nats://127.0.0.1:1", spec.name), FakeClock(NOW), 1.0)
        assert (await relay.backlog())[0] == 1
        await migrations.upgrade(db, spec.migrations)
        assert await _heads(db) == heads
    finally:
        await db.dispose()
