"""Service bootstrap: database and migrations, NATS, outbox relay, consumers, timers, and the
grpc.aio server with the interceptor, health and reflection. Every service is a ServiceSpec."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from branch.common.v1 import audit_pb2, audit_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.common import channels, housekeeping, metrics, migrations, tracing
from services.common.audit import AUDIT_ACCESS, AuditServicer
from services.common.auth import Access, AccessTable, TokenVerifier
from services.common.calendar import BranchCalendar
from services.common.calendar_sync import CHANGED as CALENDAR_CHANGED
from services.common.calendar_sync import FIRST_TRY_SECONDS, CalendarSync, Loader
from services.common.clock import Clock, SystemClock
from services.common.consumer import Consumer, Subscription
from services.common.db import Database, is_unavailable
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

# the longest stop() waits for the background tasks it cancelled
STOP_TASKS_SECONDS = 10.0
AUDIT_SERVICE_NAME = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name

# Drain after SIGTERM: the queue of calls is empty once none has been taken for QUIET_SECONDS
# and QUIET_TURNS sleeps of QUIET_TICK.
QUIET_SECONDS = 0.25
QUIET_TURNS = 5
QUIET_TICK = 0.05
# Health name for liveness probes: SERVING while the process runs, whatever the database does
# (a restart does not bring a database back); NOT_SERVING only once the service is stopping.
LIVENESS = "liveness"


class HealthServicer(health.aio.HealthServicer):  # type: ignore[misc]  # grpc_health: untyped
    """grpc's health service with List (every service name and its status), which the
    library leaves unimplemented although reflection advertises it."""

    async def List(  # noqa: N802 (the RPC's name)
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(statuses={
            name: health_pb2.HealthCheckResponse(status=status)
            for name, status in self._server_status.items()
        })


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
    # the branch's business calendar; overrides loaded from the directory (calendar_sync)
    calendar: BranchCalendar = field(default_factory=BranchCalendar)
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def channel(self, peer: str) -> grpc.aio.Channel:
        """A channel to another service (another host), calling with this service's own
        token: plaintext or TLS per BRANCH_TLS_*, round robin over the peer's addresses,
        reads retried on UNAVAILABLE, a default deadline (services/common/channels.py)."""
        if peer not in self._channels:
            tokens = self.tokens  # short-lived, renewed: read at every call
            self._channels[peer] = channels.aio_channel(self.settings, peer,
                                                        token=tokens.current, caller=self.name)
        return self._channels[peer]

    async def close_channels(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()


Registrar = Callable[[grpc.aio.Server, ServiceContext], None]
Task = Callable[[], Coroutine[Any, Any, None]]


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
    # Services whose rules count business time keep ctx.calendar's overrides in step with the
    # directory (services.common.calendar_sync): this makes the loader.
    calendar_loader: Callable[[ServiceContext], Loader] | None = None


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
        tracing.configure_tracing(spec.name, settings.otlp_endpoint)
        self.db = Database(settings.database_url_for(spec.name), service=spec.name,
                           pool_size=settings.database_pool_size,
                           busy_timeout=settings.sqlite_busy_timeout_seconds)
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
        self.health = HealthServicer()
        self.interceptor: ServiceInterceptor | None = None
        self.server: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer_tasks: list[tuple[Consumer, asyncio.Task[None]]] = []
        self._stop_background = asyncio.Event()

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.port}"

    async def start(self) -> None:
        await self._wait_for_database()
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
                task = asyncio.create_task(consumer.run(), name=consumer.durable)
                self._consumer_tasks.append((consumer, task))
                self._tasks.append(task)
            for job in self.spec.background(self.ctx, self._stop_background):
                self._tasks.append(asyncio.create_task(job()))
        if self.spec.calendar_loader is not None:
            await self._start_calendar_sync(self.spec.calendar_loader(self.ctx))
        if self.settings.metrics_port:
            self._tasks.append(asyncio.create_task(metrics.run_sampler(
                self.spec.name, self.relay, self.consumers, self.nats, self._stop_background
            ), name=f"{self.spec.name}-metrics"))
        access = AccessTable({**self.spec.access, **AUDIT_ACCESS})
        self.interceptor = ServiceInterceptor(
            service=self.spec.name, access=access, verifier=self.verifier, db=self.db,
            clock=self.clock,
        )
        self.server = grpc.aio.server(
            # the OpenTelemetry interceptor first: its span is current in ours
            interceptors=[tracing.server_interceptor(self.spec.name), self.interceptor],
            options=channels.server_options(),
        )
        self.spec.register(self.server, self.ctx)
        audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(self.db), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [*self.spec.grpc_services, AUDIT_SERVICE_NAME, health.SERVICE_NAME,
                 reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        self.port = channels.bind(
            self.server, self.settings, f"{self.settings.host}:{self._port}")
        if self.port == 0:
            raise RuntimeError(f"{self.spec.name}: cannot bind {self.settings.host}:{self._port}")
        await self.server.start()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        self._tasks.append(asyncio.create_task(self._watch_database(),
                                               name=f"{self.spec.name}-health"))
        self.log.info("service started", port=self.port,
                      tls=channels.serving_mode(self.settings))

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in ["", *self.spec.grpc_services]:
            await self.health.set(name, status)

    async def _wait_for_database(self) -> None:
        """A database that is down or not yet accepting is waited for, as NATS is; one that
        refuses (bad credentials, no such database) raises at once."""
        delay = 0.2
        while True:
            try:
                async with self.db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                self.log.warning("database not reachable; retrying", error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _watch_database(self) -> None:
        """Health follows the database: NOT_SERVING while it does not answer within the check
        period (calls would fail), SERVING again once it does. NATS is not watched: while it
        is down, writes still commit and their events wait in the outbox."""
        period = self.settings.health_check_seconds
        serving = True
        while not self._stop_background.is_set():
            try:
                await asyncio.wait_for(self._stop_background.wait(), timeout=period)
                return
            except TimeoutError:
                pass
            ok = await self.db.reachable(timeout=max(period, 2.0))
            if ok != serving and not self._stop_background.is_set():
                serving = ok
                await self._set_health(health_pb2.HealthCheckResponse.SERVING if ok
                                       else health_pb2.HealthCheckResponse.NOT_SERVING)
                if ok:
                    self.log.info("database reachable again; SERVING")
                else:
                    self.log.warning("database not reachable; NOT_SERVING")

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

    async def _start_calendar_sync(self, load: Loader) -> None:
        sync = CalendarSync(self.spec.name, self.ctx.calendar, load,
                            self.settings.calendar_refresh_seconds)
        await sync.once(timeout=FIRST_TRY_SECONDS)
        if self.nats.nc is not None:
            async def changed(_msg: object) -> None:
                sync.on_changed()

            await self.nats.nc.subscribe(CALENDAR_CHANGED, cb=changed)
        self._tasks.append(asyncio.create_task(sync.run(self._stop_background),
                                               name=f"{self.spec.name}-calendar"))

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
        """Drain, then stop: health turns NOT_SERVING; the server takes the calls already
        queued for it (grpc cancels queued calls when it stops) until none has arrived for
        QUIET_SECONDS, for at most half the grace; every call taken may then run until the
        grace period ends. Then consumers finish the event in hand, the outbox is flushed
        and the connections close."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.health.enter_graceful_shutdown()  # NOT_SERVING, and stays so
        if self.server is not None and self.interceptor is not None:
            await self._take_queued_calls(loop.time() + grace / 2)
            await self.server.stop(max(deadline - loop.time(), 0.5))
        self._stop_background.set()
        for consumer in self.consumers:
            consumer.stop()
        self.relay.stop()
        if self._tasks:  # started: each loop notices the stop within a second (its fetch timeout)
            # Consumers finish the event in hand (Consumer.close: one waiting in a fetch is
            # interrupted at once) rather than being cancelled inside a handler's transaction,
            # whose cleanup can wait forever on a connection being closed.
            await asyncio.gather(*(consumer.close(task, STOP_TASKS_SECONDS)
                                   for consumer, task in self._consumer_tasks))
            await asyncio.wait(self._tasks, timeout=min(max(grace, 1), 5))
            try:
                await asyncio.wait_for(self.relay.flush_once(), timeout=min(grace, 5))
            except Exception:
                self.log.warning("outbox not flushed at shutdown; rows stay for the next start")
        self._consumer_tasks.clear()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, hung = await asyncio.wait(self._tasks, timeout=STOP_TASKS_SECONDS)
            for task in hung:
                self.log.warning("task did not stop in time", task=task.get_name())
        self._tasks.clear()
        await self.ctx.close_channels()
        await self.standing.stop()
        await self.nats.close()
        await self.db.dispose()
        self.log.info("service stopped")

    async def _take_queued_calls(self, until: float) -> None:
        """Keep the server taking calls until its queue has been empty for a while: a call
        is counted when the interceptor sees it, and several loop turns must pass with none
        (a busy loop takes queued calls slowly, but it takes them in those turns)."""
        loop = asyncio.get_running_loop()
        assert self.interceptor is not None
        seen = self.interceptor.calls_taken
        quiet_since, turns = loop.time(), 0
        while loop.time() < until:
            await asyncio.sleep(QUIET_TICK)
            if self.interceptor.calls_taken != seen:
                seen, quiet_since, turns = self.interceptor.calls_taken, loop.time(), 0
                continue
            turns += 1
            if turns >= QUIET_TURNS and loop.time() - quiet_since >= QUIET_SECONDS:
                return


def default_token_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.token_ttl_seconds)
