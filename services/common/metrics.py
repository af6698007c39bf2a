"""Prometheus metrics beyond the RPC ones (those live in interceptors.py).

Counters are incremented where things happen (outbox relay, consumer, a service's SLA timer);
gauges that need a query (outbox backlog, consumer lag, parked events in the stream) are set by
a sampler task each service runs while `BRANCH_METRICS_PORT` is set. Everything is labelled by
`service`, so one process running the whole suite (`branch up`) still tells services apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

from services.common.logs import get_logger
from services.common.nats_link import STREAM

if TYPE_CHECKING:  # imported for types only: consumer.py and events.py import this module
    from services.common.consumer import Consumer
    from services.common.events import OutboxRelay
    from services.common.nats_link import NatsLink

OUTBOX_BACKLOG = Gauge(
    "branch_outbox_backlog", "Outbox rows written but not yet published to NATS", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "branch_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (0 when the outbox is empty)",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "branch_outbox_published_total", "Outbox rows published to NATS by this process", ["service"]
)
CONSUMER_PENDING = Gauge(
    "branch_consumer_pending",
    "Events in the stream not yet delivered to the durable consumer (lag)",
    ["service", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "branch_consumer_ack_pending",
    "Events delivered to the durable consumer and not yet acknowledged",
    ["service", "consumer"],
)
EVENTS_HANDLED = Counter(
    "branch_events_handled_total",
    "Events applied by this process (a redelivered duplicate is not counted)",
    ["service", "consumer"],
)
EVENT_REDELIVERIES = Counter(
    "branch_event_redeliveries_total",
    "Deliveries of an event that had been delivered before",
    ["service", "consumer"],
)
EVENTS_PARKED = Counter(
    "branch_events_parked_total", "Events parked by this process", ["service", "consumer"]
)
PARKED_STORED = Gauge(
    "branch_parked_events",
    "Parked events kept in the BRANCH stream (branch.parked.<service>.>), awaiting replay",
    ["service"],
)
SLA_BREACHES = Counter(
    "branch_sla_breaches_total",
    "Deadlines missed (consultation delivery, callback quota, ticket and advisory SLAs)",
    ["service", "kind"],
)


def sla_breached(service: str, kind: str, count: int = 1) -> None:
    """Count missed deadlines; call it where the overdue event is emitted (after the claim)."""
    if count > 0:
        SLA_BREACHES.labels(service=service, kind=kind).inc(count)


async def sample_once(
    service: str,
    relay: OutboxRelay,
    consumers: Sequence[Consumer],
    link: NatsLink,
) -> None:
    """Set the gauges from the database and JetStream; a part that fails is skipped."""
    log = get_logger(service, component="metrics")
    try:
        backlog, age = await relay.backlog()
        OUTBOX_BACKLOG.labels(service=service).set(backlog)
        OUTBOX_OLDEST_AGE.labels(service=service).set(age)
    except Exception as exc:
        log.debug("outbox sample failed", error=type(exc).__name__)
    if not link.connected:
        return
    try:
        js = link.jetstream()
        for consumer in consumers:
            info = await js.consumer_info(STREAM, consumer.durable, timeout=2)
            CONSUMER_PENDING.labels(service=service, consumer=consumer.durable).set(
                info.num_pending or 0
            )
            CONSUMER_ACK_PENDING.labels(service=service, consumer=consumer.durable).set(
                info.num_ack_pending or 0
            )
        stream = await js.stream_info(STREAM, subjects_filter=f"branch.parked.{service}.>")
        PARKED_STORED.labels(service=service).set(sum((stream.state.subjects or {}).values()))
    except Exception as exc:
        log.debug("jetstream sample failed", error=type(exc).__name__)


async def run_sampler(
    service: str,
    relay: OutboxRelay,
    consumers: Sequence[Consumer],
    link: NatsLink,
    stop: asyncio.Event,
    interval: float = 5.0,
) -> None:
    """Sample every `interval` seconds until `stop` is set."""
    while not stop.is_set():
        await sample_once(service, relay, consumers, link)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
