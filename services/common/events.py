"""Events: the outbox (written with the state change), the relay to JetStream, and Event.

Subjects are branch.<service>.<entity>.<event>; CloudEvents attributes travel as ce-* headers
and Nats-Msg-Id equals ce-id, so JetStream drops a re-published duplicate.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import metrics
from services.common.clock import Clock, as_utc
from services.common.db import Database
from services.common.ids import new_id
from services.common.logs import get_logger
from services.common.models import OutboxEvent
from services.common.nats_link import NatsLink

CONTENT_TYPE = "application/protobuf"
OUTBOX_PENDING = "outbox_pending"
SLA_OVERDUE = "sla_overdue"

M = TypeVar("M", bound=Message)


def emit(
    session: AsyncSession,
    *,
    subject: str,
    message: Message,
    about: str,
    now: datetime,
) -> str:
    """Add an event to the outbox inside the caller's transaction; returns its id."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "branch":
        raise ValueError(f"subject must be branch.<service>.<entity>.<event>: {subject}")
    event_id = new_id()
    session.add(
        OutboxEvent(
            event_id=event_id,
            subject=subject,
            ce_type=subject,
            ce_subject=about,
            data_schema=message.DESCRIPTOR.full_name,
            data=message.SerializeToString(),
            created_at=now,
        )
    )
    session.info[OUTBOX_PENDING] = True
    if parts[3] == "overdue":  # a missed deadline: counted as an SLA breach once committed
        session.info.setdefault(SLA_OVERDUE, []).append(parts[2])
    return event_id


def headers_for(row: OutboxEvent, source: str) -> dict[str, str]:
    return {
        "Nats-Msg-Id": row.event_id,
        "ce-specversion": "1.0",
        "ce-id": row.event_id,
        "ce-type": row.ce_type,
        "ce-source": source,
        "ce-time": as_utc(row.created_at).isoformat().replace("+00:00", "Z"),
        "ce-subject": row.ce_subject,
        "ce-dataschema": row.data_schema,
        "content-type": CONTENT_TYPE,
    }


@dataclass(frozen=True)
class Event:
    """One delivered event, as a consumer's handler sees it."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    nats_subject: str
    data_schema: str
    data: bytes
    deliveries: int = 1

    def parse(self, message_type: type[M]) -> M:
        message = message_type()
        message.ParseFromString(self.data)
        return message

    @classmethod
    def from_headers(
        cls, nats_subject: str, headers: dict[str, str], data: bytes, deliveries: int = 1
    ) -> Event:
        missing = [h for h in ("ce-id", "ce-type", "ce-source", "ce-time") if not headers.get(h)]
        if missing:
            raise ValueError(f"not a CloudEvent: missing {', '.join(missing)}")
        return cls(
            id=headers["ce-id"],
            type=headers["ce-type"],
            source=headers["ce-source"],
            subject=headers.get("ce-subject", ""),
            time=datetime.fromisoformat(headers["ce-time"].replace("Z", "+00:00")),
            nats_subject=nats_subject,
            data_schema=headers.get("ce-dataschema", ""),
            data=data,
            deliveries=deliveries,
        )


class OutboxRelay:
    """Publishes committed outbox rows in order and marks them sent.

    Woken by each commit that wrote an event, and by a slow timer as a safety net. When NATS
    is down the rows wait; every replica may relay, and Nats-Msg-Id makes a double publish
    harmless.
    """

    BATCH = 200

    def __init__(self, db: Database, connection: NatsLink, clock: Clock, poll_seconds: float):
        self._db = db
        self._link = connection
        self._clock = clock
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._source = f"/branch/{db.service}"
        self._log = get_logger(db.service, component="outbox")
        self._stopping = False
        db.after_commit_hooks.append(self._after_commit)

    def _after_commit(self, session: AsyncSession) -> None:
        if session.info.pop(OUTBOX_PENDING, False):
            self._wake.set()
        for kind in session.info.pop(SLA_OVERDUE, ()):
            metrics.sla_breached(self._db.service, kind)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                sent = await self.flush_once()
                backoff = 0.1
                if sent == self.BATCH:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log.warning("outbox publish failed; will retry", error=type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            except TimeoutError:
                pass
            self._wake.clear()

    async def flush_once(self) -> int:
        async with self._db.read() as session:
            rows = (
                await session.exec(
                    select(OutboxEvent)
                    .where(col(OutboxEvent.sent_at).is_(None))
                    .order_by(col(OutboxEvent.seq))
                    .limit(self.BATCH)
                )
            ).all()
        if not rows:
            return 0
        js = self._link.jetstream()
        published: list[int] = []
        try:
            for row in rows:
                await js.publish(
                    row.subject, row.data, timeout=5, headers=headers_for(row, self._source)
                )
                published.append(row.seq or 0)
                metrics.OUTBOX_PUBLISHED.labels(service=self._db.service).inc()
        finally:
            if published:
                await self._mark_sent(published)
        return len(published)

    async def _mark_sent(self, seqs: list[int]) -> None:
        async with self._db.transaction() as session:
            await session.exec(
                update(OutboxEvent)  # type: ignore[call-overload]
                .where(col(OutboxEvent.seq).in_(seqs))
                .values(sent_at=self._clock.now())
            )

    async def backlog(self) -> tuple[int, float]:
        """Unsent rows and the age in seconds of the oldest."""
        async with self._db.read() as session:
            count, oldest = (
                await session.exec(
                    select(func.count(), func.min(OutboxEvent.created_at)).where(
                        col(OutboxEvent.sent_at).is_(None)
                    )
                )
            ).one()
        if not count:
            return 0, 0.0
        age = (self._clock.now() - as_utc(oldest)).total_seconds() if oldest else 0.0
        return int(count), age

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

