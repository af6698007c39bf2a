"""The client manager's, the consultant's and the service agent's days in a real browser,
against the real services (conftest.py): one journey per role, each with a refusal that
shows its error and changes nothing, and axe-core on every page visited."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from branch.directory.v1 import client_pb2, holding_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub
from branch.onsite.v1 import consultation_pb2, day_pb2
from branch.onsite.v1 import onsite_service_pb2 as oapi
from branch.onsite.v1.onsite_service_pb2_grpc import OnsiteServiceStub
from branch.remote.v1 import campaign_pb2
from branch.remote.v1 import remote_service_pb2 as rapi
from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceStub

from services.common.protos import ts
from tests.console.conftest import Suite, _person, axe_check, sign_in
from tests.harness import ADMIN, SUPERVISOR, auth, eventually

if TYPE_CHECKING:
    from branch.onsite.v1.onsite_service_pb2_grpc import OnsiteServiceAsyncStub
    from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceAsyncStub

ZONE = ZoneInfo("Asia/Shanghai")
CALLER_PHONE = "13912345678"


@dataclass
class Field:
    manager: str  # employee numbers
    consultant: str
    agent: str
    manager_id: str
    agent_id: str
    onsite_client: client_pb2.Client
    remote_client: client_pb2.Client
    form_id: str  # raised for the consultant, advice of R4 does not suit the client (C2)
    onsite: OnsiteServiceAsyncStub
    remote: RemoteServiceAsyncStub


async def _client(d: Any, name: str, phone: str, channel: int, tolerance: int,
                  manager_id: str = "") -> client_pb2.Client:
    assessed = (datetime.now(ZONE).date() - timedelta(days=100)).isoformat()
    made: client_pb2.Client = await d.CreateClient(dapi.CreateClientRequest(
        client=client_pb2.Client(
            account_no=f"33{uuid.uuid4().int % 10**9:09d}", display_name=name, phone=phone,
            channel=client_pb2.Channel.ValueType(channel), tier=client_pb2.TIER_STANDARD, risk_tolerance=client_pb2.RiskTolerance.ValueType(tolerance),
            risk_assessed_on=assessed, client_manager_id=manager_id, opened_on="2021-03-04",
            commission_rate="0.0003")), metadata=ADMIN)
    return made


async def _history(d: Any, onsite_id: str, remote_id: str) -> None:
    now = datetime.now(UTC)

    async def records() -> Any:
        for ticker, name, risk, price in (("600001", "Alpha Steel", 4, "12"),
                                          ("600002", "Beta Power", 2, "6")):
            yield dapi.ImportTradesRequest(security=holding_pb2.Security(
                ticker=ticker, name=name, risk_level=risk, last_price=price))  # type: ignore[arg-type]
        for n, (ticker, side, qty, price, days) in enumerate((
                ("600001", 1, 100, "10", 20), ("600002", 1, 200, "5", 15),
                ("600001", 2, 100, "12", 10))):
            yield dapi.ImportTradesRequest(trade=holding_pb2.Trade(
                trade_id=f"{remote_id}-{n}", client_id=remote_id, ticker=ticker,
                side=side, quantity=qty, price=price, fee="1",  # type: ignore[arg-type]
                trade_time=ts(now - timedelta(days=days))))
        as_of = (now - timedelta(days=1)).date().isoformat()
        yield dapi.ImportTradesRequest(holding=dapi.HoldingSnapshot(
            client_id=remote_id, ticker="600002", quantity=200, cost_price="5",
            market_price="6", as_of=as_of))
        yield dapi.ImportTradesRequest(holding=dapi.HoldingSnapshot(
            client_id=onsite_id, ticker="600001", quantity=1000, cost_price="11.50",
            market_price="12", as_of=as_of))

    result = await d.ImportTrades(records(), metadata=ADMIN)
    assert result.rejected == 0, result.rejections


@pytest.fixture(scope="module")
async def field(suite: Suite) -> AsyncIterator[Field]:
    d = suite.directory
    channels = {n: grpc.aio.insecure_channel(a) for n, a in suite.addrs.items()}
    ident = IdentityServiceStub(channels["directory"])
    tag = uuid.uuid4().hex[:4].upper()
    manager, consultant, agent = f"CM{tag}", f"CO{tag}", f"SA{tag}"
    manager_id = await _person(d, ident, manager, "孙经理", staff_pb2.ROLE_CLIENT_MANAGER)
    consultant_id = await _person(d, ident, consultant, "周顾问", staff_pb2.ROLE_CONSULTANT)
    agent_id = await _person(d, ident, agent, "吴客服", staff_pb2.ROLE_SERVICE_AGENT)
    onsite_client = await _client(d, "王大伟", "13700001111", client_pb2.CHANNEL_ONSITE,
                                  client_pb2.RISK_TOLERANCE_C2, manager_id)
    remote_client = await _client(d, "陈小芳", CALLER_PHONE, client_pb2.CHANNEL_REMOTE,
                                  client_pb2.RISK_TOLERANCE_C3)
    await _history(d, onsite_client.id, remote_client.id)
    onsite = OnsiteServiceStub(channels["onsite"])
    remote = RemoteServiceStub(channels["remote"])
    as_manager = auth(manager_id, "client_manager")
    today = datetime.now(ZONE).date()
    await onsite.SetDailyPlan(oapi.SetDailyPlanRequest(
        plan_date=today.isoformat(), rooms=["VIP 1", "Hall"],
        visits=[day_pb2.PlannedClient(client_id=onsite_client.id, reason="asked about steel")],
        note="Steel results today"), metadata=as_manager)
    form = await onsite.RaiseConsultationForm(oapi.RaiseConsultationFormRequest(
        client_id=onsite_client.id, consultant_id=consultant_id,
        request_note="Worried about Alpha Steel", request_id=str(uuid.uuid4())),
        metadata=as_manager)
    campaign = await remote.CreateCampaign(rapi.CreateCampaignRequest(
        campaign=campaign_pb2.Campaign(
            name="Spring check-in", purpose="Ask how the new app works for them.",
            kind=campaign_pb2.CAMPAIGN_KIND_GENERAL, start_date=today.isoformat(),
            end_date=(today + timedelta(days=30)).isoformat(), agent_ids=[agent_id],
            daily_quota=5, max_attempts=3, retry_backoff_minutes=30),
        request_id=str(uuid.uuid4())), metadata=SUPERVISOR)
    assert campaign.target_count == 1

    async def names_known() -> bool:  # the services' copies of the directory's names
        plan = await onsite.GetDailyPlan(oapi.GetDailyPlanRequest(), metadata=as_manager)
        targets = await remote.ListTargets(rapi.ListTargetsRequest(campaign_id=campaign.id),
                                           metadata=SUPERVISOR)
        return bool(plan.visits and plan.visits[0].client_display_name
                    and targets.targets[0].client_display_name)

    await eventually(names_known, timeout=20)
    yield Field(manager, consultant, agent, manager_id, agent_id, onsite_client,
                remote_client, form.id, onsite, remote)
    for ch in channels.values():
        await ch.close()


async def test_client_manager_day(page: Any, suite: Suite, field: Field) -> None:
    await sign_in(page, suite, field.manager)
    await page.wait_for_selector("h1:has-text('My day')")
    await axe_check(page)
    assert await page.get_attribute("#visits-progress", "value") == "0"
    assert await page.get_attribute("#visits-progress", "max") == "10"
    assert "0 of 10" in await page.inner_text("label[for=visits-progress]")
    plan = page.locator("#plan-visits a", has_text="王大伟")
    assert await plan.get_attribute("href") == f"/clients/{field.onsite_client.id}"
    # refused: a visit without a client says so beside the field, and records nothing
    await page.fill("#visit-room", "VIP 1")
    await page.click("form[action='/day/visits'] button[type=submit]")
    await page.wait_for_selector("#visit-client-error")
    assert await page.input_value("#visit-room") == "VIP 1"
    assert await page.get_attribute("#visit-client", "aria-invalid") == "true"
    await axe_check(page)
    visits = await field.onsite.ListVisits(oapi.ListVisitsRequest(
        client_manager_id=field.manager_id), metadata=SUPERVISOR)
    assert not visits.visits
    # a visit and a patrol move the bars; the client picked by pinyin initials as typed
    await page.fill("#visit-client", "wdw")
    choice = page.locator("#visit-client-choices label", has_text="王大伟")
    await choice.wait_for()
    assert await page.locator("#visit-client-choices input[type=radio]").count() == 1
    await axe_check(page)
    await choice.click()
    assert await page.is_checked(f"#visit-client-choices input[value='{field.onsite_client.id}']")
    await page.fill("#visit-topics", "steel, dividends")
    await page.click("form[action='/day/visits'] button[type=submit]")
    await page.wait_for_selector("text=The visit was recorded.")
    assert await page.get_attribute("#visits-progress", "value") == "1"
    assert "王大伟" in await page.inner_text("#visits-table")
    await page.fill("#patrol-room", "Hall")
    await page.fill("#patrol-observations", "Quiet morning")
    await page.click("form[action='/day/patrols'] button[type=submit]")
    await page.wait_for_selector("text=The patrol was recorded.")
    assert await page.get_attribute("#rooms-progress", "value") == "1"
    assert "1 of 3" in await page.inner_text("label[for=rooms-progress]")
    # raise a consultation form for the consultant
    await page.fill("#form-client", field.onsite_client.account_no[-6:] + "x")
    await page.locator("#form-client-choices", has_text="No client of yours").wait_for()
    await page.fill("#form-client", field.onsite_client.account_no)
    await page.locator("#form-client-choices label", has_text="王大伟").click()
    await page.fill("#form-consultant", "zgw")
    await page.locator("#form-consultant-choices label", has_text="周顾问").click()
    await page.fill("#form-note", "Asks whether to add to the position")
    await page.click("form[action='/day/forms'] button[type=submit]")
    await page.wait_for_selector("text=The consultation form was raised")
    assert "周顾问" in await page.inner_text("#my-forms")
    await axe_check(page)
    # the consultant's analysis form is not the manager's
    reply = await page.goto(suite.url + f"/forms/{field.form_id}")
    assert reply.status == 403
    assert "Consultant" in await page.inner_text("main")
    await axe_check(page)


async def test_pickers_work_without_script(page: Any, suite: Suite, field: Field) -> None:
    """Without htmx the words typed are posted: the page comes back with the matches to
    choose from (nothing recorded yet), and the one chosen is recorded."""
    await page.route("**/htmx.min.js", lambda route: route.fulfill(
        body="", content_type="text/javascript"))
    await sign_in(page, suite, field.manager)
    await page.wait_for_selector("h1:has-text('My day')")
    before = await field.onsite.ListVisits(oapi.ListVisitsRequest(
        client_manager_id=field.manager_id), metadata=SUPERVISOR)
    await page.fill("#visit-client", "wdw")
    await page.fill("#visit-room", "Hall")
    await page.click("form[action='/day/visits'] button[type=submit]")
    await page.wait_for_selector("#visit-client-error")
    assert "Choose the one match" in await page.inner_text("#visit-client-error")
    assert await page.input_value("#visit-room") == "Hall"
    await axe_check(page)
    after = await field.onsite.ListVisits(oapi.ListVisitsRequest(
        client_manager_id=field.manager_id), metadata=SUPERVISOR)
    assert len(after.visits) == len(before.visits)
    await page.check(f"#visit-client-choices input[value='{field.onsite_client.id}']")
    await page.click("form[action='/day/visits'] button[type=submit]")
    await page.wait_for_selector("text=The visit was recorded.")
    after = await field.onsite.ListVisits(oapi.ListVisitsRequest(
        client_manager_id=field.manager_id), metadata=SUPERVISOR)
    assert [v.client_id for v in after.visits][:1] == [field.onsite_client.id]
    assert len(after.visits) == len(before.visits) + 1


async def test_consultant_writes_the_analysis_with_the_suitability_check(
        page: Any, suite: Suite, field: Field) -> None:
    await sign_in(page, suite, field.consultant)
    await page.wait_for_selector("h1:has-text('Forms inbox')")
    inbox = await page.inner_text("main")
    assert "王大伟" in inbox and "600001" in inbox and "R4" in inbox and "孙经理" in inbox
    await axe_check(page)
    await page.click(f"a[href='/forms/{field.form_id}']")
    await page.wait_for_selector("#analysis")
    assert "C2" in await page.inner_text("#client-tolerance")
    await axe_check(page)
    # advice of R4 for a C2 client: the service refuses it, in words, beside the risk level
    await page.fill("#analysis", "Alpha Steel is 100% of the portfolio.")
    await page.fill("#advice", "Add to Alpha Steel on weakness.")
    await page.select_option("#advice-risk", "4")
    await page.click("form[action$='/analysis'] button[type=submit]")
    await page.wait_for_selector("#advice-risk-error")
    assert "unsuitable" in (await page.inner_text("#advice-risk-error")).lower()
    assert await page.input_value("#analysis") == "Alpha Steel is 100% of the portfolio."
    await axe_check(page)
    form = await field.onsite.GetConsultationForm(
        oapi.GetConsultationFormRequest(id=field.form_id), metadata=SUPERVISOR)
    assert form.state == consultation_pb2.FORM_STATE_RAISED
    # with a reason the override is recorded and shown
    await page.fill("#override", "Client insists; signed the risk disclosure.")
    await page.click("form[action$='/analysis'] button[type=submit]")
    await page.wait_for_selector("#override-recorded")
    recorded = await page.inner_text("#override-recorded")
    assert "Client insists" in recorded and "R4" in recorded and "C2" in recorded
    await axe_check(page)
    form = await field.onsite.GetConsultationForm(
        oapi.GetConsultationFormRequest(id=field.form_id), metadata=SUPERVISOR)
    assert form.state == consultation_pb2.FORM_STATE_ANALYSED and form.suitability_override


async def test_service_agent_desk_callback_and_report(page: Any, suite: Suite,
                                                      field: Field) -> None:
    await sign_in(page, suite, field.agent)
    await page.wait_for_selector("h1:has-text('Service desk')")
    await axe_check(page)
    # refused: a phone number that is not one; nothing opened
    await page.fill("#caller-phone", "call me")
    await page.fill("#ticket-summary", "Cannot log in to the app")
    await page.click("form[action='/desk/tickets'] button[type=submit]")
    await page.wait_for_selector("#caller-phone-error")
    assert await page.input_value("#ticket-summary") == "Cannot log in to the app"
    await axe_check(page)
    mine = await field.remote.ListTickets(rapi.ListTicketsRequest(staff_id=field.agent_id),
                                          metadata=SUPERVISOR)
    assert not mine.tickets
    # the caller's number, typed their way, identifies the client
    await page.fill("#caller-phone", "+86 139-1234-5678")
    await page.select_option("#ticket-line", label="Technical support")
    await page.click("form[action='/desk/tickets'] button[type=submit]")
    await page.wait_for_selector("text=the caller is your client 陈小芳")
    # the list that was empty after the refusal above holds this one ticket now
    mine = await field.remote.ListTickets(rapi.ListTicketsRequest(staff_id=field.agent_id),
                                          metadata=SUPERVISOR)
    assert len(mine.tickets) == 1
    link = page.locator("#ticket-client a")
    assert await link.get_attribute("href") == f"/clients/{field.remote_client.id}"
    assert "on track" in await page.inner_text("main")
    await axe_check(page)
    await page.click("text=Back to the desk")
    desk = await page.inner_text("#ticket-desk")
    assert "陈小芳" in desk and "on track" in desk and "due" in desk
    assert " left" in desk  # the service's count of the time left (business time where so)
    # the next callback: client, phone, script; an outcome is required
    await page.click("text=Take my next callback")
    await page.wait_for_selector("#callback-card")
    assert "陈小芳" in await page.inner_text("h1")
    assert CALLER_PHONE in await page.inner_text("#callback-phone")
    assert "new app" in await page.inner_text("#callback-script")
    await axe_check(page)
    await page.fill("#callback-notes", "Happy with the app")
    await page.click("form[action^='/desk/callback/'] button[type=submit]")
    await page.wait_for_selector("#outcome-error")
    assert await page.input_value("#callback-notes") == "Happy with the app"
    calls = await field.remote.ListCallbacks(rapi.ListCallbacksRequest(
        agent_id=field.agent_id), metadata=SUPERVISOR)
    assert not calls.callbacks
    await page.check("input[name=outcome][value='1']")
    await page.click("form[action^='/desk/callback/'] button[type=submit]")
    await page.wait_for_selector("text=The call was recorded.")
    calls = await field.remote.ListCallbacks(rapi.ListCallbacksRequest(
        agent_id=field.agent_id), metadata=SUPERVISOR)
    assert [c.outcome for c in calls.callbacks] == [campaign_pb2.CALLBACK_OUTCOME_REACHED]
    # a trading-record report with its charts
    await page.click("a[href='/reports']")
    await page.wait_for_selector("#report-client")
    await axe_check(page)
    start = (datetime.now(ZONE).date() - timedelta(days=60)).isoformat()
    await page.fill("#report-client", CALLER_PHONE[-4:])
    await page.locator("#report-client-choices label", has_text="陈小芳").click()
    await page.fill("#period-start", start)
    await page.click("form[action='/reports'] button[type=submit]")
    await page.wait_for_selector("#chart-pnl svg")
    await page.wait_for_selector("#chart-turnover svg")
    summary = await page.inner_text("#report-summary")
    assert "3 (2 buys, 1 sells)" in summary
    assert "陈小芳" in await page.inner_text("h1")
    await axe_check(page)
    doc = await page.request.get(
        suite.url + await page.get_attribute("a[href$='/document']", "href"))
    assert doc.headers["content-security-policy"].startswith("sandbox")
    assert "<svg" in await doc.text()
