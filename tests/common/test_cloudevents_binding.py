"""Events on NATS follow the CloudEvents NATS protocol binding (binary mode): every attribute
a percent-encoded ce-* header, the content type in ce-datacontenttype, dataschema the protobuf
format's type URL, the trace context as the distributed-tracing extension. The messages are
read back from a real JetStream with the CloudEvents SDK's header decoding and attribute
validation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from branch.directory.v1 import client_pb2, events_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from cloudevents.core.bindings.common import decode_header_value
from cloudevents.core.v1.event import CloudEvent
from nats.aio.msg import Msg
from opentelemetry import trace

from services.common import migrations, tracing
from services.common.clock import FakeClock
from services.common.db import Database
from services.common.events import Event, OutboxRelay, emit
from services.common.nats_link import NatsLink
from services.directory.server import SPEC
from tests.directory.factories import client_msg
from tests.harness import ADMIN, channel, collect_events, make_settings, running, unique

# 00:10 in Shanghai on 1 December: a time just after local midnight
NOW = datetime(2026, 11, 30, 16, 10, tzinfo=UTC)


def read_back(msg: Msg) -> CloudEvent:
    """The SDK's rules: ce-<attribute> headers, percent-decoded, validated as CloudEvents 1.0."""
    attributes = {name[3:]: decode_header_value(name[3:], value)
                  for name, value in (msg.headers or {}).items() if name.startswith("ce-")}
    return CloudEvent(attributes, msg.data)


@pytest.fixture
async def relay(tmp_path: Path, nats_url: str) -> AsyncIterator[OutboxRelay]:
    tracing.configure_tracing("probe")  # as ServiceRunner does
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/probe.db", service="probe")
    await migrations.upgrade(db, SPEC.migrations)
    link = NatsLink(nats_url, "probe")
    await link.connect(attempts=3)
    yield OutboxRelay(db, link, FakeClock(NOW), 60)
    await link.close()
    await db.dispose()


async def test_attributes_are_percent_encoded_and_read_back_by_the_sdk(
        relay: OutboxRelay, nats_url: str) -> None:
    subject = f"branch.probe.{unique('ce')}.happened"
    about = '客户 "VIP" 100%'  # non-ASCII, space, quote and percent: all must be encoded
    payload = events_pb2.ClientCreated(client=client_pb2.Client(id="c1"))
    with trace.get_tracer("test").start_as_current_span("caller") as span:
        async with relay._db.transaction() as session:
            event_id = emit(session, subject=subject, message=payload, about=about, now=NOW)
        trace_id = span.get_span_context().trace_id
    assert await relay.flush_once() == 1

    [msg] = await collect_events(nats_url, subject, count=1)
    for name, value in msg.headers.items():
        assert value.isascii() and " " not in value and '"' not in value, (name, value)
    assert "content-type" not in {k.lower() for k in msg.headers}
    event = read_back(msg)
    assert event.get_id() == event_id == msg.headers["Nats-Msg-Id"]
    assert event.get_specversion() == "1.0"
    assert event.get_type() == subject
    assert event.get_source() == "/branch/probe"
    assert event.get_subject() == about
    assert event.get_time() == NOW
    assert event.get_datacontenttype() == "application/protobuf"
    assert event.get_dataschema() == "type.googleapis.com/" + payload.DESCRIPTOR.full_name
    parsed = events_pb2.ClientCreated()
    data = event.get_data()
    assert isinstance(data, bytes)  # binary mode: the payload as sent
    parsed.ParseFromString(data)
    assert parsed == payload
    # distributed-tracing extension (and the W3C header) carry the caller's trace
    traceparent = event.get_extension("traceparent")
    assert traceparent and traceparent == msg.headers["traceparent"]
    assert traceparent.split("-")[1] == format(trace_id, "032x")
    # our consumers decode the same way
    ours = Event.from_headers(msg.subject, dict(msg.headers), msg.data)
    assert (ours.subject, ours.time, ours.data_schema) == (
        about, NOW, "type.googleapis.com/branch.directory.v1.ClientCreated")
    assert tracing.context_from(msg.headers)  # a context the consumer continues


async def test_a_service_event_is_a_valid_cloudevent(tmp_path: Path, nats_url: str) -> None:
    settings = make_settings(tmp_path, nats_url)
    async with running(SPEC, settings) as runner, channel(runner) as ch:
        made = await DirectoryServiceStub(ch).CreateClient(
            api.CreateClientRequest(client=client_msg()), metadata=ADMIN)
        await runner.relay.flush_once()
    msgs = await collect_events(nats_url, "branch.directory.client.created", count=10_000,
                                timeout=2)
    [msg] = [m for m in msgs if m.headers.get("ce-subject") == made.id]
    event = read_back(msg)
    assert event.get_source() == "/branch/directory"
    assert event.get_datacontenttype() == "application/protobuf"
    assert event.get_dataschema() == "type.googleapis.com/branch.directory.v1.ClientCreated"
    assert event.get_extension("traceparent")  # the CreateClient call's trace
