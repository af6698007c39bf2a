"""The demo branch's research: ~34 notes across kinds and risk levels (most published, some
in review, returned, drafts, withdrawn, one superseded) and a few research requests, made
through the public API by the demo analysts and compliance officers. Safe to run again."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from branch.research.v1 import note_enums_pb2 as enums
from branch.research.v1 import note_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2 as api
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub

from services.common.protos import ts

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub

    from services.cli.demo import Demo

S = note_pb2
FALLBACK_TICKERS = ["600519", "000858", "601318", "600036", "000001", "300750", "002594",
                    "601012", "600276", "000333", "600900", "688981", "300059", "600030"]
SECTORS = {
    "Liquor": ["600519", "000858"], "Banks": ["600036", "000001", "601398", "601166"],
    "New energy": ["300750", "002594", "601012"], "Brokers": ["600030", "300059"],
    "Semiconductors": ["688981", "688012"], "Utilities": ["600900"],
    "Healthcare": ["600276", "300015"], "Home appliances": ["000333", "000651"],
}
BULL_BEAR = [enums.STANCE_BULLISH, enums.STANCE_NEUTRAL, enums.STANCE_BEARISH]
BUY_SELL = [enums.STANCE_BUY, enums.STANCE_HOLD, enums.STANCE_SELL]
# (target state, how many): published ones also feed the VIP relays and reach figures
PLAN = [("published", 22), ("withdrawn", 3), ("submitted", 4), ("returned", 2),
        ("draft", 2), ("approved", 1)]
STOCK_TOPICS = ["earnings preview", "margin check", "valuation update", "channel checks",
                "guidance revision"]
MARKET_TOPICS = ["liquidity and flows", "the week ahead", "earnings season", "policy signals"]
STANCE_WORDS = {
    enums.STANCE_BULLISH: "constructive", enums.STANCE_NEUTRAL: "balanced",
    enums.STANCE_BEARISH: "cautious", enums.STANCE_BUY: "a buy", enums.STANCE_HOLD: "a hold",
    enums.STANCE_SELL: "a sell",
}


def _staff(demo: Demo, role: str, count: int) -> list[str]:
    ids = demo.staff.get(role) or [f"demo-{role}-{i + 1}" for i in range(count)]
    return list(ids)


def _note(demo: Demo, i: int, tickers: list[str]) -> note_pb2.Note:
    rng = demo.rng
    kind = [enums.NOTE_KIND_STOCK, enums.NOTE_KIND_STOCK, enums.NOTE_KIND_SECTOR,
            enums.NOTE_KIND_MARKET][i % 4]
    scale = rng.choice([BULL_BEAR, BUY_SELL])
    if kind == enums.NOTE_KIND_STOCK:
        picks = [rng.choice(tickers)]
        title = f"{picks[0]}: {rng.choice(STOCK_TOPICS)}"
    elif kind == enums.NOTE_KIND_SECTOR:
        sector, members = rng.choice(sorted(SECTORS.items()))
        picks = [t for t in members if t in tickers] or [rng.choice(tickers)]
        title = f"{sector}: {rng.choice(['quarterly outlook', 'policy impact', 'demand tracker'])}"
    else:
        picks = rng.sample(["510300", "159915"], rng.randint(0, 1))
        title = f"Market view: {rng.choice(MARKET_TOPICS)}"
    stances = [enums.TickerStance(ticker=t, stance=rng.choice(scale)) for t in picks]
    risk = {enums.NOTE_KIND_MARKET: rng.choice([1, 2, 3]),
            enums.NOTE_KIND_SECTOR: rng.choice([2, 3, 4]),
            enums.NOTE_KIND_STOCK: rng.choice([3, 4, 5])}[kind]
    words = ", ".join(f"{s.ticker} {STANCE_WORDS[s.stance]}" for s in stances) or "no single name"
    valid = demo.today + timedelta(days=rng.randint(14, 90))
    audience = rng.choices([enums.AUDIENCE_ALL_CLIENTS, enums.AUDIENCE_KEY_CLIENTS,
                            enums.AUDIENCE_STAFF_ONLY], weights=[6, 3, 1])[0]
    return note_pb2.Note(
        title=title,
        summary=f"We are {words}. Risk level R{risk}; valid until {valid.isoformat()}.",
        body=(f"# {title}\n\n## View\n\nWe are {words}.\n\n## Why\n\n"
              "- Turnover and northbound flows\n- Earnings revisions\n- Policy calendar\n\n"
              "## Risks\n\nMarket volatility may exceed expectations; past performance does "
              "not predict future returns.\n"),
        kind=kind, stances=stances, risk_level=risk,  # type: ignore[arg-type]
        valid_until=valid.isoformat(), audience=audience,
    )


async def _take(stub: ResearchServiceAsyncStub, demo: Demo, note: note_pb2.Note, target: str,
                author: str, reviewer: str) -> note_pb2.Note:
    """Move a note on to `target`, from wherever an earlier run left it."""
    me = demo.as_staff(author, "analyst")
    compliance = demo.as_staff(reviewer, "compliance")
    note = await stub.GetNote(api.GetNoteRequest(id=note.id), metadata=me)
    if target == "draft":
        return note
    if target == "returned":
        if note.state == S.NOTE_STATE_DRAFT:
            await stub.SubmitNote(api.SubmitNoteRequest(id=note.id), metadata=me)
            note = await stub.ReturnNote(api.ReturnNoteRequest(
                id=note.id, revision=note.revision,
                comments="Please add the suitability disclosure and cite the data sources."),
                metadata=compliance)
        return note
    if note.state == S.NOTE_STATE_DRAFT:
        note = await stub.SubmitNote(api.SubmitNoteRequest(id=note.id), metadata=me)
    if target == "submitted":
        return note
    if note.state == S.NOTE_STATE_SUBMITTED:
        note = await stub.ApproveNote(api.ApproveNoteRequest(id=note.id, revision=note.revision),
                                      metadata=compliance)
    if target == "approved":
        return note
    if note.state == S.NOTE_STATE_APPROVED:
        note = await stub.PublishNote(api.PublishNoteRequest(id=note.id), metadata=me)
    if target == "withdrawn" and note.state == S.NOTE_STATE_PUBLISHED:
        note = await stub.WithdrawNote(api.WithdrawNoteRequest(
            id=note.id, reason="Figures restated by the company; view under review."),
            metadata=me)
    return note


async def load(demo: Demo) -> None:
    stub = ResearchServiceStub(demo.channel("research"))
    analysts = _staff(demo, "analyst", 5)
    reviewers = _staff(demo, "compliance", 2)
    tickers = demo.tickers or FALLBACK_TICKERS
    notes: list[note_pb2.Note] = []
    i = 0
    for target, count in PLAN:
        for _ in range(count):
            author = analysts[i % len(analysts)]
            msg = _note(demo, i, tickers)
            created = await stub.CreateNote(api.CreateNoteRequest(
                note=msg, request_id=f"demo-note-{i}"), metadata=demo.as_staff(author, "analyst"))
            notes.append(await _take(stub, demo, created, target, author,
                                     reviewers[i % len(reviewers)]))
            i += 1
    # a newer view supersedes the first published stock note
    old = next(n for n in notes if n.published_revision and n.kind == enums.NOTE_KIND_STOCK)
    author = old.author_id
    msg = note_pb2.Note()
    msg.CopyFrom(_note(demo, 0, list(old.tickers) or tickers))
    msg.title = f"{old.title} (revised view)"
    msg.supersedes_note_id = old.id
    msg.ClearField("stances")
    msg.stances.extend(old.stances)
    created = await stub.CreateNote(api.CreateNoteRequest(note=msg, request_id="demo-note-super"),
                                    metadata=demo.as_staff(author, "analyst"))
    newer = await _take(stub, demo, created, "published", author, reviewers[0])
    notes = [n for n in notes if n.id != old.id]
    notes += [await stub.GetNote(api.GetNoteRequest(id=old.id), metadata=demo.as_admin()), newer]

    listed = await stub.ListNotes(api.ListNotesRequest(
        state=S.NOTE_STATE_PUBLISHED, page_size=1000), metadata=demo.as_admin())
    demo.shared["research_notes"] = [n.id for n in listed.notes]

    # research requests from consultants and brokers: some open, one claimed, one answered
    askers = ([("consultant", s) for s in demo.staff.get("consultant", [])[:2]]
              + [("broker", s) for s in demo.staff.get("broker", [])[:2]]) or [
        ("consultant", "demo-consultant-1")]
    clients = [c.id for c in demo.clients[:20]]
    questions = [
        "Client asks whether to add to 600519 before the results.",
        "Is the bank dividend yield sustainable after the rate cut?",
        "How exposed is the client's new-energy basket to the subsidy change?",
        "Client wants a view on the brokers after the turnover spike.",
        "Should the client rotate from growth ETFs into utilities?",
    ]
    requests: list[research_request_pb2.ResearchRequest] = []
    request_tickers = [["600519"], ["600036", "000001"], ["300750", "002594"], ["600030"], []]
    for k, question in enumerate(questions):
        role, asker = askers[k % len(askers)]
        due = demo.now + timedelta(hours=2 + 6 * k)
        r = await stub.CreateResearchRequest(api.CreateResearchRequestRequest(
            research_request=research_request_pb2.ResearchRequest(
                client_id=clients[k % len(clients)] if clients else "",
                tickers=request_tickers[k],
                question=question, due_time=ts(due)),
            request_id=f"demo-request-{k}"), metadata=demo.as_staff(asker, role))
        requests.append(r)
    analyst = demo.as_staff(analysts[0], "analyst")
    first = await stub.GetResearchRequest(api.GetResearchRequestRequest(id=requests[0].id),
                                          metadata=analyst)
    if first.state == research_request_pb2.RESEARCH_REQUEST_STATE_OPEN:
        answer_note = demo.shared["research_notes"][0] if demo.shared["research_notes"] else ""
        await stub.AnswerResearchRequest(api.AnswerResearchRequestRequest(
            id=first.id, note_id=answer_note,
            answer="Results risk is priced in; no change to our view, see the note."),
            metadata=analyst)
    second = await stub.GetResearchRequest(api.GetResearchRequestRequest(id=requests[1].id),
                                           metadata=analyst)
    if second.state == research_request_pb2.RESEARCH_REQUEST_STATE_OPEN:
        await stub.ClaimResearchRequest(api.ClaimResearchRequestRequest(id=second.id),
                                        metadata=analyst)
    states: dict[str, int] = {}
    for n in notes:
        name = S.NoteState.Name(n.state).removeprefix("NOTE_STATE_").lower()
        states[name] = states.get(name, 0) + 1
    print("demo: research " + ", ".join(f"{v} {k}" for k, v in sorted(states.items()))
          + f"; {len(requests)} research requests", flush=True)
