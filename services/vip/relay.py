"""Research relay: a published note becomes one task per matched key client in that client's
broker's inbox; unsuitable matches are withheld and counted; a withdrawn note cancels what is
still open."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.research.v1 import events_pb2 as research_events
from branch.research.v1 import note_enums_pb2
from branch.vip.v1 import events_pb2, relay_pb2
from branch.vip.v1 import vip_service_pb2 as api
from opentelemetry.trace import SpanKind
from sqlalchemy import insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import tracing
from services.common.auth import Principal
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    Msg,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import Event, emit
from services.common.ids import new_id
from services.common.logs import get_logger
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import enum_name, from_ts, ts
from services.common.upsert import dialect_insert
from services.vip import convert
from services.vip.core import Vip, assessment_expired, split, suitability_problem
from services.vip.models import Breach, Relay, RelayPlan, RosterEntry
from services.vip.roster import ACTIVE

log = get_logger("vip", component="relay")

R = relay_pb2
DIRECTORY_PAGE = 1000
INSERT_BATCH = 2000


@dataclass
class Candidate:
    client_id: str
    broker_id: str
    tolerance: int
    expired: bool
    tickers: list[str] = field(default_factory=list)


async def _directory_matches(vip: Vip, plan: RelayPlan) -> list[Candidate]:
    """Key clients the note concerns, from the directory (the source of holdings, tolerance and
    assessment dates): holders of any of its tickers, or every key client for a market note.
    Runs outside any transaction: paging 10,000 clients takes a second or two."""
    tickers = split(plan.tickers)
    market = plan.kind == note_enums_pb2.NOTE_KIND_MARKET or not tickers
    stub = vip.directory()
    today = vip.today()
    out: list[Candidate] = []
    token = ""
    while True:
        try:
            if market:
                page = await stub.ListClients(dir_api.ListClientsRequest(
                    tier=client_pb2.TIER_KEY, status=client_pb2.CLIENT_STATUS_ACTIVE,
                    page_size=DIRECTORY_PAGE, page_token=token), timeout=30)
                out += [Candidate(c.id, c.broker_id, c.risk_tolerance,
                                  c.risk_assessment_expired or not c.risk_assessed_on
                                  or assessment_expired(_date(c.risk_assessed_on), today))
                        for c in page.clients]
                token = page.next_page_token
            else:
                found = await stub.FindClientsByTickers(dir_api.FindClientsByTickersRequest(
                    tickers=tickers, tier=client_pb2.TIER_KEY, page_size=DIRECTORY_PAGE,
                    page_token=token), timeout=30)
                out += [Candidate(p.client_id, p.broker_id, p.risk_tolerance,
                                  p.risk_assessment_expired, list(p.tickers))
                        for p in found.clients]
                token = found.next_page_token
        except grpc.aio.AioRpcError as err:
            # the plan stays pending; the planner's next pass retries
            raise RuntimeError(f"directory lookup failed: {err.code().name}") from None
        if not token:
            return out


def _date(value: str):  # type: ignore[no-untyped-def]
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


async def plan_relays(vip: Vip, session: AsyncSession,
                      note: research_events.NotePublished) -> bool:
    """Record, inside the note consumer's transaction, that a published note revision needs
    relay tasks: once per revision, so a redelivery or replay plans nothing twice. The tasks
    are written by plan_pending after the commit, which wakes the planner."""
    if note.audience == note_enums_pb2.AUDIENCE_STAFF_ONLY or not note.note_id:
        return False
    tickers = ",".join(sorted({t.upper() for t in note.tickers if t and "," not in t})[:100])
    # INSERT .. ON CONFLICT DO NOTHING: a redelivery, a replay, or a withdrawal seen first
    # (possibly by another replica at this moment) leaves the existing row as it is
    result = await session.exec(
        _plan_insert(vip, note_id=note.note_id, revision=note.revision, title=note.title[:300],
                     kind=note.kind, risk_level=note.risk_level, tickers=tickers[:2000],
                     publish_time=from_ts(note.publish_time), planned_at=vip.now(),
                     pending=True)
        .on_conflict_do_nothing(index_elements=PLAN_KEY)
    )
    if result.rowcount != 1:
        return False  # redelivered or replayed: planned already (or withdrawn first)
    session.info[WAKE_PLANNER] = True
    vip.plan_traces[(note.note_id, note.revision)] = tracing.carrier()
    return True


PLAN_KEY = ["note_id", "revision"]


def _plan_insert(vip: Vip, **values):  # type: ignore[no-untyped-def]
    """An INSERT of one vip_relay_plan row in the database's dialect (for ON CONFLICT)."""
    row = {"title": "", "kind": 0, "risk_level": 0, "tickers": "", "targeted": 0,
           "withheld": 0, "pending": False, "publish_time": None, "withdrawn_at": None,
           **values}
    return dialect_insert("sqlite" if vip.db.is_sqlite else "postgresql", RelayPlan).values(**row)


