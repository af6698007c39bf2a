"""Callback campaigns (回访): target lists, the shared work queue, outcomes and retries,
quotas, and the regulator's callback rules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from branch.directory.v1 import client_pb2, staff_pb2
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import events_pb2
from branch.remote.v1 import remote_service_pb2 as api
from sqlalchemy import String, and_, func, literal, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    Msg,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import emit
from services.common.ids import new_id
from services.common.pagination import decode_token, encode_token, page_size
from services.remote import convert
from services.remote.core import Core, remember_client
from services.remote.models import (
    CallbackRecord,
    CallbackTarget,
    Campaign,
    ClientClaim,
    QuotaMiss,
    RemoteClient,
    Ticket,
)

LEASE = timedelta(minutes=15)
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_MINUTES = 60
# Requested call-back times are honoured, but not forever.
EXTRA_RESCHEDULES = 5
MAX_CANDIDATES = 25
FINAL = {cpb.CALLBACK_OUTCOME_REACHED, cpb.CALLBACK_OUTCOME_DECLINED,
         cpb.CALLBACK_OUTCOME_WRONG_NUMBER}
OPEN_STATES = (cpb.TARGET_STATE_PENDING, cpb.TARGET_STATE_CLAIMED)


class _Busy(Exception):
    """Another agent holds the client; roll back and try the next candidate."""


@dataclass
class Campaigns:
    core: Core

    # ---- definition ----------------------------------------------------------------------

    def _validate(self, msg: cpb.Campaign) -> tuple[date, date, list[str]]:
        v = Violations()
        v.check(0 < len(msg.name.strip()) <= 100, "campaign.name", "1 to 100 characters")
        v.check(len(msg.purpose) <= 1000, "campaign.purpose", "at most 1000 characters")
        v.check(msg.kind in (cpb.CAMPAIGN_KIND_GENERAL, cpb.CAMPAIGN_KIND_NEW_ACCOUNTS,
                             cpb.CAMPAIGN_KIND_ANNUAL_SAMPLE), "campaign.kind",
                "GENERAL, NEW_ACCOUNTS or ANNUAL_SAMPLE")
        start = end = None
        try:
            start = date.fromisoformat(msg.start_date) if len(msg.start_date) == 10 else None
        except ValueError:
            pass
        try:
            end = date.fromisoformat(msg.end_date) if len(msg.end_date) == 10 else None
        except ValueError:
            pass
        v.check(start is not None, "campaign.start_date", "YYYY-MM-DD")
        v.check(end is not None, "campaign.end_date", "YYYY-MM-DD")
        if start and end:
            v.check(end >= start, "campaign.end_date", "must not be before start_date")
            v.check(end >= self.core.today(), "campaign.end_date", "must not be in the past")
            v.check((end - start).days <= 366, "campaign.end_date", "at most one year long")
        agents = list(dict.fromkeys(a.strip() for a in msg.agent_ids))
        v.check(0 < len(agents) <= 50 and all(0 < len(a) <= 100 for a in agents),
                "campaign.agent_ids", "1 to 50 staff ids")
        v.check(1 <= msg.daily_quota <= 500, "campaign.daily_quota", "between 1 and 500")
        v.check(0 <= msg.max_attempts <= 10, "campaign.max_attempts", "between 1 and 10")
        v.check(0 <= msg.retry_backoff_minutes <= 7 * 1440, "campaign.retry_backoff_minutes",
                "between 1 minute and 7 days")
        rule = msg.rule
        v.check(0 <= rule.not_contacted_days <= 3650, "campaign.rule.not_contacted_days",
                "between 0 and 3650")
        if rule.min_concentration:
            try:
                share = Decimal(rule.min_concentration)
                v.check(0 < share <= 1, "campaign.rule.min_concentration",
                        "a fraction above 0, at most 1")
            except InvalidOperation:
                v.add("campaign.rule.min_concentration", "a decimal fraction such as 0.5")
        v.check(all(1 <= t <= 5 for t in rule.risk_tolerances), "campaign.rule.risk_tolerances",
                "C1 to C5")
        v.check(rule.max_targets >= 0, "campaign.rule.max_targets", "must not be negative")
        v.raise_if_any()
        assert start and end
        return start, end, agents

    async def prepare(self, msg: cpb.Campaign) -> tuple[date, date, list[str],
                                                       list[tuple[client_pb2.Client, date | None]]]:
        """Validate and compute the target list (directory calls happen here, outside any
        write transaction)."""
        start, end, agents = self._validate(msg)
        v = Violations()
        for agent in agents:
            staff = await self.core.directory.get_staff(agent)
            if staff is None or not staff.active:
                v.add("campaign.agent_ids", "{agent} is not an active staff member", agent=agent)
            elif staff_pb2.ROLE_SERVICE_AGENT not in staff.roles:
                # only a service agent may pull from the queue (NextCallback)
                v.add("campaign.agent_ids", "{agent} is not a service agent", agent=agent)
        v.raise_if_any()
        targets: Sequence[tuple[client_pb2.Client, date | None]]
        if msg.kind == cpb.CAMPAIGN_KIND_GENERAL:
            targets = await self._general_targets(msg.rule)
        elif msg.kind == cpb.CAMPAIGN_KIND_NEW_ACCOUNTS:
            targets = await self._new_account_targets(start, end)
        else:
            targets = await self._annual_targets(start.year, msg.rule.max_targets)
        return start, end, agents, list(targets)

    async def _last_contacts(self) -> dict[str, datetime]:
        async with self.core.db.read() as session:
            calls = (await session.exec(
                select(CallbackRecord.client_id, func.max(CallbackRecord.call_time))
                .where(col(CallbackRecord.outcome) == cpb.CALLBACK_OUTCOME_REACHED,
                       col(CallbackRecord.client_id) != "")
                .group_by(CallbackRecord.client_id))).all()
            tickets = (await session.exec(
                select(Ticket.client_id, func.max(Ticket.opened_at))
                .where(col(Ticket.client_id) != "").group_by(Ticket.client_id))).all()
        out: dict[str, datetime] = {}
        for cid, when in [*calls, *tickets]:
            if when is not None and (cid not in out or when > out[cid]):
                out[cid] = convert.utc(when)
        return out

    async def _general_targets(self, rule: cpb.TargetRule) -> list[tuple[client_pb2.Client, None]]:
        clients = await self.core.directory.list_clients(
            channel=client_pb2.CHANNEL_REMOTE, tier=client_pb2.TIER_STANDARD,
            status=client_pb2.CLIENT_STATUS_ACTIVE)
        if rule.risk_tolerances:
            allowed = set(rule.risk_tolerances)
            clients = [c for c in clients if c.risk_tolerance in allowed]
        if rule.not_contacted_days:
            contacts = await self._last_contacts()
            cutoff = self.core.now() - timedelta(days=rule.not_contacted_days)
            clients = [c for c in clients if contacts.get(c.id, cutoff) <= cutoff]
        if rule.min_concentration or rule.risk_mismatch_only:
            share = Decimal(rule.min_concentration) if rule.min_concentration else None
            kept = []
            for c in clients:
                holdings = await self.core.directory.holdings(c.id)
                if rule.risk_mismatch_only and not any(
                        h.risk_level > c.risk_tolerance for h in holdings):
                    continue
                if share is not None:
                    values = [Decimal(h.market_price or h.cost_price or "0") * h.quantity
                              for h in holdings]
                    total = sum(values, Decimal(0))
                    if total <= 0 or max(values) / total < share:
                        continue
                kept.append(c)
            clients = kept
        if rule.max_targets:
            clients = clients[:rule.max_targets]
        return [(c, None) for c in clients]

    async def _reached_since(self, since: datetime) -> dict[str, datetime]:
        """Earliest reached call per client since the instant."""
        async with self.core.db.read() as session:
            rows = (await session.exec(
                select(CallbackRecord.client_id, func.min(CallbackRecord.call_time))
                .where(col(CallbackRecord.outcome) == cpb.CALLBACK_OUTCOME_REACHED,
                       col(CallbackRecord.call_time) >= since, col(CallbackRecord.client_id) != "")
                .group_by(CallbackRecord.client_id))).all()
        return {cid: convert.utc(when) for cid, when in rows}

    async def _new_account_targets(self, start: date, end: date) -> list[tuple[client_pb2.Client,
                                                                                  date]]:
        clients = await self.core.directory.list_clients(status=client_pb2.CLIENT_STATUS_ACTIVE)
        earliest = start - timedelta(days=92)
        reached = await self._reached_since(self.core.day_start(earliest))
        out = []
        for c in clients:
            opened = date.fromisoformat(c.opened_on)
            if earliest <= opened <= end and not (
                    c.id in reached and self.core.local_date(reached[c.id]) >= opened):
                out.append((c, self.core.new_account_callback_due(opened)))
        out.sort(key=lambda pair: (pair[1], pair[0].id))
        return out

    async def _annual_targets(self, year: int, max_targets: int) -> list[tuple[client_pb2.Client,
                                                                              None]]:
        book = await self._year_end_book(year)
        reached = await self._reached_since(self.core.day_start(date(year, 1, 1)))
        required = math.ceil(len(book) / 10)
        done = sum(1 for c in book if c.id in reached)
        gap = max(required - done, 0)
        wanted = max_targets or math.ceil(gap * 1.5)
        if gap == 0 and not max_targets:
            return []
        contacts = await self._last_contacts()
        floor = datetime.min.replace(tzinfo=self.core.tz)
        pool = sorted((c for c in book if c.id not in reached),
                      key=lambda c: (contacts.get(c.id, floor), c.id))
        return [(c, None) for c in pool[:wanted]]

    async def _year_end_book(self, year: int) -> list[client_pb2.Client]:
        """Active clients whose account was open at the end of the previous year."""
        year_end = date(year - 1, 12, 31)
        clients = await self.core.directory.list_clients(status=client_pb2.CLIENT_STATUS_ACTIVE)
        return [c for c in clients if date.fromisoformat(c.opened_on) <= year_end]

    async def create(
        self, session: AsyncSession, principal: Principal, msg: cpb.Campaign,
        prepared: tuple[date, date, list[str], list[tuple[client_pb2.Client, date | None]]],
    ) -> cpb.Campaign:
        start, end, agents, targets = prepared
        now = self.core.now()
        row = Campaign(
            id=new_id(), name=msg.name.strip(), purpose=msg.purpose, kind=msg.kind,
            rule=msg.rule.SerializeToString(), start_date=start, end_date=end,
            agent_ids=",".join(agents), daily_quota=msg.daily_quota,
            max_attempts=msg.max_attempts or DEFAULT_MAX_ATTEMPTS,
            retry_backoff_minutes=msg.retry_backoff_minutes or DEFAULT_BACKOFF_MINUTES,
            state=cpb.CAMPAIGN_STATE_ACTIVE, target_count=len(targets),
            created_by=principal.staff_id, created_at=now,
        )
        session.add(row)
        first_call = max(now, self.core.day_start(start))
        for client, due in targets:
            await remember_client(session, client, now)
            session.add(CallbackTarget(
                id=new_id(), campaign_id=row.id, client_id=client.id,
                state=cpb.TARGET_STATE_PENDING, next_attempt_at=first_call, due_date=due,
                updated_at=now))
        out = convert.campaign(row)
        emit(session, subject="branch.remote.campaign.created",
             message=events_pb2.CampaignCreated(
                 campaign_id=row.id, kind=row.kind, target_count=row.target_count,  # type: ignore[arg-type]
                 agent_ids=agents, create_time=out.create_time,
                 daily_quota=row.daily_quota, start_date=row.start_date.isoformat(),
                 end_date=row.end_date.isoformat()),
             about=row.id, now=now)
        return out

    async def get(self, principal: Principal, campaign_id: str) -> cpb.Campaign:
        async with self.core.db.read() as session:
            return convert.campaign(await self._visible(session, principal, campaign_id))

    async def _visible(self, session: AsyncSession, principal: Principal,
                       campaign_id: str) -> Campaign:
        if not campaign_id:
            raise InvalidArgument({"id": "required"})
        row = await session.get(Campaign, campaign_id)
        if row is None:
            raise NotFound("campaign {campaign_id} not found", campaign_id=campaign_id)
        if not principal.sees_branch and principal.staff_id not in row.agent_ids.split(","):
            raise PermissionDenied("you are not an agent of this campaign", reason="OUT_OF_SCOPE")
        return row

    async def list(self, principal: Principal, req: api.ListCampaignsRequest
                   ) -> api.ListCampaignsResponse:
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(Campaign).order_by(col(Campaign.id).desc())
        if after:
            query = query.where(col(Campaign.id) < str(after[0]))
        if req.state:
            query = query.where(col(Campaign.state) == req.state)
        if req.kind:
            query = query.where(col(Campaign.kind) == req.kind)
        if not principal.sees_branch:
            # whole ids only: agent "a1" must not see the campaigns of agent "a12"
            query = query.where((literal(",", String) + col(Campaign.agent_ids)
                                 + literal(",", String)).contains(f",{principal.staff_id},",
                                                                  autoescape=True))
        async with self.core.db.read() as session:
            rows = list((await session.exec(query.limit(size + 1))).all())
        more = len(rows) > size
        rows = rows[:size]
        return api.ListCampaignsResponse(
            campaigns=[convert.campaign(r) for r in rows],
            next_page_token=encode_token(rows[-1].id) if more else "")

    async def close(self, campaign_id: str) -> cpb.Campaign:
        if not campaign_id:
            raise InvalidArgument({"id": "required"})
        async with self.core.db.transaction() as session:
            row = await session.get(Campaign, campaign_id, with_for_update=True)
            if row is None:
                raise NotFound("campaign {campaign_id} not found", campaign_id=campaign_id)
            if row.state == cpb.CAMPAIGN_STATE_CLOSED:
                return convert.campaign(row)
            now = self.core.now()
            row.state = cpb.CAMPAIGN_STATE_CLOSED
            row.closed_at = now
            session.add(row)
            out = convert.campaign(row)
            emit(session, subject="branch.remote.campaign.closed",
                 message=events_pb2.CampaignClosed(campaign_id=row.id,
                                                   close_time=out.close_time),
                 about=row.id, now=now)
            return out

    async def list_targets(self, principal: Principal, req: api.ListTargetsRequest
                           ) -> api.ListTargetsResponse:
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        async with self.core.db.read() as session:
            await self._visible(session, principal, req.campaign_id)
            query = select(CallbackTarget).where(
                col(CallbackTarget.campaign_id) == req.campaign_id).order_by(col(CallbackTarget.id))
            if req.state:
                query = query.where(col(CallbackTarget.state) == req.state)
            if after:
                query = query.where(col(CallbackTarget.id) > str(after[0]))
            rows = list((await session.exec(query.limit(size + 1))).all())
        more = len(rows) > size
        rows = rows[:size]
        return api.ListTargetsResponse(
            targets=[convert.target(r) for r in rows],
            next_page_token=encode_token(rows[-1].id) if more else "")

    # ---- the work queue ------------------------------------------------------------------

    async def next_callback(self, principal: Principal, campaign_id: str
                            ) -> api.NextCallbackResponse:
        agent = principal.staff_id
        now = self.core.now()
        today = self.core.today()
        async with self.core.db.read() as session:
            query = select(Campaign).where(col(Campaign.state) == cpb.CAMPAIGN_STATE_ACTIVE,
                                           col(Campaign.start_date) <= today,
                                           col(Campaign.end_date) >= today)
            if campaign_id:
                found = await session.get(Campaign, campaign_id)
                if found is None:
                    raise NotFound("campaign {campaign_id} not found", campaign_id=campaign_id)
                if agent not in found.agent_ids.split(","):
                    raise PermissionDenied("you are not an agent of this campaign",
                                           reason="OUT_OF_SCOPE")
                query = query.where(col(Campaign.id) == campaign_id)
            campaigns = {c.id: c for c in (await session.exec(query)).all()
                         if agent in c.agent_ids.split(",")}
            if not campaigns:
                return api.NextCallbackResponse()
            held = (await session.exec(select(CallbackTarget).where(
                col(CallbackTarget.campaign_id).in_(list(campaigns)),
                col(CallbackTarget.state) == cpb.TARGET_STATE_CLAIMED,
                col(CallbackTarget.claimed_by) == agent,
                col(CallbackTarget.lease_until) > now))).first()
            if held is not None:
                return await self._answer(held, campaigns[held.campaign_id])
            candidates = list((await session.exec(
                select(CallbackTarget)
                .where(col(CallbackTarget.campaign_id).in_(list(campaigns)),
                       or_(and_(col(CallbackTarget.state) == cpb.TARGET_STATE_PENDING,
                                col(CallbackTarget.next_attempt_at) <= now),
                           and_(col(CallbackTarget.state) == cpb.TARGET_STATE_CLAIMED,
                                col(CallbackTarget.lease_until) <= now)))
                .order_by(col(CallbackTarget.due_date).is_(None), col(CallbackTarget.due_date),
                          col(CallbackTarget.next_attempt_at), col(CallbackTarget.id))
                .limit(MAX_CANDIDATES))).all())
        for candidate in candidates:
            claimed = await self._try_claim(candidate, campaigns[candidate.campaign_id], agent)
            if claimed is not None:
                return await self._answer(claimed, campaigns[claimed.campaign_id])
        return api.NextCallbackResponse()

    async def _try_claim(self, candidate: CallbackTarget, campaign: Campaign,
                         agent: str) -> CallbackTarget | None:
        now = self.core.now()
        lease = now + LEASE
        try:
            async with self.core.db.transaction() as session:
                if campaign.kind == cpb.CAMPAIGN_KIND_GENERAL:
                    mirror = await session.get(RemoteClient, candidate.client_id)
                    reason = leaves_general(mirror)
                    if reason:
                        await remove_targets(session, candidate.client_id, reason, now,
                                             general_only=True)
                        return None
                result = await session.exec(
                    update(CallbackTarget)
                    .where(col(CallbackTarget.id) == candidate.id,
                           or_(and_(col(CallbackTarget.state) == cpb.TARGET_STATE_PENDING,
                                    col(CallbackTarget.next_attempt_at) <= now),
                               and_(col(CallbackTarget.state) == cpb.TARGET_STATE_CLAIMED,
                                    col(CallbackTarget.lease_until) <= now)))
                    .values(state=cpb.TARGET_STATE_CLAIMED, claimed_by=agent,
                            lease_until=lease, updated_at=now))
                if result.rowcount != 1:
                    return None
                moved = await session.exec(
                    update(ClientClaim)
                    .where(col(ClientClaim.client_id) == candidate.client_id,
                           or_(col(ClientClaim.lease_until) <= now,
                               col(ClientClaim.target_id) == candidate.id))
                    .values(agent_id=agent, target_id=candidate.id, lease_until=lease))
                if moved.rowcount != 1:
                    if await session.get(ClientClaim, candidate.client_id) is not None:
                        raise _Busy()
                    session.add(ClientClaim(client_id=candidate.client_id, agent_id=agent,
                                            target_id=candidate.id, lease_until=lease))
                    await session.flush()
        except (_Busy, IntegrityError):
            return None
        candidate.state = cpb.TARGET_STATE_CLAIMED
        candidate.claimed_by = agent
        candidate.lease_until = lease
        return candidate

    async def _answer(self, target: CallbackTarget, campaign: Campaign
                      ) -> api.NextCallbackResponse:
        out = api.NextCallbackResponse(target=convert.target(target),
                                       campaign=convert.campaign(campaign))
        try:
            client = await self.core.directory.get_client(target.client_id)
        except Exception:  # the call can still be made from the client id
            client = None
        if client is not None:
            out.client_name, out.client_phone = client.display_name, client.phone
        return out

    async def record(self, session: AsyncSession, principal: Principal,
                     req: api.RecordCallbackRequest) -> cpb.Callback:
        v = Violations()
        v.check(bool(req.target_id), "target_id", "required")
        v.check(req.outcome in cpb.CallbackOutcome.values() and req.outcome != 0, "outcome",
                "REACHED, NO_ANSWER, WRONG_NUMBER, CALL_BACK_LATER or DECLINED")
        v.check(len(req.notes) <= 2000, "notes", "at most 2000 characters")
        now = self.core.now()
        known = len(v.items)
        when = convert.when(v, "callback_time", req.callback_time)
        callback_time_valid = len(v.items) == known
        made_at = convert.when(v, "call_time", req.call_time) or now
        if not now - timedelta(days=30) <= made_at <= now:
            v.add("call_time", "within the last 30 days, not in the future")
        if req.outcome == cpb.CALLBACK_OUTCOME_CALL_BACK_LATER and callback_time_valid:
            if when is None:
                v.add("callback_time", "required when the client asks to be called back")
            elif not now < when <= now + timedelta(days=90):
                v.add("callback_time", "must be in the next 90 days")
        v.raise_if_any()
        # locked: a lease that ran out may be re-claimed by another agent at this moment
        target = await session.get(CallbackTarget, req.target_id, with_for_update=True)
        if target is None:
            raise NotFound("callback target {target_id} not found", target_id=req.target_id)
        if target.state != cpb.TARGET_STATE_CLAIMED:
            raise FailedPrecondition("take the client with NextCallback first",
                                     reason="TARGET_NOT_CLAIMED")
        if target.claimed_by != principal.staff_id:
            raise PermissionDenied("another agent holds this client", reason="OUT_OF_SCOPE")
        campaign = await session.get(Campaign, target.campaign_id)
        assert campaign is not None
        record = CallbackRecord(
            id=new_id(), campaign_id=target.campaign_id, target_id=target.id,
            client_id=target.client_id, agent_id=principal.staff_id, outcome=req.outcome,
            notes=req.notes, callback_time=when, call_time=made_at, recorded_at=now)
        session.add(record)
        target.calls += 1
        target.last_outcome = req.outcome
        target.claimed_by = ""
        target.lease_until = None
        target.updated_at = now
        if req.outcome in FINAL:
            target.state = cpb.TARGET_STATE_DONE
        elif req.outcome == cpb.CALLBACK_OUTCOME_NO_ANSWER:
            target.attempts += 1
            if target.attempts >= campaign.max_attempts:
                target.state = cpb.TARGET_STATE_EXHAUSTED
            else:
                target.state = cpb.TARGET_STATE_PENDING
                delay = campaign.retry_backoff_minutes * 2 ** (target.attempts - 1)
                target.next_attempt_at = now + timedelta(minutes=delay)
        else:
            assert when is not None
            if target.calls >= campaign.max_attempts + EXTRA_RESCHEDULES:
                target.state = cpb.TARGET_STATE_EXHAUSTED
            else:
                target.state = cpb.TARGET_STATE_PENDING
                target.next_attempt_at = when
        session.add(target)
        await session.exec(
            update(ClientClaim)
            .where(col(ClientClaim.client_id) == target.client_id,
                   col(ClientClaim.target_id) == target.id)
            .values(lease_until=now))
        out = convert.callback(record)
        emit(session, subject="branch.remote.callback.recorded",
             message=events_pb2.CallbackRecorded(
                 callback_id=record.id, campaign_id=record.campaign_id,
                 client_id=record.client_id, agent_id=record.agent_id,
                 outcome=record.outcome, call_time=out.call_time),  # type: ignore[arg-type]
             about=record.id, now=now)
        return out

    async def list_callbacks(self, principal: Principal, req: api.ListCallbacksRequest
                             ) -> api.ListCallbacksResponse:
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        agent = req.agent_id
        if not (principal.sees_branch or principal.has("compliance")):
            if agent and agent != principal.staff_id:
                raise PermissionDenied("agents see their own callbacks", reason="OUT_OF_SCOPE")
            agent = principal.staff_id
        query = select(CallbackRecord).order_by(col(CallbackRecord.id).desc())
        if after:
            query = query.where(col(CallbackRecord.id) < str(after[0]))
        if agent:
            query = query.where(col(CallbackRecord.agent_id) == agent)
        if req.campaign_id:
            query = query.where(col(CallbackRecord.campaign_id) == req.campaign_id)
        if req.client_id:
            query = query.where(col(CallbackRecord.client_id) == req.client_id)
        async with self.core.db.read() as session:
            rows = list((await session.exec(query.limit(size + 1))).all())
        more = len(rows) > size
        rows = rows[:size]
        return api.ListCallbacksResponse(
            callbacks=[convert.callback(r) for r in rows],
            next_page_token=encode_token(rows[-1].id) if more else "")

    # ---- progress ------------------------------------------------------------------------

    async def progress(self, principal: Principal, campaign_id: str) -> cpb.CampaignProgress:
        today = self.core.today()
        day_start, day_end = self.core.day_range(today, today)
        async with self.core.db.read() as session:
            campaign = await self._visible(session, principal, campaign_id)
            counts = dict((await session.exec(
                select(col(CallbackTarget.state), func.count())
                .where(col(CallbackTarget.campaign_id) == campaign_id)
                .group_by(col(CallbackTarget.state)))).all())
            reached = (await session.exec(
                select(func.count()).select_from(CallbackTarget)
                .where(col(CallbackTarget.campaign_id) == campaign_id,
                       col(CallbackTarget.state) == cpb.TARGET_STATE_DONE,
                       col(CallbackTarget.last_outcome) == cpb.CALLBACK_OUTCOME_REACHED))).one()
            overdue = 0
            if campaign.kind == cpb.CAMPAIGN_KIND_NEW_ACCOUNTS:
                overdue = (await session.exec(
                    select(func.count()).select_from(CallbackTarget)
                    .where(col(CallbackTarget.campaign_id) == campaign_id,
                           col(CallbackTarget.due_date) < today,
                           col(CallbackTarget.state).in_(
                               [*OPEN_STATES, cpb.TARGET_STATE_EXHAUSTED])))).one()
            calls = (await session.exec(
                select(CallbackRecord.agent_id, CallbackRecord.outcome,
                       CallbackRecord.call_time)
                .where(col(CallbackRecord.campaign_id) == campaign_id))).all()
        agents = {a: cpb.AgentProgress(agent_id=a, daily_quota=campaign.daily_quota)
                  for a in campaign.agent_ids.split(",")}
        for agent_id, outcome, when in calls:
            p = agents.setdefault(agent_id, cpb.AgentProgress(agent_id=agent_id))
            reached_call = outcome == cpb.CALLBACK_OUTCOME_REACHED
            p.made_total += 1
            p.reached_total += reached_call
            if day_start <= convert.utc(when) < day_end:
                p.made_today += 1
                p.reached_today += reached_call
        async with self.core.db.read() as session:
            misses = (await session.exec(
                select(QuotaMiss.agent_id, func.count())
                .where(col(QuotaMiss.campaign_id) == campaign_id)
                .group_by(QuotaMiss.agent_id))).all()
        for agent_id, count in misses:
            if agent_id in agents:
                agents[agent_id].quota_missed_days = int(count)
        if not principal.sees_branch:
            agents = {k: p for k, p in agents.items() if k == principal.staff_id}
        return cpb.CampaignProgress(
            campaign_id=campaign_id, targets=sum(counts.values()),
            pending=counts.get(cpb.TARGET_STATE_PENDING, 0),
            claimed=counts.get(cpb.TARGET_STATE_CLAIMED, 0),
            done=counts.get(cpb.TARGET_STATE_DONE, 0),
            exhausted=counts.get(cpb.TARGET_STATE_EXHAUSTED, 0),
            removed=counts.get(cpb.TARGET_STATE_REMOVED, 0),
            reached=int(reached), overdue=int(overdue),
            agents=[agents[k] for k in sorted(agents)], day=today.isoformat())

    async def regulatory(self, year: int) -> cpb.RegulatoryProgress:
        today = self.core.today()
        year = year or today.year
        if not 2000 <= year <= today.year:
            raise InvalidArgument({"year": Msg("between 2000 and {year}", year=today.year)})
        clients = await self.core.directory.list_clients()
        reached_by: dict[str, list[date]] = {}
        async with self.core.db.read() as session:
            rows = (await session.exec(
                select(CallbackRecord.client_id, CallbackRecord.call_time)
                .where(col(CallbackRecord.outcome) == cpb.CALLBACK_OUTCOME_REACHED,
                       col(CallbackRecord.call_time) >= self.core.day_start(
                           date(year - 1, 12, 1))))).all()
        for cid, when in rows:
            reached_by.setdefault(cid, []).append(self.core.local_date(convert.utc(when)))
        out = cpb.RegulatoryProgress(year=year)
        year_end = date(year - 1, 12, 31)
        for c in clients:
            opened = date.fromisoformat(c.opened_on)
            calls = reached_by.get(c.id, [])
            if opened.year == year and opened <= today:
                out.new_accounts += 1
                due = self.core.new_account_callback_due(opened)
                if any(opened <= d <= due for d in calls):
                    out.new_accounts_called_in_time += 1
                elif today > due:
                    out.new_accounts_overdue += 1
                    out.overdue_client_ids.append(c.id)
                else:
                    out.new_accounts_open += 1
            if opened <= year_end and c.status == client_pb2.CLIENT_STATUS_ACTIVE:
                out.year_end_clients += 1
                if any(d.year == year for d in calls):
                    out.year_end_clients_called += 1
        out.year_end_required = math.ceil(out.year_end_clients / 10)
        out.year_end_gap = max(out.year_end_required - out.year_end_clients_called, 0)
        return out


QUOTA_LOOKBACK_DAYS = 7


async def check_quotas(core: Core) -> int:
    """One pass: raise callback.quota_missed for past working days of the branch's calendar
    (the last week: holidays skipped, make-up working days counted) on which an agent
    of an active campaign stayed under its quota. The unique (campaign, agent, day) row is
    the claim, so two replicas raise each miss once."""
    today = core.today()
    async with core.db.read() as session:
        campaigns = list((await session.exec(select(Campaign).where(
            col(Campaign.state) == cpb.CAMPAIGN_STATE_ACTIVE,
            col(Campaign.start_date) < today))).all())
    raised = 0
    for campaign in campaigns:
        first = max(campaign.start_date, today - timedelta(days=QUOTA_LOOKBACK_DAYS))
        last = min(campaign.end_date, today - timedelta(days=1))
        if last < first:
            continue
        start, end = core.day_range(first, last)
        async with core.db.read() as session:
            calls = (await session.exec(select(CallbackRecord.agent_id, CallbackRecord.call_time)
                                        .where(col(CallbackRecord.campaign_id) == campaign.id,
                                               col(CallbackRecord.call_time) >= start,
                                               col(CallbackRecord.call_time) < end))).all()
            known = {(m.agent_id, m.day) for m in (await session.exec(
                select(QuotaMiss).where(col(QuotaMiss.campaign_id) == campaign.id,
                                        col(QuotaMiss.day) >= first))).all()}
        made: dict[tuple[str, date], int] = {}
        for agent_id, when in calls:
            key = (agent_id, core.local_date(convert.utc(when)))
            made[key] = made.get(key, 0) + 1
        day = first
        while day <= last:
            if core.calendar.is_working_day(day):
                for agent in campaign.agent_ids.split(","):
                    count = made.get((agent, day), 0)
                    if count >= campaign.daily_quota or (agent, day) in known:
                        continue
                    if await _raise_miss(core, campaign, agent, day, count):
                        raised += 1
            day += timedelta(days=1)
    return raised


async def _raise_miss(core: Core, campaign: Campaign, agent: str, day: date, made: int) -> bool:
    from services.common import metrics

    now = core.now()
    try:
        async with core.db.transaction() as session:
            row = QuotaMiss(id=new_id(), campaign_id=campaign.id, agent_id=agent, day=day,
                            daily_quota=campaign.daily_quota, made=made, raised_at=now)
            session.add(row)
            await session.flush()
            emit(session, subject="branch.remote.callback.quota_missed",
                 message=events_pb2.CallbackQuotaMissed(
                     campaign_id=campaign.id, agent_id=agent, day=day.isoformat(),
                     daily_quota=campaign.daily_quota, made=made),
                 about=campaign.id, now=now)
    except IntegrityError:  # a replica raised it first
        return False
    metrics.sla_breached("remote", "callback_quota")
    return True


def leaves_general(mirror: RemoteClient | None) -> str:
    """Why a client may no longer be queued in a general campaign ('' if it may)."""
    if mirror is None:
        return ""
    if mirror.tier == client_pb2.TIER_KEY:
        return "became a key client"
    if mirror.channel and mirror.channel != client_pb2.CHANNEL_REMOTE:
        return "no longer a remote client"
    if mirror.status == client_pb2.CLIENT_STATUS_CLOSED:
        return "account closed"
    return ""


async def remove_targets(session: AsyncSession, client_id: str, reason: str, now: datetime,
                         *, general_only: bool) -> int:
    """Take a client out of campaign queues (records stay); returns targets removed."""
    query = select(CallbackTarget.id).where(
        col(CallbackTarget.client_id) == client_id, col(CallbackTarget.state).in_(OPEN_STATES))
    if general_only:
        general = select(Campaign.id).where(col(Campaign.kind) == cpb.CAMPAIGN_KIND_GENERAL)
        query = query.where(col(CallbackTarget.campaign_id).in_(general.scalar_subquery()))
    ids = list((await session.exec(query)).all())
    if not ids:
        return 0
    await session.exec(
        update(CallbackTarget)
        .where(col(CallbackTarget.id).in_(ids))
        .values(state=cpb.TARGET_STATE_REMOVED, removed_reason=reason, claimed_by="",
                lease_until=None, updated_at=now))
    await session.exec(
        update(ClientClaim)
        .where(col(ClientClaim.client_id) == client_id, col(ClientClaim.target_id).in_(ids))
        .values(lease_until=now))
    return len(ids)


async def add_new_account(session: AsyncSession, core: Core, client: client_pb2.Client) -> int:
    """A newly opened account joins every active new-account campaign covering its date."""
    opened = date.fromisoformat(client.opened_on)
    campaigns = (await session.exec(select(Campaign).where(
        col(Campaign.kind) == cpb.CAMPAIGN_KIND_NEW_ACCOUNTS,
        col(Campaign.state) == cpb.CAMPAIGN_STATE_ACTIVE,
        col(Campaign.end_date) >= opened))).all()
    now = core.now()
    added = 0
    for campaign in campaigns:
        if opened < campaign.start_date - timedelta(days=92):
            continue
        exists = (await session.exec(select(CallbackTarget.id).where(
            col(CallbackTarget.campaign_id) == campaign.id,
            col(CallbackTarget.client_id) == client.id))).first()
        if exists:
            continue
        session.add(CallbackTarget(
            id=new_id(), campaign_id=campaign.id, client_id=client.id,
            state=cpb.TARGET_STATE_PENDING, next_attempt_at=now,
            due_date=core.new_account_callback_due(opened), updated_at=now))
        campaign.target_count += 1
        session.add(campaign)
        added += 1
    return added
