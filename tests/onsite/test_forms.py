"""Consultation forms: snapshot, state machine, suitability, scope, supervisor views."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.onsite.v1 import consultation_pb2 as cpb
from branch.onsite.v1 import onsite_service_pb2 as api
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from services.common.protos import ts
from tests.harness import ADMIN, auth, rpc_status_of
from tests.onsite.conftest import World, import_holdings
from tests.onsite.helpers import bad, events_about, fails, reason

FP = grpc.StatusCode.FAILED_PRECONDITION
PD = grpc.StatusCode.PERMISSION_DENIED


async def raise_form(world: World, client_id: str | None = None, **kw: Any
                     ) -> cpb.ConsultationForm:
    md = kw.pop("metadata", None) or world.as_cm1
    return await world.s.onsite.RaiseConsultationForm(api.RaiseConsultationFormRequest(
        client_id=client_id or world.client_a, consultant_id=kw.pop("consultant_id", world.cons1),
        request_note=kw.pop("request_note", "worried about liquor stocks"), **kw), metadata=md)


async def analyse(world: World, form_id: str, level: int = 2, **kw: Any) -> cpb.ConsultationForm:
    md = kw.pop("metadata", None) or world.as_cons1
    return await world.s.onsite.AnalyseConsultationForm(api.AnalyseConsultationFormRequest(
        id=form_id, analysis="concentrated in one name", advice="trim 20%",
        advice_risk_level=client_pb2.RiskLevel.ValueType(level), **kw), metadata=md)


async def test_raise_copies_holdings_snapshot(world: World, nats_url: str) -> None:
    form = await raise_form(world, request_id="f-1")
    assert form.state == cpb.FORM_STATE_RAISED and form.client_manager_id == world.cm1
    assert {(p.ticker, p.quantity, p.cost_price, p.market_price) for p in form.positions} == {
        ("600519", 100, "1650", "1702.5"), ("000001", 2000, "11.2", "")}
    assert form.deadline.ToDatetime() - form.raise_time.ToDatetime() == timedelta(hours=24)
    again = await raise_form(world, request_id="f-1")
    assert again.id == form.id
    # a later import does not rewrite the form's history
    await import_holdings(world.s.directory, world.client_a, [("600519", 300, "1500.00", "1800")])
    got = await world.s.onsite.GetConsultationForm(api.GetConsultationFormRequest(id=form.id),
                                                   metadata=world.as_cons1)
    assert list(got.positions) == list(form.positions)
    assert {p.ticker: p.quantity for p in got.positions}["600519"] == 100
    listed = await world.s.onsite.ListConsultationForms(api.ListConsultationFormsRequest(
        client_id=world.client_a), metadata=world.as_cons1)
    assert [list(f.positions) for f in listed.forms if f.id == form.id] == [list(form.positions)]
    events = await events_about(nats_url, "branch.onsite.consultation.raised", {form.id})
    assert len(events) == 1


async def test_raise_refusals(world: World) -> None:
    o = world.s.onsite
    await bad(o.RaiseConsultationForm(api.RaiseConsultationFormRequest(request_note="x" * 2001),
                                      metadata=world.as_cm1),
              "client_id", "consultant_id", "request_note")
    await bad(raise_form(world, consultant_id=world.cm2), "consultant_id")
    await bad(raise_form(world, consultant_id="ghost"), "consultant_id")
    err = await fails(raise_form(world, client_id="ghost"), grpc.StatusCode.NOT_FOUND)
    assert reason(err) == "CLIENT_UNKNOWN"
    await fails(raise_form(world, client_id=world.client_r), FP)
    await fails(raise_form(world, client_id=world.client_b), PD)
    await fails(raise_form(world, metadata=world.as_cons1), PD)
    # only an admin may backfill a paper form
    await bad(raise_form(world, backfill_time=ts(world.s.clock.now() - timedelta(days=2))),
              "backfill_time")
    await bad(raise_form(world, metadata=ADMIN,
                         backfill_time=ts(world.s.clock.now() - timedelta(days=90))),
              "backfill_time")


async def test_a_wrong_consultant_is_told_apart(world: World) -> None:
    """Not an id at all, no such person, not a consultant: three different refusals."""
    from google.rpc import error_details_pb2

    def why(err: grpc.aio.AioRpcError) -> str:
        status = rpc_status_of(err)
        for detail in status.details if status else []:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                description: str = bad_request.field_violations[0].description
                return description
        return ""

    ghost = "0e4f5b7a-1111-4222-8333-944455556666"
    for consultant, said in (("S0017", "not a staff id"), (ghost, "no staff member has this id"),
                             (world.cm2, "not a consultant")):
        err = await fails(raise_form(world, consultant_id=consultant),
                          grpc.StatusCode.INVALID_ARGUMENT)
        assert said in why(err), (consultant, why(err))


async def test_state_machine(world: World, nats_url: str) -> None:
    o = world.s.onsite
    form = await raise_form(world)
    err = await fails(o.DeliverConsultationForm(api.DeliverConsultationFormRequest(
        id=form.id, acknowledgement="signed"), metadata=world.as_cm1), FP)
    assert reason(err) == "FORM_NOT_ANALYSED"
    await bad(o.AnalyseConsultationForm(api.AnalyseConsultationFormRequest(
        id=form.id, advice_risk_level=client_pb2.RiskLevel.ValueType(9), note_ids=["n1", "n1", ""]), metadata=world.as_cons1),
        "analysis", "advice", "advice_risk_level", "note_ids", "note_ids[2]")
    await fails(analyse(world, form.id, metadata=world.as_cons2), PD)
    analysed = await analyse(world, form.id, note_ids=["note-1", "note-2"])
    assert analysed.state == cpb.FORM_STATE_ANALYSED and list(analysed.note_ids) == [
        "note-1", "note-2"]
    assert analysed.client_risk_tolerance == client_pb2.RISK_TOLERANCE_C3
    assert not analysed.suitability_override and not analysed.flags
    # the analysis may be revised before delivery
    revised = await analyse(world, form.id, level=3, note_ids=["note-1", "note-2"])
    assert revised.advice_risk_level == client_pb2.RISK_LEVEL_R3
    await bad(o.DeliverConsultationForm(api.DeliverConsultationFormRequest(id=form.id),
                                        metadata=world.as_cm1), "acknowledgement")
    await fails(o.DeliverConsultationForm(api.DeliverConsultationFormRequest(
        id=form.id, acknowledgement="signed"), metadata=world.as_cm2), PD)
    delivered = await o.DeliverConsultationForm(api.DeliverConsultationFormRequest(
        id=form.id, acknowledgement="client signed the copy"), metadata=world.as_cm1)
    assert delivered.state == cpb.FORM_STATE_DELIVERED and delivered.delivered_by == world.cm1
    assert not delivered.overdue
    for call in (
        analyse(world, form.id),
        o.CancelConsultationForm(api.CancelConsultationFormRequest(id=form.id, reason="x"),
                                 metadata=world.as_cm1),
        o.DeliverConsultationForm(api.DeliverConsultationFormRequest(
            id=form.id, acknowledgement="again"), metadata=world.as_cm1),
    ):
        err = await fails(call, FP)
        assert reason(err) == "FORM_DELIVERED"
    msgs = await events_about(nats_url, "branch.onsite.consultation.delivered", {form.id})
    from branch.onsite.v1 import events_pb2

    ev = events_pb2.ConsultationDelivered()
    ev.ParseFromString(msgs[0].data)
    assert list(ev.note_ids) == ["note-1", "note-2"] and ev.client_manager_id == world.cm1


async def test_cancel(world: World) -> None:
    o = world.s.onsite
    form = await raise_form(world)
    await bad(o.CancelConsultationForm(api.CancelConsultationFormRequest(id=form.id),
                                       metadata=world.as_cm1), "reason")
    cancelled = await o.CancelConsultationForm(api.CancelConsultationFormRequest(
        id=form.id, reason="client withdrew the question"), metadata=world.as_cons1)
    assert cancelled.state == cpb.FORM_STATE_CANCELLED and cancelled.cancelled_by == world.cons1
    err = await fails(analyse(world, form.id), FP)
    assert reason(err) == "FORM_CANCELLED"
    await fails(o.CancelConsultationForm(api.CancelConsultationFormRequest(
        id=form.id, reason="again"), metadata=world.as_cm1), FP)
    await fails(o.CancelConsultationForm(api.CancelConsultationFormRequest(
        id="missing", reason="x"), metadata=world.as_cm1), grpc.StatusCode.NOT_FOUND)


async def test_suitability_refusal_and_override(world: World) -> None:
    form = await raise_form(world)
    err = await fails(analyse(world, form.id, level=4), FP)
    assert reason(err) == "SUITABILITY_MISMATCH" and "R4" in (err.details() or "")
    over = await analyse(world, form.id, level=4,
                         suitability_override_reason="client insists, signed risk disclosure")
    assert over.suitability_override and cpb.FORM_FLAG_SUITABILITY_OVERRIDE in over.flags
    # flagged in every view
    inbox = await world.s.onsite.ListConsultationForms(api.ListConsultationFormsRequest(
        flagged_only=True), metadata=world.as_cons1)
    assert [f.id for f in inbox.forms] == [form.id]
    assert cpb.FORM_FLAG_SUITABILITY_OVERRIDE in inbox.forms[0].flags
    # a suitable revision clears the override
    fine = await analyse(world, form.id, level=3, suitability_override_reason="not needed")
    assert not fine.suitability_override and not fine.suitability_override_reason


async def test_expired_assessment_needs_override(world: World) -> None:
    form = await raise_form(world, client_id=world.client_old)
    err = await fails(analyse(world, form.id, level=1), FP)
    assert "two years" in (err.details() or "")
    ok = await analyse(world, form.id, level=1, suitability_override_reason="reassessment booked")
    assert ok.risk_assessment_expired and ok.suitability_override


async def test_scope_and_inbox(world: World) -> None:
    o = world.s.onsite
    mine = await raise_form(world)
    other = await raise_form(world, client_id=world.client_b, metadata=world.as_cm2,
                             consultant_id=world.cons2)
    await fails(o.GetConsultationForm(api.GetConsultationFormRequest(id=other.id),
                                      metadata=world.as_cm1), PD)
    await fails(o.GetConsultationForm(api.GetConsultationFormRequest(id=other.id),
                                      metadata=world.as_cons1), PD)
    await fails(o.GetConsultationForm(api.GetConsultationFormRequest(id=mine.id),
                                      metadata=auth("x", "broker")), PD)
    inbox = await o.ListConsultationForms(api.ListConsultationFormsRequest(
        states=[cpb.FORM_STATE_RAISED]), metadata=world.as_cons1)
    assert [f.id for f in inbox.forms] == [mine.id]
    await fails(o.ListConsultationForms(api.ListConsultationFormsRequest(
        consultant_id=world.cons2), metadata=world.as_cons1), PD)
    await fails(o.ListConsultationForms(api.ListConsultationFormsRequest(
        client_manager_id=world.cm2), metadata=world.as_cm1), PD)
    await bad(o.ListConsultationForms(api.ListConsultationFormsRequest(states=[cpb.FormState.ValueType(42)]),
                                      metadata=world.as_cons1), "states[0]")
    every = await o.ListConsultationForms(api.ListConsultationFormsRequest(
        client_manager_id=world.cm2), metadata=world.as_sup)
    assert [f.id for f in every.forms] == [other.id]
    # the supervisor raises for anyone; the form belongs to the client's manager
    sup = await raise_form(world, client_id=world.client_b, metadata=world.as_sup)
    assert sup.client_manager_id == world.cm2


async def test_settings_deadline(world: World) -> None:
    o = world.s.onsite
    settings = await o.GetOnsiteSettings(api.GetOnsiteSettingsRequest(), metadata=world.as_cm1)
    assert settings.delivery_deadline.seconds == 24 * 3600
    await fails(o.UpdateOnsiteSettings(api.UpdateOnsiteSettingsRequest(
        settings=api.OnsiteSettings(delivery_deadline=Duration(seconds=3600))),
        metadata=world.as_cm1), PD)
    await bad(o.UpdateOnsiteSettings(api.UpdateOnsiteSettingsRequest(
        settings=api.OnsiteSettings(delivery_deadline=Duration(seconds=60))),
        metadata=world.as_sup), "settings.delivery_deadline")
    try:
        updated = await o.UpdateOnsiteSettings(api.UpdateOnsiteSettingsRequest(
            settings=api.OnsiteSettings(delivery_deadline=Duration(seconds=4 * 3600))),
            metadata=world.as_sup)
        assert updated.updated_by == world.sup
        form = await raise_form(world)
        assert form.deadline.seconds - form.raise_time.seconds == 4 * 3600
    finally:
        await o.UpdateOnsiteSettings(api.UpdateOnsiteSettingsRequest(
            settings=api.OnsiteSettings(delivery_deadline=Duration(seconds=24 * 3600))),
            metadata=world.as_sup)


async def test_closed_client_cannot_get_delivery(world: World) -> None:
    from branch.onsite.v1 import meeting_pb2 as mpb

    from tests.onsite.test_meetings import register, schedule

    form = await raise_form(world)
    await analyse(world, form.id)
    meeting = await schedule(world, capacity=1)
    gone = await register(world, meeting.id, world.client_a)
    waiting = await register(world, meeting.id, world.client_old)
    await world.s.directory.UpdateClient(dapi.UpdateClientRequest(
        client=client_pb2.Client(id=world.client_a, status=client_pb2.CLIENT_STATUS_CLOSED),
        update_mask=FieldMask(paths=["status"])), metadata=ADMIN)
    from tests.harness import eventually

    async def flagged() -> bool:
        got = await world.s.onsite.GetConsultationForm(
            api.GetConsultationFormRequest(id=form.id), metadata=world.as_cm1)
        return cpb.FORM_FLAG_CLIENT_CLOSED in got.flags

    await eventually(flagged)
    regs = {r.id: r for r in (await world.s.onsite.ListRegistrations(
        api.ListRegistrationsRequest(meeting_id=meeting.id), metadata=world.as_sup)).registrations}
    assert regs[gone.id].status == mpb.REGISTRATION_STATUS_CANCELLED
    assert regs[waiting.id].status == mpb.REGISTRATION_STATUS_CONFIRMED
    err = await fails(world.s.onsite.DeliverConsultationForm(api.DeliverConsultationFormRequest(
        id=form.id, acknowledgement="x"), metadata=world.as_cm1), FP)
    assert reason(err) == "CLIENT_CLOSED"
