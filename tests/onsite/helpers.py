"""Small assertions shared by the on-site tests."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from tests.harness import bad_fields, rpc_status_of


async def fails(call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    return info.value


async def bad(call: Awaitable[Any], *fields: str) -> None:
    err = await fails(call, grpc.StatusCode.INVALID_ARGUMENT)
    assert set(fields) <= bad_fields(err), (fields, bad_fields(err))


def reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status_of(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason: str = info.reason
            return reason
    return ""


async def events_about(nats_url: str, subject: str, ids: set[str],
                       timeout: float = 10.0, absent: frozenset[str] = frozenset()) -> list[Any]:
    """The messages on subject whose ce-subject is in ids or absent; waits until each of ids
    has one (and a little longer, so a duplicate or an unwanted event would show)."""
    import asyncio

    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(nats_url)
    found: list[Any] = []
    try:
        sub = await nc.jetstream().subscribe(
            subject, stream="BRANCH", ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        settle: float | None = None
        while loop.time() < deadline:
            if settle is None and {m.headers["ce-subject"] for m in found} >= ids:
                settle = loop.time() + 0.5
            if settle is not None and loop.time() >= settle:
                break
            try:
                msg = await sub.next_msg(timeout=0.2)
            except Exception:
                continue
            if msg.headers and msg.headers.get("ce-subject") in ids | absent:
                found.append(msg)
        await sub.unsubscribe()
    finally:
        await nc.close()
    return found
