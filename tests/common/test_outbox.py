"""The outbox keeps events while NATS is down and publishes each once when it is back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.common.nats_link import EmbeddedNats
from services.common.server import ServiceRunner
from services.directory.server import SPEC
from tests.directory.factories import client_msg
from tests.harness import ADMIN, channel, collect_events, eventually, make_settings, running


async def test_events_made_while_nats_is_down_arrive_once(tmp_path: Path,
                                                          database_url: str) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        settings = make_settings(tmp_path, server.url, database_url)
        async with running(SPEC, settings) as runner, channel(runner) as ch:
            stub = DirectoryServiceStub(ch)
            before = await stub.CreateClient(api.CreateClientRequest(client=client_msg()),
                                             metadata=ADMIN)
            await eventually(_drained(runner), timeout=10)
            server.stop()
            made = [
                await stub.CreateClient(api.CreateClientRequest(client=client_msg()),
                                        metadata=ADMIN)
                for _ in range(5)
            ]
            backlog, _ = await runner.relay.backlog()
            assert backlog == 5  # the changes committed; their events wait in the outbox
            server.start()  # same port, same store: the stream and its history survive
            await eventually(_drained(runner), timeout=20)
        msgs = await collect_events(server.url, "branch.directory.client.created", count=10,
                                    timeout=3)
        ids = [m.headers["ce-subject"] for m in msgs]
        assert sorted(ids) == sorted([before.id, *[c.id for c in made]])
        assert len(ids) == len(set(ids)) == 6
    finally:
        server.stop()


async def _unsent(runner: ServiceRunner) -> bool:
    backlog, _ = await runner.relay.backlog()
    return backlog == 0


def _drained(runner: ServiceRunner) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await _unsent(runner)
    return check
