"""Three weeks of on-site history, loaded through the public API: plans, visits and patrols
for the client managers, consultation forms in every state (some overdue, one suitability
override), weekly exchange meetings with registrations, a waiting list and attendance.

Past consultation steps and past meetings go in as an admin's paper-record backfill (the API
allows only admins to date a step in the past); visits and patrols are recorded by the
managers themselves with their real times, as they do at the end of a day."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import grpc
from branch.directory.v1 import client_pb2
from branch.onsite.v1 import day_pb2, meeting_pb2
from branch.onsite.v1 import onsite_service_pb2 as api
from branch.onsite.v1.onsite_service_pb2_grpc import OnsiteServiceStub

from services.common.protos import ts

if TYPE_CHECKING:
    from services.cli.demo import Demo

ROOMS = ["Room 1", "Room 2", "Room 3", "Room 5", "Room 6", "Hall"]
TOPICS = ["market outlook", "dividends", "margin trading", "new listings", "sector rotation",
          "position sizing", "bank stocks", "EV supply chain", "trading app", "fees"]
REQUESTS = ["wants a holdings review", "asks about the rate cut", "asks for the research note",
            "", "", "complains the hall is noisy", "wants to join the Friday meeting"]
HISTORY_DAYS = 21
MANAGERS = 3
OVERRIDE = "client insists after risk disclosure; signed acknowledgement on file"


def _at(day: date, hh: int, mm: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=tz)


async def load(demo: Demo) -> None:
    stub = OnsiteServiceStub(demo.channel("onsite"))
    rng = demo.rng
    tz = ZoneInfo(demo.settings.timezone)
    admin = demo.as_admin()
    sup = demo.as_role("supervisor")
    managers = demo.staff["client_manager"][:MANAGERS]
    consultants = demo.staff["consultant"]
    analysts = demo.staff.get("analyst", [])
    # published research notes, when the research demo ran first
    note_ids = [str(n) for n in demo.shared.get("research_notes", [])][:6]
    mine = {m: [c for c in demo.clients if c.client_manager_id == m
                and c.channel == client_pb2.CHANNEL_ONSITE] for m in managers}
    now = demo.local_now()
    today = now.date()

    await stub.SetQuota(api.SetQuotaRequest(quota=day_pb2.Quota(
        role="client_manager", visits_per_day=10, rooms_per_day=3)), metadata=sup)
    await stub.SetQuota(api.SetQuotaRequest(quota=day_pb2.Quota(
        role="client_manager", staff_id=managers[-1], visits_per_day=8, rooms_per_day=2)),
        metadata=sup)

    days = [today - timedelta(days=d) for d in range(HISTORY_DAYS, 0, -1)]
    days = [d for d in days if d.weekday() < 5] + [today]
    counts = {"plans": 0, "visits": 0, "patrols": 0, "forms": 0}
    targets: list[tuple[date, str, str]] = []

    gate = asyncio.Semaphore(8)

    async def manager_day(m: str, day: date, rng: random.Random) -> None:
        md = demo.as_staff(m, "client_manager")
        pool = mine[m]
        if not pool:
            return
        chosen = rng.sample(pool, min(len(pool), rng.randint(8, 11)))
        rooms = rng.sample(ROOMS, 3)
        consult = rng.sample(chosen, min(len(chosen), rng.choice((1, 1, 2))))
        async with gate:
            await stub.SetDailyPlan(api.SetDailyPlanRequest(
                plan_date=day.isoformat(),
                visits=[day_pb2.PlannedClient(client_id=c.id, reason=rng.choice(REQUESTS))
                        for c in chosen],
                rooms=rooms,
                consultation_targets=[day_pb2.PlannedClient(client_id=c.id,
                                                            reason="holdings review")
                                      for c in consult]), metadata=md)
        counts["plans"] += 1
        for c in consult:
            targets.append((day, m, c.id))
        is_today = day == today
        visited = chosen[: (3 if is_today else rng.randint(min(6, len(chosen)), len(chosen)))]
        calls: list[Awaitable[Any]] = []
        for k, c in enumerate(visited):
            when = _at(day, 9, 40, tz) + timedelta(minutes=25 * k + rng.randint(0, 15))
            if when > now:
                break
            follow = rng.random() < 0.25
            calls.append(stub.RecordVisit(api.RecordVisitRequest(visit=day_pb2.Visit(
                client_id=c.id, visit_time=ts(when), room=rng.choice(rooms),
                topics=rng.sample(TOPICS, rng.randint(1, 3)),
                client_requests=rng.choice(REQUESTS), follow_up_needed=follow,
                follow_up_note="send the note after the close" if follow else ""),
                request_id=f"demo-visit-{m[-8:]}-{day}-{k}"), metadata=md))
        counts["visits"] += len(calls)
        patrolled = rooms[: (1 if is_today else rng.choice((2, 3, 3, 3)))]
        for k, room in enumerate(patrolled):
            when = _at(day, 10, 30, tz) + timedelta(hours=2 * k)
            if when > now:
                break
            calls.append(stub.RecordPatrol(api.RecordPatrolRequest(patrol=day_pb2.Patrol(
                room=room, patrol_time=ts(when),
                observations=rng.choice(["quiet", "screens ok", "two clients asked for coffee",
                                         "projector faulty, reported"])),
                request_id=f"demo-patrol-{m[-8:]}-{day}-{k}"), metadata=md))
            counts["patrols"] += 1
        for call in calls:
            async with gate:
                await call

    # one generator per manager-day, drawn in a fixed order: the data does not depend on
    # which RPC finishes first
    work = [(m, day, random.Random(demo.rng.random())) for day in days for m in managers]
    await asyncio.gather(*(manager_day(m, day, r) for m, day, r in work))
    targets.sort()

    # consultation forms: history backfilled, today's raised live
    states = {"delivered": 0, "late": 0, "cancelled": 0, "open_overdue": 0, "open": 0,
              "override": 0}
    async def one_form(i: int, day: date, m: str, client_id: str, rng: random.Random) -> None:
        consultant = consultants[i % len(consultants)]
        client = next(c for c in demo.clients if c.id == client_id)
        raised_at = _at(day, 11, 0, tz)
        is_today = day == today
        form = await stub.RaiseConsultationForm(api.RaiseConsultationFormRequest(
            client_id=client_id, consultant_id=consultant,
            request_note="asks whether to keep the position", request_id=f"demo-form-{i}",
            **({} if is_today else {"backfill_time": ts(raised_at)})),
            metadata=demo.as_staff(m, "client_manager") if is_today else admin)
        counts["forms"] += 1
        roll = rng.random()
        if is_today:
            if i % 2 == 0:
                states["open"] += 1
                return
            fate = "analysed_live"
        elif day >= today - timedelta(days=2) and roll < 0.5:
            fate = "open_overdue"
        elif roll < 0.12:
            fate = "cancelled"
        elif roll < 0.25:
            fate = "late"
        else:
            fate = "delivered"
        if fate == "cancelled":
            await stub.CancelConsultationForm(api.CancelConsultationFormRequest(
                id=form.id, reason="client sold the position before the analysis",
                backfill_time=ts(demo.past(raised_at + timedelta(hours=2)))), metadata=admin)
            states["cancelled"] += 1
            return
        if fate == "open_overdue":
            states["open_overdue"] += 1
            return
        level = max(1, min(5, client.risk_tolerance + (1 if rng.random() < 0.1 else 0)))
        req = api.AnalyseConsultationFormRequest(
            id=form.id, analysis="Concentrated in two names; cost well below market; "
                                 "volatility above the client's comfort.",
            advice="Take partial profit, keep the core position, no margin.",
            advice_risk_level=client_pb2.RiskLevel.ValueType(level),
            note_ids=rng.sample(note_ids, min(len(note_ids), 2)))
        md = admin
        if fate == "analysed_live":
            md = demo.as_staff(consultant, "consultant")
        else:
            req.backfill_time.CopyFrom(ts(demo.past(
                raised_at + timedelta(hours=rng.randint(2, 6)))))
        try:
            await stub.AnalyseConsultationForm(req, metadata=md)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            req.suitability_override_reason = OVERRIDE
            await stub.AnalyseConsultationForm(req, metadata=md)
            states["override"] += 1
        if fate == "analysed_live":
            states["open"] += 1
            return
        hours = rng.randint(27, 40) if fate == "late" else rng.randint(8, 22)
        await stub.DeliverConsultationForm(api.DeliverConsultationFormRequest(
            id=form.id, acknowledgement=rng.choice(
                ["client signed the printed form", "read back by phone", "explained in Room 2"]),
            backfill_time=ts(demo.past(raised_at + timedelta(hours=hours)))), metadata=admin)
        states["late" if fate == "late" else "delivered"] += 1


    async def gated(*args) -> None:  # type: ignore[no-untyped-def]
        async with gate:
            await one_form(*args)

    draws = [(i, d, m, c, random.Random(demo.rng.random())) for i, (d, m, c) in enumerate(targets)]
    await asyncio.gather(*(gated(*x) for x in draws))

    # exchange meetings: three held in the past weeks, a weekly schedule ahead
    onsite_clients = [c for m in managers for c in mine[m]]
    remote_clients = [c for c in demo.clients if c.channel == client_pb2.CHANNEL_REMOTE]
    last_friday = today - timedelta(days=(today.weekday() - 4) % 7 or 7)
    held = 0
    for w in range(3, 0, -1):
        start = _at(last_friday - timedelta(weeks=w - 1), 15, 0, tz)
        meeting = await stub.ScheduleMeeting(api.ScheduleMeetingRequest(meeting=meeting_pb2.Meeting(
            topic=rng.choice(["Bank stocks after the rate cut", "EV supply chain",
                              "How I size positions (client sharing)"]),
            presenter_kind=meeting_pb2.PRESENTER_KIND_ANALYST,
            presenter_id=analysts[w % len(analysts)] if analysts else "",
            format=meeting_pb2.MEETING_FORMAT_IN_PERSON, room="Room 1", start_time=ts(start),
            duration_minutes=90, capacity=20, note_ids=note_ids[:2]),
            request_id=f"demo-meeting-past-{w}"), metadata=admin)
        attendees = rng.sample(onsite_clients, min(len(onsite_clients), 22))
        for k, c in enumerate(attendees):
            await stub.RegisterForMeeting(api.RegisterForMeetingRequest(
                meeting_id=meeting.id, client_id=c.id, request_id=f"demo-reg-{w}-{k}"),
                metadata=admin)
        present = [c.id for c in attendees[:20] if rng.random() < 0.8]
        await stub.RecordAttendance(api.RecordAttendanceRequest(
            meeting_id=meeting.id, client_ids=present), metadata=admin)
        held += 1
    weekly = await stub.CreateMeetingSeries(api.CreateMeetingSeriesRequest(
        series=meeting_pb2.MeetingSeries(
            title="Friday client exchange meeting", weekday=5, start_local_time="15:00",
            duration_minutes=90, format=meeting_pb2.MEETING_FORMAT_IN_PERSON, room="Room 1",
            capacity=20),
        weeks=4, topic="Market review and client sharing",
        presenter_kind=(meeting_pb2.PRESENTER_KIND_ANALYST if analysts
                        else meeting_pb2.PRESENTER_KIND_UNSPECIFIED),
        presenter_id=analysts[0] if analysts else "", request_id="demo-series-friday"),
        metadata=sup)
    online = await stub.CreateMeetingSeries(api.CreateMeetingSeriesRequest(
        series=meeting_pb2.MeetingSeries(
            title="Online exchange meeting (remote clients)", weekday=3,
            start_local_time="19:30", duration_minutes=60,
            format=meeting_pb2.MEETING_FORMAT_ONLINE, capacity=100),
        weeks=4, topic="Questions from remote clients", request_id="demo-series-online"),
        metadata=sup)
    nxt = weekly.meetings[0]
    for k, c in enumerate(rng.sample(onsite_clients, min(len(onsite_clients), 23))):
        await stub.RegisterForMeeting(api.RegisterForMeetingRequest(
            meeting_id=nxt.id, client_id=c.id, request_id=f"demo-reg-next-{k}"), metadata=sup)
    for k, c in enumerate(rng.sample(remote_clients, min(len(remote_clients), 30))):
        await stub.RegisterForMeeting(api.RegisterForMeetingRequest(
            meeting_id=online.meetings[0].id, client_id=c.id, request_id=f"demo-reg-online-{k}"),
            metadata=sup)
    demo.shared["onsite_meeting_ids"] = [m.id for m in weekly.meetings]
    print(f"demo: onsite {counts['plans']} plans, {counts['visits']} visits, "
          f"{counts['patrols']} patrols, {counts['forms']} forms {states}, "
          f"{held} meetings held, {len(weekly.meetings) + len(online.meetings)} scheduled",
          flush=True)
