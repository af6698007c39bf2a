"""Review findings: retries return the first result, bad tokens, scope holes, races."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import grpc
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import events_pb2 as devents
from branch.onsite.v1 import consultation_pb2 as cpb
from branch.onsite.v1 import day_pb2
from branch.onsite.v1 import meeting_pb2 as mpb
from branch.onsite.v1 import onsite_service_pb2 as api
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.events import Event
from services.common.pagination import encode_token
from services.common.protos import ts
from services.onsite.events import apply_client
from services.onsite.meetings import release_registrations
from tests.harness import ADMIN
from tests.onsite.conftest import World, make_client
from tests.onsite.helpers import bad, fails, reason
from tests.onsite.test_day import visit
from tests.onsite.test_forms import raise_form
from tests.onsite.test_meetings import schedule

PD = grpc.StatusCode.PERMISSION_DENIED


async def test_retry_after_the_client_changed_returns_the_first_result(world: World) -> None:
    """AIP-155: the stored result is looked up before the directory is asked again."""
    o, d = world.s.onsite, world.s.directory
    client = await make_client(d, client_manager_id=world.cm1)
    m = await schedule(world, capacity=5)
    first_visit = await o.RecordVisit(visit(client, request_id="rv-1"), metadata=world.as_cm1)
    first_form = await raise_form(world, client, request_id="rf-1")
    first_reg = await o.RegisterForMeeting(api.RegisterForMeetingRequest(
        meeting_id=m.id, client_id=client, request_id="rr-1"), metadata=world.as_cm1)
    # the client goes to another manager, then leaves the branch
    await d.AssignClientStaff(dapi.AssignClientStaffRequest(
        id=client, client_manager_id=world.cm2), metadata=ADMIN)
    await fails(o.RecordVisit(visit(client, request_id="rv-2"), metadata=world.as_cm1), PD)
    again = await o.RecordVisit(visit(client, request_id="rv-1"), metadata=world.as_cm1)
    assert again == first_visit
    assert (await raise_form(world, client, request_id="rf-1")) == first_form
    await d.UpdateClient(dapi.UpdateClientRequest(
        client=client_pb2.Client(id=client, status=client_pb2.CLIENT_STATUS_CLOSED),
        update_mask=FieldMask(paths=["status"])), metadata=ADMIN)
    await fails(o.RegisterForMeeting(api.RegisterForMeetingRequest(
        meeting_id=m.id, client_id=client, request_id="rr-2"), metadata=world.as_cm1),
        grpc.StatusCode.FAILED_PRECONDITION)
    reg = await o.RegisterForMeeting(api.RegisterForMeetingRequest(
        meeting_id=m.id, client_id=client, request_id="rr-1"), metadata=world.as_cm1)
    assert reg == first_reg
    # the same request_id from another caller is that caller's own, not a way to read ours
    await fails(o.RecordVisit(visit(client, request_id="rv-1"), metadata=world.as_cm2),
                grpc.StatusCode.FAILED_PRECONDITION)
    assert isinstance(first_form, cpb.ConsultationForm)
    assert isinstance(reg, mpb.Registration)


async def test_forged_page_tokens_are_invalid_argument(world: World) -> None:
    """A token that decodes but does not hold a key this service wrote is the caller's error,
    not INTERNAL."""
    o, md = world.s.onsite, world.as_sup
    m = await schedule(world)
    for key in (("yesterday", "x"), ("2026-01-01T00:00:00", "x"), (7, "x")):
        token = encode_token(*key)
        await bad(o.ListVisits(api.ListVisitsRequest(page_token=token), metadata=md),
                  "page_token")
        await bad(o.ListPatrols(api.ListPatrolsRequest(page_token=token), metadata=md),
                  "page_token")
        await bad(o.ListConsultationForms(api.ListConsultationFormsRequest(page_token=token),
                                          metadata=md), "page_token")
        await bad(o.ListMeetings(api.ListMeetingsRequest(page_token=token), metadata=md),
                  "page_token")
    for single in ("x", "1.5", None, True):
        token = encode_token(single)
        await bad(o.ListQuotas(api.ListQuotasRequest(page_token=token), metadata=md),
                  "page_token")
        await bad(o.ListRegistrations(api.ListRegistrationsRequest(
            meeting_id=m.id, page_token=token), metadata=md), "page_token")


async def test_waiting_list_under_concurrent_cancellations(db_world: World) -> None:
    """A client leaving the branch (the directory event's handler) while staff cancel other
    places: every freed place goes to the next on the waiting list, nobody twice."""
    w = db_world
    o = w.s.onsite
    runner = w.s.runner
    onsite = runner.ctx.extras["onsite"]
    extra = [await make_client(w.s.directory, client_manager_id=w.cm1) for _ in range(3)]
    m = await schedule(w, capacity=3)
    order = [w.client_a, w.client_old, w.client_b, w.client_r, *extra]
    regs = {c: await o.RegisterForMeeting(api.RegisterForMeetingRequest(
        meeting_id=m.id, client_id=c), metadata=w.as_sup) for c in order}
    assert [regs[c].status for c in order] == [mpb.REGISTRATION_STATUS_CONFIRMED] * 3 + [
        mpb.REGISTRATION_STATUS_WAITLISTED] * 4
    async with runner.db.transaction() as s:
        # client_b leaves while two cancellations arrive; they wait for the meeting's lock
        assert await release_registrations(s, onsite, w.client_b) == 1
        cancels = [asyncio.ensure_future(o.CancelRegistration(api.CancelRegistrationRequest(
            id=regs[c].id, reason="ill"), metadata=w.as_sup))
            for c in (w.client_a, w.client_old)]
        await asyncio.sleep(0.3)  # let them reach the lock; the outcome must not depend on it
    await asyncio.gather(*cancels)
    got = (await o.ListRegistrations(api.ListRegistrationsRequest(meeting_id=m.id),
                                     metadata=w.as_sup)).registrations
    status = {r.client_id: (r.status, r.waitlist_position) for r in got}
    assert status == {
        w.client_a: (mpb.REGISTRATION_STATUS_CANCELLED, 0),
        w.client_old: (mpb.REGISTRATION_STATUS_CANCELLED, 0),
        w.client_b: (mpb.REGISTRATION_STATUS_CANCELLED, 0),
        w.client_r: (mpb.REGISTRATION_STATUS_CONFIRMED, 0),
        extra[0]: (mpb.REGISTRATION_STATUS_CONFIRMED, 0),
        extra[1]: (mpb.REGISTRATION_STATUS_CONFIRMED, 0),
        extra[2]: (mpb.REGISTRATION_STATUS_WAITLISTED, 1),
    }
    meeting = await o.GetMeeting(api.GetMeetingRequest(id=m.id), metadata=w.as_sup)
    assert (meeting.confirmed_count, meeting.waitlisted_count) == (3, 1)


async def test_only_the_organiser_presenter_or_a_supervisor_changes_a_meeting(
        world: World) -> None:
    o = world.s.onsite
    m = await schedule(world, capacity=4)  # scheduled by the supervisor, the analyst presents
    cancel = api.UpdateMeetingRequest(meeting=mpb.Meeting(id=m.id, state=mpb.MEETING_STATE_CANCELLED),
                                      update_mask=FieldMask(paths=["state"]))
    err = await fails(o.UpdateMeeting(cancel, metadata=world.as_cm1), PD)
    assert reason(err) == "NOT_MEETING_ORGANISER"
    await fails(o.UpdateMeeting(cancel, metadata=world.md("other-analyst", "analyst")), PD)
    got = await o.GetMeeting(api.GetMeetingRequest(id=m.id), metadata=world.as_cm1)
    assert got.state == mpb.MEETING_STATE_SCHEDULED
    topic = api.UpdateMeetingRequest(meeting=mpb.Meeting(id=m.id, topic="Rates, revised"),
                                     update_mask=FieldMask(paths=["topic"]))
    changed = await o.UpdateMeeting(topic, metadata=world.md(world.analyst, "analyst"))
    assert changed.topic == "Rates, revised"
    own = await schedule(world, metadata=world.as_cm1)
    done = await o.UpdateMeeting(api.UpdateMeetingRequest(
        meeting=mpb.Meeting(id=own.id, state=mpb.MEETING_STATE_CANCELLED),
        update_mask=FieldMask(paths=["state"])), metadata=world.as_cm1)
    assert done.state == mpb.MEETING_STATE_CANCELLED
    assert (await o.UpdateMeeting(cancel, metadata=world.as_sup)).state == \
        mpb.MEETING_STATE_CANCELLED


async def test_lists_too_long_to_store_are_invalid_argument(db_world: World) -> None:
    """20 topics of 200 characters each pass the per-item checks but do not fit the column:
    on PostgreSQL that was INTERNAL after the directory call; now it is a named bad field."""
    w = db_world
    o = w.s.onsite
    await bad(o.RecordVisit(visit(w.client_a, topics=["t" * 199 + str(n % 10)
                                                      for n in range(20)]),
                            metadata=w.as_cm1), "visit.topics")
    await bad(o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=w.s.runner.ctx.extras["onsite"].today().isoformat(),
        rooms=["r" * 98 + f"{n:02d}" for n in range(20)]), metadata=w.as_cm1), "rooms")
    # what fits is stored in full
    v = await o.RecordVisit(visit(w.client_a, topics=["t" * 90 + f"{n:02d}" for n in range(20)]),
                            metadata=w.as_cm1)
    assert len(v.topics) == 20
    plan = await o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=w.s.runner.ctx.extras["onsite"].today().isoformat(),
        rooms=["r" * 90 + f"{n:02d}" for n in range(20)]), metadata=w.as_cm1)
    assert len(plan.rooms) == 20


async def test_supervisor_acts_only_for_real_client_managers(db_world: World) -> None:
    """A supervisor may record for anyone, but 'anyone' is a client manager the directory
    knows: a typo or a consultant's id is refused instead of counting in compliance."""
    w = db_world
    o = w.s.onsite
    today = w.s.runner.ctx.extras["onsite"].today().isoformat()
    for who in ("ghost", w.cons1, "x" * 200):
        await bad(o.RecordVisit(visit(w.client_a, client_manager_id=who), metadata=w.as_sup),
                  "visit.client_manager_id")
        await bad(o.RecordPatrol(api.RecordPatrolRequest(patrol=day_pb2.Patrol(
            client_manager_id=who, room="Room 1")), metadata=w.as_sup),
            "patrol.client_manager_id")
        await bad(o.SetDailyPlan(api.SetDailyPlanRequest(
            client_manager_id=who, plan_date=today, rooms=["Room 1"]), metadata=w.as_sup),
            "client_manager_id")
    visits = await o.ListVisits(api.ListVisitsRequest(), metadata=w.as_sup)
    patrols = await o.ListPatrols(api.ListPatrolsRequest(), metadata=w.as_sup)
    assert not visits.visits and not patrols.patrols
    compliance = await o.GetCompliance(api.GetComplianceRequest(), metadata=w.as_sup)
    assert not compliance.rows
    # a real manager, and the supervisor's own records, are fine
    await o.RecordPatrol(api.RecordPatrolRequest(patrol=day_pb2.Patrol(
        client_manager_id=w.cm1, room="Room 1")), metadata=w.as_sup)
    await o.RecordPatrol(api.RecordPatrolRequest(patrol=day_pb2.Patrol(room="Room 2")),
                         metadata=w.as_sup)


async def test_other_staff_cannot_act_on_a_form(world: World) -> None:
    """Another consultant or client manager can neither analyse, deliver nor cancel a form,
    and their attempts leave it as it was."""
    o = world.s.onsite
    form = await raise_form(world)
    others = (world.as_cons2, world.as_cm2)
    for md in others:
        await fails(o.CancelConsultationForm(api.CancelConsultationFormRequest(
            id=form.id, reason="mine now"), metadata=md), PD)
        await fails(o.ListRelevantNotes(api.ListRelevantNotesRequest(form_id=form.id),
                                        metadata=md), PD)
    await fails(o.AnalyseConsultationForm(api.AnalyseConsultationFormRequest(
        id=form.id, analysis="a", advice="b", advice_risk_level=client_pb2.RISK_LEVEL_R1), metadata=world.as_cons2), PD)
    # the manager who raised it reads it but may not write the analysis
    await fails(o.AnalyseConsultationForm(api.AnalyseConsultationFormRequest(
        id=form.id, analysis="a", advice="b", advice_risk_level=client_pb2.RISK_LEVEL_R1), metadata=world.as_cm1), PD)
    await o.AnalyseConsultationForm(api.AnalyseConsultationFormRequest(
        id=form.id, analysis="a", advice="b", advice_risk_level=client_pb2.RISK_LEVEL_R1), metadata=world.as_cons1)
    for md in others:
        await fails(o.DeliverConsultationForm(api.DeliverConsultationFormRequest(
            id=form.id, acknowledgement="signed"), metadata=md), PD)
    got = await o.GetConsultationForm(api.GetConsultationFormRequest(id=form.id),
                                      metadata=world.as_cm1)
    assert got.state == cpb.FORM_STATE_ANALYSED and not got.acknowledgement
    # unknown form: NOT_FOUND, not a permission or internal error
    await fails(o.DeliverConsultationForm(api.DeliverConsultationFormRequest(
        id="no-such-form", acknowledgement="x"), metadata=world.as_cons1),
        grpc.StatusCode.NOT_FOUND)


async def test_out_of_range_timestamps_are_invalid_argument(world: World) -> None:
    """Seconds or nanos outside the Timestamp range used to raise in the service (INTERNAL)."""
    o = world.s.onsite
    broken = [Timestamp(seconds=10**13), Timestamp(seconds=1, nanos=-5)]
    for t in broken:
        await bad(o.RecordVisit(api.RecordVisitRequest(visit=day_pb2.Visit(
            client_id=world.client_a, visit_time=t)), metadata=world.as_cm1),
            "visit.visit_time")
        await bad(o.RecordPatrol(api.RecordPatrolRequest(patrol=day_pb2.Patrol(
            room="Room 1", patrol_time=t)), metadata=world.as_cm1), "patrol.patrol_time")
        await bad(o.ListMeetings(api.ListMeetingsRequest(start_time=t), metadata=world.as_cm1),
                  "start_time")
        await bad(o.ListMeetings(api.ListMeetingsRequest(end_time=t), metadata=world.as_cm1),
                  "end_time")
        await bad(raise_form(world, backfill_time=t, metadata=ADMIN), "backfill_time")
        await bad(o.ScheduleMeeting(api.ScheduleMeetingRequest(meeting=mpb.Meeting(
            topic="t", format=mpb.MEETING_FORMAT_ONLINE, start_time=t, duration_minutes=60,
            capacity=5)), metadata=world.as_sup), "meeting.start_time")
    # the last minute datetime can hold is not a meeting time either
    await bad(o.ScheduleMeeting(api.ScheduleMeetingRequest(meeting=mpb.Meeting(
        topic="t", format=mpb.MEETING_FORMAT_ONLINE, start_time=Timestamp(seconds=253402300000),
        duration_minutes=60, capacity=5)), metadata=world.as_sup), "meeting.start_time")
    assert not (await o.ListVisits(api.ListVisitsRequest(client_id=world.client_a),
                                   metadata=world.as_cm1)).visits


async def test_dates_at_the_ends_of_the_calendar_are_invalid_argument(world: World) -> None:
    """The week of 9999-12-31 or the local midnight of 0001-01-01 do not exist (INTERNAL)."""
    o = world.s.onsite
    for day in ("9999-12-31", "0001-01-01"):
        await bad(o.GetCompliance(api.GetComplianceRequest(date=day, period=day_pb2.PERIOD_WEEK),
                                  metadata=world.as_sup), "date")
        await bad(o.SummarizeOverdueForms(api.SummarizeOverdueFormsRequest(
            start_date=day, end_date=day), metadata=world.as_sup), "start_date", "end_date")
        await bad(o.ListVisits(api.ListVisitsRequest(start_date=day), metadata=world.as_sup),
                  "start_date")
        await bad(o.GetDailyPlan(api.GetDailyPlanRequest(plan_date=day), metadata=world.as_cm1),
                  "plan_date")


async def test_concurrent_first_writes_of_a_plan_quota_or_setting_all_succeed(
        db_world: World) -> None:
    """Two replicas taking the same first SetDailyPlan / SetQuota / UpdateOnsiteSettings at
    once: the one whose insert meets the other's row updates it (was INTERNAL on PostgreSQL)."""
    w = db_world
    o = w.s.onsite
    day = (w.s.runner.ctx.extras["onsite"].today() + timedelta(days=1)).isoformat()
    plans = await asyncio.gather(*(o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=day, rooms=[f"Room {n}"]), metadata=w.as_cm1) for n in range(4)))
    got = await o.GetDailyPlan(api.GetDailyPlanRequest(plan_date=day), metadata=w.as_cm1)
    assert len({p.id for p in plans}) == 1 and list(got.rooms) in [list(p.rooms) for p in plans]
    quotas = await asyncio.gather(*(o.SetQuota(api.SetQuotaRequest(quota=day_pb2.Quota(
        role="client_manager", staff_id=w.cm2, visits_per_day=n, rooms_per_day=1)),
        metadata=w.as_sup) for n in range(4)))
    listed = [q for q in (await o.ListQuotas(api.ListQuotasRequest(), metadata=w.as_sup)).quotas
              if q.staff_id == w.cm2]
    assert len(listed) == 1 and listed[0].visits_per_day in {q.visits_per_day for q in quotas}
    await asyncio.gather(*(o.UpdateOnsiteSettings(api.UpdateOnsiteSettingsRequest(
        settings=api.OnsiteSettings(delivery_deadline=Duration(seconds=3600 * (n + 1)))),
        metadata=w.as_sup) for n in range(4)))


