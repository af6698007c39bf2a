"""Quality inspection in a real browser against the real insight service (conftest.py): an
agent cannot score (refused, nothing changes), the inspector scores a call from the queue
(a bad score refused beside its criterion; a failed securities check flagged), the agent
sees the result and appeals it; axe-core on every page visited.

Last month's callback calls of the agent are published as the remote service publishes them (insight
samples only a month that is over), then drawn by the inspector's button."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from branch.directory.v1 import staff_pb2
from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub
from branch.insight.v1 import insight_service_pb2 as iapi
from branch.insight.v1 import inspection_pb2 as K
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub
from branch.remote.v1 import campaign_pb2
from branch.remote.v1 import events_pb2 as remote_events

from services.common.protos import ts
from tests.console.conftest import Suite, _person, axe_check, sign_in
from tests.harness import auth, eventually
from tests.insight.month import Published, publish_all

if TYPE_CHECKING:
    from branch.insight.v1.insight_service_pb2_grpc import InsightServiceAsyncStub

ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class Inspection:
    inspector: str  # employee numbers
    agent: str
    agent_id: str
    inspector_id: str
    insight: InsightServiceAsyncStub


@pytest.fixture(scope="module")
async def quality(suite: Suite, nats_server: Any) -> AsyncIterator[Inspection]:
    ch = grpc.aio.insecure_channel(suite.addrs["directory"])
    ident = IdentityServiceStub(ch)
    tag = uuid.uuid4().hex[:4].upper()
    inspector, agent = f"QI{tag}", f"QA{tag}"
    inspector_id = await _person(suite.directory, ident, inspector, "郑质检",
                                 staff_pb2.ROLE_QUALITY_INSPECTOR)
    agent_id = await _person(suite.directory, ident, agent, "冯客服",
                             staff_pb2.ROLE_SERVICE_AGENT)
    await ch.close()
    # two of the agent's callback calls, in the middle of last month (branch-local)
    first = datetime.now(ZONE).date().replace(day=1)
    day = (first - timedelta(days=1)).replace(day=15)
    events = []
    for n, hour in enumerate((10, 14)):
        when = datetime.combine(day, time(hour), ZONE)
        events.append(Published("branch.remote.callback.recorded",
                                remote_events.CallbackRecorded(
                                    callback_id=f"qc-{tag}-{n}", campaign_id=f"qcamp-{tag}",
                                    client_id=suite.people.client_a.id, agent_id=agent_id,
                                    outcome=campaign_pb2.CALLBACK_OUTCOME_REACHED,
                                    call_time=ts(when)), when, agent_id))
    await publish_all(nats_server.url, events)
    insight_ch = grpc.aio.insecure_channel(suite.addrs["insight"])
    insight: InsightServiceAsyncStub = InsightServiceStub(insight_ch)
    yield Inspection(inspector, agent, agent_id, inspector_id, insight)
    await insight_ch.close()


async def test_inspector_scores_a_call_and_the_agent_appeals(
        page: Any, suite: Suite, quality: Inspection) -> None:
    as_inspector = auth(quality.inspector_id, "quality_inspector")
    # the inspector draws last month's sample from the queue page
    await sign_in(page, suite, quality.inspector)
    await page.wait_for_selector("h1:has-text('Inspections')")
    await axe_check(page)

    async def drawn() -> bool:
        await page.click("form[action='/inspections/draw'] button[type=submit]")
        await page.wait_for_selector("text=Last month's sample was drawn.")
        return "冯客服" in await page.inner_text("#inspection-queue")

    await eventually(drawn, timeout=20)
    await axe_check(page)
    mine = await quality.insight.ListInspections(iapi.ListInspectionsRequest(
        person_id=quality.agent_id), metadata=as_inspector)
    target = mine.inspections[0]
    assert target.state == K.INSPECTION_STATE_PENDING

    # an agent cannot score: not the queue, not the scorecard, not a forged post
    await page.click("text=Sign out")
    await sign_in(page, suite, quality.agent)
    await page.wait_for_selector("text=冯客服")
    reply = await page.goto(suite.url + "/inspections")
    assert reply.status == 403
    assert "Quality inspector" in await page.inner_text("main")
    await axe_check(page)
    await page.goto(suite.url + f"/inspections/{target.id}")
    assert await page.locator("form[action$='/score']").count() == 0
    assert "waiting to be scored" in await page.inner_text("#inspection-state")
    await axe_check(page)
    token = await page.get_attribute("form[action='/signout'] input[name=csrf_token]", "value")
    forged = await page.request.post(suite.url + f"/inspections/{target.id}/score", form={
        "csrf_token": token, **{f"score_{k}": "100" for k in (
            "service_wording", "attitude", "tone", "need_grasp", "handling_unexpected")},
        **{f"passed_{k}": "1" for k in ("no_return_promise", "risk_disclosed",
                                        "suitability_respected")}},
        headers={"Accept-Language": "en"})
    # refused for the role, not for the form's token (that would prove nothing here)
    assert forged.status == 403
    assert "This page is for: Quality inspector, Supervisor." in await forged.text()
    still = await quality.insight.GetInspection(iapi.GetInspectionRequest(id=target.id),
                                                metadata=as_inspector)
    assert still.state == K.INSPECTION_STATE_PENDING

    # the inspector scores it: a score of 101 is refused beside its criterion
    await page.click("text=Sign out")
    await sign_in(page, suite, quality.inspector)
    await page.wait_for_selector("#inspection-queue")
    await page.click(f"#inspection-queue a[href='/inspections/{target.id}']")
    await page.wait_for_selector("#score-service_wording")
    await axe_check(page)
    for key, value in (("service_wording", "101"), ("attitude", "80"), ("tone", "80"),
                       ("need_grasp", "80"), ("handling_unexpected", "80")):
        await page.fill(f"#score-{key}", value)
    await page.check("#check-no_return_promise-pass")
    await page.check("#check-risk_disclosed-fail")
    await page.fill("#comment-risk_disclosed", "介绍产品前未提示风险")
    await page.check("#check-suitability_respected-pass")
    await page.click("form[action$='/score'] button[type=submit]")
    await page.wait_for_selector("#score-service_wording-error")
    assert "0 to 100" in await page.inner_text("#score-service_wording-error")
    assert await page.input_value("#score-attitude") == "80"
    assert await page.is_checked("#check-risk_disclosed-fail")
    await axe_check(page)
    still = await quality.insight.GetInspection(iapi.GetInspectionRequest(id=target.id),
                                                metadata=as_inspector)
    assert still.state == K.INSPECTION_STATE_PENDING
    # scored, with the failed securities check raised to compliance
    await page.fill("#score-service_wording", "80")
    await page.click("form[action$='/score'] button[type=submit]")
    await page.wait_for_selector("text=The inspection was scored.")
    assert "80.00" in await page.inner_text("#total-score")
    assert "raised to compliance" in await page.inner_text("#flagged")
    await axe_check(page)
    scored = await quality.insight.GetInspection(iapi.GetInspectionRequest(id=target.id),
                                                 metadata=as_inspector)
    assert scored.state == K.INSPECTION_STATE_SCORED and scored.compliance_flagged
    assert scored.inspector_id == quality.inspector_id

    # the agent sees the result and appeals; an empty reason is refused beside it
    await page.click("text=Sign out")
    await sign_in(page, suite, quality.agent)
    await page.click("a[href='/my-inspections']")
    await page.wait_for_selector("#my-inspections")
    row = await page.inner_text("#my-inspections")
    assert "80.00" in row and "securities check failed" in row
    await axe_check(page)
    await page.click(f"#my-inspections a[href='/inspections/{target.id}']")
    await page.wait_for_selector("#scores-table")
    assert "未提示风险" in await page.inner_text("#scores-table")
    await axe_check(page)
    await page.click("form[action$='/appeal'] button[type=submit]")
    await page.wait_for_selector("#appeal-reason-error")
    await axe_check(page)
    await page.fill("#appeal-reason", "通话开头已宣读风险提示。")
    await page.click("form[action$='/appeal'] button[type=submit]")
    await page.wait_for_selector("text=Your appeal was sent")
    assert "open" in await page.inner_text("#appeals")
    assert await page.locator("form[action$='/appeal']").count() == 0
    await axe_check(page)
    appeals = await quality.insight.ListAppeals(iapi.ListAppealsRequest(),
                                                metadata=auth(quality.agent_id,
                                                              "service_agent"))
    assert [(a.inspection_id, a.state) for a in appeals.appeals] == [
        (target.id, K.APPEAL_STATE_OPEN)]
