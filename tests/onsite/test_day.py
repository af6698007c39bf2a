"""Plans, visits, patrols, quotas and compliance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import pytest
from branch.onsite.v1 import day_pb2
from branch.onsite.v1 import onsite_service_pb2 as api

from services.common.protos import ts
from tests.harness import auth
from tests.onsite.conftest import World
from tests.onsite.helpers import bad, events_about, fails, reason

PD = grpc.StatusCode.PERMISSION_DENIED


def visit(client_id: str, **kw: Any) -> api.RecordVisitRequest:
    request_id = kw.pop("request_id", "")
    return api.RecordVisitRequest(visit=day_pb2.Visit(client_id=client_id, **kw),
                                  request_id=request_id)


async def test_plan_set_get_and_replace(world: World) -> None:
    o, today = world.s.onsite, world.s.runner.ctx.extras["onsite"].today().isoformat()
    plan = await o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=today, visits=[day_pb2.PlannedClient(client_id=world.client_a,
                                                       reason="asked about dividends")],
        rooms=["VIP-1", "Hall"],
        consultation_targets=[day_pb2.PlannedClient(client_id=world.client_old)],
        note="busy day"), metadata=world.as_cm1)
    assert plan.client_manager_id == world.cm1 and plan.plan_date == today
    assert [v.client_id for v in plan.visits] == [world.client_a]
    assert list(plan.rooms) == ["VIP-1", "Hall"]
    got = await o.GetDailyPlan(api.GetDailyPlanRequest(), metadata=world.as_cm1)
    assert got.id == plan.id and got.visits[0].reason == "asked about dividends"
    replaced = await o.SetDailyPlan(api.SetDailyPlanRequest(plan_date=today, rooms=["R3"]),
                                    metadata=world.as_cm1)
    assert replaced.id == plan.id and not replaced.visits and list(replaced.rooms) == ["R3"]
    # a supervisor reads anyone's plan; the other manager may not
    sup = await o.GetDailyPlan(api.GetDailyPlanRequest(client_manager_id=world.cm1),
                               metadata=world.as_sup)
    assert sup.id == plan.id
    await fails(o.GetDailyPlan(api.GetDailyPlanRequest(client_manager_id=world.cm1),
                               metadata=world.as_cm2), PD)


async def test_plan_bad_fields_and_clients(world: World) -> None:
    o = world.s.onsite
    today = world.s.runner.ctx.extras["onsite"].today()
    await bad(o.SetDailyPlan(api.SetDailyPlanRequest(plan_date="27/11/2026"),
                             metadata=world.as_cm1), "plan_date")
    far = (today + timedelta(days=90)).isoformat()
    await bad(o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=far, rooms=["A", "A", ""],
        visits=[day_pb2.PlannedClient(client_id="")]), metadata=world.as_cm1),
        "plan_date", "rooms", "rooms[2]", "visits[0].client_id")
    iso = today.isoformat()
    err = await fails(o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=iso, visits=[day_pb2.PlannedClient(client_id=world.client_r)]),
        metadata=world.as_cm1), grpc.StatusCode.FAILED_PRECONDITION)
    assert reason(err) == "CLIENT_NOT_ONSITE"
    await fails(o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=iso, visits=[day_pb2.PlannedClient(client_id=world.client_b)]),
        metadata=world.as_cm1), PD)
    err = await fails(o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=iso, consultation_targets=[day_pb2.PlannedClient(client_id="nobody")]),
        metadata=world.as_cm1), grpc.StatusCode.NOT_FOUND)
    assert reason(err) == "CLIENT_UNKNOWN"
    # planning for another manager is the supervisor's
    await fails(o.SetDailyPlan(api.SetDailyPlanRequest(plan_date=iso, client_manager_id=world.cm2),
                               metadata=world.as_cm1), PD)
    ok = await o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=iso, client_manager_id=world.cm2,
        visits=[day_pb2.PlannedClient(client_id=world.client_b)]), metadata=world.as_sup)
    assert ok.client_manager_id == world.cm2


async def test_record_visit_and_event(world: World, nats_url: str) -> None:
    o = world.s.onsite
    when = world.s.clock.now() - timedelta(hours=1)
    v = await o.RecordVisit(visit(world.client_a, visit_time=ts(when), room="VIP-1",
                                  topics=["dividends", "margin"], client_requests="call back",
                                  follow_up_needed=True, follow_up_note="send the note",
                                  request_id="v-1"), metadata=world.as_cm1)
    assert v.client_manager_id == world.cm1 and v.recorded_by == world.cm1
    assert list(v.topics) == ["dividends", "margin"] and v.follow_up_needed
    again = await o.RecordVisit(visit(world.client_a, room="other", request_id="v-1"),
                                metadata=world.as_cm1)
    assert again.id == v.id and again.room == "VIP-1"
    listed = await o.ListVisits(api.ListVisitsRequest(client_id=world.client_a),
                                metadata=world.as_cm1)
    assert [x.id for x in listed.visits] == [v.id]
    events = await events_about(nats_url, "branch.onsite.visit.recorded", {v.id})
    assert len(events) == 1


async def test_visit_refusals(world: World) -> None:
    o = world.s.onsite
    err = await fails(o.RecordVisit(visit("no-such-client"), metadata=world.as_cm1),
                      grpc.StatusCode.NOT_FOUND)
    assert reason(err) == "CLIENT_UNKNOWN" and "not known to the directory" in (err.details() or "")
    err = await fails(o.RecordVisit(visit(world.client_r), metadata=world.as_cm1),
                      grpc.StatusCode.FAILED_PRECONDITION)
    assert reason(err) == "CLIENT_NOT_ONSITE"
    err = await fails(o.RecordVisit(visit(world.client_b), metadata=world.as_cm1), PD)
    assert reason(err) == "OUT_OF_SCOPE"
    await fails(o.RecordVisit(visit(world.client_a, client_manager_id=world.cm2),
                              metadata=world.as_cm1), PD)
    # wrong role, no token
    await fails(o.RecordVisit(visit(world.client_a), metadata=world.as_cons1), PD)
    await fails(o.RecordVisit(visit(world.client_a)), grpc.StatusCode.UNAUTHENTICATED)
    # bad fields, all named at once
    future = world.s.clock.now() + timedelta(hours=2)
    await bad(o.RecordVisit(visit("", visit_time=ts(future), room="x" * 101,
                                  topics=["ok", ""], follow_up_note="n"),
                            metadata=world.as_cm1),
              "visit.client_id", "visit.visit_time", "visit.room", "visit.topics[1]",
              "visit.follow_up_needed")
    old = world.s.clock.now() - timedelta(days=61)
    await bad(o.RecordVisit(visit(world.client_a, visit_time=ts(old)), metadata=world.as_cm1),
              "visit.visit_time")
    await bad(o.RecordVisit(visit(world.client_a, request_id="r" * 101),
                            metadata=world.as_cm1), "request_id")


async def test_supervisor_records_for_anyone(world: World) -> None:
    v = await world.s.onsite.RecordVisit(visit(world.client_b, client_manager_id=world.cm2),
                                         metadata=world.as_sup)
    assert v.client_manager_id == world.cm2 and v.recorded_by == world.sup
    own = await world.s.onsite.RecordVisit(visit(world.client_a), metadata=world.as_sup)
    assert own.client_manager_id == world.sup


async def test_patrols(world: World) -> None:
    o = world.s.onsite
    p = await o.RecordPatrol(api.RecordPatrolRequest(
        patrol=day_pb2.Patrol(room="Room 2", observations="quiet"), request_id="p-1"),
        metadata=world.as_cm1)
    again = await o.RecordPatrol(api.RecordPatrolRequest(
        patrol=day_pb2.Patrol(room="Room 9"), request_id="p-1"), metadata=world.as_cm1)
    assert again.id == p.id and p.room == "Room 2"
    await bad(o.RecordPatrol(api.RecordPatrolRequest(patrol=day_pb2.Patrol(
        room="", observations="x" * 2001)), metadata=world.as_cm1),
        "patrol.room", "patrol.observations")
    listed = await o.ListPatrols(api.ListPatrolsRequest(), metadata=world.as_cm1)
    assert [x.id for x in listed.patrols] == [p.id]
    await fails(o.ListPatrols(api.ListPatrolsRequest(client_manager_id=world.cm1),
                              metadata=world.as_cm2), PD)
    everyone = await o.ListPatrols(api.ListPatrolsRequest(client_manager_id=world.cm1),
                                   metadata=world.as_sup)
    assert [x.id for x in everyone.patrols] == [p.id]


async def test_list_visits_paginates_and_scopes(world: World) -> None:
    o = world.s.onsite
    now = world.s.clock.now()
    ids = []
    for i in range(5):
        v = await o.RecordVisit(visit(world.client_a, visit_time=ts(now - timedelta(minutes=i))),
                                metadata=world.as_cm1)
        ids.append(v.id)
    seen, token = [], ""
    while True:
        page = await o.ListVisits(api.ListVisitsRequest(page_size=2, page_token=token),
                                  metadata=world.as_cm1)
        seen += [x.id for x in page.visits]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    await bad(o.ListVisits(api.ListVisitsRequest(page_token="garbage!", start_date="x"),
                           metadata=world.as_cm1), "start_date")
    await fails(o.ListVisits(api.ListVisitsRequest(client_manager_id=world.cm1),
                             metadata=world.as_cm2), PD)
    await fails(o.ListVisits(api.ListVisitsRequest(), metadata=world.as_cons1), PD)


async def test_quotas_and_compliance(world: World) -> None:
    o = world.s.onsite
    await fails(o.SetQuota(api.SetQuotaRequest(quota=day_pb2.Quota(
        role="client_manager", visits_per_day=1, rooms_per_day=1)), metadata=world.as_cm1), PD)
    await bad(o.SetQuota(api.SetQuotaRequest(quota=day_pb2.Quota(
        role="janitor", visits_per_day=-1, rooms_per_day=500)), metadata=world.as_sup),
        "quota.role", "quota.visits_per_day", "quota.rooms_per_day")
    q = await o.SetQuota(api.SetQuotaRequest(quota=day_pb2.Quota(
        role="client_manager", staff_id=world.cm1, visits_per_day=2, rooms_per_day=1)),
        metadata=world.as_sup)
    assert q.updated_by == world.sup
    quotas = await o.ListQuotas(api.ListQuotasRequest(), metadata=world.as_cm1)
    assert quotas.default_visits_per_day == 10 and quotas.default_rooms_per_day == 3
    assert any(x.staff_id == world.cm1 for x in quotas.quotas)

    today = world.s.runner.ctx.extras["onsite"].today().isoformat()
    await o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=today, visits=[day_pb2.PlannedClient(client_id=world.client_a),
                                 day_pb2.PlannedClient(client_id=world.client_old)],
        rooms=["R1", "R2"]), metadata=world.as_cm1)
    report = await o.GetCompliance(api.GetComplianceRequest(), metadata=world.as_cm1)
    row = report.rows[0]
    assert (row.planned_visits, row.visits_done, row.visits_quota, row.met) == (2, 0, 2, False)
    await o.RecordVisit(visit(world.client_a), metadata=world.as_cm1)
    await o.RecordVisit(visit(world.client_a), metadata=world.as_cm1)
    await o.RecordPatrol(api.RecordPatrolRequest(patrol=day_pb2.Patrol(room="R1")),
                         metadata=world.as_cm1)
    await o.RecordPatrol(api.RecordPatrolRequest(patrol=day_pb2.Patrol(room="R1")),
                         metadata=world.as_cm1)
    row = (await o.GetCompliance(api.GetComplianceRequest(date=today),
                                 metadata=world.as_cm1)).rows[0]
    assert row.visits_done == 2 and row.planned_visits_done == 1 and row.visits_met
    assert row.rooms_patrolled == 1 and row.rooms_quota == 1 and row.rooms_met and row.met
    week = (await o.GetCompliance(api.GetComplianceRequest(period=day_pb2.PERIOD_WEEK),
                                  metadata=world.as_cm1)).rows[0]
    assert week.visits_quota == 10 and not week.met
    # the other manager has the default quota; the supervisor sees everyone active
    everyone = await o.GetCompliance(api.GetComplianceRequest(), metadata=world.as_sup)
    assert world.cm1 in {r.client_manager_id for r in everyone.rows}
    cm2 = (await o.GetCompliance(api.GetComplianceRequest(), metadata=world.as_cm2)).rows[0]
    assert cm2.visits_quota == 10 and cm2.rooms_quota == 3
    await fails(o.GetCompliance(api.GetComplianceRequest(client_manager_id=world.cm1),
                                metadata=world.as_cm2), PD)
    await bad(o.GetCompliance(api.GetComplianceRequest(date="yesterday", period=day_pb2.Period.ValueType(7)),
                              metadata=world.as_cm1), "date", "period")
    await fails(o.GetCompliance(api.GetComplianceRequest(),
                                metadata=auth("b-1", "broker")), PD)


@pytest.mark.parametrize(("week_of", "working_days"), [
    ("2024-10-03", 1),  # National Day week: only Monday 30 September is worked
    ("2024-10-10", 5),  # 7 October off, make-up Saturday 12 October worked
    ("2024-09-25", 6),  # make-up Sunday 29 September worked
    ("2024-02-14", 1),  # Spring Festival week 2024: 12-17 February off, Sunday 18th worked
    ("2025-04-30", 3),  # 28-30 April worked, Labour Day from 1 May (27 April is last week's)
    ("2026-03-04", 5),
])
async def test_weekly_quota_counts_the_weeks_working_days(world: World, week_of: str,
                                                           working_days: int) -> None:
    o = world.s.onsite
    await o.SetQuota(api.SetQuotaRequest(quota=day_pb2.Quota(
        role="client_manager", staff_id=world.cm1, visits_per_day=2, rooms_per_day=1)),
        metadata=world.as_sup)
    week = (await o.GetCompliance(api.GetComplianceRequest(
        date=week_of, period=day_pb2.PERIOD_WEEK), metadata=world.as_cm1)).rows[0]
    assert (week.visits_quota, week.rooms_quota) == (2 * working_days, working_days)
