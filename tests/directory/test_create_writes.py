"""CreateClient's one-transaction Core write (Database.write, idempotency.once_in) on SQLite
and, when configured, PostgreSQL: the client, its event, its audit record and the stored
response commit together or not at all; uniqueness is the database's constraints, and what
a constraint refuses still gets a clear answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from sqlalchemy import func
from sqlmodel import col, select

from services.common.models import AuditRecord, IdempotencyRecord, OutboxEvent
from services.common.server import ServiceRunner
from services.directory.models import Client
from services.directory.server import SPEC
from tests.directory.factories import client_msg
from tests.harness import ADMIN, channel, make_settings, running

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub


@pytest.fixture
async def directory(tmp_path: Path, nats_url: str, database_url: str
                    ) -> AsyncIterator[ServiceRunner]:
    async with running(SPEC, make_settings(tmp_path, nats_url, database_url)) as runner:
        yield runner


@pytest.fixture
async def stub(directory: ServiceRunner) -> AsyncIterator[DirectoryServiceAsyncStub]:
    async with channel(directory) as ch:
        yield DirectoryServiceStub(ch)


async def counts(runner: ServiceRunner, account_no: str) -> tuple[int, int, int, int]:
    """(clients with the account number, client.created events, OK CreateClient audit
    records, stored responses)."""
    async with runner.db.read() as s:
        clients = (await s.exec(select(func.count()).select_from(Client)
                                .where(col(Client.account_no) == account_no))).one()
        events = (await s.exec(select(func.count()).select_from(OutboxEvent).where(
            col(OutboxEvent.subject) == "branch.directory.client.created"))).one()
        audits = (await s.exec(select(func.count()).select_from(AuditRecord).where(
            col(AuditRecord.method) == "CreateClient", col(AuditRecord.outcome) == "OK"))).one()
        stored = (await s.exec(select(func.count()).select_from(IdempotencyRecord))).one()
    return int(clients), int(events), int(audits), int(stored)


async def test_concurrent_retries_of_one_create_get_one_answer(
        directory: ServiceRunner, stub: DirectoryServiceAsyncStub) -> None:
    """Eight copies of one create (same request_id) at once: one client, one event, one
    stored response, and every caller gets that client (the losers' inserts break a unique
    constraint; the stored answer is theirs)."""
    msg = client_msg()
    answers = await asyncio.gather(*(
        stub.CreateClient(api.CreateClientRequest(client=msg, request_id="same-k"),
                          metadata=ADMIN) for _ in range(8)))
    assert len({a.id for a in answers}) == 1 and answers[0].account_no == msg.account_no
    clients, events, audits, stored = await counts(directory, msg.account_no)
    assert (clients, events, stored) == (1, 1, 1)
    assert audits >= 1  # the winner's, with its change; the others are audited on their own


async def test_concurrent_creates_of_one_account_number(
        directory: ServiceRunner, stub: DirectoryServiceAsyncStub) -> None:
    """Six different creates (own request_ids) of one account number at once: one succeeds,
    every other caller gets ALREADY_EXISTS naming the account (not an internal error), and
    nothing of theirs is written: no client, event, OK audit record or stored response."""
    msg = client_msg()
    results = await asyncio.gather(*(
        stub.CreateClient(api.CreateClientRequest(client=msg, request_id=f"acct-{i}"),
                          metadata=ADMIN) for i in range(6)), return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) == 1 and len(refused) == 5, results
    for err in refused:
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS
        assert msg.account_no in (err.details() or "")
    assert await counts(directory, msg.account_no) == (1, 1, 1, 1)


async def test_a_refused_create_writes_nothing(
        directory: ServiceRunner, stub: DirectoryServiceAsyncStub) -> None:
    """A create whose client row breaks the unique account number after its event, audit
    record and stored response were queued: none of them is written."""
    first = client_msg()
    await stub.CreateClient(api.CreateClientRequest(client=first, request_id="a-1"),
                            metadata=ADMIN)
    before = await counts(directory, first.account_no)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateClient(api.CreateClientRequest(
            client=client_msg(account_no=first.account_no), request_id="a-2"), metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await counts(directory, first.account_no) == before == (1, 1, 1, 1)
