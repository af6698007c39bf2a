"""Tracing end to end (DESIGN.md flow 1 and a peer call): W3C trace context through gRPC calls
(the OpenTelemetry instrumentation on servers and peer channels), the outbox and NATS headers;
consumers continue the trace; log lines carry trace_id, request_id and staff_id.

The spans go to the OpenTelemetry SDK's in-memory exporter (the real SDK, no export)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import grpc
import pytest
import structlog
from branch.directory.v1 import client_pb2
from branch.research.v1 import distribution_pb2
from branch.research.v1 import research_service_pb2 as rapi
from branch.vip.v1 import advisory_pb2, relay_pb2, rota_pb2
from branch.vip.v1 import vip_service_pb2 as api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common import tracing
from services.common.logs import add_trace_ids
from services.common.protos import ts
from services.insight.server import SPEC as INSIGHT
from services.research.server import SPEC as RESEARCH
from tests.flows.test_flow_research_relay import publish_note, research
from tests.harness import SUPERVISOR, eventually
from tests.vip.support import ROLE, Branch, branch, broker

CLIENT = "branchctl"  # the test is the calling client, as branchctl would be
ROOT = "branchctl flow 1: publish a note and relay it"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every service's spans in this process (each service has its own tracer provider and
    resource), collected by one in-memory exporter."""
    exporter = InMemorySpanExporter()
    with tracing.export_all_to(SimpleSpanProcessor(exporter)):
        yield exporter


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """Every log line as the JSON renderer would get it (context merged, trace ids added)."""
    captured: list[dict[str, Any]] = []

    def keep(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> NoReturn:
        captured.append(dict(event))
        raise structlog.DropEvent

    old = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, add_trace_ids,
                                    keep],
                        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        yield captured
    finally:
        structlog.configure(**old)


@asynccontextmanager
async def traced_channels(b: Branch) -> AsyncIterator[None]:
    """The test's channels carry the trace, as a peer service's do (client spans of CLIENT)."""
    plain = dict(b.channels)
    for name, runner in b.runners.items():
        b.channels[name] = grpc.aio.insecure_channel(
            f"127.0.0.1:{runner.port}", interceptors=tracing.channel_interceptors(CLIENT))
    try:
        yield
    finally:
        for name in b.runners:
            await b.channels[name].close()
        b.channels.update(plain)


def service_of(span: ReadableSpan) -> str:
    """The OpenTelemetry resource's service.name: which service's provider made the span."""
    return str(span.resource.attributes.get("service.name", ""))


def in_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


class Tree:
    """The finished spans of one trace, looked up by (service, kind, name or RPC method)."""

    def __init__(self, spans: list[ReadableSpan]) -> None:
        self.spans = spans
        self.by_id = {s.context.span_id: s for s in spans}

    def find(self, service: str, kind: trace.SpanKind, what: str) -> list[ReadableSpan]:
        return [s for s in self.spans if service_of(s) == service and s.kind == kind
                and what in (s.name, str((s.attributes or {}).get("rpc.method", "")))]

    def one(self, service: str, kind: trace.SpanKind, what: str) -> ReadableSpan:
        found = self.find(service, kind, what)
        assert len(found) == 1, (service, kind, what, self.describe())
        return found[0]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return self.by_id.get(span.parent.span_id) if span.parent else None

    def child(self, parent: ReadableSpan, service: str, kind: trace.SpanKind,
              what: str) -> ReadableSpan:
        """The one span of service (kind, what) whose parent is `parent`."""
        found = [s for s in self.find(service, kind, what) if self.parent(s) is parent]
        assert len(found) == 1, (service, kind, what, parent.name, self.describe())
        return found[0]

    def descends(self, span: ReadableSpan, ancestor: ReadableSpan) -> bool:
        current: ReadableSpan | None = span
        while current is not None:
            if current is ancestor:
                return True
            current = self.parent(current)
        return False

    def describe(self) -> list[tuple[str, str, str, str]]:
        return [(service_of(s), s.kind.name, s.name,
                 (p.name if (p := self.parent(s)) else "-")) for s in self.spans]


