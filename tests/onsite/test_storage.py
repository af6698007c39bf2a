"""The storage-heavy paths once more on each database (SQLite, and PostgreSQL when configured):
plans and compliance, paging, the form lifecycle, the waiting list, the client-event effects."""

from __future__ import annotations

from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.onsite.v1 import consultation_pb2 as cpb
from branch.onsite.v1 import day_pb2
from branch.onsite.v1 import meeting_pb2 as mpb
from branch.onsite.v1 import onsite_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from tests.harness import ADMIN, eventually
from tests.onsite.conftest import World
from tests.onsite.test_day import visit
from tests.onsite.test_forms import analyse, raise_form
from tests.onsite.test_meetings import register, schedule


async def test_storage_paths(db_world: World) -> None:
    w, o = db_world, db_world.s.onsite
    today = w.s.runner.ctx.extras["onsite"].today().isoformat()
    await o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=today, visits=[day_pb2.PlannedClient(client_id=w.client_a)], rooms=["R1"],
        consultation_targets=[day_pb2.PlannedClient(client_id=w.client_old)]),
        metadata=w.as_cm1)
    for _ in range(3):
        await o.RecordVisit(visit(w.client_a), metadata=w.as_cm1)
    await o.RecordPatrol(api.RecordPatrolRequest(patrol=day_pb2.Patrol(room="R1")),
                         metadata=w.as_cm1)
    row = (await o.GetCompliance(api.GetComplianceRequest(), metadata=w.as_cm1)).rows[0]
    assert (row.visits_done, row.planned_visits_done, row.rooms_patrolled) == (3, 1, 1)
    page = await o.ListVisits(api.ListVisitsRequest(page_size=2), metadata=w.as_cm1)
    rest = await o.ListVisits(api.ListVisitsRequest(page_size=2, page_token=page.next_page_token),
                              metadata=w.as_cm1)
    assert len(page.visits) == 2 and len(rest.visits) == 1 and not rest.next_page_token

    forms = [await raise_form(w) for _ in range(3)]
    await analyse(w, forms[0].id)
    await o.DeliverConsultationForm(api.DeliverConsultationFormRequest(
        id=forms[0].id, acknowledgement="signed"), metadata=w.as_cm1)
    await o.CancelConsultationForm(api.CancelConsultationFormRequest(
        id=forms[1].id, reason="withdrawn"), metadata=w.as_cm1)
    first = await o.ListConsultationForms(api.ListConsultationFormsRequest(page_size=2),
                                          metadata=w.as_cons1)
    second = await o.ListConsultationForms(api.ListConsultationFormsRequest(
        page_size=2, page_token=first.next_page_token), metadata=w.as_cons1)
    states = [f.state for f in [*first.forms, *second.forms]]
    assert sorted(states) == sorted([cpb.FORM_STATE_DELIVERED, cpb.FORM_STATE_CANCELLED,
                                     cpb.FORM_STATE_RAISED])

    m = await schedule(w, capacity=1)
    one = await register(w, m.id, w.client_a)
    two = await register(w, m.id, w.client_old)
    assert two.status == mpb.REGISTRATION_STATUS_WAITLISTED
    await o.CancelRegistration(api.CancelRegistrationRequest(id=one.id), metadata=w.as_sup)
    regs = (await o.ListRegistrations(api.ListRegistrationsRequest(meeting_id=m.id),
                                      metadata=w.as_sup)).registrations
    assert [r.status for r in regs] == [mpb.REGISTRATION_STATUS_CANCELLED,
                                        mpb.REGISTRATION_STATUS_CONFIRMED]

    await w.s.directory.UpdateClient(dapi.UpdateClientRequest(
        client=client_pb2.Client(id=w.client_a, status=client_pb2.CLIENT_STATUS_CLOSED),
        update_mask=FieldMask(paths=["status"])), metadata=ADMIN)

    async def flagged() -> bool:
        got = await o.GetConsultationForm(api.GetConsultationFormRequest(id=forms[2].id),
                                          metadata=w.as_cm1)
        return cpb.FORM_FLAG_CLIENT_CLOSED in got.flags

    await eventually(flagged)
    plan = await o.GetDailyPlan(api.GetDailyPlanRequest(), metadata=w.as_cm1)
    assert not plan.visits and plan.dropped[0].dropped == day_pb2.DROP_REASON_CLIENT_CLOSED
