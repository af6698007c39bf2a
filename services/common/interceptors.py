"""One server interceptor: authentication, role check, logging, metrics, errors and audit."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from services.common import audit
from services.common.auth import (
    AccessTable,
    Principal,
    TokenVerifier,
    UnknownKey,
    bearer_from_metadata,
    reset_principal,
    set_principal,
)
from services.common.clock import Clock
from services.common.db import Database, is_unavailable
from services.common.errors import DatabaseUnavailable, DomainError, Msg, localized
from services.common.ids import new_id
from services.common.logs import bind_request, get_logger, unbind
from services.common.messages import language, say
from services.common.models import AuditRecord
from services.common.request_checks import check_request
from services.common.tracing import REQUEST_ID

UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

RPC_TOTAL = Counter("branch_rpc_total", "RPCs handled", ["service", "method", "code"])
RPC_SECONDS = Histogram(
    "branch_rpc_duration_seconds",
    "RPC latency",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _resource_of(request: Any, response: Any) -> str:
    for message in (response, request):
        if message is None or not hasattr(message, "DESCRIPTOR"):
            continue
        # "date": the business calendar's overrides are keyed by their day
        for name in ("id", "name", "client_id", "staff_id", "date"):
            if name in message.DESCRIPTOR.fields_by_name:
                value = getattr(message, name)
                if value:
                    return str(value)
    return ""


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        *,
        service: str,
        access: AccessTable,
        verifier: TokenVerifier,
        db: Database,
        clock: Clock,
    ) -> None:
        self.service = service
        self.access = access
        self.verifier = verifier
        self.db = db
        self.clock = clock
        self.domain = f"{service}.branch"
        self.log = get_logger(service)
        db.after_commit_hooks.append(audit.mark_written)
        # every call the server has taken from its queue, health checks included: while
        # it still grows after SIGTERM, calls that arrived before the signal are waiting
        self.calls_taken = 0

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        self.calls_taken += 1
        # Any: grpc's stubs type a handler's behaviours as synchronous; under grpc.aio they
        # are coroutine functions (async generators for server streams)
        found = await continuation(details)
        if found is None or details.method.startswith(UNAUTHENTICATED_PREFIXES):
            return found
        handler: Any = found
        method = details.method.rsplit("/", 1)[-1]
        full = details.method
        kw = dict(
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                return await self._call(
                    full, method, request, context, lambda: inner(request, context)
                )

            return grpc.unary_unary_rpc_method_handler(unary_unary, **kw)
        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(
                request_iter: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> Any:
                return await self._call(
                    full, method, None, context, lambda: inner_su(request_iter, context)
                )

            return grpc.stream_unary_rpc_method_handler(stream_unary, **kw)
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> Any:
                state = await self._begin(method, request, context)
                outcome = grpc.StatusCode.OK
                try:
                    if "denied" in state:  # no token, or a role the access table refuses
                        raise state["denied"]
                    check_request(request)
                    async for item in inner_us(request, context):
                        yield item
                except Exception as exc:
                    outcome = await self._fail(exc, context, method, state)
                finally:
                    await self._end(full, method, request, None, state, outcome, context)

            return grpc.unary_stream_rpc_method_handler(unary_stream, **kw)
        return found  # bidi streams: none in our APIs

    async def _begin(
        self, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> dict[str, Any]:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        request_id = metadata.get("x-request-id") or getattr(request, "request_id", "") or ""
        state: dict[str, Any] = {
            "start": time.perf_counter(),
            "request_id": request_id,
            "principal": None,
            "token": None,
            "mutating": False,
            "method": method,
        }
        _bind_log_context(state)
        known = self.access.methods.get(method)
        # a refused attempt at a mutating call is audited too, with its outcome
        state["mutating"] = bool(known and known.mutating)
        if known is not None and known.public:
            return state  # sign-in and public keys: no token; the handler audits itself
        try:
            principal: Principal = await self._verify(bearer_from_metadata(metadata))
            state["principal"] = principal
            state["log_tokens"].update(bind_request(staff_id=principal.staff_id))
            self.access.check(method, principal)
        except DomainError as exc:
            state["denied"] = exc
            return state
        state["token"] = set_principal(principal)
        if state["mutating"]:
            state["audit"] = audit.PendingAudit(
                lambda outcome, response: self._audit_record(request, response, state, outcome))
            state["audit_token"] = audit.owe(state["audit"])
        return state

    def _audit_record(
        self, request: Any, response: Any, state: dict[str, Any], outcome: str
    ) -> AuditRecord:
        principal: Principal | None = state.get("principal")
        return AuditRecord(
            id=new_id(),
            staff_id=principal.staff_id if principal else "",
            method=state["method"],
            resource=_clean(_resource_of(request, response))[:200],
            request_id=_clean(str(state["request_id"]))[:100],
            time=self.clock.now(),
            outcome=outcome,
        )

    async def _verify(self, token: str) -> Principal:
        try:
            return self.verifier.verify(token)
        except UnknownKey as exc:
            if self.verifier.refresh is None:
                raise
            kid = exc.kid
        try:  # keys may have just rotated: fetch them (rate-limited) and look once more
            await self.verifier.refresh(kid)
        except Exception:
            self.log.warning("keys not refreshed", exc_info=True)
        return self.verifier.verify(token)

    async def _call(
        self,
        full: str,
        method: str,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        run: Callable[[], Awaitable[Any]],
    ) -> Any:
        state = await self._begin(method, request, context)
        outcome = grpc.StatusCode.OK
        response = None
        try:
            if "denied" in state:
                raise state["denied"]
            if request is not None:
                check_request(request)
            response = await run()
            return response
        except Exception as exc:
            outcome = await self._fail(exc, context, method, state)
        finally:
            await self._end(full, method, request, response, state, outcome, context)

    async def _fail(
        self,
        exc: Exception,
        context: grpc.aio.ServicerContext[Any, Any],
        method: str,
        state: dict[str, Any],
    ) -> grpc.StatusCode:
        lang = language(context.invocation_metadata())  # of the LocalizedMessage
        if isinstance(exc, DomainError):
            status = rpc_status.to_status(exc.to_status(self.domain, lang))
            state["error"] = status
            return exc.code
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        code = context.code() if hasattr(context, "code") else None
        if code not in (None, grpc.StatusCode.OK) and _is_abort(exc):
            raise exc  # the servicer aborted on purpose
        if is_unavailable(exc):  # the database, not the request: the caller retries
            self.log.warning("database unavailable", rpc_method=method,
                             error=type(exc).__name__)
            unavailable = DatabaseUnavailable()
            state["error"] = rpc_status.to_status(unavailable.to_status(self.domain, lang))
            return unavailable.code
        ref = new_id()
        self.log.error("internal error", rpc_method=method, error_ref=ref, exc_info=exc)
        message = Msg("internal error (ref {ref})", ref=ref)
        state["error"] = rpc_status.to_status(
            status_pb2.Status(code=code_pb2.INTERNAL, message=str(message),
                              details=[localized(say(message, lang), lang)])
        )
        return grpc.StatusCode.INTERNAL

    async def _end(
        self,
        full: str,
        method: str,
        request: Any,
        response: Any,
        state: dict[str, Any],
        outcome: grpc.StatusCode,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        if state.get("token") is not None:
            reset_principal(state["token"])
        if state.get("audit_token") is not None:
            with contextlib.suppress(ValueError):  # a stream may end in another context
                audit.settle(state.pop("audit_token"))
        _unbind_log_context(state)
        duration_ms = (time.perf_counter() - state["start"]) * 1000
        principal: Principal | None = state.get("principal")
        staff_id = principal.staff_id if principal else ""
        RPC_TOTAL.labels(self.service, method, outcome.name).inc()
        RPC_SECONDS.labels(self.service, method).observe(duration_ms / 1000)
        log = self.log.warning if outcome in (
            grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED
        ) else self.log.info
        log(
            "rpc",
            rpc_method=full,
            request_id=_loggable(str(state["request_id"])),
            staff_id=staff_id,
            status=outcome.name,
            duration_ms=round(duration_ms, 3),
        )
        pending: audit.PendingAudit | None = state.get("audit")
        written = pending is not None and pending.written and outcome == grpc.StatusCode.OK
        if state.get("mutating") and principal is not None and not written:
            try:
                async with self.db.transaction() as session:
                    session.add(self._audit_record(request, response, state, outcome.name))
            except Exception as exc:
                if is_unavailable(exc):
                    self.log.warning("audit write failed: database unavailable",
                                     rpc_method=full, error=type(exc).__name__)
                else:
                    self.log.error("audit write failed", rpc_method=full, exc_info=True)
        if "error" in state:
            await context.abort_with_status(state["error"])


SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,100}")


def _loggable(request_id: str) -> str:
    """Request ids are the caller's choice: log one only when it looks like an id, else its
    digest, so free text typed there never reaches the logs."""
    if not request_id or SAFE_REQUEST_ID.fullmatch(request_id):
        return request_id
    return "sha256:" + hashlib.sha256(request_id.encode()).hexdigest()[:16]


def _clean(text: str) -> str:
    """Audit rows keep what was asked, minus what the database cannot store."""
    return text.replace("\x00", "")


def _is_abort(exc: Exception) -> bool:
    return type(exc).__name__ in {"AbortError", "_AbortError"}


def _bind_log_context(state: dict[str, Any]) -> None:
    """Log lines inside the handler carry request_id (and staff_id once known; trace_id comes
    from the span); peer calls made by the handler forward the request id."""
    request_id = _loggable(str(state["request_id"]))
    state["log_tokens"] = bind_request(request_id=request_id)
    state["request_id_token"] = REQUEST_ID.set(request_id)


def _unbind_log_context(state: dict[str, Any]) -> None:
    # a streaming handler may end in another context than it began: nothing to reset then
    if "log_tokens" in state:
        with contextlib.suppress(ValueError):
            unbind(state.pop("log_tokens"))
    if "request_id_token" in state:
        with contextlib.suppress(ValueError):
            REQUEST_ID.reset(state.pop("request_id_token"))