CONSUMER, PRODUCER = trace.SpanKind.CONSUMER, trace.SpanKind.PRODUCER
SERVER, CLIENT_KIND = trace.SpanKind.SERVER, trace.SpanKind.CLIENT


async def test_flow1_is_one_trace_across_four_services(
        tmp_path: Path, spans: InMemorySpanExporter, log_lines: list[dict[str, Any]]) -> None:
    """DESIGN.md flow 1 as one trace: the client publishes the note (research), vip's note
    consumer plans the relays and asks the directory who holds the ticker, the broker records
    the explanation (insight's read model consumes it) and the client's acknowledgement, and
    research's reach consumer counts it. Every gRPC hop (client span -> server span) and every
    event hop (outbox row -> producer span -> NATS headers -> consumer span) is a parent link."""
    async with branch(tmp_path, RESEARCH, INSIGHT) as b:
        br1 = await b.staff(ROLE.ROLE_BROKER)
        c1 = await b.key_client(br1, tolerance=client_pb2.RISK_TOLERANCE_C4)
        await b.holdings([(c1, "600519")])
        async with traced_channels(b):
            with tracing.tracer(CLIENT).start_as_current_span(ROOT) as root:
                trace_id = root.get_span_context().trace_id
                note = await publish_note(b, "600519")

                async def relays() -> list[relay_pb2.RelayTask] | None:
                    res = await b.vip.ListRelays(api.ListRelaysRequest(note_id=note.id),
                                                 metadata=SUPERVISOR)
                    return list(res.relays) or None

                [relay] = await eventually(relays, timeout=60)
                await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
                    id=relay.id, channel=relay_pb2.RELAY_CHANNEL_PHONE,
                    summary="Walked the client through the thesis."),
                    metadata=(*broker(br1), ("x-request-id", "ack-req-1")))
                await b.vip.RecordRelayAcknowledgement(api.RecordRelayAcknowledgementRequest(
                    id=relay.id, note="understood"),
                    metadata=(*broker(br1), ("x-request-id", "ack-req-2")))

                async def reach() -> distribution_pb2.NoteReach | None:
                    r = await research(b).GetNoteReach(
                        rapi.GetNoteReachRequest(note_id=note.id), metadata=SUPERVISOR)
                    return r if r.acknowledged == 1 else None

                await eventually(reach, timeout=60)

            def consumed() -> bool:
                """Each event hop's consumer span has ended (research's reach consumer has
                counted it, insight's read model has taken the delivery)."""
                t = Tree(in_trace(spans, trace_id))
                return all(t.find(service, CONSUMER, f"{subject} process") for service, subject
                           in [("research", "branch.vip.relay.acknowledged"),
                               ("research", "branch.vip.relay.planned"),
                               ("insight", "branch.vip.relay.delivered")])

            await eventually(consumed, timeout=60)

    t = Tree(in_trace(spans, trace_id))
    # one tree: a single root, the client's span; no span points at a parent outside it
    roots = [s for s in t.spans if t.parent(s) is None]
    assert roots == [t.one(CLIENT, trace.SpanKind.INTERNAL, ROOT)], t.describe()
    top = roots[0]
    assert top.parent is None
    assert all(t.descends(s, top) for s in t.spans)

    # the publish call: client span -> research's server span
    publish = t.child(t.child(top, CLIENT, CLIENT_KIND, "PublishNote"),
                      "research", SERVER, "PublishNote")
    # outbox -> NATS -> vip's note consumer -> the relay planner -> the directory, over gRPC
    published = t.child(publish, "research", PRODUCER, "branch.research.note.published publish")
    noted = t.child(published, "vip", CONSUMER, "branch.research.note.published process")
    planner = t.child(noted, "vip", trace.SpanKind.INTERNAL, "vip relay plan")
    holders = t.child(planner, "vip", CLIENT_KIND, "FindClientsByTickers")
    t.child(holders, "directory", SERVER, "FindClientsByTickers")
    # the planner's event reaches research (targeted count)
    planned = t.child(planner, "vip", PRODUCER, "branch.vip.relay.planned publish")
    t.child(planned, "research", CONSUMER, "branch.vip.relay.planned process")
    # the broker's explanation: vip's RPC -> event -> insight's read model (and research)
    delivery = t.child(t.child(top, CLIENT, CLIENT_KIND, "RecordRelayDelivery"),
                       "vip", SERVER, "RecordRelayDelivery")
    delivered = t.child(delivery, "vip", PRODUCER, "branch.vip.relay.delivered publish")
    t.child(delivered, "insight", CONSUMER, "branch.vip.relay.delivered process")
    t.child(delivered, "research", CONSUMER, "branch.vip.relay.delivered process")
    # the acknowledgement: vip's RPC -> event -> research's reach consumer
    ack = t.child(t.child(top, CLIENT, CLIENT_KIND, "RecordRelayAcknowledgement"),
                  "vip", SERVER, "RecordRelayAcknowledgement")
    acked = t.child(ack, "vip", PRODUCER, "branch.vip.relay.acknowledged publish")
    t.child(acked, "research", CONSUMER, "branch.vip.relay.acknowledged process")
    # four services besides the client, each named by its own resource
    services = {service_of(s) for s in t.spans}
    assert services == {CLIENT, "research", "vip", "directory", "insight"}, t.describe()

    # log lines carry the ids: the planner's, inside the trace; the acknowledgement's RPC line
    planned_lines = [line for line in log_lines if line.get("event") == "relays planned"]
    assert planned_lines and planned_lines[0]["trace_id"] == format(trace_id, "032x")
    ack_lines = [line for line in log_lines if line.get("event") == "rpc"
                 and line.get("rpc_method", "").endswith("/RecordRelayAcknowledgement")]
    assert ack_lines[0]["trace_id"] == format(trace_id, "032x")
    assert (ack_lines[0]["request_id"], ack_lines[0]["staff_id"]) == ("ack-req-2", br1)


