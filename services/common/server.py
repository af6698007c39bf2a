"""Service bootstrap: database and migrations, NATS, outbox relay, consumers, timers, and the
grpc.aio server with the interceptor, health and reflection. Every service is a ServiceSpec."""

from __future__ import annotations

import asyncio
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

from services.common import housekeeping, metrics, migrations, tracing
from services.common.audit import AUDIT_ACCESS, AuditServicer
from services.common.auth import Access, AccessTable, TokenSigner
from services.common.clock import Clock, SystemClock
from services.common.consumer import Consumer, Subscription
from services.common.db import Database
from services.common.events import OutboxRelay
from services.common.interceptors import ServiceInterceptor
from services.common.logs import get_logger
from services.common.nats_link import NatsLink
from services.common.settings import Settings

# the longest stop() waits for the background tasks it cancelled
STOP_TASKS_SECONDS = 10.0
AUDIT_SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name


@dataclass
class ServiceContext:
    """What a service's code gets: its settings, database, clock and peers."""

    name: str
    settings: Settings
    db: Database
    clock: Clock
    signer: TokenSigner
    nats: NatsLink
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def channel(self, peer: str) -> grpc.aio.Channel:
        """A channel to another service, calling with this service's own token."""
        if peer not in self._channels:
            token = self.signer.service_token(self.name, self.clock.now())
            creds = grpc.metadata_call_credentials(
                lambda _ctx, cb: cb((("authorization", f"Bearer {token}"),), None)
            )
            self._channels[peer] = grpc.aio.secure_channel(
                self.settings.address(peer),
                grpc.composite_channel_credentials(grpc.local_channel_credentials(), creds),
                interceptors=tracing.channel_interceptors(),
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


class ServiceRunner:
    def __init__(
        self,
        spec: ServiceSpec,
        settings: Settings,
        *,
        clock: Clock | None = None,
        port: int | None = None,
        run_consumers: bool = True,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.clock = clock or SystemClock()
        self._port = settings.port(spec.name) if port is None else port
        self.port = 0
        self.run_consumers = run_consumers
        self.log = get_logger(spec.name)
        tracing.configure_tracing(spec.name, settings.otlp_endpoint)
        self.db = Database(settings.database_url_for(spec.name), service=spec.name)
        self.signer = TokenSigner(settings.signing_key())
        self.nats = NatsLink(settings.nats_url, spec.name, settings.nats_stream_replicas)
        self.ctx = ServiceContext(
            name=spec.name,
            settings=settings,
            db=self.db,
            clock=self.clock,
            signer=self.signer,
            nats=self.nats,
        )
        self.relay = OutboxRelay(self.db, self.nats, self.clock, settings.outbox_poll_seconds)
        self.consumers: list[Consumer] = []
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer_tasks: list[tuple[Consumer, asyncio.Task[None]]] = []
        self._stop_background = asyncio.Event()

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    async def start(self) -> None:
        await migrations.upgrade(self.db, self.spec.migrations)
        await self.nats.connect()
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
                task = asyncio.create_task(consumer.run(), name=consumer.durable)
                self._consumer_tasks.append((consumer, task))
                self._tasks.append(task)
            for job in self.spec.background(self.ctx, self._stop_background):
                self._tasks.append(asyncio.create_task(job()))
        if self.settings.metrics_port:
            self._tasks.append(asyncio.create_task(metrics.run_sampler(
                self.spec.name, self.relay, self.consumers, self.nats, self._stop_background
            ), name=f"{self.spec.name}-metrics"))
        access = AccessTable({**self.spec.access, **AUDIT_ACCESS})
        self.server = grpc.aio.server(
            interceptors=[
                tracing.server_interceptor(),  # first: its span is current in the next
                ServiceInterceptor(
                    service=self.spec.name,
                    access=access,
                    signer=self.signer,
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
        # Consumers finish the event in hand (Consumer.close) rather than being cancelled
        # inside a handler's transaction, whose cleanup can wait forever on a connection being
        # closed. Everything is bounded: a task that hangs must not keep the process alive.
        await asyncio.gather(*(consumer.close(task, STOP_TASKS_SECONDS)
                               for consumer, task in self._consumer_tasks))
        self._consumer_tasks.clear()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, hung = await asyncio.wait(self._tasks, timeout=STOP_TASKS_SECONDS)
            for task in hung:
                self.log.warning("task did not stop in time", task=task.get_name())
        self._tasks.clear()
        await self.ctx.close_channels()
        await self.nats.close()
        await self.db.dispose()
        self.log.info("service stopped")


def default_token_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.token_ttl_seconds)
