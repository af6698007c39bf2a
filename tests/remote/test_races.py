"""Writers racing on remote's local copies, on SQLite and (when configured) PostgreSQL.

Issue 10: an OpenTicket for a client created a moment earlier answered INTERNAL on the
remote_client_pkey duplicate key: OpenTicket's copy of the client and the client.created
consumer's both read "missing", then both inserted. Here the interleaving is forced: the
consumer's write (services.remote.core.remember_client, what the consumer runs first) is
held uncommitted while OpenTicket runs, and committed half a second later."""

from __future__ import annotations

import asyncio

from branch.directory.v1 import client_pb2
from branch.remote.v1 import remote_service_pb2 as api
from sqlalchemy import delete
from sqlmodel import col, select

from services.common.db import Database
from services.remote.core import remember_client
from services.remote.models import Agent, LineCursor, RemoteClient, SlaPolicy
from services.remote.tickets import seed_defaults
from tests.harness import HOLD, eventually, overlapped
from tests.remote.conftest import Env
from tests.remote.test_tickets import on_duty, ticket


def second_db(env: Env) -> Database:
    """Another connection pool on remote's database: the other writer."""
    return Database(env.settings.database_url_for("remote"), service="remote")


async def test_open_ticket_while_the_consumer_copies_the_client(env_db: Env) -> None:
    env = env_db
    owner, md = await on_duty(env)
    client = await env.client(tier=client_pb2.TIER_KEY)
    db = second_db(env)
    try:
        async def copied() -> bool:
            async with db.read() as s:
                return await s.get(RemoteClient, client.id) is not None

        await eventually(copied)
        async with db.transaction() as s:  # as if client.created had not arrived yet
            await s.exec(delete(RemoteClient).where(
                col(RemoteClient.client_id) == client.id))
        async with db.transaction() as s:  # the consumer's copy, not committed yet
            await remember_client(s, client, env.clock.now())
            call = asyncio.ensure_future(env.stub.OpenTicket(api.OpenTicketRequest(
                ticket=ticket(client_id=client.id), request_id="race-1"), metadata=md))
            await asyncio.sleep(HOLD)
        made = await asyncio.wait_for(call, 30)  # INTERNAL (duplicate key) before the fix
        assert made.owner_id == owner and made.client_tier == client_pb2.TIER_KEY
        async with db.read() as s:
            row = await s.get(RemoteClient, client.id)
        assert row is not None and row.tier == client_pb2.TIER_KEY
        assert row.opened_on is not None and row.opened_on.isoformat() == client.opened_on
    finally:
        await db.dispose()


async def test_two_writers_copy_a_new_client(env_db: Env) -> None:
    env = env_db
    client = await env.client()
    closed = client_pb2.Client()
    closed.CopyFrom(client)
    closed.status = client_pb2.CLIENT_STATUS_CLOSED
    closed.opened_on = ""  # an event without the date keeps the one known
    db = second_db(env)
    try:
        async def copied() -> bool:
            async with db.read() as s:
                return await s.get(RemoteClient, client.id) is not None

        await eventually(copied)
        async with db.transaction() as s:
            await s.exec(delete(RemoteClient).where(
                col(RemoteClient.client_id) == client.id))
        versions = iter([client, closed])
        await overlapped(db, lambda s: remember_client(s, next(versions), env.clock.now()))
        async with db.read() as s:
            row = await s.get(RemoteClient, client.id)
        assert row is not None and row.opened_on is not None
        assert row.opened_on.isoformat() == client.opened_on
    finally:
        await db.dispose()


async def test_two_replicas_seed_the_defaults(env_db: Env) -> None:
    env = env_db
    db = second_db(env)
    try:
        async with db.transaction() as s:  # a fresh database: nothing seeded yet
            await s.exec(delete(LineCursor))
            await s.exec(delete(SlaPolicy))
        await overlapped(db, seed_defaults)
        async with db.read() as s:
            assert len((await s.exec(select(LineCursor))).all()) == 2
            assert len((await s.exec(select(SlaPolicy))).all()) == 4
    finally:
        await db.dispose()


async def test_two_first_duty_calls_and_two_first_tickets(env_db: Env) -> None:
    env = env_db
    sid, md = await env.agent()
    req = api.SetAgentDutyRequest(staff_id=sid, lines=[ticket().line], on_duty=True)
    agents = await asyncio.gather(*(env.stub.SetAgentDuty(req, metadata=md) for _ in range(2)))
    assert all(a.on_duty for a in agents)
    db = second_db(env)
    try:
        async with db.read() as s:
            assert len((await s.exec(select(Agent).where(Agent.staff_id == sid))).all()) == 1
        async with db.transaction() as s:  # the line's round-robin cursor is not there yet
            await s.exec(delete(LineCursor))
    finally:
        await db.dispose()
    made = await asyncio.gather(*(env.stub.OpenTicket(api.OpenTicketRequest(
        ticket=ticket(), auto_assign=True), metadata=md) for _ in range(4)))
    assert {t.owner_id for t in made} == {sid}
