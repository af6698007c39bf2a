"""The Prometheus metrics operators alert on (deploy/README.md, "What to watch"), in process:
SLA breaches from committed overdue events, the outbox backlog, consumer lag, parked events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.empty_pb2 import Empty
from prometheus_client import REGISTRY
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import metrics, migrations
from services.common.clock import SystemClock
from services.common.consumer import Consumer, PermanentError, Subscription
from services.common.events import Event, emit
from services.common.nats_link import EmbeddedNats
from services.common.server import ServiceRunner
from services.directory.server import SPEC
from tests.harness import eventually, make_settings


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_committed_overdue_events_count_as_sla_breaches(tmp_path: Path,
                                                              nats_url: str) -> None:
    runner = ServiceRunner(SPEC, make_settings(tmp_path, nats_url), port=0)
    await migrations.upgrade(runner.db, SPEC.migrations)
    labels = {"service": "directory", "kind": "consultation"}
    before = sample("branch_sla_breaches_total", **labels)
    now = datetime.now(UTC)
    try:
        async with runner.db.transaction() as session:
            emit(session, subject="branch.directory.consultation.overdue", message=Empty(),
                 about="c1", now=now)
            emit(session, subject="branch.directory.consultation.delivered", message=Empty(),
                 about="c1", now=now)
        assert sample("branch_sla_breaches_total", **labels) == before + 1
        with pytest.raises(RuntimeError):
            async with runner.db.transaction() as session:
                emit(session, subject="branch.directory.consultation.overdue",
                     message=Empty(), about="c2", now=now)
                raise RuntimeError("rolled back: no breach happened")
        assert sample("branch_sla_breaches_total", **labels) == before + 1
        metrics.sla_breached("directory", "consultation", 2)
        assert sample("branch_sla_breaches_total", **labels) == before + 3
    finally:
        await runner.db.dispose()


async def test_sampler_reports_backlog_lag_and_parked_events(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    settings = make_settings(tmp_path, server.url)
    runner = ServiceRunner(SPEC, settings, port=0)
    await migrations.upgrade(runner.db, SPEC.migrations)
    await runner.nats.connect()

    async def refuse(session: AsyncSession, event: Event) -> None:
        raise PermanentError("cannot apply")

    consumer = Consumer(runner.db, runner.nats, SystemClock(),
                        Subscription("probe", ["branch.directory.probe.*"], refuse))
    await consumer.ensure()
    try:
        now = datetime.now(UTC)
        async with runner.db.transaction() as session:
            for i in range(3):
                emit(session, subject="branch.directory.probe.made", message=Empty(),
                     about=f"p{i}", now=now)
        await metrics.sample_once("directory", runner.relay, [consumer], runner.nats)
        assert sample("branch_outbox_backlog", service="directory") == 3
        assert sample("branch_outbox_oldest_age_seconds", service="directory") >= 0

        assert await runner.relay.flush_once() == 3
        await metrics.sample_once("directory", runner.relay, [consumer], runner.nats)
        assert sample("branch_outbox_backlog", service="directory") == 0
        durable = {"service": "directory", "consumer": "directory-probe"}
        assert sample("branch_consumer_pending", **durable) == 3

        parked_before = sample("branch_events_parked_total", **durable)
        psub = await runner.nats.jetstream().pull_subscribe_bind(consumer.durable, "BRANCH")
        for msg in await psub.fetch(3, timeout=5):
            await consumer._handle(msg)  # the consumer's own path: PermanentError parks
        assert sample("branch_events_parked_total", **durable) == parked_before + 3

        async def parked_seen() -> bool:
            await metrics.sample_once("directory", runner.relay, [consumer], runner.nats)
            return sample("branch_parked_events", service="directory") == 3

        await eventually(parked_seen, timeout=10)
        assert sample("branch_consumer_pending", **durable) == 0
    finally:
        await runner.nats.close()
        await runner.db.dispose()
        server.stop()