def _client_event(client: client_pb2.Client, event_type: str) -> Event:
    if event_type == "branch.directory.client.tier_changed":
        payload = devents.ClientTierChanged(client=client).SerializeToString()
    else:
        payload = devents.ClientUpdated(client=client,
                                        changed_fields=["channel"]).SerializeToString()
    headers = {"ce-specversion": "1.0", "ce-id": str(uuid.uuid4()), "ce-type": event_type,
               "ce-source": "/branch/directory", "ce-time": "2026-11-27T00:00:00Z",
               "ce-subject": client.id}
    return Event.from_headers(event_type, headers, payload)


async def test_two_events_for_a_new_client_at_once_are_both_applied(db_world: World) -> None:
    """Replica 1 applies a tier change for a client on-site has not seen yet while replica 2
    applies 'turned remote' for the same client: the second must not be dropped as a
    duplicate (its form stays flagged, its plan item dropped)."""
    w = db_world
    onsite = w.s.runner.ctx.extras["onsite"]
    consumer = w.s.runner.consumers[0]
    today = onsite.today().isoformat()
    await w.s.onsite.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=today, visits=[day_pb2.PlannedClient(client_id=w.client_a)]),
        metadata=w.as_cm1)
    form = await raise_form(w)
    client = await w.s.directory.GetClient(dapi.GetClientRequest(id=w.client_a),
                                           metadata=ADMIN)
    # applied as the handler would be, in a transaction still open...
    async with w.s.runner.db.transaction() as s:
        await apply_client(s, onsite, client)
        remote = client_pb2.Client()
        remote.CopyFrom(client)
        remote.channel = client_pb2.CHANNEL_REMOTE
        second = asyncio.ensure_future(consumer.apply(
            _client_event(remote, "branch.directory.client.updated")))
        await asyncio.sleep(0.3)  # ...while the other event reaches the same row
    assert await second is True
    got = await w.s.onsite.GetConsultationForm(api.GetConsultationFormRequest(id=form.id),
                                               metadata=w.as_cm1)
    assert cpb.FORM_FLAG_CLIENT_REMOTE in got.flags
    plan = await w.s.onsite.GetDailyPlan(api.GetDailyPlanRequest(plan_date=today),
                                         metadata=w.as_cm1)
    assert not plan.visits and [d.client_id for d in plan.dropped] == [w.client_a]


