"""branchctl research ...: analysts write, submit, answer requests and see reach; compliance
works the review queue, approves or returns with comments; supervisors export the ledger."""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from branch.directory.v1 import client_pb2
from branch.research.v1 import distribution_pb2, note_pb2, research_request_pb2
from branch.research.v1 import note_enums_pb2 as enums
from branch.research.v1 import research_service_pb2 as api
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from services.cli import when
from services.cli.branchctl import Ctl, clip, who
from services.cli.i18n import _
from services.cli.people import client_option
from services.cli.timefmt import DATE_TIME, local, timestamp

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub

KINDS = {"market": enums.NOTE_KIND_MARKET, "sector": enums.NOTE_KIND_SECTOR,
         "stock": enums.NOTE_KIND_STOCK}
STANCES = {name.removeprefix("STANCE_").lower(): value
           for name, value in enums.Stance.items() if value}
AUDIENCES = {"all": enums.AUDIENCE_ALL_CLIENTS, "key": enums.AUDIENCE_KEY_CLIENTS,
             "staff": enums.AUDIENCE_STAFF_ONLY}
STATES = {name.removeprefix("NOTE_STATE_").lower(): value
          for name, value in note_pb2.NoteState.items() if value}
REQUEST_STATES = {name.removeprefix("RESEARCH_REQUEST_STATE_").lower(): value
                  for name, value in research_request_pb2.ResearchRequestState.items() if value}


def _stub(ctl: Ctl) -> ResearchServiceAsyncStub:
    return ResearchServiceStub(ctl.channel("research"))


def _me(ctl: Ctl) -> str:
    import jwt

    return str(jwt.decode(ctl.token, options={"verify_signature": False})["sub"])


def _name(enum, value: int, prefix: str) -> str:  # type: ignore[no-untyped-def]
    return enum.Name(value).removeprefix(prefix).lower() if value else ""


def _stances(note: note_pb2.Note) -> str:
    return " ".join(f"{s.ticker}={_name(enums.Stance, s.stance, 'STANCE_')}" for s in note.stances)


def _content(args: argparse.Namespace) -> tuple[note_pb2.Note, list[str]]:
    """The note fields given on the command line, and their mask paths."""
    note = note_pb2.Note()
    paths: list[str] = []
    if args.title is not None:
        note.title = args.title
        paths.append("title")
    if args.summary is not None:
        note.summary = args.summary
        paths.append("summary")
    body = Path(args.body_file).read_text() if args.body_file else args.body
    if body is not None:
        note.body = body
        paths.append("body")
    if args.kind:
        note.kind = KINDS[args.kind]
        paths.append("kind")
    if args.stance is not None:
        for item in args.stance:
            ticker, _sep, stance = item.partition("=")
            if stance.lower() not in STANCES:
                raise SystemExit(_("--stance {item}: use TICKER={stances}").format(
                    item=item, stances="|".join(STANCES)))
            note.stances.append(enums.TickerStance(ticker=ticker, stance=STANCES[stance.lower()]))
        paths.append("stances")
    if args.risk:
        note.risk_level = client_pb2.RiskLevel.Value(f"RISK_LEVEL_{args.risk.upper()}")
        paths.append("risk_level")
    if args.valid_until:
        note.valid_until = args.valid_until
        paths.append("valid_until")
    if args.audience:
        note.audience = AUDIENCES[args.audience]
        paths.append("audience")
    return note, paths


