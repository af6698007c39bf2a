"""The directory's client events, consumed from real NATS: a client who becomes remote or
leaves drops out of plans and their open forms are flagged; a duplicate is applied once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import nats
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import events_pb2 as devents
from branch.onsite.v1 import consultation_pb2 as cpb
from branch.onsite.v1 import day_pb2
from branch.onsite.v1 import onsite_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask
from sqlmodel import select

from services.common.events import Event
from services.common.models import ProcessedEvent
from services.common.nats_link import STREAM
from tests.harness import ADMIN, eventually
from tests.onsite.conftest import World
from tests.onsite.test_forms import raise_form


async def test_client_turning_remote_leaves_plans_and_flags_forms(world: World) -> None:
    o = world.s.onsite
    today = world.s.runner.ctx.extras["onsite"].today()
    for day in (today, today + timedelta(days=1)):
        await o.SetDailyPlan(api.SetDailyPlanRequest(
            plan_date=day.isoformat(),
            visits=[day_pb2.PlannedClient(client_id=world.client_a),
                    day_pb2.PlannedClient(client_id=world.client_old)],
            consultation_targets=[day_pb2.PlannedClient(client_id=world.client_a)]),
            metadata=world.as_cm1)
    form = await raise_form(world)
    await world.s.directory.UpdateClient(dapi.UpdateClientRequest(
        client=client_pb2.Client(id=world.client_a, channel=client_pb2.CHANNEL_REMOTE),
        update_mask=FieldMask(paths=["channel"])), metadata=ADMIN)

    async def dropped() -> day_pb2.DailyPlan | None:
        plan = await o.GetDailyPlan(api.GetDailyPlanRequest(plan_date=today.isoformat()),
                                    metadata=world.as_cm1)
        return plan if plan.dropped else None

    plan = await eventually(dropped)
    assert [v.client_id for v in plan.visits] == [world.client_old]
    assert not plan.consultation_targets
    assert {(d.client_id, d.dropped) for d in plan.dropped} == {
        (world.client_a, day_pb2.DROP_REASON_CLIENT_REMOTE)}
    tomorrow = await o.GetDailyPlan(api.GetDailyPlanRequest(
        plan_date=(today + timedelta(days=1)).isoformat()), metadata=world.as_cm1)
    assert [v.client_id for v in tomorrow.visits] == [world.client_old]
    got = await o.GetConsultationForm(api.GetConsultationFormRequest(id=form.id),
                                      metadata=world.as_cm1)
    assert cpb.FORM_FLAG_CLIENT_REMOTE in got.flags
    compliance = (await o.GetCompliance(api.GetComplianceRequest(),
                                        metadata=world.as_cm1)).rows[0]
    assert compliance.planned_visits == 1 and compliance.consultation_targets == 0
    flagged = await o.ListConsultationForms(api.ListConsultationFormsRequest(flagged_only=True),
                                            metadata=world.as_cm1)
    assert form.id in [f.id for f in flagged.forms]


async def test_redelivered_duplicate_is_applied_once(world: World, nats_url: str) -> None:
    form = await raise_form(world, client_id=world.client_old)
    client = await world.s.directory.GetClient(dapi.GetClientRequest(id=world.client_old),
                                               metadata=ADMIN)
    client.status = client_pb2.CLIENT_STATUS_CLOSED
    payload = devents.ClientUpdated(client=client, changed_fields=["status"]).SerializeToString()
    event_id = str(uuid.uuid4())
    headers = {"ce-specversion": "1.0", "ce-id": event_id,
               "ce-type": "branch.directory.client.updated", "ce-source": "/branch/directory",
               "ce-time": "2026-11-27T00:00:00Z", "ce-subject": client.id}
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        # the same event twice (as a relay retry after a lost ack would send it)
        acks = [await js.publish("branch.directory.client.updated", payload,
                                 headers={**headers, "Nats-Msg-Id": f"{event_id}-{n}"})
                for n in range(2)]
        consumer = world.s.runner.consumers[0]

        async def both_seen() -> bool:
            info = await js.consumer_info(STREAM, consumer.durable)
            floor: int = info.ack_floor.stream_seq
            return floor >= acks[1].seq

        await eventually(both_seen)
    finally:
        await nc.close()
    async with world.s.runner.db.read() as s:
        rows = (await s.exec(select(ProcessedEvent).where(
            ProcessedEvent.event_id == event_id,
            ProcessedEvent.consumer == consumer.durable))).all()
    assert len(rows) == 1
    got = await world.s.onsite.GetConsultationForm(api.GetConsultationFormRequest(id=form.id),
                                                   metadata=world.as_cm1)
    assert cpb.FORM_FLAG_CLIENT_CLOSED in got.flags
    # applying the same event again directly is a no-op
    event = Event.from_headers("branch.directory.client.updated", headers, payload)
    assert await consumer.apply(event) is False


async def test_reassigned_client_leaves_the_old_managers_plans(world: World) -> None:
    o = world.s.onsite
    today = world.s.runner.ctx.extras["onsite"].today().isoformat()
    await o.SetDailyPlan(api.SetDailyPlanRequest(
        plan_date=today, visits=[day_pb2.PlannedClient(client_id=world.client_old),
                                 day_pb2.PlannedClient(client_id=world.client_a)]),
        metadata=world.as_cm1)
    await world.s.directory.AssignClientStaff(dapi.AssignClientStaffRequest(
        id=world.client_old, client_manager_id=world.cm2), metadata=ADMIN)

    async def dropped() -> day_pb2.DailyPlan | None:
        plan = await o.GetDailyPlan(api.GetDailyPlanRequest(), metadata=world.as_cm1)
        return plan if plan.dropped else None

    plan = await eventually(dropped)
    assert [v.client_id for v in plan.visits] == [world.client_a]
    assert [(d.client_id, d.dropped) for d in plan.dropped] == [
        (world.client_old, day_pb2.DROP_REASON_REASSIGNED)]
