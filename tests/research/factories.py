"""Test data for research: staff metadata and note builders."""

from __future__ import annotations

from datetime import timedelta

from branch.directory.v1 import client_pb2
from branch.research.v1 import note_enums_pb2 as enums
from branch.research.v1 import note_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2 as api

from services.common.clock import FakeClock
from services.common.protos import ts
from tests.harness import auth

ANALYST = auth("ana-1", "analyst")
ANALYST2 = auth("ana-2", "analyst")
COMPLIANCE = auth("comp-1", "compliance")
COMPLIANCE2 = auth("comp-2", "compliance")
BROKER = auth("brk-1", "broker")
CONSULTANT = auth("con-1", "consultant")
MANAGER = auth("cm-1", "client_manager")
SUPER = auth("sup-1", "supervisor")
# One person holding both roles: may write, but never review their own note.
ANALYST_COMPLIANCE = auth("dual-1", "analyst", "compliance")


def note(**kw) -> note_pb2.Note:  # type: ignore[no-untyped-def]
    fields = dict(
        title="Kweichow Moutai: margins hold",
        summary="Pricing power intact; we stay constructive.",
        body="# Thesis\n\nDemand for premium baijiu is steady.",
        kind=enums.NOTE_KIND_STOCK,
        stances=[enums.TickerStance(ticker="600519", stance=enums.STANCE_BUY)],
        risk_level=client_pb2.RISK_LEVEL_R3,
        valid_until="2026-03-31",
        audience=enums.AUDIENCE_ALL_CLIENTS,
    )
    fields.update(kw)
    return note_pb2.Note(**fields)


async def create(stub, meta=ANALYST, request_id: str = "", **kw) -> note_pb2.Note:  # type: ignore[no-untyped-def]
    return await stub.CreateNote(api.CreateNoteRequest(note=note(**kw), request_id=request_id),
                                 metadata=meta)


async def published(stub, meta=ANALYST, **kw) -> note_pb2.Note:  # type: ignore[no-untyped-def]
    """A note taken through review to publication."""
    n = await create(stub, meta, **kw)
    await stub.SubmitNote(api.SubmitNoteRequest(id=n.id), metadata=meta)
    await stub.ApproveNote(api.ApproveNoteRequest(id=n.id, revision=n.revision),
                           metadata=COMPLIANCE)
    return await stub.PublishNote(api.PublishNoteRequest(id=n.id), metadata=meta)


def research_request(clock: FakeClock, **kw) -> research_request_pb2.ResearchRequest:  # type: ignore[no-untyped-def]
    fields = dict(
        client_id="cli-1", tickers=["600519"], question="Is the dividend safe?",
        due_time=ts(clock.now() + timedelta(hours=8)),
    )
    fields.update(kw)
    return research_request_pb2.ResearchRequest(**fields)
