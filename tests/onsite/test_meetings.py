"""Exchange meetings: weekly schedule, registrations with a waiting list, attendance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from branch.onsite.v1 import meeting_pb2 as mpb
from branch.onsite.v1 import onsite_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from services.common.protos import ts
from tests.harness import ADMIN, Metadata, auth
from tests.onsite.conftest import World
from tests.onsite.helpers import bad, events_about, fails, reason

FP = grpc.StatusCode.FAILED_PRECONDITION
PD = grpc.StatusCode.PERMISSION_DENIED


def series(**kw: Any) -> mpb.MeetingSeries:
    defaults: dict[str, Any] = dict(title="Friday market review", weekday=5, start_local_time="15:30",
                    duration_minutes=90, format=mpb.MEETING_FORMAT_IN_PERSON, room="Room 1",
                    capacity=30)
    defaults.update(kw)
    return mpb.MeetingSeries(**defaults)


async def schedule(world: World, capacity: int = 2, **kw: Any) -> mpb.Meeting:
    start = kw.pop("start", world.s.clock.now() + timedelta(days=2))
    md = kw.pop("metadata", None) or world.as_sup
    request_id = kw.pop("request_id", "")
    return await world.s.onsite.ScheduleMeeting(api.ScheduleMeetingRequest(
        meeting=mpb.Meeting(topic="Bank stocks after the rate cut", format=kw.pop(
            "format", mpb.MEETING_FORMAT_IN_PERSON), room="Room 2", start_time=ts(start),
            duration_minutes=60, capacity=capacity, presenter_kind=mpb.PRESENTER_KIND_ANALYST,
            presenter_id=world.analyst, note_ids=["note-9"], **kw),
        request_id=request_id), metadata=md)


async def register(world: World, meeting_id: str, client_id: str, md: Metadata | None = None
                   ) -> mpb.Registration:
    return await world.s.onsite.RegisterForMeeting(api.RegisterForMeetingRequest(
        meeting_id=meeting_id, client_id=client_id), metadata=md or world.as_sup)


async def test_weekly_series(world: World, nats_url: str) -> None:
    o = world.s.onsite
    made = await o.CreateMeetingSeries(api.CreateMeetingSeriesRequest(
        series=series(), weeks=3, topic="Open floor", request_id="s-1"), metadata=world.as_sup)
    assert made.series.weekday == 5 and len(made.meetings) == 3
    tz = world.s.runner.ctx.extras["onsite"].tz
    starts = [m.start_time.ToDatetime().replace(tzinfo=world.s.clock.now().tzinfo).astimezone(tz)
              for m in made.meetings]
    assert all(s.isoweekday() == 5 and s.strftime("%H:%M") == "15:30" for s in starts)
    assert all(b - a == timedelta(weeks=1) for a, b in zip(starts, starts[1:], strict=False))
    assert starts[0] > world.s.clock.now()
    assert {m.topic for m in made.meetings} == {"Open floor"}
    again = await o.CreateMeetingSeries(api.CreateMeetingSeriesRequest(
        series=series(), weeks=3, request_id="s-1"), metadata=world.as_sup)
    assert again.series.id == made.series.id
    listed = await o.ListMeetings(api.ListMeetingsRequest(series_id=made.series.id,
                                                          page_size=2), metadata=world.as_cons1)
    assert len(listed.meetings) == 2 and listed.next_page_token
    await bad(o.CreateMeetingSeries(api.CreateMeetingSeriesRequest(
        series=series(title="", weekday=8, start_local_time="25:00", room="", capacity=0,
                      duration_minutes=5), weeks=99, presenter_id="x"), metadata=world.as_sup),
        "series.title", "series.weekday", "series.start_local_time", "series.room",
        "series.capacity", "series.duration_minutes", "weeks", "presenter_kind")
    await fails(o.CreateMeetingSeries(api.CreateMeetingSeriesRequest(series=series()),
                                      metadata=world.as_cons1), PD)
    events = await events_about(nats_url, "branch.onsite.meeting.scheduled",
                                {m.id for m in made.meetings})
    assert len(events) == 3


async def test_schedule_and_update(world: World) -> None:
    o = world.s.onsite
    await bad(o.ScheduleMeeting(api.ScheduleMeetingRequest(meeting=mpb.Meeting(
        format=mpb.MEETING_FORMAT_IN_PERSON, start_time=ts(world.s.clock.now())),
        ), metadata=world.as_sup),
        "meeting.topic", "meeting.room", "meeting.start_time", "meeting.capacity",
        "meeting.duration_minutes")
    online = await schedule(world, format=mpb.MEETING_FORMAT_ONLINE)
    assert online.format == mpb.MEETING_FORMAT_ONLINE and list(online.note_ids) == ["note-9"]
    m = await schedule(world, request_id="m-1")
    assert (await schedule(world, request_id="m-1")).id == m.id
    updated = await o.UpdateMeeting(api.UpdateMeetingRequest(
        meeting=mpb.Meeting(id=m.id, topic="Banks and insurers", note_ids=["n1", "n2"]),
        update_mask=FieldMask(paths=["topic", "note_ids"])), metadata=world.as_sup)
    assert updated.topic == "Banks and insurers" and list(updated.note_ids) == ["n1", "n2"]
    got = await o.GetMeeting(api.GetMeetingRequest(id=m.id), metadata=auth("b", "broker"))
    assert got.topic == "Banks and insurers" and got.state == mpb.MEETING_STATE_SCHEDULED
    cancelled = await o.UpdateMeeting(api.UpdateMeetingRequest(
        meeting=mpb.Meeting(id=online.id, state=mpb.MEETING_STATE_CANCELLED),
        update_mask=FieldMask(paths=["state"])), metadata=world.as_sup)
    assert cancelled.state == mpb.MEETING_STATE_CANCELLED
    await fails(register(world, online.id, world.client_a), FP)
    await bad(o.UpdateMeeting(api.UpdateMeetingRequest(
        meeting=mpb.Meeting(id=m.id), update_mask=FieldMask(paths=["room"])), metadata=world.as_sup),
        "update_mask")
    await fails(o.UpdateMeeting(api.UpdateMeetingRequest(
        meeting=mpb.Meeting(id="nope", topic="x"), update_mask=FieldMask(paths=["topic"])),
        metadata=world.as_sup), grpc.StatusCode.NOT_FOUND)
    await fails(o.GetMeeting(api.GetMeetingRequest(id=m.id)), grpc.StatusCode.UNAUTHENTICATED)


async def test_waiting_list_moves_up(world: World) -> None:
    o = world.s.onsite
    m = await schedule(world, capacity=2)
    first = await register(world, m.id, world.client_a, world.as_cm1)
    second = await register(world, m.id, world.client_old, world.as_cm1)
    third = await register(world, m.id, world.client_b)
    fourth = await register(world, m.id, world.client_r)
    assert [r.status for r in (first, second, third, fourth)] == [
        mpb.REGISTRATION_STATUS_CONFIRMED, mpb.REGISTRATION_STATUS_CONFIRMED,
        mpb.REGISTRATION_STATUS_WAITLISTED, mpb.REGISTRATION_STATUS_WAITLISTED]
    assert (third.waitlist_position, fourth.waitlist_position) == (1, 2)
    await fails(register(world, m.id, world.client_a), grpc.StatusCode.ALREADY_EXISTS)
    # scope: a manager registers only their own clients; unknown client refused
    await fails(register(world, m.id, world.client_b, world.as_cm1), PD)
    err = await fails(register(world, m.id, "ghost"), grpc.StatusCode.NOT_FOUND)
    assert reason(err) == "CLIENT_UNKNOWN"
    await bad(o.RegisterForMeeting(api.RegisterForMeetingRequest(), metadata=world.as_sup),
              "meeting_id", "client_id")
    await fails(o.CancelRegistration(api.CancelRegistrationRequest(id=first.id),
                                     metadata=world.as_cm2), PD)
    cancelled = await o.CancelRegistration(api.CancelRegistrationRequest(
        id=first.id, reason="travelling"), metadata=world.as_cm1)
    assert cancelled.status == mpb.REGISTRATION_STATUS_CANCELLED
    regs = {r.client_id: r for r in (await o.ListRegistrations(api.ListRegistrationsRequest(
        meeting_id=m.id), metadata=world.as_cons1)).registrations}
    assert regs[world.client_b].status == mpb.REGISTRATION_STATUS_CONFIRMED
    assert regs[world.client_b].HasField("promote_time")
    assert regs[world.client_r].waitlist_position == 1
    await fails(o.CancelRegistration(api.CancelRegistrationRequest(id=first.id),
                                     metadata=world.as_cm1), FP)
    # cancelling a waitlisted one moves nobody; more capacity promotes the next
    bigger = await o.UpdateMeeting(api.UpdateMeetingRequest(
        meeting=mpb.Meeting(id=m.id, capacity=3), update_mask=FieldMask(paths=["capacity"])),
        metadata=world.as_sup)
    assert (bigger.confirmed_count, bigger.waitlisted_count) == (3, 0)
    await fails(o.UpdateMeeting(api.UpdateMeetingRequest(
        meeting=mpb.Meeting(id=m.id, capacity=1), update_mask=FieldMask(paths=["capacity"])),
        metadata=world.as_sup), FP)
    # re-registering after a cancellation is allowed
    back = await register(world, m.id, world.client_a, world.as_cm1)
    assert back.status == mpb.REGISTRATION_STATUS_WAITLISTED


async def test_attendance(world: World, nats_url: str) -> None:
    o = world.s.onsite
    m = await schedule(world, capacity=5, start=world.s.clock.now() + timedelta(hours=2))
    await register(world, m.id, world.client_a)
    await register(world, m.id, world.client_old)
    err = await fails(o.RecordAttendance(api.RecordAttendanceRequest(
        meeting_id=m.id, client_ids=[world.client_a]), metadata=world.as_sup), FP)
    assert reason(err) == "MEETING_NOT_STARTED"
    world.s.clock.advance(hours=2, minutes=5)
    await bad(o.RecordAttendance(api.RecordAttendanceRequest(
        meeting_id=m.id, client_ids=[world.client_a, world.client_b]), metadata=world.as_sup),
        "client_ids[1]")
    await fails(o.RecordAttendance(api.RecordAttendanceRequest(
        meeting_id=m.id, client_ids=[world.client_a]), metadata=world.as_cons1), PD)
    held = await o.RecordAttendance(api.RecordAttendanceRequest(
        meeting_id=m.id, client_ids=[world.client_a]), metadata=world.as_sup)
    assert held.state == mpb.MEETING_STATE_HELD and held.attended_count == 1
    assert held.confirmed_count == 2
    regs = {r.client_id: r.attended for r in (await o.ListRegistrations(
        api.ListRegistrationsRequest(meeting_id=m.id), metadata=world.as_sup)).registrations}
    assert regs == {world.client_a: True, world.client_old: False}
    await fails(o.RecordAttendance(api.RecordAttendanceRequest(meeting_id=m.id),
                                   metadata=world.as_sup), FP)
    await fails(register(world, m.id, world.client_b), FP)
    events = await events_about(nats_url, "branch.onsite.meeting.held", {m.id})
    assert len(events) == 1


async def test_backfill_is_admin_only(world: World) -> None:
    past = world.s.clock.now() - timedelta(days=7)
    await bad(schedule(world, start=past), "meeting.start_time")
    old = await schedule(world, start=past, metadata=ADMIN)
    reg = await register(world, old.id, world.client_a, ADMIN)
    assert reg.status == mpb.REGISTRATION_STATUS_CONFIRMED
    err = await fails(register(world, old.id, world.client_old, world.as_sup), FP)
    assert reason(err) == "MEETING_STARTED"
    await fails(world.s.onsite.ScheduleMeeting(api.ScheduleMeetingRequest(),
                                               metadata=auth("c", "consultant")), PD)