def _print_note(ctl: Ctl, n: note_pb2.Note) -> None:
    ctl.console.print(
        f"[bold]{n.title}[/bold]  ({n.id})\n"
        + _("state {state}").format(state=_name(note_pb2.NoteState, n.state, "NOTE_STATE_"))
        + (_(" (expired)") if n.expired else "") + ", "
        + _("revision {revision}").format(revision=n.revision) + ", "
        + f"{_name(enums.NoteKind, n.kind, 'NOTE_KIND_')}, R{n.risk_level}, "
        + _("audience {audience}").format(audience=_name(enums.Audience, n.audience,
                                                         "AUDIENCE_")) + ", "
        + _("valid until {date}").format(date=n.valid_until) + "\n"
        + _("author {who}").format(who=n.author_id)
        + (", " + _("approved by {who} (revision {revision})").format(
            who=n.approved_by, revision=n.approved_revision) if n.approved_by else "")
        + (", " + _("published {time}").format(time=local(n.publish_time, DATE_TIME))
           if n.published_revision else "")
        + ("\n" + _("stances: {stances}").format(stances=_stances(n)) if n.stances else "")
        + ("\n" + _("returned with comments: {comments}").format(comments=n.review_comments)
           if n.state == note_pb2.NOTE_STATE_RETURNED else "")
        + ("\n" + _("withdrawn: {reason}").format(reason=n.withdraw_reason)
           if n.withdraw_reason else "")
        + ("\n" + _("supersedes {note}").format(note=n.supersedes_note_id)
           if n.supersedes_note_id else "")
        + ("\n" + _("superseded by {note}").format(note=n.superseded_by_note_id)
           if n.superseded_by_note_id else "")
        + f"\n\n{n.summary}\n"
    )
    if n.body:
        from rich.markdown import Markdown

        ctl.console.print(Markdown(n.body))


def _note_rows(notes) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [[n.id, clip(n.title, 48), _name(note_pb2.NoteState, n.state, "NOTE_STATE_")
             + (" (expired)" if n.expired else ""),
             _name(enums.NoteKind, n.kind, "NOTE_KIND_"), f"R{n.risk_level}", _stances(n),
             who(n.author_display_name, n.author_id),
             local(n.publish_time, DATE_TIME) or local(n.update_time, DATE_TIME)] for n in notes]


# ---- notes -------------------------------------------------------------------------------

async def notes(args: argparse.Namespace, ctl: Ctl) -> None:
    when.in_order(args.since, args.until, ("--since", "--until"))
    req = api.ListNotesRequest(page_size=args.limit, page_token=args.page or "",
                               ticker=args.ticker or "", text=args.text or "",
                               include_expired=args.expired)
    if args.kind:
        req.kind = KINDS[args.kind]
    if args.state:
        req.state = STATES[args.state]
    if args.mine:
        req.author_id = _me(ctl)
    elif args.author:
        req.author_id = args.author
    if args.since:
        req.publish_start_time.CopyFrom(timestamp(args.since))
    if args.until:
        req.publish_end_time.CopyFrom(timestamp(args.until))
    resp = await _stub(ctl).ListNotes(req, metadata=ctl.metadata)
    ctl.table("notes", ["id", "title", "state", "kind", "risk", "stances", "author", "date"],
              _note_rows(resp.notes))
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


