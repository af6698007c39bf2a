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
from services.research.server import SPEC as RESEARCH
from tests.flows.test_flow_research_relay import publish_note, research
from tests.harness import SUPERVISOR, eventually
from tests.vip.support import ROLE, Branch, branch, broker

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    tracing.configure_tracing("tests").add_span_processor(SimpleSpanProcessor(EXPORTER))
    yield EXPORTER
    EXPORTER.shutdown()  # later tests' spans are not kept (a processor cannot be removed)


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
    """The test is the calling client (as branchctl would be): its channels carry the trace."""
    plain = dict(b.channels)
    for name, runner in b.runners.items():
        b.channels[name] = grpc.aio.insecure_channel(
            f"127.0.0.1:{runner.port}", interceptors=tracing.channel_interceptors())
    try:
        yield
    finally:
        for name in b.runners:
            await b.channels[name].close()
        b.channels.update(plain)


def service_of(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    if "branch.service" in attrs:
        return str(attrs["branch.service"])
    rpc_service = str(attrs.get("rpc.service", ""))  # branch.<service>.v1.<Name>Service
    if span.kind == trace.SpanKind.SERVER and rpc_service.startswith("branch."):
        return rpc_service.split(".")[1]
    return ""


def in_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]


async def test_flow1_is_one_trace_across_the_services(tmp_path: Path, spans: InMemorySpanExporter, log_lines: list[dict[str, Any]]) -> None:
    async with branch(tmp_path, RESEARCH) as b:
        br1 = await b.staff(ROLE.ROLE_BROKER)
        c1 = await b.key_client(br1, tolerance=client_pb2.RISK_TOLERANCE_C4)
        await b.holdings([(c1, "600519")])
        async with traced_channels(b):
            client = trace.get_tracer("branch.branchctl")
            with client.start_as_current_span("flow 1: research reaches key clients",
                                              attributes={"branch.service": "client"}) as root:
                trace_id = root.get_span_context().trace_id
                note = await publish_note(b, "600519")

                async def relays() -> list[relay_pb2.RelayTask] | None:
                    res = await b.vip.ListRelays(api.ListRelaysRequest(note_id=note.id),
                                                 metadata=SUPERVISOR)
                    return list(res.relays) or None

                [relay] = await eventually(relays)
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

                await eventually(reach)

            def reach_consumed() -> list[ReadableSpan] | None:
                return [s for s in in_trace(spans, trace_id)
                        if s.kind == trace.SpanKind.CONSUMER
                        and s.name == "branch.vip.relay.acknowledged process"
                        and service_of(s) == "research"] or None

            await eventually(reach_consumed)

    mine = in_trace(spans, trace_id)
    by_name = {(service_of(s), s.kind, s.name) for s in mine}
    # note published by research -> relayed -> consumed by vip
    assert ("research", trace.SpanKind.PRODUCER, "branch.research.note.published publish") \
        in by_name
    assert ("vip", trace.SpanKind.CONSUMER, "branch.research.note.published process") in by_name
    # the relay planner continues it and pages the directory over gRPC
    planner = [s for s in mine if s.name == "vip relay plan"]
    assert planner
    directory = [s for s in mine if service_of(s) == "directory"
                 and s.kind == trace.SpanKind.SERVER
                 and str((s.attributes or {}).get("rpc.method")) == "FindClientsByTickers"]
    assert directory and any(_descends(d, planner[0], mine) for d in directory)
    # acknowledgement on vip -> event -> research's reach consumer
    assert ("vip", trace.SpanKind.PRODUCER, "branch.vip.relay.acknowledged publish") in by_name
    assert ("research", trace.SpanKind.CONSUMER, "branch.vip.relay.acknowledged process") \
        in by_name
    assert {"client", "research", "vip", "directory"} <= {service_of(s) for s in mine}
    # every span of the flow hangs from the client's root: one tree, one trace
    root_span = next(s for s in mine if s.parent is None)
    assert all(_descends(s, root_span, mine) for s in mine)

    # log lines carry the ids: the planner's, inside the trace; the acknowledgement's RPC line
    planned = [line for line in log_lines if line.get("event") == "relays planned"]
    assert planned and planned[0]["trace_id"] == format(trace_id, "032x")
    ack = [line for line in log_lines if line.get("event") == "rpc"
           and line.get("rpc_method", "").endswith("/RecordRelayAcknowledgement")]
    assert ack[0]["trace_id"] == format(trace_id, "032x")
    assert (ack[0]["request_id"], ack[0]["staff_id"]) == ("ack-req-2", br1)


def _descends(span: ReadableSpan, ancestor: ReadableSpan, spans: list[ReadableSpan]) -> bool:
    by_id = {s.context.span_id: s for s in spans}
    current: ReadableSpan | None = span
    while current is not None:
        if current.context.span_id == ancestor.context.span_id:
            return True
        current = by_id.get(current.parent.span_id) if current.parent else None
    return False


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
