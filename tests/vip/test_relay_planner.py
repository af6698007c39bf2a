"""The relay planner pages the directory with no vip write transaction open (on SQLite that
would hold the single write lock for the whole paging), and still plans each note once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from branch.research.v1 import events_pb2 as research_events
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.channels import aio_channel
from services.common.db import Database
from services.common.server import ServiceContext
from services.vip.core import Vip
from services.vip.models import RelayPlan
from services.vip.server import plan_pending_relays, vip_of
from tests.harness import collect_events, eventually, make_settings
from tests.vip.support import Branch, branch, publish, running_vip
from tests.vip.test_relay import matched_branch, note, planned, relays_of

T = TypeVar("T")
U = TypeVar("U")


class WriteLockProbe(grpc.aio.UnaryUnaryClientInterceptor):
    """On every directory call, notes whether vip's SQLite write lock is held right then."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.seen: list[tuple[str, bool]] = []

    async def intercept_unary_unary(self, continuation: Callable[..., Any],
                                    details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        # Database._write_lock queues this process's SQLite writers (a test-only peek)
        lock = self.db._write_lock  # None on PostgreSQL
        self.seen.append((method.rsplit("/", 1)[-1], lock is not None and lock.locked()))
        return await continuation(details, request)


def directory_channel(ctx: ServiceContext,
                      *interceptors: grpc.aio.ClientInterceptor) -> grpc.aio.Channel:
    """The same authenticated channel vip normally uses (ServiceContext.channel), with
    interceptors."""
    return aio_channel(ctx.settings, "directory", token=ctx.tokens.current,
                       interceptors=interceptors)


async def test_directory_is_paged_outside_the_write_transaction(b: Branch) -> None:
    c = await matched_branch(b)
    ctx = b.runners["vip"].ctx
    vip = vip_of(ctx)
    probe = WriteLockProbe(vip.db)
    channel = directory_channel(ctx, probe)
    vip.directory_channel = lambda: channel
    try:
        await publish(b.nats_url, "branch.research.note.published", note("lock", "600519"))
        [plan] = await planned(b)
        await publish(b.nats_url, "branch.research.note.published", note("mkt", kind=2))
        await planned(b, count=2)
    finally:
        await channel.close()
    assert (plan.targeted, plan.withheld_for_suitability) == (2, 1)
    assert {m for m, _ in probe.seen} == {"FindClientsByTickers", "ListClients"}
    assert [held for _, held in probe.seen] == [False] * len(probe.seen)
    assert {r.client_id for r in await relays_of(b, "lock")} == {c["ok"], c["ok2"], c["low"]}


async def pending_plans(vip: Vip) -> list[RelayPlan]:
    async with vip.db.read() as s:
        return list((await s.exec(select(RelayPlan).where(RelayPlan.pending))).all())


async def test_directory_down_leaves_plan_pending_then_planned_once_by_two_replicas(
        tmp_path: Path, database_url: str) -> None:
    async with branch(tmp_path, database_url=database_url) as b:
        c = await matched_branch(b)
        ctx = b.runners["vip"].ctx
        vip = vip_of(ctx)
        real = vip.directory_channel
        dead = grpc.aio.insecure_channel("127.0.0.1:1")
        vip.directory_channel = lambda: dead
        await publish(b.nats_url, "branch.research.note.published", note("down", "600519"))
        await publish(b.nats_url, "branch.research.note.published", note("gone", "600519"))
        await eventually(lambda: _count(vip, 2))
        # the event was consumed (not parked, no retries): the plan waits, nothing relayed
        assert await plan_pending_relays(ctx) == 0
        assert await relays_of(b, "down") == []
        consumer = next(x for x in b.runners["vip"].consumers if x.durable == "vip-notes")
        assert consumer.parked == 0
        # a withdrawal while the plan waits: it will plan nothing
        await publish(b.nats_url, "branch.research.note.withdrawn",
                      research_events.NoteWithdrawn(note_id="gone", revision=1, reason="x"))
        await collect_events(b.nats_url, "branch.vip.relay.cancelled", count=1)
        vip.directory_channel = real
        await dead.close()
        d = b.runners["directory"]
        settings = make_settings(tmp_path, b.nats_url, database_url,
                                 directory_addr=f"127.0.0.1:{d.port}")
        async with running_vip(settings, clock=b.clock, run_consumers=False) as second:
            results = await asyncio.gather(plan_pending_relays(ctx),
                                           plan_pending_relays(second.ctx))
            assert sum(results) <= 1  # the first replica's own loop may have won
            assert list(await asyncio.gather(plan_pending_relays(ctx),
                                             plan_pending_relays(second.ctx))) == [0, 0]
        assert await pending_plans(vip) == []
        relays = await relays_of(b, "down")
        assert sorted(r.client_id for r in relays) == sorted([c["ok"], c["ok2"], c["low"]])
        assert await relays_of(b, "gone") == []
        events = await collect_events(b.nats_url, "branch.vip.relay.planned", count=3,
                                      timeout=1)
        assert [e.headers["ce-subject"] for e in events] == ["down"]


async def _count(vip: Vip, n: int) -> bool:
    return len(await pending_plans(vip)) == n


async def _race(vip: Vip, first: Callable[[AsyncSession], Awaitable[T]],
                second: Callable[[AsyncSession], Awaitable[U]]) -> tuple[T, U]:
    """Run `first` in a transaction left open while `second` runs in another, then commit
    `first`: on PostgreSQL `second` meets the uncommitted plan row."""
    inside, release = asyncio.Event(), asyncio.Event()

    async def one() -> T:
        async with vip.db.transaction() as s:
            out = await first(s)
            inside.set()
            await release.wait()
        return out

    async def two() -> U:
        await inside.wait()
        async with vip.db.transaction() as s:
            return await second(s)

    t1, t2 = asyncio.create_task(one()), asyncio.create_task(two())
    await inside.wait()
    await asyncio.sleep(0.2)  # let `second` reach the plan row (it waits on the lock)
    release.set()
    return await t1, await t2


async def test_publication_and_withdrawal_at_once_on_two_replicas(tmp_path: Path,
                                                                  database_url: str) -> None:
    from services.vip import relay

    async with branch(tmp_path, database_url=database_url) as b:
        vip = vip_of(b.runners["vip"].ctx)

        def withdraw(note_id: str) -> Callable[[AsyncSession], Awaitable[int]]:
            return lambda s: relay.cancel_for_note(vip, s, research_events.NoteWithdrawn(
                note_id=note_id, revision=1))

        def publish_(note_id: str) -> Callable[[AsyncSession], Awaitable[bool]]:
            return lambda s: relay.plan_relays(vip, s, note(note_id, "600519"))

        # withdrawal recorded first: the concurrent publication records nothing
        _, recorded = await _race(vip, withdraw("w1"), publish_("w1"))
        assert recorded is False
        # publication recorded first: the concurrent withdrawal marks it
        recorded, _ = await _race(vip, publish_("p1"), withdraw("p1"))
        assert recorded is True
        async with vip.db.read() as s:
            plans = {p.note_id: p for p in (await s.exec(select(RelayPlan))).all()}
        assert set(plans) == {"w1", "p1"}
        assert all(p.withdrawn_at is not None for p in plans.values())
        assert await plan_pending_relays(b.runners["vip"].ctx) == 0
        assert await pending_plans(vip) == []
        assert await relays_of(b, "p1") == []
