"""Every gRPC channel of the suite and the serving side's transport, made in one place.

Peers are other hosts (compose services, Kubernetes pods), so channels use gRPC's own
machinery rather than loops of our own:

- transport: plaintext by default (inside a cluster network); TLS when BRANCH_TLS_CA_FILE is
  set (the servers' certificates are verified against it), presenting this process's
  BRANCH_TLS_CERT_FILE / BRANCH_TLS_KEY_FILE as a client certificate when it has one, which
  servers with BRANCH_TLS_CLIENT_AUTH=true require (mutual TLS);
- targets: `host:port` becomes `dns:///host:port`, resolved to every address the name has and
  called round robin (a headless Kubernetes Service lists every pod); targets that already
  name a scheme (`ipv4:a:1,b:2`, `unix:`, `dns:`) are kept;
- keepalive pings every 20 s, also on idle channels, so a peer host that vanished without
  closing its connections (a node lost, a partition) is noticed in about 30 s, not hours;
- retries: reads (AIP Get/List/BatchGet/Search methods, and the directory's FindClientsByTickers
  and server-streaming StreamTrades: every method of the peer named so that is not
  client-streaming, plus health Check) are retried on UNAVAILABLE by the channel's service
  config, up to 4 attempts with 0.1-2 s backoff; writes never are (their request ids make
  the caller's own retry safe);
- a deadline on every call: a call made without `timeout=` gets DEFAULT_DEADLINE_SECONDS;
- a bearer token (the service's own, for peer calls) is added as call metadata by a client
  interceptor, so it travels over plaintext as over TLS (gRPC's call credentials refuse an
  insecure transport).
"""

from __future__ import annotations

import collections
import importlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from services.common import tracing
from services.common.settings import Settings

DEFAULT_DEADLINE_SECONDS = 30.0
KEEPALIVE_TIME_MS = 20_000
KEEPALIVE_TIMEOUT_MS = 10_000
MAX_CONNECTION_AGE_MS = 5 * 60_000
# longer than the longest call a peer makes (remote reads a client's trades for up to 600 s)
MAX_CONNECTION_AGE_GRACE_MS = 11 * 60_000
# The fastest keepalive a server accepts from a client before answering GOAWAY.
SERVER_MIN_PING_INTERVAL_MS = 10_000
READ_PREFIXES = ("Get", "List", "BatchGet", "Search", "Find", "Stream")
HEALTH_SERVICE = "grpc.health.v1.Health"
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# gRPC name resolver schemes a configured address may already carry.
_SCHEME = re.compile(r"^(dns|ipv4|ipv6|unix|unix-abstract|vsock|xds):")


# ---- targets and options -----------------------------------------------------------------


def peer_target(address: str) -> str:
    """`host:port` -> `dns:///host:port` (every address of the name, round robin); a target
    that already names a resolver scheme is returned unchanged."""
    return address if _SCHEME.match(address) else f"dns:///{address}"


def read_methods(service: str) -> list[dict[str, str]]:
    """The methods of one suite service retried on UNAVAILABLE, as service-config names:
    those named READ_PREFIXES that do not stream requests. Empty for an unknown service.

    `service` is the suite's short name ("directory"); its API is branch.<service>.v1.
    """
    try:
        module = importlib.import_module(f"branch.{service}.v1.{service}_service_pb2")
    except ModuleNotFoundError:
        return []
    names: list[dict[str, str]] = []
    for svc in module.DESCRIPTOR.services_by_name.values():
        for method in svc.methods:
            if method.name.startswith(READ_PREFIXES) and not method.client_streaming:
                names.append({"service": svc.full_name, "method": method.name})
    return names


def service_config(service: str | None) -> dict[str, Any]:
    """Round robin over the target's addresses; reads of `service` and health checks retried."""
    retried = [*(read_methods(service) if service else []),
               {"service": HEALTH_SERVICE, "method": "Check"}]
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{"name": retried, "retryPolicy": RETRY_POLICY}],
        # A peer that is down for good does not get ten times the calls.
        "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    }


