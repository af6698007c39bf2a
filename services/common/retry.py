"""A client-side retry of calls that failed for a passing reason (UNAVAILABLE: a peer or the
server itself did not answer; DEADLINE_EXCEEDED), bounded and with exponential backoff.

Only unary calls are retried: a request stream is consumed by the first attempt. A retried
create must be idempotent, so callers send a request_id with every create (AIP-155)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from services.common.logs import get_logger

TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

log = get_logger("common", component="retry")


class RetryTransient(grpc.aio.UnaryUnaryClientInterceptor):
    """Retry a unary call up to `attempts` times in all while it fails with a transient code,
    waiting first_backoff seconds, doubling up to max_backoff (defaults: 6 attempts, about
    12 s of waiting in all); any other outcome, or the last failure, goes to the caller."""

    def __init__(self, attempts: int = 6, first_backoff: float = 0.25,
                 max_backoff: float = 4.0,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.attempts = max(1, attempts)
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self._sleep = sleep

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        wait = self.first_backoff
        for attempt in range(1, self.attempts + 1):
            call = await continuation(client_call_details, request)
            try:
                await call
            except grpc.aio.AioRpcError as err:
                if err.code() not in TRANSIENT or attempt == self.attempts:
                    return call
                log.warning("transient failure, retrying", method=_method(client_call_details),
                            code=err.code().name, attempt=attempt, wait_seconds=wait)
                await self._sleep(wait)
                wait = min(wait * 2, self.max_backoff)
                continue
            return call
        raise AssertionError("unreachable")  # pragma: no cover


def _method(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)
