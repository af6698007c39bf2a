"""OpenTelemetry tracing: W3C trace context through gRPC calls, the outbox and NATS headers.

- configure_tracing(): one SDK tracer provider per service (resource service.name); spans are
  exported over OTLP/gRPC only when Settings.otlp_endpoint (BRANCH_OTLP_ENDPOINT) is set; off
  by default. Without an exporter spans are still made, so log lines carry a real trace_id.
- server_interceptor() / channel_interceptors(): the gRPC instrumentation for the server and
  for peer channels (the latter also forwards the caller's x-request-id).
- export_all_to(): every service's spans also to one more processor (a test's exporter).
- carrier() / context_from(): the current trace context as W3C headers (traceparent,
  tracestate) and back; the outbox stores it with each row, the relay sends it, consumers
  continue it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.grpc.filters import any_of, health_check, negate, service_prefix
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
# the caller's request id, forwarded on peer calls made while handling its RPC
REQUEST_ID: ContextVar[str] = ContextVar("branch_request_id", default="")
REQUEST_ID_HEADER = "x-request-id"
# health checks and reflection make no spans
_FILTER = negate(any_of(health_check(), service_prefix("grpc.reflection.")))


def configure_tracing(service: str, otlp_endpoint: str = "") -> TracerProvider:
    """The tracer provider of `service` (made once per process and service), and, with
    otlp_endpoint (host:port of an OTLP/gRPC collector), a batching exporter to it.

    Each service has its own provider, so its spans carry the resource service.name=service
    even when several services share a process (`branch up`, the tests). The first one made
    is also the process's global provider, for code that names no service."""
    provider = _providers.get(service)
    if provider is None:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(_SHARED)
        _providers[service] = provider
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            trace.set_tracer_provider(provider)
    if otlp_endpoint and (service, otlp_endpoint) not in _exporting:
        export_otlp(provider, otlp_endpoint)
        _exporting.add((service, otlp_endpoint))
    return provider


class _Fanout(SpanProcessor):
    """Hands every provider's spans to the processors added with export_all_to (a test's
    in-memory exporter, a console exporter); they can be removed again."""

    def __init__(self) -> None:
        self.processors: list[SpanProcessor] = []

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        for p in list(self.processors):
            p.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for p in list(self.processors):
            p.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in list(self.processors))


_SHARED = _Fanout()
_providers: dict[str, TracerProvider] = {}
_exporting: set[tuple[str, str]] = set()


@contextmanager
def export_all_to(processor: SpanProcessor) -> Iterator[SpanProcessor]:
    """Every service's spans (in this process) also go to processor while the block runs."""
    _SHARED.processors.append(processor)
    try:
        yield processor
    finally:
        _SHARED.processors.remove(processor)
        processor.shutdown()


def export_otlp(provider: TracerProvider, endpoint: str) -> None:
    """Send the provider's spans, in batches, to an OTLP/gRPC collector at endpoint
    (host:port, plaintext inside the cluster)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint,
                                                                    insecure=True)))


def _provider(service: str) -> trace.TracerProvider:
    return configure_tracing(service) if service else trace.get_tracer_provider()


def tracer(service: str) -> trace.Tracer:
    """The tracer of `service`: its spans name the service in their resource."""
    return _provider(service).get_tracer(f"branch.{service}")


def server_interceptor(service: str) -> grpc.aio.ServerInterceptor:
    """The OpenTelemetry gRPC server interceptor of `service`: put it first, so the span is
    current in the service's own interceptor and handlers."""
    # the instrumentation package has no type hints
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=_provider(service), filter_=_FILTER)
    return interceptor


def channel_interceptors(caller: str = "") -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for a channel to a peer service: a client span per call (in the
    caller's provider; the global one when caller is ''), traceparent in the call's
    metadata, and the x-request-id of the RPC being handled."""
    traced: list[grpc.aio.ClientInterceptor] = aio_client_interceptors(  # type: ignore[no-untyped-call]
        tracer_provider=_provider(caller), filter_=_FILTER)
    return [*traced, *_request_id_interceptors()]


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers ({} outside any span)."""
    out: dict[str, str] = {}
    _PROPAGATOR.inject(out)
    return out


def dumps(headers: Mapping[str, str]) -> str:
    """For the outbox's trace_context column: '' when there is no context."""
    return json.dumps(dict(headers), separators=(",", ":")) if headers else ""


def loads(text: str) -> dict[str, str]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def context_from(headers: Mapping[str, str]) -> otel_context.Context:
    """The trace context carried by headers (traceparent, tracestate); empty if none."""
    return _PROPAGATOR.extract(dict(headers))


@contextmanager
def continued(
    headers: Mapping[str, str], name: str, kind: trace.SpanKind, service: str,
    **attributes: Any,
) -> Iterator[trace.Span]:
    """A span of `service`, child of the context in headers (a new root when they carry
    none), current for the block."""
    with tracer(service).start_as_current_span(
        name, context=context_from(headers), kind=kind, attributes=attributes,
    ) as span:
        yield span


def _with_request_id(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    request_id = REQUEST_ID.get()
    metadata = list(details.metadata or ())
    if not request_id or any(k == REQUEST_ID_HEADER for k, _ in metadata):
        return details
    metadata.append((REQUEST_ID_HEADER, request_id))
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, grpc.aio.Metadata(*metadata),
        details.credentials, details.wait_for_ready,
    )


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(_with_request_id(details), request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(_with_request_id(details), request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(_with_request_id(details), request_iterator)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(_with_request_id(details), request_iterator)


def _request_id_interceptors() -> list[grpc.aio.ClientInterceptor]:
    return [_UnaryUnary(), _UnaryStream(), _StreamUnary(), _StreamStream()]