async def show(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    n = await stub.GetNote(api.GetNoteRequest(id=args.id, revision=args.revision),
                           metadata=ctl.metadata)
    _print_note(ctl, n)
    if args.revisions:
        revs = await stub.ListNoteRevisions(api.ListNoteRevisionsRequest(note_id=args.id,
                                                                         page_size=1000),
                                            metadata=ctl.metadata)
        ctl.table("revisions", ["rev", "title", "author", "written", "review", "by", "comments"],
                  [[r.revision, clip(r.title), who(r.author_display_name, r.author_id),
                    local(r.create_time, DATE_TIME),
                    _name(note_pb2.ReviewDecision, r.review_decision, "REVIEW_DECISION_"),
                    who(r.reviewer_display_name, r.reviewer_id), clip(r.review_comments, 60)]
                   for r in revs.revisions])


async def write(args: argparse.Namespace, ctl: Ctl) -> None:
    note, _paths = _content(args)
    if args.supersedes:
        note.supersedes_note_id = args.supersedes
    n = await _stub(ctl).CreateNote(api.CreateNoteRequest(
        note=note, request_id=args.request_id or uuid.uuid4().hex), metadata=ctl.metadata)
    ctl.console.print(_("draft {id} (revision {revision}); submit it with "
                        "`branchctl research submit {id}`").format(id=n.id, revision=n.revision))


async def edit(args: argparse.Namespace, ctl: Ctl) -> None:
    note, paths = _content(args)
    if not paths:
        raise SystemExit(_("nothing to change: give at least one of the note options"))
    note.id = args.id
    n = await _stub(ctl).UpdateNote(api.UpdateNoteRequest(
        note=note, update_mask=FieldMask(paths=paths)), metadata=ctl.metadata)
    ctl.console.print(_("{id}: revision {revision}, draft").format(id=n.id, revision=n.revision))


async def submit(args: argparse.Namespace, ctl: Ctl) -> None:
    n = await _stub(ctl).SubmitNote(api.SubmitNoteRequest(id=args.id), metadata=ctl.metadata)
    ctl.console.print(_("{id}: revision {revision} submitted for compliance review").format(
        id=n.id, revision=n.revision))


async def publish(args: argparse.Namespace, ctl: Ctl) -> None:
    n = await _stub(ctl).PublishNote(api.PublishNoteRequest(id=args.id), metadata=ctl.metadata)
    ctl.console.print(_("{id}: revision {revision} published {time}").format(
        id=n.id, revision=n.published_revision, time=local(n.publish_time, DATE_TIME)))


async def withdraw(args: argparse.Namespace, ctl: Ctl) -> None:
    n = await _stub(ctl).WithdrawNote(api.WithdrawNoteRequest(id=args.id, reason=args.reason),
                                      metadata=ctl.metadata)
    ctl.console.print(_("{id}: withdrawn").format(id=n.id))


# ---- compliance --------------------------------------------------------------------------

async def queue(args: argparse.Namespace, ctl: Ctl) -> None:
    resp = await _stub(ctl).ListReviewQueue(api.ListReviewQueueRequest(page_size=args.limit),
                                            metadata=ctl.metadata)
    ctl.table("review queue (oldest first)",
              ["id", "title", "rev", "kind", "risk", "stances", "author", "submitted"],
              [[n.id, clip(n.title, 48), n.revision,
                _name(enums.NoteKind, n.kind, "NOTE_KIND_"), f"R{n.risk_level}", _stances(n),
                who(n.author_display_name, n.author_id), local(n.submit_time, DATE_TIME)]
               for n in resp.notes])


async def approve(args: argparse.Namespace, ctl: Ctl) -> None:
    n = await _stub(ctl).ApproveNote(api.ApproveNoteRequest(
        id=args.id, revision=args.revision, comments=args.comments or ""), metadata=ctl.metadata)
    ctl.console.print(_("{id}: revision {revision} approved").format(id=n.id,
                                                                   revision=n.approved_revision))


async def return_note(args: argparse.Namespace, ctl: Ctl) -> None:
    n = await _stub(ctl).ReturnNote(api.ReturnNoteRequest(
        id=args.id, revision=args.revision, comments=args.comments), metadata=ctl.metadata)
    ctl.console.print(_("{id}: revision {revision} returned to {who}").format(
        id=n.id, revision=n.revision, who=n.author_id))


# ---- research requests -------------------------------------------------------------------

def _request_rows(items) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [[r.id, _name(research_request_pb2.ResearchRequestState, r.state,
                         "RESEARCH_REQUEST_STATE_"),
             local(r.due_time, DATE_TIME) + (" OVERDUE" if r.overdue else ""),
             ",".join(r.tickers), clip(r.question, 50), who(r.client_display_name, r.client_id),
             who(r.asker_display_name, r.asker_id),
             who(r.claimed_by_display_name, r.claimed_by)] for r in items]


async def requests(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.ListResearchRequestsRequest(page_size=args.limit)
    if args.state:
        req.state = REQUEST_STATES[args.state]
    if args.mine:
        req.claimed_by = _me(ctl)
    resp = await _stub(ctl).ListResearchRequests(req, metadata=ctl.metadata)
    ctl.table("research requests (by due time)",
              ["id", "state", "due", "tickers", "question", "client", "asker", "claimed by"],
              _request_rows(resp.research_requests))


async def ask(args: argparse.Namespace, ctl: Ctl) -> None:
    due = timestamp(args.due) if args.due else None
    if due is None:
        due = Timestamp()
        due.FromDatetime(datetime.now(UTC) + timedelta(hours=args.due_hours))
    r = await _stub(ctl).CreateResearchRequest(api.CreateResearchRequestRequest(
        research_request=research_request_pb2.ResearchRequest(
            client_id=args.client or "", tickers=args.ticker or [], question=args.question,
            due_time=due),
        request_id=uuid.uuid4().hex), metadata=ctl.metadata)
    ctl.console.print(_("research request {id} queued, due {time}").format(
        id=r.id, time=local(r.due_time, DATE_TIME)))


async def claim(args: argparse.Namespace, ctl: Ctl) -> None:
    r = await _stub(ctl).ClaimResearchRequest(api.ClaimResearchRequestRequest(id=args.id),
                                              metadata=ctl.metadata)
    ctl.console.print(_("{id}: claimed; question: {question}").format(id=r.id, question=r.question))


async def release(args: argparse.Namespace, ctl: Ctl) -> None:
    r = await _stub(ctl).ReleaseResearchRequest(api.ReleaseResearchRequestRequest(id=args.id),
                                                metadata=ctl.metadata)
    ctl.console.print(_("{id}: back in the queue").format(id=r.id))


async def answer(args: argparse.Namespace, ctl: Ctl) -> None:
    r = await _stub(ctl).AnswerResearchRequest(api.AnswerResearchRequestRequest(
        id=args.id, answer=args.text or "", note_id=args.note or ""), metadata=ctl.metadata)
    ctl.console.print(_("{id}: answered; the asker ({who}) is notified").format(
        id=r.id, who=r.asker_id))


# ---- reach and ledger --------------------------------------------------------------------

def _duration(value, relayed: int) -> str:  # type: ignore[no-untyped-def]
    if not relayed:
        return "-"
    seconds = value.seconds
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    return f"{minutes // 60}h{minutes % 60:02d}m"


async def reach(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    if args.id:
        items = [await stub.GetNoteReach(api.GetNoteReachRequest(note_id=args.id),
                                         metadata=ctl.metadata)]
    else:
        items = list((await stub.ListNoteReach(api.ListNoteReachRequest(page_size=args.limit),
                                               metadata=ctl.metadata)).reaches)
    ctl.table("reach", ["note", "title", "published", "targeted", "relayed", "acknowledged",
                        "withheld", "cancelled", "median to relay", "worst"],
              [[r.note_id, clip(r.title), local(r.publish_time, DATE_TIME), r.targeted, r.relayed,
                r.acknowledged, r.withheld_for_suitability, r.cancelled,
                _duration(r.median_time_to_relay, r.relayed),
                _duration(r.worst_time_to_relay, r.relayed)] for r in items])


async def ledger(args: argparse.Namespace, ctl: Ctl) -> None:
    when.in_order(args.since, args.until, ("--from", "--to"))
    stub = _stub(ctl)
    if args.out:
        if not (args.since and args.until):
            raise SystemExit(_("--out needs the period: --from and --to"))
        target = sys.stdout.buffer if args.out == "-" else Path(args.out).open("wb")
        try:
            async for part in stub.ExportDistributionLedger(api.ExportDistributionLedgerRequest(
                    start_time=timestamp(args.since), end_time=timestamp(args.until),
                    note_id=args.note or ""), metadata=ctl.metadata):
                target.write(part.csv_chunk)
        finally:
            if target is not sys.stdout.buffer:
                target.close()
        if args.out != "-":
            ctl.console.print(_("ledger written to {path}").format(path=args.out))
        return
    req = api.ListDistributionRecordsRequest(page_size=args.limit, note_id=args.note or "")
    if args.since:
        req.start_time.CopyFrom(timestamp(args.since))
    if args.until:
        req.end_time.CopyFrom(timestamp(args.until))
    resp = await stub.ListDistributionRecords(req, metadata=ctl.metadata)
    ctl.table("distribution ledger", ["seq", "kind", "note", "rev", "actor", "client", "channel",
                                      "when"],
              [[r.sequence, _name(distribution_pb2.DistributionRecordKind, r.kind,
                                  "DISTRIBUTION_RECORD_KIND_"), r.note_id, r.revision,
                who(r.actor_display_name, r.actor_id), who(r.client_display_name, r.client_id),
                r.channel, local(r.occur_time, DATE_TIME)]
               for r in resp.records])


def _content_options(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--title", required=required)
    p.add_argument("--summary", required=required)
    body = p.add_mutually_exclusive_group(required=required)
    body.add_argument("--body", help=_("Markdown text"))
    body.add_argument("--body-file", help=_("a Markdown file"))
    p.add_argument("--kind", choices=sorted(KINDS), required=required)
    p.add_argument("--stance", action="append", metavar="TICKER=STANCE",
                   help="repeatable; stance: " + ", ".join(STANCES))
    p.add_argument("--risk", choices=["R1", "R2", "R3", "R4", "R5"], required=required)
    p.add_argument("--valid-until", metavar="YYYY-MM-DD", type=when.day, required=required)
    p.add_argument("--audience", choices=sorted(AUDIENCES), required=required)


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("research", help=_("research notes, review, requests, reach"))
    sub = group.add_subparsers(dest="command", required=True)

    p = sub.add_parser("notes", help=_("search notes"))
    p.add_argument("--ticker")
    p.add_argument("--kind", choices=sorted(KINDS))
    p.add_argument("--state", choices=sorted(STATES))
    p.add_argument("--author")
    p.add_argument("--mine", action="store_true", help=_("notes I wrote"))
    p.add_argument("--text")
    p.add_argument("--since", metavar="DATE", type=when.day,
                   help=_("published on or after: YYYY-MM-DD, yesterday, '7 days ago'"))
    p.add_argument("--until", metavar="DATE", type=when.day, help=_("published before"))
    p.add_argument("--expired", action="store_true", help=_("include expired published notes"))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--page")
    p.set_defaults(func=notes)

    p = sub.add_parser("show", help=_("one note, optionally with its revisions and reviews"))
    p.add_argument("id")
    p.add_argument("--revision", type=int, default=0)
    p.add_argument("--revisions", action="store_true")
    p.set_defaults(func=show)

    p = sub.add_parser("write", help=_("start a draft (analyst)"))
    _content_options(p, required=True)
    p.add_argument("--supersedes", metavar="NOTE_ID")
    p.add_argument("--request-id", help=_("makes a retry return the same draft"))
    p.set_defaults(func=write)

    p = sub.add_parser("edit", help=_("new revision of a draft or returned note (analyst)"))
    p.add_argument("id")
    _content_options(p, required=False)
    p.set_defaults(func=edit)

    for name, func, text in (("submit", submit, "submit for compliance review (analyst)"),
                             ("publish", publish, "publish an approved note")):
        p = sub.add_parser(name, help=text)
        p.add_argument("id")
        p.set_defaults(func=func)

    p = sub.add_parser("withdraw", help=_("withdraw a note"))
    p.add_argument("id")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=withdraw)

    p = sub.add_parser("queue", help=_("the review queue (compliance)"))
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=queue)

    p = sub.add_parser("approve", help=_("approve the current revision (compliance)"))
    p.add_argument("id")
    p.add_argument("--revision", type=int, default=0, help=_("the revision you reviewed"))
    p.add_argument("--comments")
    p.set_defaults(func=approve)

    p = sub.add_parser("return", help=_("return to the author with comments (compliance)"))
    p.add_argument("id")
    p.add_argument("--revision", type=int, default=0)
    p.add_argument("--comments", required=True)
    p.set_defaults(func=return_note)

    p = sub.add_parser("requests", help=_("research requests by due time"))
    p.add_argument("--state", choices=sorted(REQUEST_STATES))
    p.add_argument("--mine", action="store_true", help=_("claimed by me"))
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=requests)

    p = sub.add_parser("ask", help=_("ask research a question (consultant, broker)"))
    p.add_argument("--question", required=True)
    client_option(p, "--client")
    p.add_argument("--ticker", action="append")
    p.add_argument("--due", metavar="DATETIME", type=when.moment,
                   help=_("'tomorrow 17:00', 'YYYY-MM-DD HH:MM'"))
    p.add_argument("--due-hours", type=float, default=24.0)
    p.set_defaults(func=ask)

    for name, func, text in (("claim", claim, "claim a research request (analyst)"),
                             ("release", release, "put a claimed request back")):
        p = sub.add_parser(name, help=text)
        p.add_argument("id")
        p.set_defaults(func=func)

    p = sub.add_parser("answer", help=_("answer a research request (analyst)"))
    p.add_argument("id")
    p.add_argument("--text")
    p.add_argument("--note", metavar="NOTE_ID", help=_("a published note that answers it"))
    p.set_defaults(func=answer)

    p = sub.add_parser("reach", help=_("reach of a note, or of my (all) published notes"))
    p.add_argument("id", nargs="?")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=reach)

    p = sub.add_parser("ledger", help=_("the distribution ledger; --out FILE exports CSV"))
    p.add_argument("--note")
    p.add_argument("--from", dest="since", metavar="DATE", type=when.day)
    p.add_argument("--to", dest="until", metavar="DATE", type=when.day)
    p.add_argument("--out", metavar="FILE", help=_("CSV file, or - for stdout"))
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=ledger)