async def test_handler_logs_and_peer_calls_carry_request_staff_and_trace_ids(
        tmp_path: Path, spans: InMemorySpanExporter, log_lines: list[dict[str, Any]]) -> None:
    async with branch(tmp_path) as b:
        br = await b.staff(ROLE.ROLE_BROKER)
        client_id = await b.key_client(br, tolerance=client_pb2.RISK_TOLERANCE_C4)
        now = b.clock.now()
        await b.shift(br, now - timedelta(hours=1), now + timedelta(hours=7))
        log_lines.clear()
        await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(
            advisory=advisory_pb2.Advisory(client_id=client_id, tickers=["600519"],
                                           question="Will margins hold?")),
            metadata=(*broker(br), ("x-request-id", "req-adv-1")))
        # CreateShift checks the staff member with the directory: a peer call
        await b.vip.CreateShift(api.CreateShiftRequest(shift=rota_pb2.Shift(
            staff_id=br, role=rota_pb2.SHIFT_ROLE_BROKER, start_time=ts(now + timedelta(hours=8)),
            end_time=ts(now + timedelta(hours=9)))),
            metadata=(*SUPERVISOR, ("x-request-id", "req-shift-1")))

    opened = [line for line in log_lines if line.get("event") == "advisory opened"]
    assert opened, "the handler's own log line"
    line = opened[0]
    assert line["request_id"] == "req-adv-1"
    assert line["staff_id"] == br
    assert len(line["trace_id"]) == 32
    # the vip RPC's server span and the handler's line share the trace
    vip_rpc = [s for s in spans.get_finished_spans()
               if str((s.attributes or {}).get("rpc.method")) == "CreateAdvisory"]
    assert format(vip_rpc[-1].context.trace_id, "032x") == line["trace_id"]

    # the peer call forwarded the request id, and the directory's RPC is in vip's trace
    rpc = {(line["rpc_method"].rsplit("/", 1)[-1]): line for line in log_lines
           if line.get("event") == "rpc" and line.get("request_id") == "req-shift-1"}
    assert set(rpc) == {"CreateShift", "GetStaff"}
    assert rpc["GetStaff"]["trace_id"] == rpc["CreateShift"]["trace_id"]
    assert rpc["GetStaff"]["staff_id"] != rpc["CreateShift"]["staff_id"]  # vip's own token
