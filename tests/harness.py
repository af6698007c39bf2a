"""Test harness shared by every service's tests: real NATS, real SQLite or PostgreSQL,
in-process services on port 0, tokens and channels."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc
import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlmodel.ext.asyncio.session import AsyncSession

if TYPE_CHECKING:
    from google.rpc import status_pb2

from services.common.auth import SERVICE_NAMES, TokenSigner, svc
from services.common.clock import Clock, SystemClock
from services.common.db import Database
from services.common.identity import LocalServiceTokens
from services.common.keys import jwks, key_from_seed
from services.common.server import ServiceRunner, ServiceSpec
from services.common.settings import Settings

# The harness is a test identity provider: it signs with its own Ed25519 key (fixed, so
# subprocesses agree), and every runner the harness configures trusts its public key
# (BRANCH_TRUSTED_KEYS) besides the directory's. Never configure it outside tests.
HARNESS_KEY = key_from_seed("branch test harness signing key")
TRUSTED_KEYS = jwks([HARNESS_KEY.public_jwk()])
# the key service credentials derive from, in tests
SERVICE_KEY = "test-service-key-0123456789abcdef"
# Old name (HS256 days): kept so imports keep working; it is the trusted JWKS now.
SECRET = TRUSTED_KEYS
POSTGRES_URL = os.environ.get("BRANCH_TEST_POSTGRES_URL", "")
SIGNER = TokenSigner(HARNESS_KEY)


def token(staff_id: str, *roles: str) -> str:
    """A one-hour access token signed by the harness key (trusted by harness runners)."""
    return SIGNER.issue(staff_id, roles, datetime.now(UTC), timedelta(hours=1))


def harness_service_tokens(service: str) -> LocalServiceTokens:
    """A runner's own service token, signed by the harness (tests need no directory)."""
    return LocalServiceTokens(service, lambda: SIGNER, SystemClock(), timedelta(minutes=10))


# call metadata as grpc's stubs take it: a tuple of (key, value) pairs
Metadata = tuple[tuple[str, str], ...]


def auth(staff_id: str, *roles: str) -> Metadata:
    """Call metadata for a staff member with these roles (tokens use the real clock)."""
    return (("authorization", f"Bearer {token(staff_id, *roles)}"),)


ADMIN = auth("admin-1", "admin")
SUPERVISOR = auth("sup-1", "supervisor")
# a test caller that may call whatever any service may
SERVICE = auth("svc:test", "service", *svc(*SERVICE_NAMES))


SERVICES = ("directory", "onsite", "remote", "vip", "research", "insight")


async def create_postgres_databases() -> str:
    """Fresh databases on the configured server, one per service (each owns its own, as in
    production); returns the URL template with {service} in it."""
    stem = f"t_{uuid.uuid4().hex[:12]}"
    await _each_service(lambda conn, service: conn.execute(f'CREATE DATABASE "{stem}_{service}"'))
    prefix, _, _ = POSTGRES_URL.rpartition("/")
    return f"{prefix}/{stem}_{{service}}"


async def drop_postgres_databases(template: str) -> None:
    """Drop what create_postgres_databases made (FORCE: a stopped service's pool may linger)."""
    stem = template.rpartition("/")[2].replace("_{service}", "")
    await _each_service(
        lambda conn, service: conn.execute(f'DROP DATABASE IF EXISTS "{stem}_{service}" WITH (FORCE)'))


async def _each_service(statement: Callable[[Any, str], Awaitable[Any]]) -> None:
    """statement(connection, service) for every service at once, each on a connection of its
    own to the configured server: CREATE and DROP DATABASE mostly wait for the disk, and
    six at once take about a third of the time of six in a row."""
    import asyncpg

    base = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def one(service: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await statement(conn, service)
        finally:
            await conn.close()

    results = await asyncio.gather(*(one(s) for s in SERVICES), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def make_settings(data_dir: Path, nats_url: str, database_url: str = "", **extra: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=data_dir,
        nats_url=nats_url,
        database_url=database_url,
        trusted_keys=TRUSTED_KEYS,
        service_key=SERVICE_KEY,
        outbox_poll_seconds=0.5,
        shutdown_grace_seconds=2,
    )
    return Settings(**{**values, **extra})


@asynccontextmanager
async def running(
    spec: ServiceSpec,
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_consumers: bool = True,
    directory_issues_service_tokens: bool = False,
) -> AsyncIterator[ServiceRunner]:
    """A started runner on a free port. Its own service token comes from the harness unless
    directory_issues_service_tokens (then from the directory, as in production)."""
    tokens = None if directory_issues_service_tokens else harness_service_tokens(spec.name)
    runner = ServiceRunner(spec, settings, clock=clock, port=0, run_consumers=run_consumers,
                           service_tokens=tokens)
    await runner.start()
    try:
        yield runner
    finally:
        await runner.stop(grace=1)


@asynccontextmanager
async def channel(runner: ServiceRunner) -> AsyncIterator[grpc.aio.Channel]:
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{runner.port}")
    try:
        yield ch
    finally:
        await ch.close()


async def collect_events(
    nats_url: str, subject: str, *, count: int, timeout: float = 10.0
) -> list[Any]:
    """Read events on subject from the BRANCH stream with an ephemeral consumer."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            subject, stream="BRANCH", ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        out: list[Any] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(out) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                msg = await sub.next_msg(timeout=remaining)
            except Exception:
                break
            out.append(msg)
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async or sync predicate until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def rpc_status_of(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status (with its details) an error carries in its trailing metadata."""
    from grpc_status import rpc_status

    # an AioRpcError has what from_call reads (code(), details(), trailing_metadata()), but
    # grpc_status's stub takes only the synchronous grpc.Call
    return rpc_status.from_call(cast(grpc.Call, err))


def bad_fields(err: grpc.aio.AioRpcError) -> set[str]:
    """Field names in the BadRequest detail of an INVALID_ARGUMENT error."""
    from google.rpc import error_details_pb2

    status = rpc_status_of(err)
    fields: set[str] = set()
    if status is None:
        return fields
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.update(v.field for v in bad.field_violations)
    return fields


def found(pattern: str, text: str) -> str:
    """Group 1 of pattern's first match in text (command output); fails the test, showing the
    text, when there is none."""
    match = re.search(pattern, text)
    assert match is not None, (pattern, text)
    return match.group(1)


def unique(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:10]


def subjects(msgs: Iterable[Any]) -> list[str]:
    return [m.subject for m in msgs]


HOLD = 0.5
"""Seconds a racing writer keeps its transaction open for the other to write too."""


async def overlapped(db: Database, write: Callable[[AsyncSession], Awaitable[Any]]) -> None:
    """Two writers in their own transactions, released together by a barrier; each holds its
    transaction open until the other has written too (or HOLD seconds, when the other is
    waiting for this one's row), so both read before either commits."""
    barrier = asyncio.Barrier(2)
    wrote = [asyncio.Event(), asyncio.Event()]

    async def one(k: int) -> None:
        await barrier.wait()
        async with db.transaction() as s:  # SQLite: the second waits for the first here
            await write(s)
            wrote[k].set()
            try:
                await asyncio.wait_for(wrote[1 - k].wait(), HOLD)
            except TimeoutError:
                pass

    await asyncio.gather(one(0), one(1))
