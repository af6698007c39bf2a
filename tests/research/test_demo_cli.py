"""The demo loads through the public API; branchctl takes a note from draft to published."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from branch.research.v1 import note_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2 as api

from services.cli.branchctl import Ctl, build_parser
from services.cli.demo import Demo
from services.common.server import ServiceRunner
from tests.harness import SIGNER, token
from tests.research.factories import ANALYST, BROKER, COMPLIANCE

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub


async def test_demo_loads_and_reruns(research: ServiceRunner, stub: ResearchServiceAsyncStub) -> None:
    settings = research.settings.model_copy(update={"research_addr": research.address})
    for _ in range(2):  # a second run finds everything done
        demo = Demo(settings=settings, admin_token=token("admin-1", "admin"), signer=SIGNER,
                    now=research.clock.now())
        try:
            from services.research import demo as research_demo

            await research_demo.load(demo)
        finally:
            await demo.close()
        published = demo.shared["research_notes"]
        assert len(published) >= 20
    everything = await stub.ListNotes(api.ListNotesRequest(page_size=1000),
                                      metadata=(("authorization",
                                                 f"Bearer {token('sup-9', 'supervisor')}"),))
    states = {n.state for n in everything.notes}
    assert {note_pb2.NOTE_STATE_PUBLISHED, note_pb2.NOTE_STATE_SUBMITTED,
            note_pb2.NOTE_STATE_WITHDRAWN, note_pb2.NOTE_STATE_SUPERSEDED,
            note_pb2.NOTE_STATE_RETURNED, note_pb2.NOTE_STATE_DRAFT} <= states
    assert len(everything.notes) == 35
    kinds = {n.kind for n in everything.notes}
    assert len(kinds) == 3 and len({n.risk_level for n in everything.notes}) >= 4
    visible = await stub.ListNotes(api.ListNotesRequest(page_size=1000), metadata=BROKER)
    assert {n.id for n in visible.notes} == set(published)
    queue = await stub.ListResearchRequests(api.ListResearchRequestsRequest(
        state=research_request_pb2.ResearchRequestState.ValueType(0), page_size=1000), metadata=ANALYST)
    assert len([r for r in queue.research_requests if r.question]) >= 3


async def run(ctl: Ctl, *argv: str) -> None:
    args = build_parser().parse_args(["research", *argv])
    await args.func(args, ctl)


async def test_branchctl_draft_to_published(research: ServiceRunner, stub: ResearchServiceAsyncStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BRANCH_RESEARCH_ADDR", research.address)
    analyst = Ctl(token=token("ana-1", "analyst"))
    compliance = Ctl(token=token("comp-1", "compliance"))
    body = tmp_path / "note.md"
    body.write_text("# Thesis\n\nSteady demand.")
    try:
        await run(analyst, "write", "--title", "Moutai: steady", "--summary", "Stay long.",
                  "--body-file", str(body), "--kind", "stock", "--stance", "600519=buy",
                  "--risk", "R3", "--valid-until", "2026-03-31", "--audience", "all")
        notes = await stub.ListNotes(api.ListNotesRequest(author_id="ana-1"), metadata=ANALYST)
        note_id = notes.notes[0].id
        await run(analyst, "submit", note_id)
        await run(compliance, "queue")
        assert "review queue" in capsys.readouterr().out
        await run(compliance, "return", note_id, "--comments", "Add the risk section.")
        await run(analyst, "edit", note_id, "--summary", "Stay long; risks listed.")
        await run(analyst, "submit", note_id)
        await run(compliance, "approve", note_id)
        await run(analyst, "publish", note_id)
        got = await stub.GetNote(api.GetNoteRequest(id=note_id), metadata=COMPLIANCE)
        assert got.state == note_pb2.NOTE_STATE_PUBLISHED and got.revision == 2
        await run(analyst, "reach", note_id)
        await run(analyst, "notes", "--ticker", "600519")
        await run(analyst, "show", note_id, "--revisions")
        out = capsys.readouterr().out
        assert "Moutai: steady" in out and "targeted" in out
    finally:
        await analyst.close()
        await compliance.close()


def test_parser_has_the_research_group() -> None:
    parser = build_parser()
    args = parser.parse_args(["research", "requests"])
    assert isinstance(args, argparse.Namespace) and callable(args.func)
