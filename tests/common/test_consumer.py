"""Effectively-once consumption against a real NATS server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from branch.common.v1 import event_pb2
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import migrations
from services.common.clock import SystemClock
from services.common.consumer import Consumer, PermanentError, Subscription
from services.common.db import Database
from services.common.events import Event
from services.common.ids import new_id
from services.common.models import AuditRecord
from services.common.nats_link import EmbeddedNats, NatsLink
from services.directory.server import SPEC
from tests.harness import collect_events, eventually, unique


async def publish(url: str, subject: str, event_id: str, msg_id: str | None = None) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(subject, b"payload", headers={
            "Nats-Msg-Id": msg_id or event_id, "ce-id": event_id, "ce-type": subject,
            "ce-source": "/test", "ce-time": datetime.now(UTC).isoformat(),
            "ce-subject": "thing-1",
        })
    finally:
        await nc.close()


async def effect(session: AsyncSession, event: Event) -> None:
    """The handler's effect: one row per applied event."""
    session.add(AuditRecord(id=new_id(), staff_id="consumer", method=event.type,
                            resource=event.id, request_id="", time=datetime.now(UTC),
                            outcome="OK"))


@pytest.fixture
async def setup(tmp_path: Path, nats_url: str, database_url: str) -> AsyncIterator[tuple[Database, NatsLink]]:
    url = (database_url.replace("{service}", "directory") if database_url
           else f"sqlite+aiosqlite:///{tmp_path}/probe.db")
    db = Database(url, service=unique("probe"))
    await migrations.upgrade(db, SPEC.migrations)
    link = NatsLink(nats_url, db.service)
    await link.connect(attempts=3)
    yield db, link
    await link.close()
    await db.dispose()


async def applied(db: Database, event_id: str) -> int:
    async with db.read() as session:
        return (await session.exec(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.resource == event_id))).one()


async def test_duplicate_delivery_is_applied_once(setup: tuple[Database, NatsLink], nats_url: str) -> None:
    db, link = setup
    topic = unique("t")
    subject = f"branch.probe.{topic}.happened"
    consumer = Consumer(db, link, SystemClock(), Subscription(topic, [subject], effect))
    await consumer.ensure()
    task = asyncio.create_task(consumer.run())
    try:
        event_id = new_id()
        # the same event twice, past JetStream's de-duplication (as a replay would be)
        await publish(nats_url, subject, event_id, msg_id=unique("a"))
        await publish(nats_url, subject, event_id, msg_id=unique("b"))
        await eventually(lambda: consumer.handled + consumer.parked >= 1)
        await asyncio.sleep(0.5)
        assert await applied(db, event_id) == 1
        assert consumer.handled == 1
        # and a second consumer on the same durable (a replica) applies nothing again
        assert not await consumer.apply(Event.from_headers(subject, {
            "ce-id": event_id, "ce-type": subject, "ce-source": "/t",
            "ce-time": datetime.now(UTC).isoformat()}, b""))
    finally:
        consumer.stop()
        task.cancel()


async def test_poison_event_is_parked_after_max_deliver(setup: tuple[Database, NatsLink], nats_url: str) -> None:
    db, link = setup
    topic = unique("p")
    subject = f"branch.probe.{topic}.happened"

    async def broken(session: AsyncSession, event: Event) -> None:
        raise RuntimeError("cannot apply")

    consumer = Consumer(db, link, SystemClock(), Subscription(topic, [subject], broken),
                        max_deliver=2)
    await consumer.ensure()
    task = asyncio.create_task(consumer.run())
    try:
        event_id = new_id()
        await publish(nats_url, subject, event_id)
        await eventually(lambda: consumer.parked == 1, timeout=15)
        parked = await collect_events(nats_url, f"branch.parked.{db.service}.{topic}", count=1)
        envelope = event_pb2.EventEnvelope.FromString(parked[0].data)
        assert envelope.id == event_id and envelope.nats_subject == subject
        assert envelope.deliveries == 2 and "cannot apply" in envelope.parked_reason
        assert await applied(db, event_id) == 0
    finally:
        consumer.stop()
        task.cancel()


