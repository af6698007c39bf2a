"""Notes: create, edit into revisions, review, publish, withdraw, supersede; events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from branch.directory.v1 import client_pb2
from branch.research.v1 import events_pb2, note_pb2
from branch.research.v1 import note_enums_pb2 as enums
from branch.research.v1 import research_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.models import OutboxEvent
from services.common.server import ServiceRunner
from tests.harness import Metadata, bad_fields
from tests.research.factories import (
    ANALYST,
    ANALYST2,
    ANALYST_COMPLIANCE,
    BROKER,
    COMPLIANCE,
    SUPER,
    create,
    events_about,
    note,
    published,
)

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub

S = note_pb2


def runner_db(runner: ServiceRunner) -> AbstractAsyncContextManager[AsyncSession]:
    return runner.db.read()


async def test_create_draft(stub: ResearchServiceAsyncStub) -> None:
    n = await create(stub)
    assert n.id and n.revision == 1 and n.state == S.NOTE_STATE_DRAFT
    assert n.author_id == "ana-1"
    assert list(n.tickers) == ["600519"]
    assert n.valid_until == "2026-03-31" and not n.expired
    # end of the day in the branch's zone (Asia/Shanghai): 2026-03-31T16:00Z
    assert n.valid_until_time.ToJsonString() == "2026-03-31T16:00:00Z"


async def test_create_is_idempotent_by_request_id(stub: ResearchServiceAsyncStub) -> None:
    first = await create(stub, request_id="n-1")
    again = await create(stub, request_id="n-1")
    other = await create(stub, request_id="n-2")
    assert again.id == first.id
    assert other.id != first.id


async def test_create_names_every_bad_field(stub: ResearchServiceAsyncStub) -> None:
    bad = note(
        title="", summary=" ", body="", kind=0, risk_level=6, valid_until="31/03/2026",
        audience=9,
        stances=[enums.TickerStance(ticker="bad ticker", stance=enums.STANCE_BUY),
                 enums.TickerStance(ticker="000001", stance=enums.Stance.ValueType(0))],
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateNote(api.CreateNoteRequest(note=bad), metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {
        "note.title", "note.summary", "note.body", "note.kind", "note.risk_level",
        "note.valid_until", "note.audience", "note.stances[0].ticker", "note.stances[1].stance",
    }


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"stances": []}, "note.stances"),  # a stock note needs a stance
        ({"valid_until": "2026-03-01"}, "note.valid_until"),  # in the past
        ({"valid_until": "2027-06-01"}, "note.valid_until"),  # too far ahead
        ({"valid_until": ""}, "note.valid_until"),
        ({"title": "x" * 201}, "note.title"),
        ({"stances": [enums.TickerStance(ticker="600519", stance=enums.Stance.ValueType(1)),
                      enums.TickerStance(ticker="600519", stance=enums.Stance.ValueType(2))]}, "note.stances[1].ticker"),
        ({"supersedes_note_id": "no-such-note"}, "note.supersedes_note_id"),
    ],
)
async def test_create_bad_field(stub: ResearchServiceAsyncStub, fields: dict[str, Any],
                                bad: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(stub, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err.value) == {bad}


async def test_market_note_needs_no_ticker(stub: ResearchServiceAsyncStub) -> None:
    n = await create(stub, kind=enums.NOTE_KIND_MARKET, stances=[], title="Weekly market view")
    assert n.kind == enums.NOTE_KIND_MARKET and not n.tickers


async def test_roles_and_tokens(stub: ResearchServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateNote(api.CreateNoteRequest(note=note()))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for meta in (BROKER, COMPLIANCE, SUPER):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create(stub, meta)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    n = await create(stub)
    await stub.SubmitNote(api.SubmitNoteRequest(id=n.id), metadata=ANALYST)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ApproveNote(api.ApproveNoteRequest(id=n.id), metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListReviewQueue(api.ListReviewQueueRequest(), metadata=BROKER)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_edit_makes_revisions(stub: ResearchServiceAsyncStub) -> None:
    n = await create(stub)
    edited = await stub.UpdateNote(api.UpdateNoteRequest(
        note=note_pb2.Note(id=n.id, title="Moutai: margins hold, volume softer"),
        update_mask=FieldMask(paths=["title"]),
    ), metadata=ANALYST)
    assert edited.revision == 2 and edited.title.endswith("softer")
    assert edited.summary == n.summary  # untouched by the mask
    first = await stub.GetNote(api.GetNoteRequest(id=n.id, revision=1), metadata=ANALYST)
    assert first.title == n.title
    revs = await stub.ListNoteRevisions(api.ListNoteRevisionsRequest(note_id=n.id),
                                        metadata=COMPLIANCE)
    assert [r.revision for r in revs.revisions] == [1, 2]
    assert [r.title for r in revs.revisions] == [n.title, edited.title]
    # each revision names its author and time
    assert [r.author_id for r in revs.revisions] == ["ana-1", "ana-1"]
    assert revs.revisions[0].create_time == n.create_time
    assert revs.revisions[1].create_time == edited.update_time
    # another analyst may neither edit nor see the draft's revisions
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateNote(api.UpdateNoteRequest(note=note_pb2.Note(id=n.id, title="x"),
                                                    update_mask=FieldMask(paths=["title"])),
                              metadata=ANALYST2)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListNoteRevisions(api.ListNoteRevisionsRequest(note_id=n.id),
                                     metadata=ANALYST2)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # bad mask, bad value
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateNote(api.UpdateNoteRequest(note=note_pb2.Note(id=n.id),
                                                    update_mask=FieldMask(paths=["author_id"])),
                              metadata=ANALYST)
    assert bad_fields(err.value) == {"update_mask"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateNote(api.UpdateNoteRequest(note=note_pb2.Note(id=n.id, risk_level=client_pb2.RiskLevel.ValueType(0)),
                                                    update_mask=FieldMask(paths=["risk_level"])),
                              metadata=ANALYST)
    assert bad_fields(err.value) == {"note.risk_level"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateNote(api.UpdateNoteRequest(note=note_pb2.Note(id="nope", title="x"),
                                                    update_mask=FieldMask(paths=["title"])),
                              metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_lifecycle_review_return_resubmit_publish(stub: ResearchServiceAsyncStub, nats_url: str) -> None:
    n = await create(stub)
    # no publication without approval
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PublishNote(api.PublishNoteRequest(id=n.id), metadata=ANALYST)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        await stub.SubmitNote(api.SubmitNoteRequest(id=n.id), metadata=ANALYST)
    # reviewing: comments are required to return, the revision must be the current one
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReturnNote(api.ReturnNoteRequest(id=n.id, comments=""), metadata=COMPLIANCE)
    assert bad_fields(err.value) == {"comments"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ApproveNote(api.ApproveNoteRequest(id=n.id, revision=7), metadata=COMPLIANCE)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # a submitted note cannot be edited
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateNote(api.UpdateNoteRequest(note=note_pb2.Note(id=n.id, title="x"),
                                                    update_mask=FieldMask(paths=["title"])),
                              metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    returned = await stub.ReturnNote(
        api.ReturnNoteRequest(id=n.id, revision=1, comments="Add the risk disclosure."),
        metadata=COMPLIANCE)
    assert returned.state == S.NOTE_STATE_RETURNED
    assert returned.review_comments == "Add the risk disclosure."
    with pytest.raises(grpc.aio.AioRpcError) as err:  # unchanged: refused
        await stub.SubmitNote(api.SubmitNoteRequest(id=n.id), metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    edited = await stub.UpdateNote(api.UpdateNoteRequest(
        note=note_pb2.Note(id=n.id, body=n.body + "\n\nRisk: consumption may slow."),
        update_mask=FieldMask(paths=["body"])), metadata=ANALYST)
    assert edited.state == S.NOTE_STATE_DRAFT and edited.revision == 2
    await stub.SubmitNote(api.SubmitNoteRequest(id=n.id), metadata=ANALYST)
    approved = await stub.ApproveNote(api.ApproveNoteRequest(id=n.id, revision=2),
                                      metadata=COMPLIANCE)
    assert approved.state == S.NOTE_STATE_APPROVED
    assert approved.approved_by == "comp-1" and approved.approved_revision == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:  # approved: frozen
        await stub.UpdateNote(api.UpdateNoteRequest(note=note_pb2.Note(id=n.id, title="x"),
                                                    update_mask=FieldMask(paths=["title"])),
                              metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:  # only the author publishes
        await stub.PublishNote(api.PublishNoteRequest(id=n.id), metadata=ANALYST2)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    pub = await stub.PublishNote(api.PublishNoteRequest(id=n.id), metadata=ANALYST)
    assert pub.state == S.NOTE_STATE_PUBLISHED and pub.published_revision == 2
    assert pub.body == edited.body  # what was approved is what was published
    with pytest.raises(grpc.aio.AioRpcError) as err:  # no edit of a published revision
        await stub.UpdateNote(api.UpdateNoteRequest(note=note_pb2.Note(id=n.id, title="x"),
                                                    update_mask=FieldMask(paths=["title"])),
                              metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    revs = await stub.ListNoteRevisions(api.ListNoteRevisionsRequest(note_id=n.id),
                                        metadata=ANALYST)
    assert [(r.revision, r.review_decision, r.reviewer_id) for r in revs.revisions] == [
        (1, S.REVIEW_DECISION_RETURNED, "comp-1"), (2, S.REVIEW_DECISION_APPROVED, "comp-1"),
    ]
    mine = await events_about(nats_url, "branch.research.note.published", n.id)
    assert len(mine) == 1
    evt = events_pb2.NotePublished()
    evt.ParseFromString(mine[0].data)
    assert evt.note_id == n.id and evt.revision == 2
    assert list(evt.tickers) == ["600519"]
    assert [(s.ticker, s.stance) for s in evt.stances] == [("600519", enums.STANCE_BUY)]
    assert evt.risk_level == client_pb2.RISK_LEVEL_R3
    assert evt.audience == enums.AUDIENCE_ALL_CLIENTS
    assert evt.valid_until.ToJsonString() == "2026-03-31T16:00:00Z"
    assert evt.publish_time == pub.publish_time
    assert evt.author_id == "ana-1" and evt.approved_by == "comp-1"
    assert evt.title == pub.title and evt.summary == pub.summary
    assert (mine[0].headers or {}).get("ce-type") == "branch.research.note.published"


async def test_no_self_approval(stub: ResearchServiceAsyncStub) -> None:
    n = await create(stub, ANALYST_COMPLIANCE)
    await stub.SubmitNote(api.SubmitNoteRequest(id=n.id), metadata=ANALYST_COMPLIANCE)
    reviews: list[tuple[Callable[..., Awaitable[Any]], Message]] = [
        (stub.ApproveNote, api.ApproveNoteRequest(id=n.id)),
        (stub.ReturnNote, api.ReturnNoteRequest(id=n.id, comments="fine"))]
    for call, req in reviews:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(req, metadata=ANALYST_COMPLIANCE)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    approved = await stub.ApproveNote(api.ApproveNoteRequest(id=n.id), metadata=COMPLIANCE)
    assert approved.approved_by == "comp-1"


async def test_withdraw_published_raises_event(stub: ResearchServiceAsyncStub, nats_url: str) -> None:
    n = await published(stub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.WithdrawNote(api.WithdrawNoteRequest(id=n.id, reason=""), metadata=ANALYST)
    assert bad_fields(err.value) == {"reason"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.WithdrawNote(api.WithdrawNoteRequest(id=n.id, reason="x"), metadata=ANALYST2)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    w = await stub.WithdrawNote(api.WithdrawNoteRequest(id=n.id, reason="Data error"),
                                metadata=COMPLIANCE)
    assert w.state == S.NOTE_STATE_WITHDRAWN and w.withdraw_reason == "Data error"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.WithdrawNote(api.WithdrawNoteRequest(id=n.id, reason="again"),
                                metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:  # brokers no longer see it
        await stub.GetNote(api.GetNoteRequest(id=n.id), metadata=BROKER)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    mine = await events_about(nats_url, "branch.research.note.withdrawn", n.id)
    assert len(mine) == 1
    evt = events_pb2.NoteWithdrawn()
    evt.ParseFromString(mine[0].data)
    assert (evt.note_id, evt.revision, evt.reason) == (n.id, 1, "Data error")
    assert not evt.superseded_by_note_id


async def test_withdraw_draft_raises_no_event(stub: ResearchServiceAsyncStub, research: ServiceRunner) -> None:
    n = await create(stub)
    w = await stub.WithdrawNote(api.WithdrawNoteRequest(id=n.id, reason="abandoned"),
                                metadata=ANALYST)
    assert w.state == S.NOTE_STATE_WITHDRAWN
    # the outbox is empty: a withdrawn draft reached no one
    async with runner_db(research) as session:
        rows = (await session.exec(select(OutboxEvent).where(
            OutboxEvent.ce_subject == n.id))).all()
    assert rows == []


async def test_supersede(stub: ResearchServiceAsyncStub, nats_url: str) -> None:
    old = await published(stub)
    new = await published(stub, supersedes_note_id=old.id, title="Moutai: update")
    got = await stub.GetNote(api.GetNoteRequest(id=old.id), metadata=ANALYST)
    assert got.state == S.NOTE_STATE_SUPERSEDED and got.superseded_by_note_id == new.id
    listed = await stub.ListNotes(api.ListNotesRequest(ticker="600519"), metadata=BROKER)
    ids = [x.id for x in listed.notes]
    assert new.id in ids and old.id not in ids
    mine = await events_about(nats_url, "branch.research.note.withdrawn", old.id)
    evt = events_pb2.NoteWithdrawn()
    evt.ParseFromString(mine[0].data)
    assert evt.superseded_by_note_id == new.id


async def test_lifecycle_on_each_database(tmp_path: Path, nats_url: str, database_url: str) -> None:
    """The whole path on SQLite and on PostgreSQL (when configured)."""
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub

    from services.common.clock import FakeClock
    from services.research.server import SPEC
    from tests.harness import channel, make_settings, running

    settings = make_settings(tmp_path, nats_url, database_url)
    async with running(SPEC, settings, clock=FakeClock()) as runner, channel(runner) as ch:
        s = ResearchServiceStub(ch)
        n = await published(s)
        assert n.state == S.NOTE_STATE_PUBLISHED
        again = await create(s, request_id="same")
        assert (await create(s, request_id="same")).id == again.id
        found = await s.ListNotes(api.ListNotesRequest(text="PRICING power"), metadata=BROKER)
        assert [x.id for x in found.notes] == [n.id]
        w = await s.WithdrawNote(api.WithdrawNoteRequest(id=n.id, reason="r"), metadata=SUPER)
        assert w.state == S.NOTE_STATE_WITHDRAWN


async def test_required_ids(stub: ResearchServiceAsyncStub) -> None:
    calls: list[tuple[Callable[..., Awaitable[Any]], Message, Metadata, str]] = [
        (stub.GetNote, api.GetNoteRequest(), ANALYST, "id"),
        (stub.GetNote, api.GetNoteRequest(id="x", revision=-1), ANALYST, "revision"),
        (stub.SubmitNote, api.SubmitNoteRequest(), ANALYST, "id"),
        (stub.PublishNote, api.PublishNoteRequest(), ANALYST, "id"),
        (stub.WithdrawNote, api.WithdrawNoteRequest(reason="r"), ANALYST, "id"),
        (stub.ApproveNote, api.ApproveNoteRequest(), COMPLIANCE, "id"),
        (stub.ListNoteRevisions, api.ListNoteRevisionsRequest(), COMPLIANCE, "note_id"),
        (stub.GetNoteReach, api.GetNoteReachRequest(), SUPER, "note_id"),
        (stub.GetResearchRequest, api.GetResearchRequestRequest(), SUPER, "id"),
        (stub.ClaimResearchRequest, api.ClaimResearchRequestRequest(), ANALYST, "id"),
        (stub.AnswerResearchRequest, api.AnswerResearchRequestRequest(answer="a"), ANALYST,
         "id"),
    ]
    for call, req, meta, field in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(req, metadata=meta)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, call
        assert bad_fields(err.value) == {field}, call
    unknown: list[tuple[Callable[..., Awaitable[Any]], Message, Metadata]] = [
        (stub.GetNote, api.GetNoteRequest(id="nope"), ANALYST),
        (stub.SubmitNote, api.SubmitNoteRequest(id="nope"), ANALYST),
        (stub.GetNoteReach, api.GetNoteReachRequest(note_id="nope"), SUPER),
        (stub.GetResearchRequest, api.GetResearchRequestRequest(id="nope"), SUPER),
    ]
    for call, req, meta in unknown:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(req, metadata=meta)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, call
