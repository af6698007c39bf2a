"""The delivery deadline: the overdue check with a fake clock, and two replicas raising each
overdue event exactly once (SQLite file shared by both, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from branch.onsite.v1 import consultation_pb2 as cpb
from branch.onsite.v1 import onsite_service_pb2 as api
from sqlmodel import col, select

from services.common.models import OutboxEvent
from services.onsite.server import check_overdue
from tests.onsite.conftest import World, make_stack, make_world
from tests.onsite.helpers import events_about
from tests.onsite.test_forms import analyse, raise_form

OVERDUE = "branch.onsite.consultation.overdue"


async def test_deadline_timer_with_fake_clock(db_world: World, nats_url: str) -> None:
    w, o, runner = db_world, db_world.s.onsite, db_world.s.runner
    late = await raise_form(w)
    on_time = await raise_form(w)
    assert await check_overdue(runner.ctx) == 0
    await analyse(w, on_time.id)
    await o.DeliverConsultationForm(api.DeliverConsultationFormRequest(
        id=on_time.id, acknowledgement="read back"), metadata=w.as_cm1)
    w.s.clock.advance(hours=23, minutes=59)
    assert await check_overdue(runner.ctx) == 0
    w.s.clock.advance(minutes=2)
    # views know at once, before the timer ran
    peek = await o.GetConsultationForm(api.GetConsultationFormRequest(id=late.id),
                                       metadata=w.as_sup)
    assert peek.overdue and not peek.HasField("overdue_time")
    assert await check_overdue(runner.ctx) == 1
    assert await check_overdue(runner.ctx) == 0
    got = await o.GetConsultationForm(api.GetConsultationFormRequest(id=late.id),
                                      metadata=w.as_cm1)
    assert got.overdue and got.HasField("overdue_time")
    assert cpb.FORM_FLAG_OVERDUE in got.flags
    # the supervisor's view, and the count against consultant and manager
    listed = await o.ListConsultationForms(api.ListConsultationFormsRequest(overdue_only=True),
                                           metadata=w.as_sup)
    assert [f.id for f in listed.forms] == [late.id]
    summary = await o.SummarizeOverdueForms(api.SummarizeOverdueFormsRequest(),
                                            metadata=w.as_sup)
    assert summary.overdue_total == 1 and summary.open_overdue == 1
    assert [(x.staff_id, x.overdue, x.open) for x in summary.by_consultant] == [(w.cons1, 1, 1)]
    assert [x.staff_id for x in summary.by_client_manager] == [w.cm1]
    compliance = await o.GetCompliance(api.GetComplianceRequest(
        date=w.s.runner.ctx.extras["onsite"].local_date(late.deadline.ToDatetime(
            tzinfo=w.s.clock.now().tzinfo)).isoformat()), metadata=w.as_cm1)
    assert compliance.rows[0].forms_overdue == 1
    # a late delivery stays counted as overdue
    await analyse(w, late.id)
    delivered = await o.DeliverConsultationForm(api.DeliverConsultationFormRequest(
        id=late.id, acknowledgement="signed"), metadata=w.as_cm1)
    assert delivered.overdue and delivered.state == cpb.FORM_STATE_DELIVERED
    summary = await o.SummarizeOverdueForms(api.SummarizeOverdueFormsRequest(),
                                            metadata=w.as_sup)
    assert summary.overdue_total == 1 and summary.open_overdue == 0
    msgs = await events_about(nats_url, OVERDUE, {late.id}, absent=frozenset({on_time.id}))
    assert [m.headers["ce-subject"] for m in msgs] == [late.id]


async def test_two_replicas_raise_each_overdue_once(
    tmp_path: Path, nats_url: str, database_url: str
) -> None:
    async with make_stack(tmp_path, nats_url, database_url, replicas=2) as stack:
        w = await make_world(stack)
        forms = [await raise_form(w) for _ in range(6)]
        cancelled = await raise_form(w)
        await stack.onsite.CancelConsultationForm(api.CancelConsultationFormRequest(
            id=cancelled.id, reason="withdrawn"), metadata=w.as_cm1)
        stack.clock.advance(hours=25)
        r1, r2 = stack.runners
        counts = await asyncio.gather(*[check_overdue(r.ctx) for r in (r1, r2, r1, r2)])
        assert sum(counts) == 6  # each form claimed by exactly one pass of one replica
        async with r1.db.read() as s:
            rows = (await s.exec(select(OutboxEvent.ce_subject).where(
                col(OutboxEvent.subject) == OVERDUE))).all()
        ids = {f.id for f in forms}
        assert sorted(rows) == sorted(ids)
        msgs = await events_about(nats_url, OVERDUE, ids, absent=frozenset({cancelled.id}))
        assert sorted(m.headers["ce-subject"] for m in msgs) == sorted(ids)
