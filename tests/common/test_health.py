"""gRPC health (issue 10, item 7): NOT_SERVING while the service's database does not answer,
SERVING again when it does; SERVING while NATS is down (writes commit, their events wait in
the outbox); Health/List answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.nats_link import EmbeddedNats
from services.directory.server import SPEC
from tests.common.test_database_faults import retry_info
from tests.deploy.cluster import unsent_outbox
from tests.directory.factories import client_msg
from tests.harness import (
    ADMIN,
    POSTGRES_URL,
    channel,
    create_postgres_databases,
    drop_postgres_databases,
    eventually,
    make_settings,
    running,
)

SERVICE = "branch.directory.v1.DirectoryService"
IDENTITY = "branch.directory.v1.IdentityService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def status(ch: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_pb2_grpc.HealthStub(ch).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def test_list_names_every_service_with_its_status(tmp_path: Path, nats_url: str) -> None:
    async with running(SPEC, make_settings(tmp_path, nats_url)) as runner:
        async with channel(runner) as ch:
            reply = await health_pb2_grpc.HealthStub(ch).List(
                health_pb2.HealthListRequest(), timeout=5)
    assert {name: s.status for name, s in reply.statuses.items()} == {
        "": SERVING, SERVICE: SERVING, IDENTITY: SERVING, "liveness": SERVING}


async def test_serving_while_nats_is_down(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    settings = make_settings(tmp_path / "data", server.url, health_check_seconds=0.2)
    try:
        async with running(SPEC, settings) as runner:
            server.stop()
            async with channel(runner) as ch:
                await eventually(lambda: not runner.nats.connected, timeout=10)
                created = await DirectoryServiceStub(ch).CreateClient(
                    api.CreateClientRequest(client=client_msg()), metadata=ADMIN, timeout=10)
                assert created.id
                for _ in range(5):  # several health checks later
                    await asyncio.sleep(0.3)
                    assert await status(ch) == SERVING
                    assert await status(ch, SERVICE) == SERVING
                assert await unsent_outbox(runner.db) >= 1  # the event waits for NATS
            server.start()

            async def drained() -> bool:
                return await unsent_outbox(runner.db) == 0

            await eventually(drained, timeout=30)
    finally:
        server.stop()


@pytest.mark.postgres
async def test_not_serving_while_the_database_is_unreachable(tmp_path: Path,
                                                             nats_url: str) -> None:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured (BRANCH_TEST_POSTGRES_URL)")
    import asyncpg

    template = await create_postgres_databases()
    database = template.rpartition("/")[2].replace("{service}", "directory")
    admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    settings = make_settings(tmp_path, nats_url, template, health_check_seconds=0.2)
    try:
        async with running(SPEC, settings) as runner, channel(runner) as ch:
            assert await status(ch) == SERVING
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = $1", database)

            async def is_(wanted: int) -> bool:
                return await status(ch) == wanted and await status(ch, SERVICE) == wanted

            await eventually(lambda: is_(NOT_SERVING), timeout=20)
            assert await status(ch, "liveness") == SERVING  # no restart: it would not help
            with pytest.raises(grpc.aio.AioRpcError) as err:  # and calls say why
                await DirectoryServiceStub(ch).ListClients(api.ListClientsRequest(),
                                                           metadata=ADMIN, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert retry_info(err.value) is not None
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await eventually(lambda: is_(SERVING), timeout=20)
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
        await drop_postgres_databases(template)
