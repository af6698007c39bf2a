from __future__ import annotations

from typing import TYPE_CHECKING

from branch.research.v1 import note_pb2
from branch.research.v1 import research_service_pb2 as api

from tests.research.factories import ANALYST, BROKER, events_about, published

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub


async def test_publish_and_read(stub: ResearchServiceAsyncStub, nats_url: str) -> None:
    n = await published(stub)
    assert n.state == note_pb2.NOTE_STATE_PUBLISHED
    got = await stub.GetNote(api.GetNoteRequest(id=n.id), metadata=BROKER)
    assert got.title == n.title
    listed = await stub.ListNotes(api.ListNotesRequest(ticker="600519"), metadata=ANALYST)
    assert [x.id for x in listed.notes] == [n.id]
    assert await events_about(nats_url, "branch.research.note.published", n.id)
