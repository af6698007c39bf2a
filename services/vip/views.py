"""Read models: a broker's inbox (advisories and relays by deadline), and the supervisor's
SLA report and breach list."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from branch.vip.v1 import relay_pb2
from branch.vip.v1 import vip_service_pb2 as api
from sqlalchemy import and_, func, or_
from sqlmodel import col, select

from services.common.auth import Principal
from services.common.clock import day_start, local_date, week_of
from services.common.errors import PermissionDenied, Violations
from services.common.pagination import decode_token, encode_token, page_size
from services.common.protos import ts
from services.vip import convert
from services.vip.core import Vip, day, timestamp, token_time
from services.vip.models import Advisory, Breach, Relay
from services.vip.roster import OPEN_ADVISORY_STATES

R = relay_pb2
INBOX_RELAY_STATES = (R.RELAY_STATE_PENDING, R.RELAY_STATE_DELIVERED)


def _advisory_deadline(row: Advisory) -> datetime:
    return row.ack_due_at if row.acked_at is None else row.answer_due_at


def _advisory_action(row: Advisory) -> str:
    if row.acked_at is None:
        return "acknowledge"
    if row.research_answered_at is not None:
        return "answer (research answer in)"
    if row.research_requested:
        return "wait for research"
    return "answer"


async def inbox(vip: Vip, principal: Principal, req: api.GetInboxRequest) -> api.GetInboxResponse:
    broker = req.broker_id or principal.staff_id
    if not principal.sees_branch and broker != principal.staff_id:
        raise PermissionDenied("a broker sees only their own inbox", reason="OUT_OF_SCOPE")
    size = page_size(req.page_size)
    after = decode_token(req.page_token, parts=2)
    cursor = (token_time(after[0]), str(after[1])) if after else None
    now = vip.now()
    async with vip.db.read() as session:
        advisories = list((await session.exec(
            select(Advisory).where(
                col(Advisory.state).in_(OPEN_ADVISORY_STATES),
                or_(col(Advisory.assignee_id) == broker, col(Advisory.escalated_to_id) == broker))
        )).all())
        relay_query = select(Relay).where(col(Relay.broker_id) == broker,
                                          col(Relay.state).in_(INBOX_RELAY_STATES))
        if cursor:
            relay_query = relay_query.where(or_(
                col(Relay.due_at) > cursor[0],
                and_(col(Relay.due_at) == cursor[0], col(Relay.id) > cursor[1])))
        relays = list((await session.exec(
            relay_query.order_by(col(Relay.due_at), col(Relay.id)).limit(size + 1))).all())
        relay_count = (await session.exec(
            select(func.count()).select_from(Relay).where(
                col(Relay.broker_id) == broker, col(Relay.state).in_(INBOX_RELAY_STATES))
        )).one()
    items: list[tuple[datetime, str, api.InboxItem]] = []
    for a in advisories:
        deadline = _advisory_deadline(a)
        if cursor and (deadline, a.id) <= cursor:
            continue
        items.append((deadline, a.id, api.InboxItem(
            deadline=ts(deadline), overdue=deadline <= now,
            advisory=convert.advisory_to_proto(a), next_action=_advisory_action(a))))
    for r in relays:
        action = "relay" if r.state == R.RELAY_STATE_PENDING else "record acknowledgement"
        items.append((r.due_at, r.id, api.InboxItem(
            deadline=ts(r.due_at), overdue=r.due_at <= now, relay=convert.relay_to_proto(r),
            next_action=action)))
    items.sort(key=lambda t: (t[0], t[1]))
    more = len(items) > size
    page = items[:size]
    return api.GetInboxResponse(
        broker_id=broker,
        items=[i for _, _, i in page],
        next_page_token=encode_token(page[-1][0].isoformat(), page[-1][1]) if more else "",
        advisory_count=len(advisories),
        relay_count=int(relay_count),
    )


def _week_start(moment: datetime, vip: Vip) -> str:
    return week_of(local_date(moment, vip.tz))[0].isoformat()


def _local_midnight(day: date, vip: Vip) -> datetime:
    return day_start(day, vip.tz)


async def sla_report(vip: Vip, req: api.GetSlaReportRequest) -> api.GetSlaReportResponse:
    v = Violations()
    today = vip.today()
    end_day = day(v, "end_date", req.end_date) or today
    start_day = day(v, "start_date", req.start_date) or (
        week_of(end_day)[0] - timedelta(weeks=3))
    if start_day > end_day:
        v.add("end_date", "must not be before start_date")
    elif (end_day - start_day).days > 370:
        v.add("start_date", "at most a year")
    v.raise_if_any()
    start, end = _local_midnight(start_day, vip), _local_midnight(end_day + timedelta(days=1), vip)
    rows: dict[tuple[str, str], api.BrokerWeek] = {}

    def row_for(broker: str, moment: datetime) -> api.BrokerWeek:
        key = (broker, _week_start(moment, vip))
        if key not in rows:
            rows[key] = api.BrokerWeek(broker_id=broker, week_start=key[1])
        return rows[key]

    async with vip.db.read() as session:
        aq = select(Advisory).where(col(Advisory.opened_at) >= start,
                                    col(Advisory.opened_at) < end)
        rq = select(Relay.broker_id, Relay.state, Relay.created_at, Relay.overdue_at).where(
            col(Relay.created_at) >= start, col(Relay.created_at) < end)
        if req.broker_id:
            aq = aq.where(col(Advisory.assignee_id) == req.broker_id)
            rq = rq.where(col(Relay.broker_id) == req.broker_id)
        advisories = (await session.exec(aq)).all()
        relays = (await session.exec(rq)).all()
    clean: dict[tuple[str, str], int] = defaultdict(int)
    for a in advisories:
        w = row_for(a.assignee_id, a.opened_at)
        w.advisories += 1
        if a.acked_at is not None and a.acked_at <= a.ack_due_at:
            w.acknowledged_in_time += 1
        if a.answered_at is not None and a.answered_at <= a.answer_due_at:
            w.answered_in_time += 1
        if a.ack_breached_at is not None:
            w.acknowledge_breaches += 1
        if a.answer_breached_at is not None:
            w.answer_breaches += 1
        if a.escalation_level:
            w.escalations += 1
        if a.ack_breached_at is None and a.answer_breached_at is None:
            clean[(w.broker_id, w.week_start)] += 1
    cancelled: dict[tuple[str, str], int] = defaultdict(int)
    for broker, state, created, overdue in relays:
        w = row_for(broker, created)
        if state == R.RELAY_STATE_WITHHELD:
            w.relays_withheld += 1
            continue
        w.relays_targeted += 1
        if state in (R.RELAY_STATE_DELIVERED, R.RELAY_STATE_ACKNOWLEDGED):
            w.relays_delivered += 1
        if state == R.RELAY_STATE_ACKNOWLEDGED:
            w.relays_acknowledged += 1
        if state == R.RELAY_STATE_CANCELLED:
            cancelled[(w.broker_id, w.week_start)] += 1
        if overdue is not None:
            w.relays_overdue += 1
    for key, w in rows.items():
        w.sla_compliance = clean[key] / w.advisories if w.advisories else 1.0
        live = w.relays_targeted - cancelled[key]
        w.relay_coverage = w.relays_delivered / live if live > 0 else 1.0
    return api.GetSlaReportResponse(
        rows=[rows[k] for k in sorted(rows, key=lambda k: (k[1], k[0]))],
        time_zone=vip.tz.key,
    )


async def breaches(vip: Vip, req: api.ListBreachesRequest) -> api.ListBreachesResponse:
    size = page_size(req.page_size)
    after = decode_token(req.page_token)
    v = Violations()
    v.check(req.kind in api.BreachKind.values(), "kind", "unknown kind")
    since = timestamp(v, "since_time", req.since_time)
    v.raise_if_any()
    query = select(Breach).order_by(col(Breach.id).desc()).limit(size + 1)
    if after:
        query = query.where(col(Breach.id) < str(after[0]))
    if since:
        query = query.where(col(Breach.breached_at) >= since)
    if req.broker_id:
        query = query.where(col(Breach.broker_id) == req.broker_id)
    if req.kind:
        query = query.where(col(Breach.kind) == req.kind)
    async with vip.db.read() as session:
        rows = list((await session.exec(query)).all())
        more = len(rows) > size
        rows = rows[:size]
        ids = [r.resource_id for r in rows if r.kind != api.BREACH_KIND_RELAY]
        escalation = {}
        if ids:
            for a_id, level, to in (await session.exec(
                select(Advisory.id, Advisory.escalation_level, Advisory.escalated_to_id)
                .where(col(Advisory.id).in_(ids))
            )).all():
                escalation[a_id] = (level, to)
    out = api.ListBreachesResponse(next_page_token=encode_token(rows[-1].id) if more else "")
    for r in rows:
        level, to = escalation.get(r.resource_id, (0, ""))
        out.breaches.append(api.Breach(
            id=r.id, kind=r.kind, resource_id=r.resource_id,  # type: ignore[arg-type]
            client_id=r.client_id, broker_id=r.broker_id, due_time=ts(r.due_at),
            breach_time=ts(r.breached_at), escalation_level=level, escalated_to_id=to))
    return out
