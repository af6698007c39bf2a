"""Who sees which notes, and search by ticker, kind, analyst, date and text."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from branch.research.v1 import note_enums_pb2 as enums
from branch.research.v1 import note_pb2
from branch.research.v1 import research_service_pb2 as api

from services.common.clock import FakeClock
from services.common.protos import ts
from tests.harness import Metadata, bad_fields
from tests.research.factories import (
    ANALYST,
    ANALYST2,
    BROKER,
    COMPLIANCE,
    CONSULTANT,
    MANAGER,
    SUPER,
    create,
    published,
)

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub

S = note_pb2


async def ids(stub: ResearchServiceAsyncStub, meta: Metadata, **kw: Any) -> list[str]:
    return [n.id for n in (await stub.ListNotes(api.ListNotesRequest(**kw), metadata=meta)).notes]


async def test_visibility_by_role(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    draft = await create(stub)
    submitted = await create(stub)
    await stub.SubmitNote(api.SubmitNoteRequest(id=submitted.id), metadata=ANALYST)
    pub = await published(stub)
    short = await published(stub, valid_until="2026-03-05")
    for meta in (BROKER, CONSULTANT, MANAGER):
        assert set(await ids(stub, meta)) == {pub.id, short.id}
        for hidden in (draft, submitted):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetNote(api.GetNoteRequest(id=hidden.id), metadata=meta)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        got = await stub.GetNote(api.GetNoteRequest(id=pub.id), metadata=meta)
        assert got.body == pub.body
    # drafts: the author, compliance and supervisors; not another analyst
    for meta in (ANALYST, COMPLIANCE, SUPER):
        assert {draft.id, submitted.id} <= set(await ids(stub, meta))
        await stub.GetNote(api.GetNoteRequest(id=draft.id), metadata=meta)
    assert set(await ids(stub, ANALYST2)) == {pub.id, short.id}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetNote(api.GetNoteRequest(id=draft.id), metadata=ANALYST2)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # past its validity: gone for brokers, flagged for the others
    clock.advance(timedelta(days=4))
    assert await ids(stub, BROKER) == [pub.id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetNote(api.GetNoteRequest(id=short.id), metadata=BROKER)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert short.id not in await ids(stub, SUPER)
    assert short.id in await ids(stub, SUPER, include_expired=True)
    assert short.id not in await ids(stub, BROKER, include_expired=True)
    got = await stub.GetNote(api.GetNoteRequest(id=short.id), metadata=ANALYST)
    assert got.expired


async def test_expired_note_cannot_be_published(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    n = await create(stub, valid_until="2026-03-03")
    await stub.SubmitNote(api.SubmitNoteRequest(id=n.id), metadata=ANALYST)
    await stub.ApproveNote(api.ApproveNoteRequest(id=n.id), metadata=COMPLIANCE)
    clock.advance(timedelta(days=3))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.PublishNote(api.PublishNoteRequest(id=n.id), metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_search(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    moutai = await published(stub)
    clock.advance(timedelta(hours=2))
    banks = await published(
        stub, ANALYST2, title="Banks: deposit costs ease", summary="Net interest margins stabilise.",
        kind=enums.NOTE_KIND_SECTOR, body="Loan growth steady.",
        stances=[enums.TickerStance(ticker="600036", stance=enums.STANCE_BULLISH),
                 enums.TickerStance(ticker="000001", stance=enums.STANCE_NEUTRAL)],
    )
    clock.advance(timedelta(hours=2))
    market = await published(stub, title="Weekly market view", summary="Liquidity 100% ample.",
                             kind=enums.NOTE_KIND_MARKET, stances=[],
                             body="Turnover rose.")
    assert await ids(stub, BROKER, ticker="600036") == [banks.id]
    assert await ids(stub, BROKER, ticker="000001") == [banks.id]
    assert await ids(stub, BROKER, kind=enums.NOTE_KIND_MARKET) == [market.id]
    assert await ids(stub, BROKER, author_id="ana-2") == [banks.id]
    assert await ids(stub, BROKER, text="deposit COSTS") == [banks.id]
    assert await ids(stub, BROKER, text="100%") == [market.id]  # % is not a wildcard
    assert await ids(stub, BROKER, text="baijiu") == [moutai.id]  # in the body
    later = ts(moutai.publish_time.ToDatetime() + timedelta(hours=1))
    assert await ids(stub, BROKER, publish_start_time=later) == [market.id, banks.id]
    window = await stub.ListNotes(api.ListNotesRequest(
        publish_start_time=banks.publish_time, publish_end_time=market.publish_time,
    ), metadata=BROKER)
    assert [n.id for n in window.notes] == [banks.id]
    assert all(n.body == "" for n in window.notes)  # lists carry no body
    assert await ids(stub, SUPER, state=S.NOTE_STATE_PUBLISHED) == [market.id, banks.id, moutai.id]
    # paging walks the same list, newest first
    page1 = await stub.ListNotes(api.ListNotesRequest(page_size=2), metadata=BROKER)
    page2 = await stub.ListNotes(api.ListNotesRequest(page_size=2, page_token=page1.next_page_token),
                                 metadata=BROKER)
    assert [n.id for n in page1.notes] + [n.id for n in page2.notes] == [market.id, banks.id, moutai.id]
    assert page2.next_page_token == ""


async def test_search_bad_fields(stub: ResearchServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListNotes(api.ListNotesRequest(
            ticker="no good", kind=enums.NoteKind.ValueType(9), state=note_pb2.NoteState.ValueType(42), text="x" * 201, page_size=-1,
        ), metadata=BROKER)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size" in bad_fields(err.value) or bad_fields(err.value) == {
        "ticker", "kind", "state", "text"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListNotes(api.ListNotesRequest(ticker="no good", kind=enums.NoteKind.ValueType(9), state=note_pb2.NoteState.ValueType(42),
                                                  text="x" * 201), metadata=BROKER)
    assert bad_fields(err.value) == {"ticker", "kind", "state", "text"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListNotes(api.ListNotesRequest(page_token="garbage"), metadata=BROKER)
    assert bad_fields(err.value) == {"page_token"}


async def test_review_queue_oldest_first(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    a = await create(stub)
    b = await create(stub, ANALYST2)
    await stub.SubmitNote(api.SubmitNoteRequest(id=b.id), metadata=ANALYST2)
    clock.advance(timedelta(minutes=5))
    await stub.SubmitNote(api.SubmitNoteRequest(id=a.id), metadata=ANALYST)
    queue = await stub.ListReviewQueue(api.ListReviewQueueRequest(page_size=1),
                                       metadata=COMPLIANCE)
    assert [n.id for n in queue.notes] == [b.id]
    rest = await stub.ListReviewQueue(
        api.ListReviewQueueRequest(page_size=1, page_token=queue.next_page_token),
        metadata=COMPLIANCE)
    assert [n.id for n in rest.notes] == [a.id]
    await stub.ApproveNote(api.ApproveNoteRequest(id=b.id), metadata=COMPLIANCE)
    queue = await stub.ListReviewQueue(api.ListReviewQueueRequest(), metadata=COMPLIANCE)
    assert [n.id for n in queue.notes] == [a.id]


async def test_unpublished_notes_stay_hidden_after_withdrawal(stub: ResearchServiceAsyncStub) -> None:
    """A draft or approved note that is withdrawn was never published: it stays a draft to
    everyone but its author, compliance and supervisors. Admins and other services see
    published notes (also withdrawn or expired ones), never drafts."""
    from tests.harness import auth

    # onsite, the one service that reads notes, lists them (it calls nothing else here)
    admin, service = auth("adm-1", "admin"), auth("svc:onsite", "service", "service:onsite")
    draft = await create(stub, title="Half-written view on liquor")
    approved = await create(stub, title="Approved, never published")
    await stub.SubmitNote(api.SubmitNoteRequest(id=approved.id), metadata=ANALYST)
    await stub.ApproveNote(api.ApproveNoteRequest(id=approved.id), metadata=COMPLIANCE)
    was_public = await published(stub, title="Published then withdrawn")
    for n in (draft, approved, was_public):
        await stub.WithdrawNote(api.WithdrawNoteRequest(id=n.id, reason="dropped"),
                                metadata=ANALYST)
    live_draft = await create(stub, title="Another draft")
    hidden = {draft.id, approved.id, live_draft.id}
    for meta in (ANALYST2, admin, service):
        for note_id in hidden:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetNote(api.GetNoteRequest(id=note_id), metadata=meta)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        for search in ({}, {"state": S.NOTE_STATE_WITHDRAWN}, {"text": "liquor"},
                       {"author_id": "ana-1", "include_expired": True}):
            assert set(await ids(stub, meta, **search)).isdisjoint(hidden), (meta, search)
        if meta is not service:
            got = await stub.GetNote(api.GetNoteRequest(id=was_public.id), metadata=meta)
            assert got.state == S.NOTE_STATE_WITHDRAWN
        assert was_public.id in await ids(stub, meta, state=S.NOTE_STATE_WITHDRAWN)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # not even its title through reach
        await stub.GetNoteReach(api.GetNoteReachRequest(note_id=draft.id), metadata=admin)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for meta in (BROKER, CONSULTANT):
        assert await ids(stub, meta, state=S.NOTE_STATE_WITHDRAWN) == []
    # the author, compliance and supervisors still see them all
    for meta in (ANALYST, COMPLIANCE, SUPER):
        assert hidden <= set(await ids(stub, meta))
        await stub.GetNote(api.GetNoteRequest(id=draft.id), metadata=meta)