WAKE_PLANNER = "vip_wake_relay_planner"
PLANS_PER_PASS = 20


async def plan_pending(vip: Vip) -> int:
    """One pass of the relay planner: for each pending plan, page the directory (no
    transaction open), then write the tasks in one transaction that first claims the plan
    with a conditional UPDATE, so two replicas plan a note once and a crash or a directory
    failure leaves it pending for the next pass. Returns how many plans were written."""
    written = 0
    while True:
        async with vip.db.read() as session:
            plans = list((await session.exec(
                select(RelayPlan).where(col(RelayPlan.pending).is_(True))
                .order_by(col(RelayPlan.planned_at)).limit(PLANS_PER_PASS))).all())
        progressed = 0
        for plan in plans:
            key = (plan.note_id, plan.revision)
            with tracing.continued(vip.plan_traces.get(key, {}), "vip relay plan",
                                   SpanKind.INTERNAL, "vip", **{"branch.note_id": plan.note_id}):
                found: list[Candidate] = []
                if plan.withdrawn_at is None:
                    try:
                        found = await _directory_matches(vip, plan)
                    except RuntimeError as exc:
                        log.warning("relay planning waits for the directory",
                                    note_id=plan.note_id, revision=plan.revision,
                                    error=str(exc))
                        continue
                async with vip.db.transaction() as session:
                    if await _write_plan(vip, session, plan.note_id, plan.revision, found):
                        written += 1
                vip.plan_traces.pop(key, None)
                progressed += 1
        if len(plans) < PLANS_PER_PASS or not progressed:
            return written


async def _write_plan(vip: Vip, session: AsyncSession, note_id: str, revision: int,
                      found: list[Candidate]) -> bool:
    claimed = await session.exec(
        update(RelayPlan).where(col(RelayPlan.note_id) == note_id,
                                col(RelayPlan.revision) == revision,
                                col(RelayPlan.pending).is_(True))
        .values(pending=False)
    )
    if claimed.rowcount != 1:
        return False  # another replica wrote it
    plan = await session.get(RelayPlan, (note_id, revision))
    assert plan is not None
    if plan.withdrawn_at is not None:
        return False  # withdrawn while the directory was paged: nothing to relay
    # plain columns, not ORM objects: the roster may hold tens of thousands of clients
    rows = (await session.exec(select(
        RosterEntry.client_id, RosterEntry.broker_id, RosterEntry.status))).all()
    roster = {r[0]: r for r in rows}
    now = vip.now()
    due = now + vip.config.relay_window
    inserts = []
    targeted = withheld = 0
    for c in found:
        entry = roster.get(c.client_id)
        if entry is not None and entry[2] != ACTIVE:
            continue  # left the key tier here; the directory event may lag behind
        # the roster's dedicated broker (a supervisor may have changed it) wins
        broker = entry[1] if entry is not None and entry[1] else c.broker_id
        problem = suitability_problem(plan.risk_level, c.tolerance, c.expired)
        if problem:
            withheld += 1
        else:
            targeted += 1
        inserts.append({
            "id": new_id(), "note_id": note_id, "revision": revision,
            "note_title": plan.title, "risk_level": plan.risk_level,
            "client_id": c.client_id, "broker_id": broker,
            "matched_tickers": ",".join(c.tickers)[:500],
            "state": R.RELAY_STATE_WITHHELD if problem else R.RELAY_STATE_PENDING,
            "created_at": now, "due_at": due, "publish_time": plan.publish_time,
            "channel": 0, "summary": "", "ack_note": "", "reason": problem,
        })
    conn = await session.connection()
    for i in range(0, len(inserts), INSERT_BATCH):
        # a Core executemany: the ORM's bulk path is several times slower for 10,000 rows
        await conn.execute(insert(Relay), inserts[i:i + INSERT_BATCH])
    plan.targeted, plan.withheld, plan.planned_at = targeted, withheld, now
    session.add(plan)
    emit(session, subject="branch.vip.relay.planned",
         message=events_pb2.RelaysPlanned(note_id=note_id, revision=revision,
                                          targeted=targeted, withheld_for_suitability=withheld,
                                          publish_time=ts(plan.publish_time)),
         about=note_id, now=now)
    log.info("relays planned", note_id=note_id, revision=revision,
             targeted=targeted, withheld=withheld)
    return True