def server_name_for(settings: Settings, service: str) -> str:
    """The name a service's certificate carries: the host of BRANCH_<SERVICE>_ADDR (what its
    peers dial), or the service's own name when that is unset or names no single host."""
    address = getattr(settings, f"{service}_addr", "")
    host = address.removeprefix("dns:///").rsplit(":", 1)[0] if address else ""
    if not host or _SCHEME.match(address.removeprefix("dns:///")) or "," in host:
        return service
    return host


def client_options(service: str | None = None,
                   server_name: str | None = None) -> list[tuple[str, Any]]:
    """Channel arguments for a client of `service` (None: no retried reads but health);
    server_name: the name the server's certificate must carry when it is not the target's
    host (a health check dialling 127.0.0.1)."""
    named = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return [*named,
        ("grpc.service_config", json.dumps(service_config(service))),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_options() -> list[tuple[str, Any]]:
    """Server arguments: accept the clients' keepalive pings (also between calls); close
    each connection after MAX_CONNECTION_AGE_MS (calls in flight get the grace to finish),
    so that clients resolve the name again and spread over replicas added since."""
    return [
        ("grpc.so_reuseport", 0),
        ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
        ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", SERVER_MIN_PING_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", 0),
    ]


# ---- TLS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """PEM bytes read from the BRANCH_TLS_* files (checked by Settings at start-up)."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None
    client_auth: bool


def tls_files(settings: Settings) -> TlsFiles:
    def read(name: str) -> bytes | None:
        return Path(name).read_bytes() if name else None

    return TlsFiles(ca=read(settings.tls_ca_file), cert=read(settings.tls_cert_file),
                    key=read(settings.tls_key_file), client_auth=settings.tls_client_auth)


def client_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """TLS credentials for calling peers when BRANCH_TLS_CA_FILE is set, else None
    (plaintext). This process's certificate goes along when it has one (for mutual TLS)."""
    if not settings.tls_ca_file:
        return None
    files = tls_files(settings)
    return grpc.ssl_channel_credentials(
        root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS for the serving side when BRANCH_TLS_CERT_FILE is set, else None (plaintext);
    with BRANCH_TLS_CLIENT_AUTH a client must show a certificate signed by the CA."""
    if not settings.tls_cert_file:
        return None
    files = tls_files(settings)
    assert files.cert is not None and files.key is not None  # Settings checked the pair
    return grpc.ssl_server_credentials(
        [(files.key, files.cert)], root_certificates=files.ca,
        require_client_auth=files.client_auth)


def serving_mode(settings: Settings) -> str:
    """What the serving side asks of clients, for logs: plaintext, tls or mutual-tls."""
    if not settings.tls_cert_file:
        return "plaintext"
    return "mutual-tls" if settings.tls_client_auth else "tls"


def bind(server: grpc.aio.Server, settings: Settings, address: str) -> int:
    """Listen on address (host:port) with TLS when configured; returns the bound port,
    0 when the address could not be bound."""
    creds = server_credentials(settings)
    if creds is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, creds)


# ---- call defaults: a deadline and the caller's token --------------------------------------


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                     "compression")),
    grpc.ClientCallDetails,
):
    """Call details of the blocking API (grpc has no concrete class for them)."""


def _metadata(metadata: Any, extra: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    out = list(metadata or ())
    keys = {k for k, _ in out}
    out.extend((k, v) for k, v in extra if k not in keys)  # the caller's own wins
    return out


class _AioDefaults(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds the default deadline and metadata to every call that lacks them."""

    def __init__(self, deadline: float,
                 metadata: Callable[[], Sequence[tuple[str, str]]]) -> None:
        self.deadline = deadline
        self.extra = metadata  # asked at every call: the service token is renewed

    def _details(self, d: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            d.method, self.deadline if d.timeout is None else d.timeout,
            grpc.aio.Metadata(*_metadata(d.metadata, self.extra())), d.credentials,
            d.wait_for_ready)

    async def intercept_unary_unary(self, continuation: Callable[..., Any],
                                    client_call_details: grpc.aio.ClientCallDetails,
                                    request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any],
                                     client_call_details: grpc.aio.ClientCallDetails,
                                     request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_stream_unary(self, continuation: Callable[..., Any],
                                     client_call_details: grpc.aio.ClientCallDetails,
                                     request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)

    async def intercept_stream_stream(self, continuation: Callable[..., Any],
                                      client_call_details: grpc.aio.ClientCallDetails,
                                      request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _SyncDefaults(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """The blocking API's twin of _AioDefaults."""

    def __init__(self, deadline: float,
                 metadata: Callable[[], Sequence[tuple[str, str]]]) -> None:
        self.deadline = deadline
        self.extra = metadata  # asked at every call: the service token is renewed

    def _details(self, d: grpc.ClientCallDetails) -> _Details:
        return _Details(
            d.method, self.deadline if d.timeout is None else d.timeout,
            _metadata(d.metadata, self.extra()), d.credentials,
            getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation: Callable[..., Any],
                              client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any],
                               client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any],
                               client_call_details: grpc.ClientCallDetails,
                               request_iterator: Iterator[Any]) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Callable[..., Any],
                                client_call_details: grpc.ClientCallDetails,
                                request_iterator: Iterator[Any]) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