async def test_a_presenter_is_an_active_analyst_or_a_branch_client(world: World) -> None:
    o = world.s.onsite

    def meeting(kind: mpb.PresenterKind.ValueType, presenter: str) -> api.ScheduleMeetingRequest:
        return api.ScheduleMeetingRequest(meeting=mpb.Meeting(
            topic="t", format=mpb.MEETING_FORMAT_ONLINE, duration_minutes=60, capacity=5,
            start_time=ts(world.s.clock.now() + timedelta(days=1)), presenter_kind=kind,
            presenter_id=presenter))

    for kind, who in ((mpb.PRESENTER_KIND_ANALYST, "ghost"),
                      (mpb.PRESENTER_KIND_ANALYST, world.cons1),
                      (mpb.PRESENTER_KIND_CLIENT, "no-such-client")):
        await bad(o.ScheduleMeeting(meeting(kind, who), metadata=world.as_sup),
                  "meeting.presenter_id")
    await bad(o.CreateMeetingSeries(api.CreateMeetingSeriesRequest(
        series=mpb.MeetingSeries(title="Friday", weekday=5, start_local_time="15:00",
                                 duration_minutes=60, format=mpb.MEETING_FORMAT_ONLINE,
                                 capacity=10),
        presenter_kind=mpb.PRESENTER_KIND_ANALYST, presenter_id="ghost"),
        metadata=world.as_sup), "presenter_id")
    m = await schedule(world)
    await bad(o.UpdateMeeting(api.UpdateMeetingRequest(
        meeting=mpb.Meeting(id=m.id, presenter_kind=mpb.PRESENTER_KIND_CLIENT,
                            presenter_id="ghost"),
        update_mask=FieldMask(paths=["presenter_kind", "presenter_id"])), metadata=world.as_sup),
        "meeting.presenter_id")
    assert not [x for x in (await o.ListMeetings(api.ListMeetingsRequest(),
                                                 metadata=world.as_sup)).meetings
                if x.presenter_id in ("ghost", "no-such-client", world.cons1)]
    sharing = await o.UpdateMeeting(api.UpdateMeetingRequest(
        meeting=mpb.Meeting(id=m.id, presenter_kind=mpb.PRESENTER_KIND_CLIENT,
                            presenter_id=world.client_b),
        update_mask=FieldMask(paths=["presenter_kind", "presenter_id"])), metadata=world.as_sup)
    assert sharing.presenter_id == world.client_b