async def cancel_for_note(vip: Vip, session: AsyncSession,
                          msg: research_events.NoteWithdrawn) -> int:
    now = vip.now()
    reason = ("note withdrawn" + (f": {msg.reason}" if msg.reason else ""))[:300]
    # mark the plans first: this waits for a planner writing this note's tasks (row lock),
    # and a planner claiming after it sees the withdrawal and writes nothing
    if msg.revision:
        # withdrawn before we saw it published: the row makes a late publication plan
        # nothing; an upsert, so a publication recorded concurrently (another replica) is
        # marked instead of failing this transaction
        await session.exec(
            _plan_insert(vip, note_id=msg.note_id, revision=msg.revision, planned_at=now,
                         withdrawn_at=now)
            .on_conflict_do_update(index_elements=PLAN_KEY, set_={"withdrawn_at": now})
        )
    else:
        await session.exec(
            update(RelayPlan).where(col(RelayPlan.note_id) == msg.note_id)
            .values(withdrawn_at=now)
        )
    conditions = [col(Relay.note_id) == msg.note_id, col(Relay.state) == R.RELAY_STATE_PENDING]
    if msg.revision:
        conditions.append(col(Relay.revision) == msg.revision)
    result = await session.exec(
        update(Relay).where(*conditions)
        .values(state=R.RELAY_STATE_CANCELLED, cancelled_at=now, reason=reason)
    )
    cancelled = int(result.rowcount or 0)
    emit(session, subject="branch.vip.relay.cancelled",
         message=events_pb2.RelaysCancelled(note_id=msg.note_id, revision=msg.revision,
                                            cancelled=cancelled, reason=reason,
                                            cancel_time=ts(now)),
         about=msg.note_id, now=now)
    log.info("relays cancelled", note_id=msg.note_id, cancelled=cancelled)
    return cancelled


def handlers(vip: Vip):  # type: ignore[no-untyped-def]
    async def on_note_event(session: AsyncSession, event: Event) -> None:
        if event.type.endswith(".published"):
            await plan_relays(vip, session, event.parse(research_events.NotePublished))
        elif event.type.endswith(".withdrawn"):
            await cancel_for_note(vip, session, event.parse(research_events.NoteWithdrawn))

    return on_note_event


# ---- RPCs --------------------------------------------------------------------------------

def can_see(principal: Principal, row: Relay) -> bool:
    if principal.sees_branch or principal.has("compliance", "analyst"):
        return True
    return principal.has("broker") and row.broker_id == principal.staff_id


async def _load(session: AsyncSession, principal: Principal, relay_id: str) -> Relay:
    if not relay_id:
        raise InvalidArgument({"id": "required"})
    row = await session.get(Relay, relay_id)
    if row is None:
        raise NotFound("relay {relay_id} not found", relay_id=relay_id)
    if not can_see(principal, row):
        raise PermissionDenied("relay is for another broker's client", reason="OUT_OF_SCOPE")
    return row


def _require_worker(principal: Principal, row: Relay) -> None:
    if not (principal.has("supervisor", "admin") or row.broker_id == principal.staff_id):
        raise PermissionDenied("relay is for another broker's client", reason="OUT_OF_SCOPE")


async def get(vip: Vip, principal: Principal, relay_id: str) -> relay_pb2.RelayTask:
    async with vip.db.read() as session:
        return convert.relay_to_proto(await _load(session, principal, relay_id))


async def list_(vip: Vip, principal: Principal,
                req: api.ListRelaysRequest) -> api.ListRelaysResponse:
    size = page_size(req.page_size)
    after = decode_token(req.page_token)
    if req.state not in R.RelayState.values():
        raise InvalidArgument({"state": "unknown state"})
    query = select(Relay).order_by(col(Relay.id)).limit(size + 1)
    if after:
        query = query.where(col(Relay.id) > str(after[0]))
    for name in ("note_id", "client_id", "broker_id", "state"):
        value = getattr(req, name)
        if value:
            query = query.where(getattr(Relay, name) == value)
    if not can_see_all(principal):
        if req.broker_id and req.broker_id != principal.staff_id:
            raise PermissionDenied("brokers see only their own clients", reason="OUT_OF_SCOPE")
        query = query.where(col(Relay.broker_id) == principal.staff_id)
    async with vip.db.read() as session:
        rows = list((await session.exec(query)).all())
    more = len(rows) > size
    rows = rows[:size]
    return api.ListRelaysResponse(relays=[convert.relay_to_proto(r) for r in rows],
                                  next_page_token=encode_token(rows[-1].id) if more else "")


