"""Trades stored as integers for StreamTrades: migration directory_0005 on a directory that
already has trades backfills exactly what services.common.units gives for the stored price,
fee and time (the conversion the stream used to do in its SELECT), and the trades stream in
the old order, ties included; a large import refreshes PostgreSQL's statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import holding_pb2
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text

from services.common.db import Database
from services.common.migrations import alembic_config
from services.common.units import micros, units
from services.directory import imports, service
from services.directory.server import SPEC
from tests.directory.factories import make_client
from tests.harness import ADMIN, channel, make_settings, running

CLIENT_ID = "00000000-0000-7000-8000-00000000c005"
CLIENT = ("INSERT INTO directory_client (id, account_no, display_name, phone, channel, tier, "
          "risk_tolerance, risk_assessed_on, operating_style, client_manager_id, broker_id, "
          "commission_rate, opened_on, status, created_at, updated_at) VALUES "
          f"('{CLIENT_ID}', '310000123499', '张三', "
          "'+86 130 8938 4935', 1, 1, 3, '2025-06-01', 0, '', '', '0.00025', '2024-01-02', 1, "
          "'2026-01-05 01:00:00+00:00', '2026-01-05 01:00:00+00:00')")
BASE = datetime(2024, 3, 5, 2, 0, tzinfo=UTC)
# id, price, fee, time, import_seq: the edges of the conversion (eight decimal places, the
# largest price, whole numbers, a microsecond before a whole second, the exchanges' first day)
# and ties of time: rows of one import in import order, rows imported before import order was
# kept (import_seq 0) by trade id
ROWS = [
    ("E1", "1688.88", "42.22", BASE, 3),
    ("E2", "0.00000001", "0", BASE + timedelta(microseconds=1), 4),
    ("E3", "12.3", "0.00000009", BASE + timedelta(seconds=1, microseconds=999_999), 5),
    ("E4", "92233720368.54775807", "5", BASE + timedelta(days=1), 6),
    ("E5", "7", "1.5", datetime(1990, 11, 30, 16, 0, tzinfo=UTC), 1),
    ("T9", "100", "0", BASE + timedelta(days=2), 8),
    ("T10", "101", "0", BASE + timedelta(days=2), 9),
    ("T1", "99.5", "0", BASE + timedelta(days=2), 7),
    *[(f"L{n:02d}", "1.01", "0.01", BASE + timedelta(days=3), 0) for n in range(12, 0, -1)],
]


def _stored_time(when: datetime, sqlite: bool) -> str | datetime:
    # as UtcDateTime stores it: naive UTC text with the microseconds on SQLite
    return f"{when:%Y-%m-%d %H:%M:%S}.{when.microsecond:06d}" if sqlite else when


async def test_backfill_gives_the_stream_its_integers(tmp_path: Path, nats_url: str,
                                                      database_url: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path, nats_url, database_url)
    db = Database(settings.database_url_for("directory"), service="directory")

    def before(sync_conn: Any) -> None:
        cfg = alembic_config(SPEC.migrations)
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "directory_0004")
        sync_conn.execute(text(CLIENT))
        sqlite = sync_conn.dialect.name == "sqlite"
        for tid, price, fee, when, seq in ROWS:
            sync_conn.execute(text(
                "INSERT INTO directory_trade (trade_id, client_id, ticker, side, quantity, "
                "price, fee, trade_time, import_seq) VALUES "
                "(:tid, :client, '600519', 1, 100, :price, :fee, :time, :seq)"),
                {"tid": tid, "client": CLIENT_ID, "price": price, "fee": fee,
                 "time": _stored_time(when, sqlite), "seq": seq})

    async with db.engine.connect() as conn:
        conn = await conn.execution_options(branch_write=True)
        async with conn.begin():
            await conn.run_sync(before)
    await db.dispose()

    # the service's start-up runs directory_0005
    monkeypatch.setattr(service, "TRADE_BATCH", 5)  # the ties span pages
    async with running(SPEC, settings) as runner, channel(runner) as ch:
        async with runner.ctx.db.read() as session:
            conn = await session.connection()
            stored = {row[0]: tuple(row[1:]) for row in (await conn.execute(text(
                "SELECT trade_id, price_units, fee_units, time_micros FROM directory_trade")))}
        assert stored == {tid: (units(price), units(fee), micros(when))
                          for tid, price, fee, when, _ in ROWS}
        # the hand-worked edges, against units() itself
        assert stored["E2"][:2] == (1, 0)
        assert stored["E3"][1:] == (9, micros(BASE) + 1_999_999)
        assert stored["E4"][0] == 2**63 - 1

        stub = DirectoryServiceStub(ch)
        batches = [b.columns async for b in stub.StreamTrades(
            api.StreamTradesRequest(client_id=CLIENT_ID), metadata=ADMIN)]
        got = [(tid, price, fee, when) for b in batches for tid, price, fee, when in zip(
            b.trade_ids, b.price_units, b.fee_units, b.trade_time_micros, strict=True)]
        assert [g[0] for g in got] == [
            "E5", "E1", "E2", "E3", "E4", "T1", "T9", "T10",
            *[f"L{n:02d}" for n in range(1, 13)]]
        assert all(stored[tid] == (price, fee, when) for tid, price, fee, when in got)


async def test_large_import_refreshes_postgres_statistics(
        tmp_path: Path, nats_url: str, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After an import of many trades the planner knows the table (else a fresh table's
    StreamTrades pages each read and sort every remaining trade of the client)."""
    if not database_url:
        pytest.skip("PostgreSQL only: SQLite's planner takes the index without statistics")
    monkeypatch.setattr(imports, "ANALYZE_AFTER", 3)
    settings = make_settings(tmp_path, nats_url, database_url)
    async with running(SPEC, settings) as runner, channel(runner) as ch:
        stub = DirectoryServiceStub(ch)
        client = await make_client(stub)

        async def analyzed() -> int:
            async with runner.ctx.db.read() as session:
                conn = await session.connection()
                return int((await conn.execute(text(
                    "SELECT analyze_count FROM pg_stat_user_tables "
                    "WHERE relname = 'directory_trade'"))).scalar_one())

        async def send(ids: list[str]) -> None:
            async def gen() -> AsyncIterator[api.ImportTradesRequest]:
                yield api.ImportTradesRequest(batch=[api.ImportRecord(trade=holding_pb2.Trade(
                    trade_id=tid, client_id=client.id, ticker="600519",
                    side=holding_pb2.SIDE_BUY, quantity=100, price="10", fee="0",
                    trade_time=Timestamp(seconds=1709604000))) for tid in ids])
            result = await stub.ImportTrades(gen(), metadata=ADMIN)
            assert result.accepted == len(ids)

        await send(["A1", "A2"])  # under the threshold: left to autovacuum
        assert await analyzed() == 0
        await send(["B1", "B2", "B3"])
        assert await analyzed() == 1
