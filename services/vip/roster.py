"""The key-client roster, kept from the directory's client events; brokers changed by a
supervisor. Leaving the key tier closes open work with a reason."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from branch.directory.v1 import client_pb2
from branch.directory.v1 import events_pb2 as dir_events
from branch.vip.v1 import advisory_pb2, events_pb2, relay_pb2, roster_pb2
from branch.vip.v1 import vip_service_pb2 as api
from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.errors import InvalidArgument, NotFound, PermissionDenied, Violations
from services.common.events import Event, emit
from services.common.logs import get_logger
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.common.upsert import insert_missing
from services.vip import convert
from services.vip.core import Vip
from services.vip.models import Advisory, Relay, RosterEntry

log = get_logger("vip", component="roster")

ACTIVE = roster_pb2.ROSTER_STATUS_ACTIVE
LEFT = roster_pb2.ROSTER_STATUS_LEFT
OPEN_ADVISORY_STATES = (
    advisory_pb2.ADVISORY_STATE_OPEN,
    advisory_pb2.ADVISORY_STATE_ACKNOWLEDGED,
    advisory_pb2.ADVISORY_STATE_AWAITING_RESEARCH,
)
UPDATABLE = {"broker_id", "backup_broker_id"}
OPEN_RELAY_STATES = (relay_pb2.RELAY_STATE_PENDING, relay_pb2.RELAY_STATE_DELIVERED)


def _assessed(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _is_key(client: client_pb2.Client) -> bool:
    return (client.tier == client_pb2.TIER_KEY
            and client.status != client_pb2.CLIENT_STATUS_CLOSED)


async def apply_client(vip: Vip, session: AsyncSession, client: client_pb2.Client,
                       changed: Sequence[str] = ()) -> None:
    """Bring the roster in line with the directory's view of one client."""
    now = vip.now()
    if _is_key(client):
        # insert-if-missing in one statement: two replicas (or a tier change racing an
        # update) joining the same client at once both inserted, and the loser's duplicate
        # key made the consumer drop its event
        joined = await insert_missing(session, RosterEntry, {
            "client_id": client.id, "broker_id": client.broker_id, "backup_broker_id": "",
            "risk_tolerance": client.risk_tolerance,
            "risk_assessed_on": _assessed(client.risk_assessed_on), "status": ACTIVE,
            "leave_reason": "", "joined_at": now, "left_at": None, "updated_at": now,
        }, key=["client_id"])
        row = (await session.exec(select(RosterEntry).where(
            col(RosterEntry.client_id) == client.id
        ).execution_options(populate_existing=True))).one()
        if joined:
            pass  # the row was written whole just now
        elif row.status != ACTIVE:
            row.status, row.left_at, row.leave_reason, row.joined_at = ACTIVE, None, "", now
            row.broker_id = client.broker_id or row.broker_id
            joined = True
        elif "broker_id" in changed and client.broker_id and client.broker_id != row.broker_id:
            await move_open_work(vip, session, client.id, row.broker_id, client.broker_id)
            row.broker_id = client.broker_id
        row.risk_tolerance = client.risk_tolerance
        row.risk_assessed_on = _assessed(client.risk_assessed_on)
        row.updated_at = now
        session.add(row)
        if joined:
            emit(session, subject="branch.vip.roster.joined",
                 message=events_pb2.RosterJoined(client_id=client.id, broker_id=row.broker_id,
                                                 join_time=ts(now)),
                 about=client.id, now=now)
            log.info("client joined roster", client_id=client.id)
        return
    present = await session.get(RosterEntry, client.id)
    if present is not None and present.status == ACTIVE:
        reason = ("client left the branch" if client.status == client_pb2.CLIENT_STATUS_CLOSED
                  else "client is no longer a key client")
        await leave(vip, session, present, reason)


async def leave(vip: Vip, session: AsyncSession, row: RosterEntry, reason: str) -> None:
    now = vip.now()
    row.status, row.left_at, row.leave_reason, row.updated_at = LEFT, now, reason, now
    session.add(row)
    advisories = (await session.exec(
        select(Advisory).where(col(Advisory.client_id) == row.client_id,
                               col(Advisory.state).in_(OPEN_ADVISORY_STATES))
    )).all()
    for adv in advisories:
        adv.state, adv.closed_at, adv.close_reason = (
            advisory_pb2.ADVISORY_STATE_CLOSED, now, reason)
        session.add(adv)
        emit(session, subject="branch.vip.advisory.closed",
             message=events_pb2.AdvisoryClosed(advisory_id=adv.id, client_id=adv.client_id,
                                               reason=reason, close_time=ts(now),
                                               source_ticket_id=adv.source_ticket_id),
             about=adv.id, now=now)
    relays = (await session.exec(
        select(Relay).where(col(Relay.client_id) == row.client_id,
                            col(Relay.state) == relay_pb2.RELAY_STATE_PENDING)
    )).all()
    for relay in relays:
        relay.state, relay.cancelled_at, relay.reason = (
            relay_pb2.RELAY_STATE_CANCELLED, now, reason)
        session.add(relay)
    emit(session, subject="branch.vip.roster.left",
         message=events_pb2.RosterLeft(client_id=row.client_id, reason=reason,
                                       advisories_closed=len(advisories),
                                       relays_cancelled=len(relays), leave_time=ts(now)),
         about=row.client_id, now=now)
    log.info("client left roster", client_id=row.client_id, advisories_closed=len(advisories),
             relays_cancelled=len(relays))