def can_see_all(principal: Principal) -> bool:
    return principal.sees_branch or principal.has("compliance", "analyst")


async def record_delivery(vip: Vip, principal: Principal,
                          req: api.RecordRelayDeliveryRequest) -> relay_pb2.RelayTask:
    v = Violations()
    v.check(req.channel in convert.CHANNEL_NAMES, "channel", "PHONE, MEETING, MESSAGE or VIDEO")
    v.check(bool(req.summary.strip()), "summary", "required")
    v.check(len(req.summary) <= 2000, "summary", "at most 2000 characters")
    v.raise_if_any()
    async with vip.db.transaction() as session:
        row = await _load(session, principal, req.id)
        _require_worker(principal, row)
        if row.state != R.RELAY_STATE_PENDING:
            raise FailedPrecondition("relay is {state}",
                                     state=Msg(enum_name(R.RelayState, row.state)),
                                     reason="RELAY_NOT_PENDING")
        now = vip.now()
        row.state, row.delivered_at = R.RELAY_STATE_DELIVERED, now
        row.channel, row.summary = req.channel, req.summary.strip()
        session.add(row)
        emit(session, subject="branch.vip.relay.delivered",
             message=events_pb2.RelayDelivered(
                 relay_id=row.id, note_id=row.note_id, revision=row.revision,
                 client_id=row.client_id, broker_id=principal.staff_id,
                 channel=convert.CHANNEL_NAMES[req.channel], deliver_time=ts(now),
                 publish_time=ts(row.publish_time)),
             about=row.id, now=now)
        return convert.relay_to_proto(row)


async def record_acknowledgement(vip: Vip, principal: Principal,
                                 req: api.RecordRelayAcknowledgementRequest
                                 ) -> relay_pb2.RelayTask:
    if len(req.note) > 500:
        raise InvalidArgument({"note": "at most 500 characters"})
    async with vip.db.transaction() as session:
        row = await _load(session, principal, req.id)
        _require_worker(principal, row)
        if row.state != R.RELAY_STATE_DELIVERED:
            if row.state == R.RELAY_STATE_PENDING:
                raise FailedPrecondition("record the delivery first", reason="RELAY_NOT_DELIVERED")
            raise FailedPrecondition("relay is {state}", reason="RELAY_NOT_DELIVERED",
                                     state=Msg(enum_name(R.RelayState, row.state)))
        now = vip.now()
        row.state, row.acknowledged_at, row.ack_note = R.RELAY_STATE_ACKNOWLEDGED, now, req.note
        session.add(row)
        emit(session, subject="branch.vip.relay.acknowledged",
             message=events_pb2.RelayAcknowledged(
                 relay_id=row.id, note_id=row.note_id, revision=row.revision,
                 client_id=row.client_id, broker_id=row.broker_id, acknowledge_time=ts(now)),
             about=row.id, now=now)
        return convert.relay_to_proto(row)


# ---- overdue timer -----------------------------------------------------------------------

async def check_overdue(vip: Vip, batch: int = 500) -> int:
    """One pass: pending relays past due raise branch.vip.relay.overdue once each."""
    now = vip.now()
    raised = 0
    async with vip.db.transaction() as session:
        rows = (await session.exec(
            select(Relay).where(col(Relay.state) == R.RELAY_STATE_PENDING,
                                col(Relay.due_at) <= now, col(Relay.overdue_at).is_(None))
            .order_by(col(Relay.due_at)).limit(batch)
        )).all()
        for row in rows:
            result = await session.exec(
                update(Relay).where(col(Relay.id) == row.id,
                                    col(Relay.overdue_at).is_(None),
                                    col(Relay.state) == R.RELAY_STATE_PENDING)
                .values(overdue_at=now)
            )
            if result.rowcount != 1:
                continue
            raised += 1
            session.add(Breach(id=new_id(), kind=api.BREACH_KIND_RELAY, resource_id=row.id,
                               client_id=row.client_id, broker_id=row.broker_id,
                               due_at=row.due_at, breached_at=now))
            emit(session, subject="branch.vip.relay.overdue",
                 message=events_pb2.RelayOverdue(relay_id=row.id, note_id=row.note_id,
                                                 revision=row.revision,
                                                 client_id=row.client_id,
                                                 broker_id=row.broker_id,
                                                 due_time=ts(row.due_at)),
                 about=row.id, now=now)
    return raised
