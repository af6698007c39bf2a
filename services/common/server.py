"""Service bootstrap: database and migrations, NATS, outbox relay, consumers, timers, and the
grpc.aio server with the interceptor, health and reflection. Every service is a ServiceSpec."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from branch.common.v1 import audit_pb2, audit_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.exc import IntegrityError

from services.common import housekeeping, metrics, migrations
from services.common.audit import AUDIT_ACCESS, AuditServicer
from services.common.auth import Access, AccessTable, TokenVerifier
from services.common.clock import Clock, SystemClock
from services.common.consumer import Consumer, Subscription
from services.common.db import Database
from services.common.events import OutboxRelay
from services.common.identity import (
    DIRECTORY_SOURCE,
    DirectoryKeys,
    DirectoryServiceTokens,
    LocalServiceTokens,
    ServiceTokens,
    SigningSide,
    keep_renewed,
    trust_configured_keys,
)
from services.common.interceptors import ServiceInterceptor
from services.common.logs import get_logger
from services.common.nats_link import NatsLink
from services.common.settings import Settings
from services.common.standing import StandingBook

AUDIT_SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name


@dataclass
class ServiceContext:
    """What a service's code gets: its settings, database, clock and peers."""

    name: str
    settings: Settings
    db: Database
    clock: Clock
    # this service's own short-lived token (renewed in the background) and the verifier
    tokens: ServiceTokens
    verifier: TokenVerifier
    nats: NatsLink
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def channel(self, peer: str) -> grpc.aio.Channel:
        """A channel to another service, calling with this service's own token."""
        if peer not in self._channels:
            tokens = self.tokens
            creds = grpc.metadata_call_credentials(
                lambda _ctx, cb: cb((("authorization", f"Bearer {tokens.current()}"),), None)
            )
            self._channels[peer] = grpc.aio.secure_channel(
                self.settings.address(peer),
                grpc.composite_channel_credentials(grpc.local_channel_credentials(), creds),
            )
        return self._channels[peer]

    async def close_channels(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()


Registrar = Callable[[grpc.aio.Server, ServiceContext], None]
Task = Callable[[], Awaitable[None]]


@dataclass
class ServiceSpec:
    name: str
    # Full gRPC service names, for health and reflection.
    grpc_services: Sequence[str]
    access: dict[str, Access]
    register: Registrar
    migrations: Path
    subscriptions: Callable[[ServiceContext], list[Subscription]] = lambda ctx: []
    # Long-running coroutines (timers); each must return when its stop event is set.
    background: Callable[[ServiceContext, asyncio.Event], list[Task]] = lambda ctx, stop: []
    on_start: Callable[[ServiceContext], Awaitable[None]] | None = None
    # The directory only: its key store (loaded after migrations), which signs every token.
    signing: Callable[[ServiceContext], Awaitable[SigningSide]] | None = None


class ServiceRunner:
    def __init__(
        self,
        spec: ServiceSpec,
        settings: Settings,
        *,
        clock: Clock | None = None,
        port: int | None = None,
        run_consumers: bool = True,
        service_tokens: ServiceTokens | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.clock = clock or SystemClock()
        self._port = settings.port(spec.name) if port is None else port
        self.port = 0
        self.run_consumers = run_consumers
        self.log = get_logger(spec.name)
        self.db = Database(settings.database_url_for(spec.name), service=spec.name)
        self.nats = NatsLink(settings.nats_url, spec.name, settings.nats_stream_replicas)
        # identity: verify with the directory's public keys (and any configured ones), refuse
        # by each staff member's standing, call peers with a token the directory issued
        self.verifier = TokenVerifier()
        trust_configured_keys(self.verifier, settings)
        self.standing = StandingBook(self.nats, on_keys_changed=self._keys_changed)
        self.keys = DirectoryKeys(spec.name, settings, self.verifier)
        self.signing: SigningSide | None = None
        self._own_tokens = service_tokens is not None
        # tokens carry wall-clock times (verifiers check them against the wall clock), so
        # they never use an injected clock
        tokens = service_tokens or DirectoryServiceTokens(spec.name, settings, SystemClock())
        self.ctx = ServiceContext(
            name=spec.name,
            settings=settings,
            db=self.db,
            clock=self.clock,
            tokens=tokens,
            verifier=self.verifier,
            nats=self.nats,
        )
        self.relay = OutboxRelay(self.db, self.nats, self.clock, settings.outbox_poll_seconds)
        self.consumers: list[Consumer] = []
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_background = asyncio.Event()

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    async def start(self) -> None:
        await migrations.upgrade(self.db, self.spec.migrations)
        await self.nats.connect()
        await self._start_identity()
        if self.spec.on_start:
            await self._seed()
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.spec.name}-outbox"))
        self._tasks.append(asyncio.create_task(
            housekeeping.run(self.db, self.clock, self._stop_background),
            name=f"{self.spec.name}-housekeeping"))
        if self.run_consumers:
            for sub in self.spec.subscriptions(self.ctx):
                consumer = Consumer(
                    self.db, self.nats, self.clock, sub,
                    max_deliver=self.settings.consumer_max_deliver,
                    ack_wait=self.settings.consumer_ack_wait_seconds,
                )
                await consumer.ensure()
                self.consumers.append(consumer)
                self._tasks.append(asyncio.create_task(consumer.run(), name=consumer.durable))
            for job in self.spec.background(self.ctx, self._stop_background):
                self._tasks.append(asyncio.create_task(job()))
        if self.settings.metrics_port:
            self._tasks.append(asyncio.create_task(metrics.run_sampler(
                self.spec.name, self.relay, self.consumers, self.nats, self._stop_background
            ), name=f"{self.spec.name}-metrics"))
        access = AccessTable({**self.spec.access, **AUDIT_ACCESS})
        self.server = grpc.aio.server(
            interceptors=[
                ServiceInterceptor(
                    service=self.spec.name,
                    access=access,
                    verifier=self.verifier,
                    db=self.db,
                    clock=self.clock,
                )
            ],
            options=[("grpc.so_reuseport", 0)],
        )
        self.spec.register(self.server, self.ctx)
        audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(self.db), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [*self.spec.grpc_services, AUDIT_SERVICE_NAME, health.SERVICE_NAME,
                 reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        self.port = self.server.add_insecure_port(f"{self.settings.host}:{self._port}")
        if self.port == 0:
            raise RuntimeError(f"{self.spec.name}: cannot bind {self.settings.host}:{self._port}")
        await self.server.start()
        for name in ["", *self.spec.grpc_services]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.log.info("service started", port=self.port)

    async def _start_identity(self) -> None:
        """Load every staff member's standing before serving; the directory loads its keys
        and signs its own service token, the others fetch keys and tokens from it."""
        await self.standing.start()
        self.verifier.standing = self.standing.get
        if self.spec.signing is not None:
            self.signing = await self.spec.signing(self.ctx)
            self.verifier.set_keys(DIRECTORY_SOURCE, self.signing.jwks())
            side = self.signing
            if not self._own_tokens:
                self.ctx.tokens = LocalServiceTokens(
                    self.spec.name, side.signer, SystemClock(),
                    timedelta(seconds=self.settings.token_ttl_seconds))
            self._tasks.append(asyncio.create_task(
                self._reload_keys_periodically(), name=f"{self.spec.name}-keys"))

            lock, last = asyncio.Lock(), [0.0]

            async def reload_now(kid: str) -> None:
                """As DirectoryKeys.fetch_for: at most one database read a second."""
                async with lock:
                    if kid in self.verifier.key_ids:
                        return
                    wait = 1.0 - (time.monotonic() - last[0])
                    if wait > 0:
                        await asyncio.sleep(wait)
                    last[0] = time.monotonic()
                    await side.reload()
                    self.verifier.set_keys(DIRECTORY_SOURCE, side.jwks())

            self.verifier.refresh = reload_now
        else:
            self.verifier.refresh = self.keys.fetch_for
            with contextlib.suppress(Exception):  # the directory may start later
                await self.keys.fetch()
            self._tasks.append(asyncio.create_task(
                self.keys.run(self._stop_background), name=f"{self.spec.name}-keys"))
        with contextlib.suppress(Exception):
            await self.ctx.tokens.renew()
        self._tasks.append(asyncio.create_task(
            keep_renewed(self.ctx.tokens, self._stop_background, self.spec.name),
            name=f"{self.spec.name}-service-token"))

    async def _reload_keys_periodically(self) -> None:
        """A rotation made while NATS was away still reaches this replica."""
        while not self._stop_background.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_background.wait(),
                                       timeout=self.settings.keys_refresh_seconds)
            if not self._stop_background.is_set():
                self._keys_changed()

    def _keys_changed(self) -> None:
        """The directory's hint that signing keys changed: fetch (or reload) them now."""
        if self.signing is None:
            self.keys.request_refresh()
            return
        side = self.signing

        async def reload() -> None:
            try:
                await side.reload()
                self.verifier.set_keys(DIRECTORY_SOURCE, side.jwks())
            except Exception:
                self.log.error("signing keys not reloaded", exc_info=True)

        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(reload()))

    async def _seed(self) -> None:
        """on_start hooks seed rows idempotently (insert what is missing). Replicas starting
        together may race to insert the same row: the loser looks again and finds it."""
        assert self.spec.on_start is not None
        for attempt in range(3):
            try:
                await self.spec.on_start(self.ctx)
                return
            except IntegrityError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))

    async def stop(self, grace: float | None = None) -> None:
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        for name in ["", *self.spec.grpc_services]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.server is not None:
            await self.server.stop(grace)  # stops accepting, lets in-flight calls finish
        self._stop_background.set()
        for consumer in self.consumers:
            consumer.stop()
        self.relay.stop()
        try:
            await asyncio.wait_for(self.relay.flush_once(), timeout=min(grace, 5))
        except Exception:
            self.log.warning("outbox not flushed at shutdown; rows stay for the next start")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.ctx.close_channels()
        await self.standing.stop()
        await self.nats.close()
        await self.db.dispose()
        self.log.info("service stopped")


def default_token_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.token_ttl_seconds)
