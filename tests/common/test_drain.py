"""SIGTERM drains: every call a `branch serve` process accepted before the signal finishes
within BRANCH_SHUTDOWN_GRACE_SECONDS; then the process exits 0. Issue 10, item 2: 50 slow
ListClients calls, each on its own connection, SIGTERM 0.5 s after they were sent."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import grpc
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from tests.common.serve_process import health_of, serve_env, serving
from tests.directory.factories import client_msg
from tests.harness import ADMIN

CLIENTS = 600
CALLS = 50


async def _list_all(address: str, ready: asyncio.Event) -> str:
    async with grpc.aio.insecure_channel(address) as ch:
        await ch.channel_ready()
        await ready.wait()
        try:
            reply = await DirectoryServiceStub(ch).ListClients(
                api.ListClientsRequest(page_size=1000), metadata=ADMIN, timeout=60)
        except grpc.aio.AioRpcError as err:
            return err.code().name
        return "OK" if len(reply.clients) == CLIENTS else f"OK with {len(reply.clients)}"


async def test_sigterm_lets_every_accepted_call_finish(tmp_path: Path, nats_url: str) -> None:
    env = serve_env(tmp_path / "data", nats_url, BRANCH_SHUTDOWN_GRACE_SECONDS="20")
    async with serving("directory", env, tmp_path / "directory.log") as (proc, address):
        async with grpc.aio.insecure_channel(address) as ch:
            stub = DirectoryServiceStub(ch)
            sem = asyncio.Semaphore(20)

            async def create() -> None:
                async with sem:
                    await stub.CreateClient(api.CreateClientRequest(client=client_msg()),
                                            metadata=ADMIN, timeout=30)

            await asyncio.gather(*(create() for _ in range(CLIENTS)))
        ready = asyncio.Event()
        calls = [asyncio.create_task(_list_all(address, ready)) for _ in range(CALLS)]
        await asyncio.sleep(1)  # every channel connected
        ready.set()
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert await health_of(address) in ("NOT_SERVING", "UNAVAILABLE")
        outcomes = Counter(await asyncio.gather(*calls))
        code = await asyncio.wait_for(proc.wait(), timeout=40)
    assert outcomes == Counter({"OK": CALLS}), (tmp_path / "directory.log").read_text()[-3000:]
    assert code == 0
