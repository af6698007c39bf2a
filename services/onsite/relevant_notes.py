"""Research notes relevant to a consultation form: published, unexpired notes on the tickers of
the form's holdings snapshot, asked of the research service, each marked with whether its risk
level suits the client.

Research lists notes one ticker at a time, newest first (by id). A form has several tickers,
so each page here merges one stream per ticker by id, and a note on two of the form's tickers
appears once. The page token keeps, per ticker still holding notes, research's token of the
page being read and the id of the last note taken from it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass

from branch.directory.v1 import client_pb2
from branch.onsite.v1 import consultation_pb2
from branch.onsite.v1 import onsite_service_pb2 as api
from branch.research.v1 import note_pb2
from sqlmodel import select

from services.common.auth import Principal
from services.common.errors import InvalidArgument, Unavailable
from services.common.logs import get_logger
from services.common.pagination import page_size
from services.onsite.consultation import _load, suitability_problem
from services.onsite.core import Onsite
from services.onsite.models import FormPositionRow
from services.onsite.research_link import ResearchLink

# Notes asked of research per call, per ticker.
RESEARCH_PAGE = 100

log = get_logger("onsite", component="relevant_notes")


@dataclass
class _Stream:
    """The notes research has on one ticker, read page by page."""

    ticker: str
    # Research's token for the page being read ('' for the first).
    token: str = ""
    # Id of the last note taken from that page ('' for none); the ones before it are skipped.
    last_id: str = ""
    page: list[note_pb2.Note] | None = None
    at: int = 0
    next_token: str = ""

    async def head(self, link: ResearchLink) -> note_pb2.Note | None:
        while True:
            if self.page is None:
                self.page, self.next_token = await link.published_notes(
                    self.ticker, self.token, RESEARCH_PAGE)
                self.at = 0
                if self.last_id:
                    while self.at < len(self.page) and self.page[self.at].id >= self.last_id:
                        self.at += 1
            if self.at < len(self.page):
                return self.page[self.at]
            if not self.next_token:
                return None
            self.token, self.last_id, self.page = self.next_token, "", None

    def pop(self) -> None:
        assert self.page is not None
        self.last_id = self.page[self.at].id
        self.at += 1


def _encode(form_id: str, streams: list[_Stream]) -> str:
    state = {"f": form_id, "s": {s.ticker: [s.token, s.last_id] for s in streams}}
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def _decode(form_id: str, token: str) -> dict[str, tuple[str, str]]:
    bad = InvalidArgument({"page_token": "not a token this service issued for this form"})
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(state, dict) or state.get("f") != form_id or not isinstance(
            state.get("s"), dict):
        raise bad
    out: dict[str, tuple[str, str]] = {}
    for ticker, pos in state["s"].items():
        if not (isinstance(pos, list) and len(pos) == 2
                and all(isinstance(x, str) for x in pos)):
            raise bad
        out[ticker] = (pos[0], pos[1])
    return out


def _relevant(note: note_pb2.Note, tickers: set[str],
              client: client_pb2.Client) -> consultation_pb2.RelevantNote:
    problem = suitability_problem(note.risk_level, client)
    out = consultation_pb2.RelevantNote(
        note_id=note.id, title=note.title, summary=note.summary, kind=note.kind,
        tickers=list(note.tickers), stances=list(note.stances),
        matched_tickers=[t for t in note.tickers if t in tickers],
        risk_level=note.risk_level, valid_until=note.valid_until,
        audience=note.audience, suitable=not problem, suitability_problem=problem,
    )
    if note.HasField("valid_until_time"):
        out.valid_until_time.CopyFrom(note.valid_until_time)
    if note.HasField("publish_time"):
        out.publish_time.CopyFrom(note.publish_time)
    return out


async def list_relevant_notes(o: Onsite, p: Principal, link: ResearchLink | None,
                              req: api.ListRelevantNotesRequest) -> api.ListRelevantNotesResponse:
    if not req.form_id:
        raise InvalidArgument({"form_id": "required"})
    size = page_size(req.page_size)
    resume = _decode(req.form_id, req.page_token) if req.page_token else None
    async with o.db.read() as s:
        row = await _load(s, p, req.form_id)
        held = (await s.exec(select(FormPositionRow.ticker).where(
            FormPositionRow.form_id == row.id))).all()
    tickers = sorted({t.strip().upper() for t in held if t and t.strip()})
    client = await o.directory.get_client(row.client_id)
    resp = api.ListRelevantNotesResponse(
        tickers=tickers, client_risk_tolerance=client.risk_tolerance,
        risk_assessment_expired=client.risk_assessment_expired)
    if not tickers:
        return resp
    if link is None:
        raise Unavailable("the research service is not configured for this on-site service")
    if resume is None:
        streams = [_Stream(t) for t in tickers]
    else:
        streams = [_Stream(t, *resume[t]) for t in tickers if t in resume]
    wanted = set(tickers)
    heads = list(await asyncio.gather(*(st.head(link) for st in streams)))
    seen: set[str] = set()
    while len(resp.notes) < size:
        live = [h.id for h in heads if h is not None]
        if not live:
            break
        top = max(live)
        note = next(h for h in heads if h is not None and h.id == top)
        moved = [i for i, h in enumerate(heads) if h is not None and h.id == top]
        for i in moved:
            streams[i].pop()
        for i, h in zip(moved, await asyncio.gather(*(streams[i].head(link) for i in moved)),
                        strict=True):
            heads[i] = h
        # research already filters; the checks keep a stale or odd answer out all the same
        if top in seen or note.state != note_pb2.NOTE_STATE_PUBLISHED or note.expired:
            continue
        seen.add(top)
        resp.notes.append(_relevant(note, wanted, client))
    remaining = [st for st, h in zip(streams, heads, strict=True) if h is not None]
    if remaining:
        resp.next_page_token = _encode(row.id, remaining)
    log.info("relevant notes listed", form_id=row.id, tickers=len(tickers),
             notes=len(resp.notes))
    return resp
