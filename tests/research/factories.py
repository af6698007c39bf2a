"""Test data for research: staff metadata and note builders."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from branch.directory.v1 import client_pb2
from branch.research.v1 import note_enums_pb2 as enums
from branch.research.v1 import note_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2 as api
from google.protobuf.message import Message
from nats.aio.msg import Msg

from services.common.clock import FakeClock
from services.common.protos import ts
from tests.harness import Metadata, auth

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub

ANALYST = auth("ana-1", "analyst")
ANALYST2 = auth("ana-2", "analyst")
COMPLIANCE = auth("comp-1", "compliance")
COMPLIANCE2 = auth("comp-2", "compliance")
BROKER = auth("brk-1", "broker")
CONSULTANT = auth("con-1", "consultant")
MANAGER = auth("cm-1", "client_manager")
SUPER = auth("sup-1", "supervisor")
# One person holding both roles: may write, but never review their own note.
ANALYST_COMPLIANCE = auth("dual-1", "analyst", "compliance")


def note(**kw: Any) -> note_pb2.Note:
    fields: dict[str, Any] = dict(
        title="Kweichow Moutai: margins hold",
        summary="Pricing power intact; we stay constructive.",
        body="# Thesis\n\nDemand for premium baijiu is steady.",
        kind=enums.NOTE_KIND_STOCK,
        stances=[enums.TickerStance(ticker="600519", stance=enums.STANCE_BUY)],
        risk_level=client_pb2.RISK_LEVEL_R3,
        valid_until="2026-03-31",
        audience=enums.AUDIENCE_ALL_CLIENTS,
    )
    fields.update(kw)
    return note_pb2.Note(**fields)


async def create(stub: ResearchServiceAsyncStub, meta: Metadata = ANALYST, request_id: str = "", **kw: Any) -> note_pb2.Note:
    return await stub.CreateNote(api.CreateNoteRequest(note=note(**kw), request_id=request_id),
                                 metadata=meta)


async def published(stub: ResearchServiceAsyncStub, meta: Metadata = ANALYST, **kw: Any) -> note_pb2.Note:
    """A note taken through review to publication."""
    n = await create(stub, meta, **kw)
    await stub.SubmitNote(api.SubmitNoteRequest(id=n.id), metadata=meta)
    await stub.ApproveNote(api.ApproveNoteRequest(id=n.id, revision=n.revision),
                           metadata=COMPLIANCE)
    return await stub.PublishNote(api.PublishNoteRequest(id=n.id), metadata=meta)


def research_request(clock: FakeClock, **kw: Any) -> research_request_pb2.ResearchRequest:
    fields: dict[str, Any] = dict(
        client_id="cli-1", tickers=["600519"], question="Is the dividend safe?",
        due_time=ts(clock.now() + timedelta(hours=8)),
    )
    fields.update(kw)
    return research_request_pb2.ResearchRequest(**fields)


async def publish_event(
    nats_url: str, subject: str, message: Message | Raw, *, event_id: str = "", msg_id: str = "",
    source: str = "/branch/test",
) -> str:
    """Publish a CloudEvent to the BRANCH stream as another service's outbox relay would."""
    import uuid
    from datetime import UTC, datetime

    import nats

    event_id = event_id or uuid.uuid4().hex
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(subject, message.SerializeToString(), headers={
            "Nats-Msg-Id": msg_id or event_id,
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-type": subject,
            "ce-source": source,
            "ce-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "ce-subject": "",
            "ce-dataschema": message.DESCRIPTOR.full_name,
            "content-type": "application/protobuf",
        })
    finally:
        await nc.close()
    return event_id


async def events_about(nats_url: str, subject: str, about: str, count: int = 1) -> list[Msg]:
    """Events on subject whose ce-subject is `about`, waiting until `count` are there."""
    import asyncio

    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    async def read() -> list[Msg]:
        nc = await nats.connect(nats_url)
        try:
            sub = await nc.jetstream().subscribe(
                subject, stream="BRANCH", ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
            )
            out = []
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.3)
                except Exception:
                    break
                if msg.headers and msg.headers.get("ce-subject") == about:
                    out.append(msg)
            await sub.unsubscribe()
            return out
        finally:
            await nc.close()

    for _ in range(40):
        found = await read()
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    return found


async def is_parked(nats_url: str, parked_subject: str, event_id: str) -> bool:
    """Whether the event with this id was parked on parked_subject."""
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().subscribe(
            parked_subject, stream="BRANCH", ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        seen = False
        while True:
            try:
                msg = await sub.next_msg(timeout=0.3)
            except Exception:
                break
            seen = seen or event_id in (msg.headers or {}).get("Nats-Msg-Id", "")
        await sub.unsubscribe()
        return seen
    finally:
        await nc.close()


class Raw:
    """A payload that is not a protobuf message of the expected type."""

    DESCRIPTOR = type("D", (), {"full_name": "raw"})()

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:  # noqa: N802
        return self.data
