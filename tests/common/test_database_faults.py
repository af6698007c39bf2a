"""A database that drops connections or is locked answers UNAVAILABLE with a RetryInfo, never
INTERNAL, and leaves nothing half-written (issue 10, item 3)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import grpc
import pytest
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from google.rpc import error_details_pb2
from sqlalchemy import func
from sqlmodel import col, select

from services.common.models import OutboxEvent
from services.common.server import ServiceRunner
from services.directory.models import Client
from services.directory.server import SPEC
from tests.directory.factories import client_msg
from tests.harness import (
    ADMIN,
    POSTGRES_URL,
    channel,
    create_postgres_databases,
    drop_postgres_databases,
    make_settings,
    rpc_status_of,
    running,
    unique,
)

CREATED = "directory.client.created"


def retry_info(err: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo | None:
    status = rpc_status_of(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None


async def whole_writes(runner: ServiceRunner) -> tuple[set[str], int]:
    """Client ids in the database, and how many client.created events the outbox holds."""
    async with runner.db.read() as session:
        ids = set((await session.exec(select(Client.id))).all())
        events = (await session.exec(select(func.count()).select_from(OutboxEvent).where(
            col(OutboxEvent.ce_type).contains(CREATED)))).one()
    return ids, int(events)


async def test_sqlite_locked_by_another_process_is_unavailable(tmp_path: Path,
                                                               nats_url: str) -> None:
    settings = make_settings(tmp_path, nats_url, sqlite_busy_timeout_seconds=0.5)
    async with running(SPEC, settings) as runner:
        async with channel(runner) as ch:
            stub = DirectoryServiceStub(ch)
            first = await stub.CreateClient(api.CreateClientRequest(client=client_msg()),
                                            metadata=ADMIN)
            # another process writing, for a long time (a thread: this loop runs the service)
            other = sqlite3.connect(tmp_path / "directory.db", isolation_level=None,
                                    timeout=30, check_same_thread=False)
            await asyncio.to_thread(other.execute, "BEGIN EXCLUSIVE")
            try:
                message = client_msg()
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.CreateClient(api.CreateClientRequest(
                        client=message, request_id="locked-1"), metadata=ADMIN)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
                info = retry_info(err.value)
                assert info is not None and info.retry_delay.seconds >= 1
                # reads go on: WAL readers do not wait for the writer
                got = await stub.GetClient(api.GetClientRequest(id=first.id), metadata=ADMIN)
                assert got.id == first.id
            finally:
                await asyncio.to_thread(other.close)  # rolls back
            again = await stub.CreateClient(api.CreateClientRequest(
                client=message, request_id="locked-1"), metadata=ADMIN)
        ids, events = await whole_writes(runner)
    assert ids == {first.id, again.id} and events == 2


@pytest.mark.postgres
async def test_postgres_backends_terminated_under_load(tmp_path: Path, nats_url: str) -> None:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured (BRANCH_TEST_POSTGRES_URL)")
    import asyncpg

    template = await create_postgres_databases()
    database = template.rpartition("/")[2].replace("{service}", "directory")
    admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    outcomes: Counter[str] = Counter()
    created: set[str] = set()
    try:
        async with running(SPEC, make_settings(tmp_path, nats_url, template)) as runner:
            async with channel(runner) as ch:
                stub = DirectoryServiceStub(ch)
                seed = await stub.CreateClient(api.CreateClientRequest(client=client_msg()),
                                               metadata=ADMIN)
                created.add(seed.id)
                stop = asyncio.Event()

                async def load(worker: int) -> None:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        try:
                            if n % 2:
                                reply = await stub.CreateClient(api.CreateClientRequest(
                                    client=client_msg(), request_id=unique(f"w{worker}-")),
                                    metadata=ADMIN, timeout=20)
                                created.add(reply.id)
                            else:
                                await stub.ListClients(api.ListClientsRequest(page_size=50),
                                                       metadata=ADMIN, timeout=20)
                            outcomes["OK"] += 1
                        except grpc.aio.AioRpcError as err:
                            code = err.code().name
                            if code == "UNAVAILABLE" and retry_info(err) is None:
                                code = "UNAVAILABLE without RetryInfo"
                            outcomes[code] += 1

                async def terminate() -> None:
                    while not stop.is_set():
                        await asyncio.sleep(0.15)
                        await admin.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = $1 AND pid <> pg_backend_pid()", database)
                        outcomes["terminations"] += 1

                workers = [asyncio.create_task(load(i)) for i in range(8)]
                killer = asyncio.create_task(terminate())
                await asyncio.sleep(6)
                stop.set()
                await asyncio.gather(*workers, killer)
            assert await runner.db.reachable(10)
            ids, events = await whole_writes(runner)
    finally:
        await admin.close()
        await drop_postgres_databases(template)
    print(f"outcomes under terminated backends: {dict(outcomes)}")
    assert set(outcomes) - {"OK", "UNAVAILABLE", "terminations"} == set(), outcomes
    assert outcomes["UNAVAILABLE"] > 0 and outcomes["OK"] > 0, outcomes
    # every client whose creation answered OK is there, each with exactly one event
    assert created <= ids
    assert events == len(ids)


async def test_consumer_waits_for_a_locked_database_instead_of_parking(
        tmp_path: Path, nats_url: str) -> None:
    """An event whose handler meets a locked database is redelivered until the database is
    back, however many tries that takes; it is never parked for it."""
    from services.common import migrations
    from services.common.clock import SystemClock
    from services.common.consumer import Consumer, Subscription
    from services.common.db import Database
    from services.common.ids import new_id
    from services.common.nats_link import NatsLink
    from tests.common.test_consumer import applied, effect, publish
    from tests.harness import eventually

    path = tmp_path / "probe.db"
    db = Database(f"sqlite+aiosqlite:///{path}", service=unique("probe"), busy_timeout=0.3)
    await migrations.upgrade(db, SPEC.migrations)
    link = NatsLink(nats_url, db.service)
    await link.connect(attempts=3)
    topic = unique("t")
    subject = f"branch.probe.{topic}.happened"
    consumer = Consumer(db, link, SystemClock(), Subscription(topic, [subject], effect),
                        max_deliver=2)
    await consumer.ensure()
    task = asyncio.create_task(consumer.run())
    other = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    try:
        await asyncio.to_thread(other.execute, "BEGIN EXCLUSIVE")
        event_id = new_id()
        await publish(nats_url, subject, event_id)
        await eventually(lambda: consumer.redelivered >= 2, timeout=20)  # past max_deliver
        await asyncio.to_thread(other.close)
        await eventually(lambda: consumer.handled == 1, timeout=30)
        assert consumer.parked == 0
        assert await applied(db, event_id) == 1
    finally:
        await asyncio.to_thread(other.close)
        consumer.stop()
        await asyncio.wait_for(task, timeout=10)
        await link.close()
        await db.dispose()