async def move_open_work(vip: Vip, session: AsyncSession, client_id: str, old: str,
                         new: str) -> None:
    """A client's new dedicated broker takes over their open relays and advisories, so the
    old broker no longer reaches the client through them (closed work stays as history)."""
    if not old or old == new:
        return
    moved = await session.exec(
        update(Relay).where(col(Relay.client_id) == client_id,
                            col(Relay.broker_id) == old,
                            col(Relay.state).in_(OPEN_RELAY_STATES))
        .values(broker_id=new)
    )
    advisories = (await session.exec(
        select(Advisory).where(col(Advisory.client_id) == client_id,
                               col(Advisory.state).in_(OPEN_ADVISORY_STATES))
    )).all()
    for adv in advisories:
        if adv.dedicated_broker_id == old:
            adv.dedicated_broker_id = new
        if adv.assignee_id == old:
            adv.assignee_id = new
        session.add(adv)
    log.info("open work moved to the new broker", client_id=client_id,
             relays=int(moved.rowcount or 0), advisories=len(advisories))


# ---- event handlers ----------------------------------------------------------------------

def handlers(vip: Vip):  # type: ignore[no-untyped-def]
    async def on_client_event(session: AsyncSession, event: Event) -> None:
        kind = event.type.rsplit(".", 1)[-1]
        if kind == "created":
            msg = event.parse(dir_events.ClientCreated)
            await apply_client(vip, session, msg.client)
        elif kind == "tier_changed":
            tier_msg = event.parse(dir_events.ClientTierChanged)
            await apply_client(vip, session, tier_msg.client)
        elif kind == "updated":
            upd = event.parse(dir_events.ClientUpdated)
            if upd.client.tier == client_pb2.TIER_KEY or (
                await session.get(RosterEntry, upd.client.id)
            ) is not None:
                await apply_client(vip, session, upd.client, list(upd.changed_fields))

    return on_client_event


# ---- RPCs --------------------------------------------------------------------------------

def sees_client(principal: Principal, row: RosterEntry | None) -> bool:
    if principal.sees_branch or principal.has("service_agent"):
        return True
    return row is not None and principal.has("broker") and principal.staff_id in (
        row.broker_id, row.backup_broker_id)


async def get_entry(vip: Vip, principal: Principal, client_id: str) -> roster_pb2.RosterEntry:
    if not client_id:
        raise InvalidArgument({"client_id": "required"})
    async with vip.db.read() as session:
        row = await session.get(RosterEntry, client_id)
    if row is None:
        raise NotFound("client {client_id} is not on the roster", client_id=client_id)
    if not sees_client(principal, row):
        raise PermissionDenied("client is not yours", reason="OUT_OF_SCOPE")
    return convert.roster_to_proto(row, vip.today())


async def list_entries(vip: Vip, principal: Principal,
                       req: api.ListRosterRequest) -> api.ListRosterResponse:
    size = page_size(req.page_size)
    after = decode_token(req.page_token)
    v = Violations()
    v.check(req.status in roster_pb2.RosterStatus.values(), "status", "unknown status")
    v.raise_if_any()
    query = select(RosterEntry).order_by(col(RosterEntry.client_id)).limit(size + 1)
    if after:
        query = query.where(col(RosterEntry.client_id) > str(after[0]))
    if req.status:
        query = query.where(col(RosterEntry.status) == req.status)
    if req.broker_id:
        query = query.where(or_(col(RosterEntry.broker_id) == req.broker_id,
                                col(RosterEntry.backup_broker_id) == req.broker_id))
    if not (principal.sees_branch or principal.has("service_agent")):
        if req.broker_id and req.broker_id != principal.staff_id:
            raise PermissionDenied("brokers see only their own clients", reason="OUT_OF_SCOPE")
        query = query.where(or_(col(RosterEntry.broker_id) == principal.staff_id,
                                col(RosterEntry.backup_broker_id) == principal.staff_id))
    async with vip.db.read() as session:
        rows = list((await session.exec(query)).all())
    more = len(rows) > size
    rows = rows[:size]
    today = vip.today()
    return api.ListRosterResponse(
        entries=[convert.roster_to_proto(r, today) for r in rows],
        next_page_token=encode_token(rows[-1].client_id) if more else "",
    )


async def update_entry(vip: Vip, req: api.UpdateRosterEntryRequest) -> roster_pb2.RosterEntry:
    v = Violations()
    paths = set(req.update_mask.paths)
    v.check(bool(req.entry.client_id), "entry.client_id", "required")
    if not paths:
        v.add("update_mask", "name broker_id and/or backup_broker_id")
    elif paths - UPDATABLE:
        v.add("update_mask", "cannot update {names}", names=', '.join(sorted(paths - UPDATABLE)))
    if "broker_id" in paths:
        if not req.entry.broker_id:
            v.add("entry.broker_id", "required")
        else:
            await vip.check_staff(v, "entry.broker_id", req.entry.broker_id, "broker")
    if "backup_broker_id" in paths and req.entry.backup_broker_id:
        await vip.check_staff(v, "entry.backup_broker_id", req.entry.backup_broker_id, "broker")
    v.raise_if_any()
    async with vip.db.transaction() as session:
        row = await session.get(RosterEntry, req.entry.client_id)
        if row is None:
            raise NotFound("client {client_id} is not on the roster", client_id=req.entry.client_id)
        broker = req.entry.broker_id if "broker_id" in paths else row.broker_id
        backup = req.entry.backup_broker_id if "backup_broker_id" in paths else row.backup_broker_id
        if backup and backup == broker:
            raise InvalidArgument({"entry.backup_broker_id": "must differ from the broker"})
        await move_open_work(vip, session, row.client_id, row.broker_id, broker)
        row.broker_id, row.backup_broker_id, row.updated_at = broker, backup, vip.now()
        session.add(row)
        return convert.roster_to_proto(row, vip.today())
