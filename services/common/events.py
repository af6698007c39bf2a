"""Events: the outbox (written with the state change), the relay to JetStream, and Event.

Subjects are branch.<service>.<entity>.<event>; events follow the CloudEvents NATS binding's
binary mode (attributes as percent-encoded ce-* headers, the protobuf payload as the body) and
Nats-Msg-Id equals ce-id, so JetStream drops a re-published duplicate. Each outbox row keeps
the trace context of the call that wrote it; the relay sends it on (traceparent).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from google.protobuf.message import Message
from opentelemetry.trace import SpanKind
from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import metrics, tracing
from services.common.clock import Clock, as_utc
from services.common.db import Committed, Database, Write
from services.common.ids import new_id
from services.common.logs import get_logger
from services.common.models import OutboxEvent
from services.common.nats_link import NatsLink

CONTENT_TYPE = "application/protobuf"
TYPE_URL_PREFIX = "type.googleapis.com/"
TRACE_HEADERS = ("traceparent", "tracestate")
# printable ASCII except space, '"' and '%': left as is in header values
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
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
    values = _outbox_values(session.info, subject, message, about, now)
    session.add(OutboxEvent(**values))
    return str(values["event_id"])


def emit_in(w: Write, *, subject: str, message: Message, about: str, now: datetime) -> str:
    """emit() for a Database.write transaction: the outbox row is inserted with a Core
    statement on w's connection, committed (or rolled back) with the rest; returns its id."""
    values = _outbox_values(w.info, subject, message, about, now)
    w.insert(OUTBOX_TABLE, values)
    return str(values["event_id"])


OUTBOX_TABLE = OutboxEvent.__table__  # type: ignore[attr-defined]


def _outbox_values(info: dict[Any, Any], subject: str, message: Message, about: str,
                   now: datetime) -> dict[str, Any]:
    """An outbox row's columns; notes in info (a session's or a Write's) that the relay is
    to be woken after the commit."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "branch":
        raise ValueError(f"subject must be branch.<service>.<entity>.<event>: {subject}")
    info[OUTBOX_PENDING] = True
    if parts[3] == "overdue":  # a missed deadline: counted as an SLA breach once committed
        info.setdefault(SLA_OVERDUE, []).append(parts[2])
    return {
        "event_id": new_id(),
        "subject": subject,
        "ce_type": subject,
        "ce_subject": about,
        "data_schema": message.DESCRIPTOR.full_name,
        "data": message.SerializeToString(),
        "created_at": now,
        "sent_at": None,
        "trace_context": tracing.dumps(tracing.carrier()),
    }


def type_url(data_schema: str) -> str:
    """The protobuf format's dataschema: the message's type URL (a bare full name gains the
    type.googleapis.com/ prefix; a URL is kept)."""
    return data_schema if "/" in data_schema or not data_schema else TYPE_URL_PREFIX + data_schema


def encode_value(value: str) -> str:
    """Percent-encode a header value as the CloudEvents bindings require: space, '"', '%' and
    everything outside printable ASCII (as UTF-8 bytes)."""
    return quote(value, safe=_HEADER_SAFE)


def ce_headers(
    *,
    event_id: str,
    type: str,
    source: str,
    time: datetime,
    subject: str,
    data_schema: str,
    msg_id: str = "",
    trace: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """NATS headers of one event in the CloudEvents NATS binding's binary mode: attributes as
    percent-encoded ce-* headers (ce-datacontenttype for the content type; ce-subject left out
    when empty), Nats-Msg-Id (default: the event id) for JetStream's de-duplication, and the
    trace context both as W3C headers (traceparent, tracestate) and as the CloudEvents
    distributed-tracing extension (ce-traceparent, ce-tracestate)."""
    attributes = {
        "specversion": "1.0",
        "id": event_id,
        "type": type,
        "source": source,
        "time": as_utc(time).isoformat().replace("+00:00", "Z"),
        "subject": subject,
        "dataschema": type_url(data_schema),
        "datacontenttype": CONTENT_TYPE,
    }
    headers = {"Nats-Msg-Id": msg_id or event_id}
    headers.update({f"ce-{k}": encode_value(v) for k, v in attributes.items() if v})
    for name in TRACE_HEADERS:
        if trace and trace.get(name):
            headers[name] = trace[name]
            headers[f"ce-{name}"] = encode_value(trace[name])
    return headers


def trace_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The W3C trace context of a received event: traceparent/tracestate, else the
    CloudEvents extension's ce-traceparent/ce-tracestate."""
    out = {n: headers[n] for n in TRACE_HEADERS if headers.get(n)}
    if not out:
        out = {n: unquote(headers[f"ce-{n}"]) for n in TRACE_HEADERS if headers.get(f"ce-{n}")}
    return out


def headers_for(row: OutboxEvent, source: str, trace: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    return ce_headers(event_id=row.event_id, type=row.ce_type, source=source,
                      time=row.created_at, subject=row.ce_subject, data_schema=row.data_schema,
                      trace=trace)


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

    def parse(self, message_type: builtins.type[M]) -> M:
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
        ce = {k[3:]: unquote(v) for k, v in headers.items() if k.startswith("ce-")}
        return cls(
            id=ce["id"],
            type=ce["type"],
            source=ce["source"],
            subject=ce.get("subject", ""),
            time=datetime.fromisoformat(ce["time"].replace("Z", "+00:00")),
            nats_subject=nats_subject,
            data_schema=ce.get("dataschema", ""),
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

    def _after_commit(self, session: Committed) -> None:
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
                # the publish continues the trace of the call (or event) that wrote the row
                with tracing.continued(
                    tracing.loads(row.trace_context), f"{row.subject} publish",
                    SpanKind.PRODUCER, self._db.service,
                    **{"messaging.system": "nats", "messaging.destination.name": row.subject,
                       "messaging.message.id": row.event_id},
                ):
                    await js.publish(row.subject, row.data, timeout=5,
                                     headers=headers_for(row, self._source, tracing.carrier()))
                published.append(row.seq or 0)
                metrics.OUTBOX_PUBLISHED.labels(service=self._db.service).inc()
        finally:
            if published:
                await self._mark_sent(published)
        return len(published)

    async def _mark_sent(self, seqs: list[int]) -> None:
        # one UPDATE by Database.write: one thread hop on SQLite, no session on PostgreSQL
        now = self._clock.now()

        def work(w: Write) -> None:
            w.add(update(OUTBOX_TABLE).where(OUTBOX_TABLE.c.seq.in_(seqs)).values(sent_at=now))

        await self._db.write(work)

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

