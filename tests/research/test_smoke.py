from __future__ import annotations

from branch.research.v1 import note_pb2
from branch.research.v1 import research_service_pb2 as api

from tests.harness import collect_events
from tests.research.factories import ANALYST, BROKER, published


async def test_publish_and_read(stub, nats_url) -> None:
    n = await published(stub)
    assert n.state == note_pb2.NOTE_STATE_PUBLISHED
    got = await stub.GetNote(api.GetNoteRequest(id=n.id), metadata=BROKER)
    assert got.title == n.title
    listed = await stub.ListNotes(api.ListNotesRequest(ticker="600519"), metadata=ANALYST)
    assert [x.id for x in listed.notes] == [n.id]
    events = await collect_events(nats_url, "branch.research.note.published", count=50, timeout=2)
    assert n.id in [e.headers["ce-subject"] for e in events]
