"""Closing the NATS link while the server is gone (SIGTERM during a NATS outage) does not
raise: otherwise `branch up` stops the first service, then dies with a traceback leaving the
others' gRPC servers unstopped (nats-py's close writes to the dead socket: BrokenPipeError,
ConnectionResetError)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from services.common.nats_link import EmbeddedNats, NatsLink


async def test_close_while_nats_is_down(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    link = NatsLink(server.url, "svc")
    try:
        await link.connect(attempts=3)
        sub = await link.jetstream().pull_subscribe("branch.test.>", durable=None)
    finally:
        server.stop()

    stop = asyncio.Event()

    async def pull() -> None:  # as a consumer does: fetches keep writing to the socket
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await sub.fetch(1, timeout=0.5)
            await asyncio.sleep(0.05)

    puller = asyncio.create_task(pull())
    try:
        await asyncio.sleep(1.5)  # the link has seen the disconnect and is reconnecting
        await asyncio.wait_for(link.close(drain_seconds=2), timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(puller, timeout=10)
    assert link.nc is not None and link.nc.is_closed