async def test_permanent_error_parks_at_once(setup: tuple[Database, NatsLink], nats_url: str) -> None:
    db, link = setup
    topic = unique("q")
    subject = f"branch.probe.{topic}.happened"
    calls = 0

    async def refuses(session: AsyncSession, event: Event) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("unknown payload version")

    consumer = Consumer(db, link, SystemClock(), Subscription(topic, [subject], refuses))
    await consumer.ensure()
    task = asyncio.create_task(consumer.run())
    try:
        await publish(nats_url, subject, new_id())
        await eventually(lambda: consumer.parked == 1)
        assert calls == 1
    finally:
        consumer.stop()
        task.cancel()


async def test_consumer_resumes_after_nats_restart(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/r.db", service="restart")
    await migrations.upgrade(db, SPEC.migrations)
    link = NatsLink(server.url, "restart")
    await link.connect(attempts=3)
    subject = "branch.probe.restart.happened"
    consumer = Consumer(db, link, SystemClock(), Subscription("r", [subject], effect))
    await consumer.ensure()
    task = asyncio.create_task(consumer.run())
    try:
        first = new_id()
        await publish(server.url, subject, first)
        await eventually(lambda: consumer.handled == 1)
        server.stop()
        await asyncio.sleep(1)
        server.start()
        second = new_id()
        await eventually(lambda: link.connected, timeout=15)
        await publish(server.url, subject, second)
        await eventually(lambda: consumer.handled == 2, timeout=20)
        assert await applied(db, second) == 1
    finally:
        consumer.stop()
        task.cancel()
        await link.close()
        await db.dispose()
        server.stop()


async def test_handler_constraint_error_is_a_failure_not_a_duplicate(setup: tuple[Database, NatsLink], nats_url: str) -> None:
    """An IntegrityError that is the handler's own (not a replica's processed row) must not be
    acked as 'already applied': it is retried and then parked, never silently lost."""
    db, link = setup
    topic = unique("i")
    subject = f"branch.probe.{topic}.happened"

    async def clashes(session: AsyncSession, event: Event) -> None:
        # the same primary key twice in one transaction: the handler's own constraint error
        session.add(AuditRecord(id="fixed", staff_id="c", method="m", resource="r",
                                request_id="", time=datetime.now(UTC), outcome="OK"))
        await session.flush()
        session.add(AuditRecord(id="fixed", staff_id="c", method="m", resource="r",
                                request_id="", time=datetime.now(UTC), outcome="OK"))
        await session.flush()

    consumer = Consumer(db, link, SystemClock(), Subscription(topic, [subject], clashes),
                        max_deliver=2)
    await consumer.ensure()
    task = asyncio.create_task(consumer.run())
    try:
        await publish(nats_url, subject, new_id())
        await eventually(lambda: consumer.parked == 1, timeout=15)
        assert consumer.handled == 0
    finally:
        consumer.stop()
        task.cancel()


async def test_close_releases_the_subscription_before_the_connection(setup: tuple[Database, NatsLink]) -> None:
    db, link = setup
    topic = unique("rel")
    consumer = Consumer(db, link, SystemClock(), Subscription(
        topic, [f"branch.probe.{topic}.happened"], effect))
    await consumer.ensure()
    nc = link.nc
    assert nc is not None
    before = set(nc._subs)  # the connection's own (JetStream's reply inbox)
    task = asyncio.create_task(consumer.run())
    await eventually(lambda: set(nc._subs) != before)  # its pull subscription
    await consumer.close(task)
    assert task.done()  # interrupted in its fetch: no event was in hand
    assert set(nc._subs) == before  # nothing left for the drain to wait on
