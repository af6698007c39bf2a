"""Traces leave the process only when asked: BRANCH_OTLP_ENDPOINT is empty by default, and
when set the spans reach an OTLP/gRPC collector (here a real gRPC server speaking the OTLP
trace service)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as otlp_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from services.common import tracing
from services.common.settings import Settings


class Collector(otlp_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.received: list[otlp.ExportTraceServiceRequest] = []

    async def Export(self, request: otlp.ExportTraceServiceRequest,  # noqa: N802
                     context: grpc.aio.ServicerContext[Any, Any]
                     ) -> otlp.ExportTraceServiceResponse:
        self.received.append(request)
        return otlp.ExportTraceServiceResponse()


def test_export_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRANCH_OTLP_ENDPOINT", raising=False)
    assert Settings().otlp_endpoint == ""
    monkeypatch.setenv("BRANCH_OTLP_ENDPOINT", "collector:4317")
    assert Settings().otlp_endpoint == "collector:4317"


async def test_spans_reach_an_otlp_collector() -> None:
    collector = Collector()
    server = grpc.aio.server()
    # opentelemetry-proto ships its generated *_pb2_grpc modules without annotations
    otlp_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "vip"}))
        tracing.export_otlp(provider, f"127.0.0.1:{port}")
        with provider.get_tracer("test").start_as_current_span("branch.vip.relay.planned"):
            pass
        # the exporter runs in its own thread; flushing waits for it
        assert await asyncio.to_thread(provider.force_flush, 10_000)
        provider.shutdown()
    finally:
        await server.stop(0)
    spans = [(r.resource.attributes, s.name) for req in collector.received
             for r in req.resource_spans for ss in r.scope_spans for s in ss.spans]
    assert [name for _, name in spans] == ["branch.vip.relay.planned"]
    attrs = {a.key: a.value.string_value for a in spans[0][0]}
    assert attrs["service.name"] == "vip"
