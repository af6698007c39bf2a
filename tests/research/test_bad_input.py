"""A caller's mistake is INVALID_ARGUMENT naming the field, never INTERNAL, and changes
nothing: NUL characters (PostgreSQL refuses them), impossible timestamps, page tokens that no
list of this service issued."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from branch.research.v1 import note_pb2
from branch.research.v1 import research_service_pb2 as api
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.clock import FakeClock
from services.common.pagination import encode_token
from services.research.server import SPEC
from tests.harness import Metadata, bad_fields, channel, make_settings, running
from tests.research.factories import (
    ANALYST,
    BROKER,
    COMPLIANCE,
    CONSULTANT,
    SUPER,
    create,
    note,
    published,
    research_request,
)

FAR = Timestamp(seconds=2**62)
BEFORE_YEAR_1 = Timestamp(seconds=-2**62)
BAD_NANOS = Timestamp(seconds=5, nanos=-5)


async def expect_bad(call: Callable[..., Any], req: Message, meta: Metadata, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        result = call(req, metadata=meta)
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (req, err.value.details())
    assert bad_fields(err.value) == {field}, req


async def test_bad_input_is_invalid_argument(tmp_path: Path, nats_url: str, database_url: str) -> None:
    clock = FakeClock()
    settings = make_settings(tmp_path, nats_url, database_url)
    async with running(SPEC, settings, clock=clock) as runner, channel(runner) as ch:
        stub = ResearchServiceStub(ch)
        pub = await published(stub)
        draft = await create(stub)
        cases: list[tuple[Callable[..., Any], Message, Metadata, str]] = [
            # NUL characters, in ids, free text, nested and repeated fields
            (stub.CreateNote, api.CreateNoteRequest(note=note(title="a\x00b")), ANALYST,
             "note.title"),
            (stub.CreateNote, api.CreateNoteRequest(note=note(body="x\x00")), ANALYST,
             "note.body"),
            (stub.UpdateNote, api.UpdateNoteRequest(
                note=note_pb2.Note(id=draft.id, summary="\x00"),
                update_mask=FieldMask(paths=["summary"])), ANALYST, "note.summary"),
            (stub.WithdrawNote, api.WithdrawNoteRequest(id=draft.id, reason="gone\x00"),
             ANALYST, "reason"),
            (stub.GetNote, api.GetNoteRequest(id="n\x00"), BROKER, "id"),
            (stub.ListNotes, api.ListNotesRequest(text="moutai\x00"), BROKER, "text"),
            (stub.ListNotes, api.ListNotesRequest(author_id="\x00"), BROKER, "author_id"),
            (stub.CreateResearchRequest, api.CreateResearchRequestRequest(
                research_request=research_request(clock, question="why\x00")), CONSULTANT,
             "research_request.question"),
            (stub.CreateResearchRequest, api.CreateResearchRequestRequest(
                research_request=research_request(clock, tickers=["600519", "6\x00"])),
             CONSULTANT, "research_request.tickers[1]"),
            (stub.AnswerResearchRequest, api.AnswerResearchRequestRequest(
                id="r", answer="\x00"), ANALYST, "answer"),
            (stub.ClaimResearchRequest, api.ClaimResearchRequestRequest(id="r\x00"), ANALYST,
             "id"),
            (stub.GetNoteReach, api.GetNoteReachRequest(note_id="\x00"), SUPER, "note_id"),
            # ids longer than any id (NOT_FOUND echoed them, overflowing the trailers)
            (stub.WithdrawNote, api.WithdrawNoteRequest(id="x" * 9000, reason="r"), ANALYST,
             "id"),
            (stub.ClaimResearchRequest, api.ClaimResearchRequestRequest(id="x" * 9000),
             ANALYST, "id"),
            (stub.ListNotes, api.ListNotesRequest(author_id="a" * 101), BROKER, "author_id"),
            (stub.AnswerResearchRequest, api.AnswerResearchRequestRequest(
                id="r", answer="a", note_id="n" * 101), ANALYST, "note_id"),
            # timestamps outside what a Timestamp may hold
            (stub.ListNotes, api.ListNotesRequest(publish_start_time=FAR), BROKER,
             "publish_start_time"),
            (stub.ListNotes, api.ListNotesRequest(publish_end_time=BEFORE_YEAR_1), BROKER,
             "publish_end_time"),
            (stub.ListNotes, api.ListNotesRequest(publish_end_time=BAD_NANOS), BROKER,
             "publish_end_time"),
            (stub.CreateResearchRequest, api.CreateResearchRequestRequest(
                research_request=research_request(clock, due_time=FAR)), CONSULTANT,
             "research_request.due_time"),
            (stub.ListDistributionRecords, api.ListDistributionRecordsRequest(start_time=FAR),
             SUPER, "start_time"),
            (stub.ExportDistributionLedger, api.ExportDistributionLedgerRequest(
                start_time=Timestamp(seconds=1), end_time=FAR), SUPER, "end_time"),
            # page tokens of another list, or of the right shape with the wrong contents
            (stub.ListNotes, api.ListNotesRequest(page_token=encode_token(5)), BROKER,
             "page_token"),
            (stub.ListNoteRevisions, api.ListNoteRevisionsRequest(
                note_id=pub.id, page_token=encode_token("abc")), ANALYST, "page_token"),
            (stub.ListNoteRevisions, api.ListNoteRevisionsRequest(
                note_id=pub.id, page_token=encode_token(10**30)), ANALYST, "page_token"),
            (stub.ListReviewQueue, api.ListReviewQueueRequest(
                page_token=encode_token("not a time", "x")), COMPLIANCE, "page_token"),
            (stub.ListReviewQueue, api.ListReviewQueueRequest(
                page_token=encode_token(5, 6)), COMPLIANCE, "page_token"),
            (stub.ListResearchRequests, api.ListResearchRequestsRequest(
                page_token=encode_token("not a time", "x")), ANALYST, "page_token"),
            (stub.ListNoteReach, api.ListNoteReachRequest(
                page_token=encode_token("not a time", "x")), SUPER, "page_token"),
            (stub.ListDistributionRecords, api.ListDistributionRecordsRequest(
                page_token=encode_token("abc")), SUPER, "page_token"),
        ]
        for call, req, meta, field in cases:
            await expect_bad(call, req, meta, field)
        # nothing moved: the draft is still a draft at revision 1, no request was queued
        got = await stub.GetNote(api.GetNoteRequest(id=draft.id), metadata=ANALYST)
        assert (got.state, got.revision) == (note_pb2.NOTE_STATE_DRAFT, 1)
        queue = await stub.ListResearchRequests(api.ListResearchRequestsRequest(),
                                                metadata=ANALYST)
        assert list(queue.research_requests) == []