# a fixed bearer token, or a function giving the current one (a service's renewed token)
TokenSource = str | Callable[[], str] | None


def _bearer(token: TokenSource) -> Callable[[], list[tuple[str, str]]]:
    def metadata() -> list[tuple[str, str]]:
        value = token() if callable(token) else token
        return [("authorization", f"Bearer {value}")] if value else []

    return metadata


# ---- channels ------------------------------------------------------------------------------


def aio_channel(settings: Settings, service: str, *, token: TokenSource = None,
                address: str | None = None, server_name: str | None = None,
                deadline: float = DEFAULT_DEADLINE_SECONDS,
                interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
                caller: str = "") -> grpc.aio.Channel:
    """A grpc.aio channel to `service` (its configured address unless `address` is given).

    token: bearer token sent with every call that carries no authorization of its own, or a
    function returning the current one (asked at every call).
    server_name: the name to check the server's certificate for, when not the address's host.
    deadline: seconds allowed to a call made without `timeout=` (each attempt, when one of
    `interceptors` retries).
    interceptors: the caller's own, outside the suite's (e.g. retry.RetryTransient).
    caller: the calling service, whose tracer provider makes the calls' client spans.
    Raises nothing on creation; calls fail UNAVAILABLE while no address answers.
    """
    target = peer_target(address or settings.address(service))
    # the caller's own (a retry) outermost, so each attempt gets its own span and deadline;
    # then tracing: a client span per call, traceparent and x-request-id in its metadata
    chain = [*interceptors, *tracing.channel_interceptors(caller),
             _AioDefaults(deadline, _bearer(token))]
    options = client_options(service, server_name)
    creds = client_credentials(settings)
    if creds is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=chain)
    return grpc.aio.secure_channel(target, creds, options=options, interceptors=chain)


def sync_channel(settings: Settings, service: str, *, token: TokenSource = None,
                 address: str | None = None, server_name: str | None = None,
                 deadline: float = DEFAULT_DEADLINE_SECONDS) -> grpc.Channel:
    """The blocking API's channel to `service`, with the same transport and defaults as
    aio_channel (for long streams read in a worker thread)."""
    target = peer_target(address or settings.address(service))
    options = client_options(service, server_name)
    creds = client_credentials(settings)
    channel = (grpc.insecure_channel(target, options=options) if creds is None
               else grpc.secure_channel(target, creds, options=options))
    return grpc.intercept_channel(channel, _SyncDefaults(deadline, _bearer(token)))
