"""The broker's, analyst's and compliance officer's days in a real browser against the real
services (conftest.py): the VIP inbox, an advisory answered, a published note reaching the
broker's open inbox live (server-sent events, no reload) and relayed with the client's
acknowledgement; the note editor and research requests; the review queue with the difference
between revisions. Refusals: another broker's advisory, an analyst approving."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub
from branch.research.v1 import note_enums_pb2, note_pb2, research_request_pb2
from branch.research.v1 import research_service_pb2 as rapi
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub
from branch.vip.v1 import advisory_pb2
from branch.vip.v1 import vip_service_pb2 as vapi
from branch.vip.v1.vip_service_pb2_grpc import VipServiceStub
from google.protobuf.field_mask_pb2 import FieldMask

from tests.console.conftest import Suite, _person, axe_check, sign_in
from tests.harness import Metadata, auth, eventually

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub
    from branch.vip.v1.vip_service_pb2_grpc import VipServiceAsyncStub

ZONE = ZoneInfo("Asia/Shanghai")
# the inbox page's event stream is open (htmx's sse extension keeps it on the element)
STREAM_OPEN = """() => { const e = document.querySelector('[sse-connect]');
  const d = e && e['htmx-internal-data'];
  return !!(d && d.sseEventSource && d.sseEventSource.readyState === 1) }"""
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def checked(page: Any) -> None:
    """axe-core, and names on the page, never ids."""
    await axe_check(page)
    shown = await page.inner_text("body")
    assert not UUID.search(shown), UUID.search(shown)


@dataclass
class Desk:
    analyst_no: str
    compliance_no: str
    analyst: Metadata  # harness tokens with the real staff ids
    broker_a: Metadata
    broker_b: Metadata
    vip: VipServiceAsyncStub
    research: ResearchServiceAsyncStub
    advisory_a: advisory_pb2.Advisory
    advisory_b: advisory_pb2.Advisory


def _valid_until(days: int = 30) -> str:
    return (datetime.now(ZONE).date() + timedelta(days=days)).isoformat()


@pytest.fixture(scope="module")
async def desk(suite: Suite) -> AsyncIterator[Desk]:
    p = suite.people
    tag = p.admin_no[1:]
    async with grpc.aio.insecure_channel(suite.addrs["directory"]) as dch, \
            grpc.aio.insecure_channel(suite.addrs["vip"]) as vch, \
            grpc.aio.insecure_channel(suite.addrs["research"]) as rch:
        ident = IdentityServiceStub(dch)
        analyst_id = await _person(suite.directory, ident, f"AN{tag}", "孙分析",
                                   staff_pb2.ROLE_ANALYST)
        await _person(suite.directory, ident, f"CO{tag}", "周合规", staff_pb2.ROLE_COMPLIANCE)
        vip, research = VipServiceStub(vch), ResearchServiceStub(rch)
        broker_a = auth(p.ids["broker_a"], "broker")
        broker_b = auth(p.ids["broker_b"], "broker")

        async def on_roster(client: client_pb2.Client, md: Any) -> bool:
            try:
                await vip.GetRosterEntry(vapi.GetRosterEntryRequest(client_id=client.id),
                                         metadata=md)
                return True
            except grpc.aio.AioRpcError:
                return False

        advisories = []
        for client, md, question in ((p.client_a, broker_a, "贵州茅台还能加仓吗？"),
                                     (p.client_b, broker_b, "钱多多的私密问题")):
            await eventually(lambda c=client, m=md: on_roster(c, m), timeout=20)
            advisories.append(await vip.CreateAdvisory(vapi.CreateAdvisoryRequest(
                advisory=advisory_pb2.Advisory(
                    client_id=client.id, question=question, tickers=["600519.SH"],
                    urgency=advisory_pb2.URGENCY_NORMAL,
                    source=advisory_pb2.ADVISORY_SOURCE_BROKER)), metadata=md))
        yield Desk(f"AN{tag}", f"CO{tag}", auth(analyst_id, "analyst"), broker_a, broker_b,
                   vip, research, advisories[0], advisories[1])


async def _csrf(page: Any) -> str:
    return str(await page.get_attribute("input[name=csrf_token]", "value"))


async def test_broker_answers_an_advisory_and_cannot_open_another_brokers(
        page: Any, suite: Suite, desk: Desk) -> None:
    await sign_in(page, suite, suite.people.broker_a)
    await page.wait_for_selector("#inbox-table")  # the broker's home is the inbox
    assert page.url.endswith("/inbox")
    table = await page.inner_text("#inbox-table")
    assert "张三丰" in table and "贵州茅台还能加仓吗" in table
    assert "钱多多" not in table and desk.advisory_a.client_id not in table  # names, no ids
    assert await page.get_attribute("#inbox-table a:has-text('张三丰')", "href") == (
        f"/clients/{suite.people.client_a.id}")
    await checked(page)

    await page.click("text=贵州茅台还能加仓吗？")
    await page.wait_for_selector("#advisory")
    assert "李经纪" in await page.inner_text("#advisory")
    await checked(page)
    await page.click("#acknowledge")
    await page.wait_for_selector("#done")
    assert "acknowledged" in await page.inner_text("#advisory-state")
    # the advice is required: vip's BadRequest is shown beside the field, nothing changes
    await page.click("#answer-form button[type=submit]")
    await page.wait_for_selector("#f-advice-error")
    await checked(page)
    await page.fill("#f-advice", "分批加仓，单只不超过两成仓位。")
    await page.select_option("#f-risk_level", str(client_pb2.RISK_LEVEL_R2))
    await page.click("#answer-form button[type=submit]")
    await page.wait_for_selector("#advice-given")
    assert "answered" in await page.inner_text("#advisory-state")
    await checked(page)

    # another broker's advisory: vip refuses, and nothing of it is shown
    reply = await page.goto(suite.url + f"/inbox/advisories/{desk.advisory_b.id}")
    assert reply.status == 403
    main = await page.inner_text("main")
    assert "钱多多" not in main and "私密" not in main
    await checked(page)

    # the sign-in ends while the inbox is open: the next notice takes the page to sign in
    await page.goto(suite.url + "/inbox")
    await page.wait_for_function(STREAM_OPEN)
    suite.clock.offset = timedelta(minutes=31)
    try:
        await desk.vip.CreateAdvisory(vapi.CreateAdvisoryRequest(advisory=advisory_pb2.Advisory(
            client_id=suite.people.client_a.id, question="还有一个问题",
            source=advisory_pb2.ADVISORY_SOURCE_BROKER)), metadata=desk.broker_a)
        await page.wait_for_url("**/signin?reason=idle&next=/inbox")
        assert "without activity" in await page.inner_text("main")
    finally:
        suite.clock.offset = timedelta()


async def test_analyst_writes_revises_and_submits_a_note_and_answers_a_request(
        page: Any, suite: Suite, desk: Desk) -> None:
    asked = await desk.research.CreateResearchRequest(rapi.CreateResearchRequestRequest(
        research_request=research_request_pb2.ResearchRequest(
            client_id=suite.people.client_a.id, question="白酒板块的估值还合理吗？",
            due_time=_ts(datetime.now(UTC) + timedelta(days=2)))), metadata=desk.broker_a)
    await sign_in(page, suite, desk.analyst_no)
    await page.wait_for_selector("#new-note")  # the analyst's home: their notes
    await checked(page)
    await page.click("#new-note")
    await page.wait_for_selector("#note-form")
    await checked(page)
    title = f"白酒行业周报 {uuid.uuid4().hex[:4]}"
    await page.fill("#f-title", title)
    await page.fill("#f-summary", "需求平稳。")
    await page.fill("#f-body", "第一段。\n第二段：估值合理。")
    await page.select_option("#f-kind", str(note_enums_pb2.NOTE_KIND_STOCK))
    await page.select_option("#f-risk_level", "2")
    await page.fill("#f-valid_until", _valid_until())
    await page.select_option("#f-audience", str(note_enums_pb2.AUDIENCE_KEY_CLIENTS))
    # a stock note without a stance: research's words appear beside the tickers
    await page.click("#save-note")
    await page.wait_for_selector("#stances-error")
    await checked(page)
    await page.fill("#ticker-1", "600519.SH")
    await page.select_option("#stance-1", str(note_enums_pb2.STANCE_HOLD))
    await page.click("#save-note")
    await page.wait_for_selector("#done")
    assert "revision 1" in await page.inner_text("#note-state")
    await checked(page)
    await page.fill("#f-body", "第一段。\n第二段：估值偏高，维持持有。")
    await page.click("#save-note")
    await page.wait_for_selector("text=Saved as a new revision.")
    assert "revision 2" in await page.inner_text("#note-state")
    await page.click("#submit-note")
    await page.wait_for_selector("text=Sent to compliance for review.")
    assert "submitted" in await page.inner_text("#note-state")
    assert "孙分析" in await page.inner_text("#revisions")
    await checked(page)
    note_id = page.url.rsplit("/", 1)[1].split("?")[0]

    # an analyst cannot approve: not the page, nor the form sent by hand
    reply = await page.goto(suite.url + f"/review/{note_id}")
    assert reply.status == 403
    assert "Compliance" in await page.inner_text("main")
    await checked(page)
    token = await _csrf(page)
    refused = await page.request.post(suite.url + f"/review/{note_id}/approve",
                                      form={"csrf_token": token, "revision": "2"},
                                      headers={"Accept-Language": "en"})
    # refused for the role, not for the form's token (that would prove nothing here)
    assert refused.status == 403
    assert "This page is for: Compliance." in await refused.text()
    still = await desk.research.GetNote(rapi.GetNoteRequest(id=note_id),
                                        metadata=desk.analyst)
    assert still.state == note_pb2.NOTE_STATE_SUBMITTED

    # research requests: claim, answer
    await page.goto(suite.url + "/research-requests")
    section = page.locator("section.request", has_text="白酒板块的估值还合理吗")
    await section.wait_for()
    assert "张三丰" in await section.inner_text() and "李经纪" in await section.inner_text()
    await checked(page)
    await section.locator("button", has_text="Claim").click()
    await page.wait_for_selector("#done")
    section = page.locator("section.request", has_text="白酒板块的估值还合理吗")
    await section.locator("textarea").fill("估值处于历史中位，可以持有。")
    await section.locator("button", has_text="Send the answer").click()
    await page.wait_for_selector("text=The answer was sent to whoever asked.")
    await checked(page)
    answered = await desk.research.GetResearchRequest(
        rapi.GetResearchRequestRequest(id=asked.id), metadata=desk.analyst)
    assert answered.state == research_request_pb2.RESEARCH_REQUEST_STATE_ANSWERED


def _ts(value: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    t = Timestamp()
    t.FromDatetime(value)
    return t


async def _submitted_note(desk: Desk, title: str, body2: str = "") -> note_pb2.Note:
    """A market note by the analyst, submitted for review: one revision, or two when body2
    is given (the second with that body)."""
    note = await desk.research.CreateNote(rapi.CreateNoteRequest(note=note_pb2.Note(
        title=title, summary="市场综述。", body="上证指数震荡。\n成交温和。",
        kind=note_enums_pb2.NOTE_KIND_MARKET, risk_level=client_pb2.RISK_LEVEL_R2,
        valid_until=_valid_until(), audience=note_enums_pb2.AUDIENCE_KEY_CLIENTS)),
        metadata=desk.analyst)
    if body2:
        await desk.research.UpdateNote(rapi.UpdateNoteRequest(
            note=note_pb2.Note(id=note.id, body=body2),
            update_mask=FieldMask(paths=["body"])), metadata=desk.analyst)
    return await desk.research.SubmitNote(rapi.SubmitNoteRequest(id=note.id),
                                          metadata=desk.analyst)


async def test_compliance_reviews_the_difference_publishes_and_the_broker_sees_it_live(
        page: Any, browser: Any, suite: Suite, desk: Desk) -> None:
    tag = uuid.uuid4().hex[:4]
    sent_back = await _submitted_note(desk, f"退回的周评 {tag}")
    note = await _submitted_note(desk, f"市场周评 {tag}", "上证指数震荡上行。\n成交温和。")

    # the broker's inbox stays open in another tab; its host (localhost) keeps its own cookie
    broker_site = dataclasses.replace(suite, url=suite.url.replace("127.0.0.1", "localhost"))
    inbox = await browser.new_page()
    try:
        await sign_in(inbox, broker_site, suite.people.broker_a)
        await inbox.wait_for_selector("#inbox-counts")
        await inbox.evaluate("() => { window.notReloaded = true }")
        assert note.title not in await inbox.inner_text("#inbox")

        await sign_in(page, suite, desk.compliance_no)
        await page.wait_for_selector("#review-table")  # compliance's home: the queue
        assert "孙分析" in await page.inner_text("#review-table")
        await checked(page)

        await page.click(f"text={sent_back.title}")
        await page.wait_for_selector("#diff")
        assert "the first" in await page.inner_text("#diff-h")
        await page.click("#send-back")  # without comments: research asks for them
        await page.wait_for_selector("#return-return_comments-error")
        await checked(page)
        await page.fill("#return-return_comments", "请给出结论。")
        await page.click("#send-back")
        await page.wait_for_selector("text=Sent back to the author")

        await page.click(f"text={note.title}")
        await page.wait_for_selector("#diff")
        assert "revision 1 to revision 2" in await page.inner_text("#diff-h")
        assert await page.inner_text("#diff ins") == "上行"  # the words added, nothing else
        assert "1 line differs" in await page.inner_text("#diff-count")
        await checked(page)
        await page.click("#approve")
        await page.wait_for_selector("#publish")
        await checked(page)
        await page.click("#publish")
        await page.wait_for_selector("text=Published")

        # vip plans the relays and the broker's open page shows it, without a reload
        row = inbox.locator("#inbox-table tr", has_text=note.title)
        await row.wait_for(timeout=20_000)
        assert await inbox.evaluate("() => window.notReloaded === true")
        assert "张三丰" in await row.inner_text()
        await checked(inbox)

        # relay it, then record the client's acknowledgement
        await row.locator("a", has_text=note.title).click()
        await inbox.wait_for_selector("#deliver-form")
        await checked(inbox)
        await inbox.select_option("#f-channel", "1")
        await inbox.fill("#f-summary", "电话讲解了市场周评的要点。")
        await inbox.click("#deliver-form button[type=submit]")
        await inbox.wait_for_selector("#ack-form")
        await inbox.click("#ack-form button[type=submit]")
        await inbox.wait_for_selector("text=The client's acknowledgement is recorded.")
        assert "acknowledged" in await inbox.inner_text("#relay-state")
        await checked(inbox)
    finally:
        await inbox.close()
