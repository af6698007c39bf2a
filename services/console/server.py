"""Wiring: the console served by uvicorn inside the running loop, sessions in the NATS KV
bucket. `branch up` starts one beside the gRPC services; `branch serve console` alone."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import uvicorn

from services.common.clock import Clock
from services.common.logs import get_logger
from services.common.settings import Settings
from services.console.app import build_app
from services.console.feed import InboxFeed
from services.console.sessions import NatsStore

log = get_logger("console")


class ConsoleRunner:
    """start() serves the console on settings.host:console_port (port 0: a free one, see
    .port); stop() ends it and closes its NATS connection and channels."""

    def __init__(self, settings: Settings, clock: Clock | None = None, port: int | None = None
                 ) -> None:
        self.settings = settings
        self.clock = clock
        self.requested_port = settings.console_port if port is None else port
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._nc: Any = None
        self.app: Any = None
        self.feed: InboxFeed | None = None

    @property
    def address(self) -> str:
        scheme = "https" if self.settings.tls_cert_file else "http"
        return f"{scheme}://{self.settings.host}:{self.port}/"

    async def start(self) -> None:
        store, self._nc = await NatsStore.connect(
            self.settings.nats_url, timedelta(seconds=self.settings.console_session_max_seconds),
            self.settings.nats_stream_replicas)
        self.app = build_app(self.settings, store, self.clock)
        self.feed = InboxFeed(self._nc)
        await self.feed.start()
        self.app.state.console.feed = self.feed
        tls: dict[str, Any] = {}
        if self.settings.tls_cert_file:
            tls = {"ssl_certfile": self.settings.tls_cert_file,
                   "ssl_keyfile": self.settings.tls_key_file}
        config = uvicorn.Config(self.app, host=self.settings.host, port=self.requested_port,
                                log_config=None, access_log=False, proxy_headers=True,
                                lifespan="off", **tls)
        self._server = uvicorn.Server(config)
        # the process's own handlers (branch up / serve) stop the console: uvicorn's stay out
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (port in use)
                raise RuntimeError("the console stopped while starting")
            await asyncio.sleep(0.02)
        sockets = [s for srv in self._server.servers for s in srv.sockets]
        self.port = sockets[0].getsockname()[1] if sockets else self.requested_port
        log.info("console serving", port=self.port)

    async def stop(self) -> None:
        if self.feed is not None:  # ends the event streams, which would hold uvicorn open
            await self.feed.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=self.settings.shutdown_grace_seconds)
        if self.app is not None:
            await self.app.state.console.backend.close()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), timeout=5)
