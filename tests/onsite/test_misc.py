"""The remaining refusals, and the timer loop itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
from branch.onsite.v1 import meeting_pb2 as mpb
from branch.onsite.v1 import onsite_service_pb2 as api

from services.common.protos import ts
from services.onsite import events
from tests.harness import auth, eventually
from tests.onsite.conftest import World
from tests.onsite.helpers import bad, fails
from tests.onsite.test_forms import raise_form

NF = grpc.StatusCode.NOT_FOUND


async def test_meeting_and_form_refusals(world: World) -> None:
    o, now = world.s.onsite, world.s.clock.now()
    await bad(o.ListMeetings(api.ListMeetingsRequest(start_time=ts(now), end_time=ts(now)),
                             metadata=world.as_sup), "end_time")
    await bad(o.ListMeetings(api.ListMeetingsRequest(page_size=-1), metadata=world.as_sup),
              "page_size")
    await bad(o.ListMeetings(api.ListMeetingsRequest(page_token="bm90IGEgdG9rZW4="),
                             metadata=world.as_sup), "page_token")
    await fails(o.GetMeeting(api.GetMeetingRequest(id="nope"), metadata=world.as_sup), NF)
    await bad(o.GetMeeting(api.GetMeetingRequest(), metadata=world.as_sup), "id")
    await fails(o.ListRegistrations(api.ListRegistrationsRequest(meeting_id="nope"),
                                    metadata=world.as_sup), NF)
    await fails(o.CancelRegistration(api.CancelRegistrationRequest(id="nope"),
                                     metadata=world.as_sup), NF)
    await bad(o.CancelRegistration(api.CancelRegistrationRequest(reason="x" * 501),
                                   metadata=world.as_sup), "id", "reason")
    await fails(o.RecordAttendance(api.RecordAttendanceRequest(meeting_id="nope"),
                                   metadata=world.as_sup), NF)
    await bad(o.RecordAttendance(api.RecordAttendanceRequest(client_ids=["a", "a"]),
                                 metadata=world.as_sup), "meeting_id", "client_ids")
    await bad(o.ScheduleMeeting(api.ScheduleMeetingRequest(meeting=mpb.Meeting(
        topic="t", format=mpb.MEETING_FORMAT_ONLINE, start_time=ts(now + timedelta(days=1)),
        duration_minutes=60, capacity=10, series_id="nope")), metadata=world.as_sup),
        "meeting.series_id")
    await bad(o.GetConsultationForm(api.GetConsultationFormRequest(), metadata=world.as_sup),
              "id")
    await fails(o.GetConsultationForm(api.GetConsultationFormRequest(id="nope"),
                                      metadata=world.as_sup), NF)
    await bad(o.SummarizeOverdueForms(api.SummarizeOverdueFormsRequest(
        start_date="2026-02-02", end_date="2026-02-01"), metadata=world.as_sup), "end_date")
    await fails(o.SummarizeOverdueForms(api.SummarizeOverdueFormsRequest(),
                                        metadata=world.as_cons1), grpc.StatusCode.PERMISSION_DENIED)
    await fails(o.ListConsultationForms(api.ListConsultationFormsRequest(),
                                        metadata=auth("a", "analyst")),
                grpc.StatusCode.PERMISSION_DENIED)
    await fails(o.ListConsultationForms(api.ListConsultationFormsRequest()),
                grpc.StatusCode.UNAUTHENTICATED)
    bad_token = [("authorization", "Bearer not-a-token")]
    await fails(o.GetDailyPlan(api.GetDailyPlanRequest(), metadata=bad_token),
                grpc.StatusCode.UNAUTHENTICATED)
    await bad(o.GetDailyPlan(api.GetDailyPlanRequest(plan_date="today"), metadata=world.as_cm1),
              "plan_date")
    empty = await o.GetDailyPlan(api.GetDailyPlanRequest(plan_date="2020-01-01"),
                                 metadata=world.as_cm1)
    assert not empty.id and empty.client_manager_id == world.cm1


async def test_timer_loop_runs_the_check_and_stops(world: World) -> None:
    form = await raise_form(world)
    world.s.clock.advance(hours=25)
    onsite = world.s.runner.ctx.extras["onsite"]
    stop = asyncio.Event()
    task = asyncio.create_task(events.overdue_timer(onsite, stop, interval=0.05)())

    async def raised() -> bool:
        got = await world.s.onsite.GetConsultationForm(
            api.GetConsultationFormRequest(id=form.id), metadata=world.as_cm1)
        return got.HasField("overdue_time")

    await eventually(raised)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
