"""Effectively-once consumption: durable pull consumers shared by replicas.

The event id is recorded in the same transaction as the handler's effect, so a redelivery
finds it and only acks. A handler that keeps failing is parked on branch.parked.<service>.<name>
(still inside the BRANCH stream, so it can be replayed) after max_deliver tries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from branch.common.v1 import event_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry.trace import SpanKind
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import metrics, tracing
from services.common.clock import Clock
from services.common.db import Database, is_unavailable
from services.common.events import Event, trace_headers
from services.common.logs import bind_request, get_logger, unbind
from services.common.models import ProcessedEvent
from services.common.nats_link import STREAM, NatsLink

Handler = Callable[[AsyncSession, Event], Awaitable[None]]

# the longest a pull subscription's unsubscribe may take at shutdown
UNSUBSCRIBE_SECONDS = 2.0


@dataclass(frozen=True)
class Subscription:
    """name: durable suffix (the consumer is <service>-<name>); subjects may use wildcards."""

    name: str
    subjects: Sequence[str]
    handler: Handler


class PermanentError(Exception):
    """The handler can never apply this event: park it at once instead of retrying."""


class Consumer:
    FETCH_BATCH = 64

    def __init__(
        self,
        db: Database,
        link: NatsLink,
        clock: Clock,
        subscription: Subscription,
        *,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
    ) -> None:
        self._db = db
        self._link = link
        self._clock = clock
        self.sub = subscription
        self.durable = f"{db.service}-{subscription.name}"
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait
        self._stopping = False
        self._fetching = False  # waiting in a fetch: no event in hand, safe to interrupt
        self._log = get_logger(db.service, component="consumer", consumer=self.durable)
        self.handled = 0
        self.parked = 0
        self.redelivered = 0

    async def ensure(self) -> None:
        js = self._link.jetstream()
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._ack_wait,
            max_deliver=-1,  # parking is ours, so nothing is dropped silently
            max_ack_pending=1000,
        )
        subjects = list(self.sub.subjects)
        if len(subjects) == 1:
            config.filter_subject = subjects[0]
        else:
            config.filter_subjects = subjects
        await js.add_consumer(STREAM, config)

    async def run(self) -> None:
        delay = 0.2
        while not self._stopping:
            psub = None
            try:
                await self.ensure()
                psub = await self._link.jetstream().pull_subscribe_bind(self.durable, STREAM)
                delay = 0.2
                while not self._stopping:
                    self._fetching = True
                    try:
                        msgs = await psub.fetch(self.FETCH_BATCH, timeout=1)
                    except (TimeoutError, NatsTimeoutError):
                        continue
                    finally:
                        self._fetching = False
                    for msg in msgs:
                        if self._stopping:
                            break  # the rest stay unacknowledged: redelivered later
                        await self._handle(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    break
                # After a server restart the pull subscription is gone: make it again.
                self._log.warning("consumer lost its subscription; recreating",
                                  error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                if psub is not None:
                    await self._release(psub)

    async def _release(self, psub) -> None:  # type: ignore[no-untyped-def]
        """Close the pull subscription, within UNSUBSCRIBE_SECONDS.

        One left open (stopped, cancelled or lost) makes the connection's drain wait its full
        timeout (30 s) at shutdown; but on a connection already closing or closed the
        unsubscribe can wait forever, so it is skipped there and bounded everywhere."""
        nc = self._link.nc
        if nc is None or nc.is_closed or nc.is_draining:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(psub.unsubscribe(), timeout=UNSUBSCRIBE_SECONDS)

    def stop(self) -> None:
        self._stopping = True

    async def close(self, task: asyncio.Task[None], timeout: float = 10.0) -> None:
        """Stop, and wait (at most timeout seconds, then cancel) for run() in task to end.
        Call before closing the NATS connection, so the subscription is released first.

        A consumer waiting in a fetch is interrupted at once; one handling an event finishes
        it first: cancelling inside a handler's transaction can leave a cleanup that waits
        forever on a connection being closed."""
        self.stop()
        if self._fetching:
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=UNSUBSCRIBE_SECONDS + 1)
        elif not task.cancelled() and task.exception() is not None:
            self._log.warning("consumer ended with an error",
                              error=type(task.exception()).__name__)

    async def _handle(self, msg) -> None:  # type: ignore[no-untyped-def]
        deliveries = msg.metadata.num_delivered
        if deliveries > 1:
            self.redelivered += 1
            metrics.EVENT_REDELIVERIES.labels(self._db.service, self.durable).inc()
        headers = dict(msg.headers or {})
        try:
            event = Event.from_headers(msg.subject, headers, msg.data, deliveries)
        except ValueError as exc:
            await self._park(msg, None, f"malformed: {exc}", deliveries)
            return
        # the handler continues the publisher's trace; its log lines carry the event id
        with tracing.continued(
            trace_headers(headers), f"{msg.subject} process", SpanKind.CONSUMER,
            self._db.service, **{"messaging.system": "nats",
                                 "messaging.destination.name": msg.subject,
                                 "messaging.message.id": event.id,
                                 "messaging.consumer.group.name": self.durable},
        ):
            tokens = bind_request(event_id=event.id)
            try:
                await self._handle_event(msg, event, deliveries)
            finally:
                unbind(tokens)

    async def _handle_event(self, msg, event: Event, deliveries: int) -> None:  # type: ignore[no-untyped-def]
        try:
            await self.apply(event)
        except PermanentError as exc:
            await self._park(msg, event, str(exc), deliveries)
            return
        except Exception as exc:
            if is_unavailable(exc):  # the database, not the event: wait for it, never park
                self._log.warning("database unavailable; event will be redelivered",
                                  event_id=event.id, deliveries=deliveries,
                                  error=type(exc).__name__)
                await msg.nak(delay=min(0.5 * 2 ** min(deliveries - 1, 6), 30.0))
                return
            if deliveries >= self._max_deliver:
                self._log.error("handler failed; parking", event_id=event.id,
                                error=type(exc).__name__, exc_info=True)
                await self._park(msg, event, f"{type(exc).__name__}: {exc}", deliveries)
            else:
                self._log.warning("handler failed; will retry", event_id=event.id,
                                  deliveries=deliveries, error=type(exc).__name__)
                await msg.nak(delay=min(0.5 * 2 ** (deliveries - 1), 30.0))
            return
        await msg.ack()

    async def apply(self, event: Event) -> bool:
        """Apply once. False when this consumer had already applied the event."""
        try:
            async with self._db.transaction() as session:
                seen = (
                    await session.exec(
                        select(ProcessedEvent.id).where(
                            ProcessedEvent.consumer == self.durable,
                            ProcessedEvent.event_id == event.id,
                        )
                    )
                ).first()
                if seen is not None:
                    return False
                await self.sub.handler(session, event)
                session.add(
                    ProcessedEvent(
                        consumer=self.durable, event_id=event.id, handled_at=self._clock.now()
                    )
                )
        except IntegrityError:
            # Either a replica applied it concurrently (its transaction holds the effect and
            # the processed row), or the handler itself broke a constraint: only the first
            # is "done"; the second fails like any other error (retried, then parked).
            if await self._processed(event.id):
                return False
            raise
        self.handled += 1
        metrics.EVENTS_HANDLED.labels(self._db.service, self.durable).inc()
        return True

    async def _processed(self, event_id: str) -> bool:
        async with self._db.read() as session:
            return (
                await session.exec(
                    select(ProcessedEvent.id).where(
                        ProcessedEvent.consumer == self.durable,
                        ProcessedEvent.event_id == event_id,
                    )
                )
            ).first() is not None

    async def _park(self, msg, event: Event | None, reason: str, deliveries: int) -> None:  # type: ignore[no-untyped-def]
        headers = {k: unquote(v) if k.startswith("ce-") else v
                   for k, v in (msg.headers or {}).items()}
        envelope = event_pb2.EventEnvelope(
            id=headers.get("ce-id", ""),
            type=headers.get("ce-type", ""),
            source=headers.get("ce-source", ""),
            subject=headers.get("ce-subject", ""),
            nats_subject=msg.subject,
            data_schema=headers.get("ce-dataschema", ""),
            data=msg.data,
            parked_reason=reason[:500],
            parked_by=self.durable,
            deliveries=deliveries,
        )
        if event is not None:
            ts = Timestamp()
            ts.FromDatetime(event.time)
            envelope.time.CopyFrom(ts)
        subject = f"branch.parked.{self._db.service}.{self.sub.name}"
        seq = msg.metadata.sequence.stream
        await self._link.jetstream().publish(
            subject,
            envelope.SerializeToString(),
            headers={"Nats-Msg-Id": f"parked:{self.durable}:{envelope.id or seq}"},
        )
        self.parked += 1
        metrics.EVENTS_PARKED.labels(self._db.service, self.durable).inc()
        self._log.error("event parked", event_id=envelope.id, parked_subject=subject,
                        deliveries=deliveries, reason=reason[:200])
        await msg.term()
