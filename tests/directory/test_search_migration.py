"""The search migration on a directory that already has staff and clients: rows written
before it (no search columns) are found after it, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from branch.directory.v1 import search_pb2 as spb
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from sqlalchemy import text

from services.common.db import Database
from services.common.migrations import alembic_config
from services.directory.server import SPEC
from tests.harness import ADMIN, channel, make_settings, running

STAFF = ("INSERT INTO directory_staff (id, employee_no, display_name, roles, active, "
         "team_lead_id, created_at) VALUES ('00000000-0000-7000-8000-000000000017', 'S0017', "
         "'刘洋', 'service_agent', true, '', '2026-01-05 01:00:00+00:00')")
CLIENT = ("INSERT INTO directory_client (id, account_no, display_name, phone, channel, tier, "
          "risk_tolerance, risk_assessed_on, operating_style, client_manager_id, broker_id, "
          "commission_rate, opened_on, status, created_at, updated_at) VALUES "
          "('00000000-0000-7000-8000-00000000c001', '310000123456', '张三', "
          "'+86 130 8938 4935', 1, 1, 3, '2025-06-01', 0, '', '', '0.00025', '2024-01-02', 1, "
          "'2026-01-05 01:00:00+00:00', '2026-01-05 01:00:00+00:00')")


async def test_existing_rows_are_backfilled(tmp_path: Path, nats_url: str,
                                            database_url: str) -> None:
    settings = make_settings(tmp_path, nats_url, database_url)
    db = Database(settings.database_url_for("directory"), service="directory")

    def before_search(sync_conn: Any) -> None:
        cfg = alembic_config(SPEC.migrations)
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "directory_0001")
        sync_conn.execute(text(STAFF))
        sync_conn.execute(text(CLIENT))

    async with db.engine.connect() as conn:
        conn = await conn.execution_options(branch_write=True)
        async with conn.begin():
            await conn.run_sync(before_search)
    await db.dispose()

    async with running(SPEC, settings) as runner, channel(runner) as ch:
        stub = DirectoryServiceStub(ch)
        for query in ("zs", "zhangsan", "130 8938 4935", "310000123456", "张三"):
            got = await stub.SearchClients(spb.SearchClientsRequest(query=query),
                                           metadata=ADMIN)
            assert [r.account_no for r in got.results] == ["310000123456"], query
        for query in ("S0017", "ly", "liuyang"):
            staff = await stub.SearchStaff(spb.SearchStaffRequest(query=query), metadata=ADMIN)
            assert [r.employee_no for r in staff.results] == ["S0017"], query
