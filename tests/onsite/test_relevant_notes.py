"""ListRelevantNotes: research notes on a form's tickers, asked of the real research service
(started in-process with the directory and on-site services, real NATS, real SQLite)."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from branch.directory.v1 import client_pb2
from branch.onsite.v1 import onsite_service_pb2 as api
from branch.research.v1 import note_enums_pb2 as enums
from branch.research.v1 import note_pb2
from branch.research.v1 import research_service_pb2 as rapi
from rich.console import Console

from services.cli.branchctl import Ctl
from services.onsite import cli, relevant_notes
from tests.harness import Metadata, auth, token
from tests.onsite.conftest import Stack, World, import_holdings, make_client, make_stack, make_world
from tests.onsite.helpers import bad, fails, reason

ANALYST = auth("ana-rn", "analyst")
COMPLIANCE = auth("comp-rn", "compliance")
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
async def rstack(tmp_path_factory: pytest.TempPathFactory, nats_server: Any) -> AsyncIterator[Stack]:
    async with make_stack(tmp_path_factory.mktemp("onsite_rn"), nats_server.url,
                          research=True) as s:
        yield s


@pytest.fixture
async def rworld(rstack: Stack) -> World:
    return await make_world(rstack)


def _day(s: Stack, days: int) -> str:
    return (s.clock.now().astimezone(TZ).date() + timedelta(days=days)).isoformat()


async def note(s: Stack, *tickers: str, risk: client_pb2.RiskLevel.ValueType = client_pb2.RISK_LEVEL_R2,
               upto: str = "publish", valid_days: int = 30,
               kind: enums.NoteKind.ValueType = enums.NOTE_KIND_STOCK) -> note_pb2.Note:
    """A note on tickers taken through review up to `upto` (draft, approved, publish, withdraw)."""
    r = s.research
    assert r is not None
    n = await r.CreateNote(rapi.CreateNoteRequest(note=note_pb2.Note(
        title=f"On {' '.join(tickers) or 'the market'}", summary="Summary.", body="Body.",
        kind=kind, stances=[enums.TickerStance(ticker=t, stance=enums.STANCE_HOLD)
                            for t in tickers],
        risk_level=risk, valid_until=_day(s, valid_days), audience=enums.AUDIENCE_ALL_CLIENTS)),
        metadata=ANALYST)
    if upto == "draft":
        return n
    await r.SubmitNote(rapi.SubmitNoteRequest(id=n.id), metadata=ANALYST)
    n = await r.ApproveNote(rapi.ApproveNoteRequest(id=n.id), metadata=COMPLIANCE)
    if upto == "approved":
        return n
    n = await r.PublishNote(rapi.PublishNoteRequest(id=n.id), metadata=ANALYST)
    if upto == "withdraw":
        n = await r.WithdrawNote(rapi.WithdrawNoteRequest(id=n.id, reason="wrong numbers"),
                                 metadata=ANALYST)
    return n


async def raise_form(w: World, client_id: str, manager: str, consultant: str) -> str:
    form = await w.s.onsite.RaiseConsultationForm(api.RaiseConsultationFormRequest(
        client_id=client_id, consultant_id=consultant), metadata=auth(manager, "client_manager"))
    return form.id


async def relevant(s: Stack, form_id: str, md: Metadata,
                   **kw: Any) -> api.ListRelevantNotesResponse:
    return await s.onsite.ListRelevantNotes(
        api.ListRelevantNotesRequest(form_id=form_id, **kw), metadata=md)


async def test_notes_on_the_forms_tickers_only_published_and_marked_for_suitability(
        rworld: World) -> None:
    w, s = rworld, rworld.s
    # each test makes its own tickers, so notes of other tests in the module do not show
    t1, t2, other = f"T{w.cm1[-6:].upper()}A", f"T{w.cm1[-6:].upper()}B", "X" + w.cm1[-6:]
    await import_holdings(s.directory, w.client_a, [(t1, 100, "10.00", "11.00"),
                                                    (t2, 50, "20.00", "")])
    form_id = await raise_form(w, w.client_a, w.cm1, w.cons1)
    on_t1 = await note(s, t1, risk=client_pb2.RISK_LEVEL_R2)
    on_both = await note(s, t2, t1, risk=client_pb2.RISK_LEVEL_R4)
    market = await note(s, other.upper(), risk=client_pb2.RISK_LEVEL_R1)
    draft = await note(s, t1, upto="draft")
    approved = await note(s, t2, upto="approved")
    withdrawn = await note(s, t1, upto="withdraw")

    resp = await relevant(s, form_id, w.as_cons1)
    assert set(resp.tickers) >= {t1, t2}
    assert resp.client_risk_tolerance == client_pb2.RISK_TOLERANCE_C3
    assert not resp.risk_assessment_expired
    ids = [n.note_id for n in resp.notes]
    assert ids == [on_both.id, on_t1.id]  # newest first, the two-ticker note once
    for absent in (market, draft, approved, withdrawn):
        assert absent.id not in ids
    by_id = {n.note_id: n for n in resp.notes}
    one = by_id[on_t1.id]
    assert one.title == on_t1.title and one.kind == enums.NOTE_KIND_STOCK
    assert list(one.tickers) == [t1] and list(one.matched_tickers) == [t1]
    assert [(x.ticker, x.stance) for x in one.stances] == [(t1, enums.STANCE_HOLD)]
    assert one.risk_level == client_pb2.RISK_LEVEL_R2
    assert one.valid_until == on_t1.valid_until and one.valid_until_time.seconds > 0
    assert one.publish_time.seconds > 0
    assert one.suitable and not one.suitability_problem
    both = by_id[on_both.id]
    assert set(both.matched_tickers) == {t1, t2}
    assert not both.suitable and "above the client's tolerance C3" in both.suitability_problem
    assert not resp.next_page_token

    # the manager who raised it and a supervisor read the same list
    for md in (w.as_cm1, w.as_sup):
        assert [n.note_id for n in (await relevant(s, form_id, md)).notes] == ids


async def test_suitability_follows_the_clients_profile(rworld: World) -> None:
    w, s = rworld, rworld.s
    t = f"S{w.cm1[-6:].upper()}"
    r5 = await note(s, t, risk=client_pb2.RISK_LEVEL_R5)
    r4 = await note(s, t, risk=client_pb2.RISK_LEVEL_R4)
    # C5 client: everything suits
    await import_holdings(s.directory, w.client_b, [(t, 10, "1.00", "1.00")])
    form_b = await raise_form(w, w.client_b, w.cm2, w.cons2)
    resp = await relevant(s, form_b, w.as_cons2)
    assert resp.client_risk_tolerance == client_pb2.RISK_TOLERANCE_C5
    assert [(n.note_id, n.suitable) for n in resp.notes] == [(r4.id, True), (r5.id, True)]
    # C4 with an assessment over two years old: nothing suits, the reason says why
    await import_holdings(s.directory, w.client_old, [(t, 10, "1.00", "1.00")])
    form_old = await raise_form(w, w.client_old, w.cm1, w.cons1)
    resp = await relevant(s, form_old, w.as_cons1)
    assert resp.risk_assessment_expired
    assert [n.note_id for n in resp.notes] == [r4.id, r5.id]
    assert all(not n.suitable and "two years" in n.suitability_problem for n in resp.notes)


async def test_pages_merge_the_tickers_without_repeats(
        rworld: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w, s = rworld, rworld.s
    a, b, c = (f"P{w.cm1[-6:].upper()}{x}" for x in "ABC")
    await import_holdings(s.directory, w.client_a, [(a, 1, "1.00", ""), (b, 1, "1.00", ""),
                                                    (c, 1, "1.00", "")])
    form_id = await raise_form(w, w.client_a, w.cm1, w.cons1)
    made = [await note(s, *tickers) for tickers in
            ((a,), (b,), (a, b), (c,), (a, c), (b,), (a, b, c))]
    expected = [n.id for n in reversed(made)]
    full = await relevant(s, form_id, w.as_cons1)
    assert [n.note_id for n in full.notes] == expected
    # small pages here and in the questions to research
    monkeypatch.setattr(relevant_notes, "RESEARCH_PAGE", 2)
    for size in (1, 2, 3):
        seen: list[str] = []
        token = ""
        while True:
            page = await relevant(s, form_id, w.as_cons1, page_size=size, page_token=token)
            assert len(page.notes) <= size
            seen += [n.note_id for n in page.notes]
            token = page.next_page_token
            if not token:
                break
        assert seen == expected, size


async def test_form_without_holdings_has_no_notes(rworld: World) -> None:
    w, s = rworld, rworld.s
    bare = await make_client(s.directory, client_manager_id=w.cm1)
    form_id = await raise_form(w, bare, w.cm1, w.cons1)
    resp = await relevant(s, form_id, w.as_cons1)
    assert not resp.tickers and not resp.notes and not resp.next_page_token


async def test_scope_roles_and_bad_requests(rworld: World) -> None:
    w, s = rworld, rworld.s
    form_id = await raise_form(w, w.client_a, w.cm1, w.cons1)
    # another consultant, another manager: not their form
    for md in (w.as_cons2, w.as_cm2):
        err = await fails(relevant(s, form_id, md), grpc.StatusCode.PERMISSION_DENIED)
        assert reason(err) == "OUT_OF_SCOPE"
    # roles that do not read forms
    for role in ("broker", "analyst", "service_agent", "compliance"):
        await fails(relevant(s, form_id, auth(w.cons1, role)),
                    grpc.StatusCode.PERMISSION_DENIED)
    await fails(s.onsite.ListRelevantNotes(api.ListRelevantNotesRequest(form_id=form_id)),
                grpc.StatusCode.UNAUTHENTICATED)
    await fails(relevant(s, "no-such-form", w.as_sup), grpc.StatusCode.NOT_FOUND)
    await bad(relevant(s, "", w.as_cons1), "form_id")
    await bad(relevant(s, form_id, w.as_cons1, page_size=-1), "page_size")
    await bad(relevant(s, form_id, w.as_cons1, page_token="garbage!"), "page_token")
    # a token issued for another form is refused
    t = f"K{w.cm1[-6:].upper()}"
    await import_holdings(s.directory, w.client_a, [(t, 1, "1.00", "")])
    other = await raise_form(w, w.client_a, w.cm1, w.cons1)
    await note(s, t)
    await note(s, t)
    page = await relevant(s, other, w.as_cons1, page_size=1)
    assert page.next_page_token
    await bad(relevant(s, form_id, w.as_cons1, page_token=page.next_page_token), "page_token")


async def test_branchctl_onsite_notes(rworld: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w, s = rworld, rworld.s
    t = f"C{w.cm1[-6:].upper()}"
    await import_holdings(s.directory, w.client_a, [(t, 1, "1.00", "")])
    form_id = await raise_form(w, w.client_a, w.cm1, w.cons1)
    ok = await note(s, t, risk=client_pb2.RISK_LEVEL_R1)
    high = await note(s, t, risk=client_pb2.RISK_LEVEL_R5)
    monkeypatch.setenv("BRANCH_ONSITE_ADDR", f"127.0.0.1:{s.runner.port}")
    ctl = Ctl(token=token(w.cons1, "consultant"), console=Console(record=True, width=250))
    parser = argparse.ArgumentParser(prog="branchctl")
    cli.add_commands(parser.add_subparsers(dest="group", required=True))
    try:
        args = parser.parse_args(["onsite", "notes", form_id])
        await args.func(args, ctl)
    finally:
        await ctl.close()
    out = ctl.console.export_text()
    assert ok.id in out and high.id in out and "client tolerance C3" in out
    assert f"{t}:hold" in out and "NO: risk R5 above" in out


async def test_expired_notes_drop_out_and_research_down_is_unavailable(
        tmp_path: Path, nats_url: str) -> None:
    async with make_stack(tmp_path, nats_url, research=True) as s:
        w = await make_world(s)
        form_id = await raise_form(w, w.client_a, w.cm1, w.cons1)
        short = await note(s, "600519", valid_days=0)
        long = await note(s, "000001", valid_days=30)
        resp = await relevant(s, form_id, w.as_cons1)
        assert [n.note_id for n in resp.notes] == [long.id, short.id]
        s.clock.advance(days=2)
        resp = await relevant(s, form_id, w.as_cons1)
        assert [n.note_id for n in resp.notes] == [long.id]

        assert s.research_runner is not None
        await s.research_runner.stop(grace=0)
        err = await fails(relevant(s, form_id, w.as_cons1), grpc.StatusCode.UNAVAILABLE)
        assert "research" in (err.details() or "")
        assert reason(err) == "DEPENDENCY_UNAVAILABLE"
