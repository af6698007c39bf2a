"""The services' errors in Chinese say the specific thing, through real gRPC: every service's
LocalizedMessage names what was not found (回访活动, 咨询表, ...) and its id, each bad field by
its human name, the rule a failed precondition broke and why permission was denied; a caller
that sends `accept-language: en` gets the English (services/common/messages.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import grpc
import pytest
from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.insight.v1 import insight_service_pb2 as iapi
from branch.insight.v1.insight_service_pb2_grpc import InsightServiceStub
from branch.onsite.v1 import onsite_service_pb2 as oapi
from branch.onsite.v1.onsite_service_pb2_grpc import OnsiteServiceStub
from branch.remote.v1 import campaign_pb2
from branch.remote.v1 import remote_service_pb2 as rapi
from branch.remote.v1.remote_service_pb2_grpc import RemoteServiceStub
from branch.research.v1 import research_service_pb2 as sapi
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub
from branch.vip.v1 import vip_service_pb2 as vapi
from branch.vip.v1.vip_service_pb2_grpc import VipServiceStub
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.common.server import ServiceRunner
from tests.cli.suite import six_services
from tests.harness import auth, channel
from tests.research.factories import create

MISSING = str(uuid.uuid4())
ALL = auth("sup-1", "supervisor", "admin")
ANALYST = auth("ana-1", "analyst")
OTHER_ANALYST = auth("ana-2", "analyst")
AGENT = auth("agent-1", "service_agent")
EN = (("accept-language", "en"),)
FUTURE = (date.today() + timedelta(days=30)).isoformat()  # the services run on the real clock


@dataclass
class Stubs:
    directory: Any
    onsite: Any
    remote: Any
    vip: Any
    research: Any
    insight: Any


@pytest.fixture(scope="module")
async def stubs(tmp_path_factory: pytest.TempPathFactory,
                nats_server: Any) -> AsyncIterator[Stubs]:
    async with six_services(tmp_path_factory.mktemp("words"), nats_server.url) as runners:
        r: dict[str, ServiceRunner] = runners
        async with channel(r["directory"]) as d, channel(r["onsite"]) as o, \
                channel(r["remote"]) as m, channel(r["vip"]) as v, \
                channel(r["research"]) as s, channel(r["insight"]) as i:
            yield Stubs(DirectoryServiceStub(d), OnsiteServiceStub(o), RemoteServiceStub(m),
                        VipServiceStub(v), ResearchServiceStub(s), InsightServiceStub(i))


async def refused(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str, str, Any]:
    """The code, the English message, the LocalizedMessage ("locale: text") and the status."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    status = rpc_status.from_call(err.value)  # type: ignore[arg-type]
    assert status is not None, err.value
    said = [error_details_pb2.LocalizedMessage() for d in status.details
            if d.Is(error_details_pb2.LocalizedMessage.DESCRIPTOR)]
    assert len(said) == 1, status
    next(d for d in status.details if d.Is(said[0].DESCRIPTOR)).Unpack(said[0])
    return (err.value.code(), err.value.details() or "", f"{said[0].locale}: {said[0].message}",
            status)


Case = Callable[[Stubs], Awaitable[Any]]
NOT_FOUND: list[tuple[str, Case, str]] = [
    ("directory client", lambda s: s.directory.GetClient(dapi.GetClientRequest(id=MISSING),
                                                         metadata=ALL), "找不到客户"),
    ("onsite form", lambda s: s.onsite.GetConsultationForm(
        oapi.GetConsultationFormRequest(id=MISSING), metadata=ALL), "找不到咨询表"),
    ("onsite meeting", lambda s: s.onsite.GetMeeting(oapi.GetMeetingRequest(id=MISSING),
                                                     metadata=ALL), "找不到客户交流会"),
    ("remote campaign", lambda s: s.remote.GetCampaign(rapi.GetCampaignRequest(id=MISSING),
                                                       metadata=ALL), "找不到回访活动"),
    ("remote ticket", lambda s: s.remote.GetTicket(rapi.GetTicketRequest(id=MISSING),
                                                   metadata=ALL), "找不到热线工单"),
    ("vip advisory", lambda s: s.vip.GetAdvisory(vapi.GetAdvisoryRequest(id=MISSING),
                                                 metadata=ALL), "找不到咨询请求"),
    ("research note", lambda s: s.research.GetNote(sapi.GetNoteRequest(id=MISSING),
                                                   metadata=ALL), "找不到研究报告"),
    ("insight scorecard", lambda s: s.insight.GetScorecard(iapi.GetScorecardRequest(id=MISSING),
                                                           metadata=ALL), "找不到评分表"),
]


@pytest.mark.parametrize(("case", "call", "words"), NOT_FOUND, ids=[c[0] for c in NOT_FOUND])
async def test_not_found_names_the_kind_of_thing_and_its_id(
        stubs: Stubs, case: str, call: Case, words: str) -> None:
    code, english, said, _ = await refused(call(stubs))
    assert code == grpc.StatusCode.NOT_FOUND
    assert said == f"zh-CN: {words} {MISSING}", said
    assert "not found" in english and MISSING in english  # the English is as before


async def test_vip_roster_says_the_client_is_not_on_it(stubs: Stubs) -> None:
    _, english, said, _ = await refused(stubs.vip.GetRosterEntry(
        vapi.GetRosterEntryRequest(client_id=MISSING), metadata=ALL))
    assert said == f"zh-CN: 客户 {MISSING} 不在重点客户名册中"
    assert english == f"client {MISSING} is not on the roster"


async def test_bad_fields_are_named_for_people_each_with_its_own_words(stubs: Stubs) -> None:
    code, english, said, status = await refused(stubs.directory.CreateClient(
        dapi.CreateClientRequest(client=client_pb2.Client(
            account_no="310000999999", display_name="李四", phone="call me",
            channel=client_pb2.CHANNEL_ONSITE, risk_tolerance=client_pb2.RISK_TOLERANCE_C3,
            risk_assessed_on="2025-06-01", commission_rate="2")), metadata=ALL))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert said.startswith("zh-CN: 请求参数有误："), said
    assert "电话：只能包含数字" in said and "佣金率：" in said, said
    assert "client.phone" in english  # the English still names the API fields
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    phone = next(v for v in bad.field_violations if v.field == "client.phone")
    assert phone.localized_message.locale == "zh-CN"
    assert phone.localized_message.message == "只能包含数字、空格或“-”，可以“+”开头"
    assert phone.description == "digits, spaces or '-', optionally starting with '+'"


async def test_onsite_bad_setting_names_the_delivery_deadline(stubs: Stubs) -> None:
    code, _, said, _ = await refused(stubs.onsite.UpdateOnsiteSettings(
        oapi.UpdateOnsiteSettingsRequest(settings=oapi.OnsiteSettings(
            delivery_deadline=duration_pb2.Duration(seconds=60))), metadata=ALL))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert said == "zh-CN: 请求参数有误：交付时限：须在 30 分钟至 14 天之间", said


async def test_remote_bad_campaign_names_each_field(stubs: Stubs) -> None:
    _, _, said, _ = await refused(stubs.remote.CreateCampaign(
        rapi.CreateCampaignRequest(campaign=campaign_pb2.Campaign(daily_quota=0)), metadata=ALL))
    assert "名称：须为 1 至 100 个字符" in said and "每日回访定额：须在 1 至 500 之间" in said \
        and "回访人员：须为 1 至 50 个员工编号" in said, said


async def test_research_failed_precondition_says_the_rule_and_the_state(stubs: Stubs) -> None:
    note = await create(stubs.research, ANALYST, valid_until=FUTURE)
    await stubs.research.SubmitNote(sapi.SubmitNoteRequest(id=note.id), metadata=ANALYST)
    await stubs.research.ApproveNote(sapi.ApproveNoteRequest(id=note.id, revision=note.revision),
                                     metadata=auth("comp-1", "compliance"))
    code, english, said, _ = await refused(stubs.research.SubmitNote(
        sapi.SubmitNoteRequest(id=note.id), metadata=ANALYST))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert said == "zh-CN: 只有草稿可以提交，该研究报告为审核通过状态", said
    assert english == "only a draft can be submitted, not a NOTE_STATE_APPROVED note"
    # the same refusal for a caller that asks for English
    _, _, said, _ = await refused(stubs.research.SubmitNote(
        sapi.SubmitNoteRequest(id=note.id), metadata=ANALYST + EN))
    assert said == f"en: {english}"


async def test_permission_denied_says_why(stubs: Stubs) -> None:
    note = await create(stubs.research, ANALYST, valid_until=FUTURE)
    code, _, said, _ = await refused(stubs.research.SubmitNote(
        sapi.SubmitNoteRequest(id=note.id), metadata=OTHER_ANALYST))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert said == "zh-CN: 只有研究报告的作者可以执行此操作", said
    # the role table's refusal names the method the role may not call
    code, _, said, _ = await refused(stubs.directory.ChangeClientTier(
        dapi.ChangeClientTierRequest(id=MISSING, tier=client_pb2.TIER_KEY), metadata=AGENT))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert said == "zh-CN: 您的角色无权调用接口 ChangeClientTier", said


async def test_english_when_the_caller_asks_for_it(stubs: Stubs) -> None:
    _, english, said, status = await refused(stubs.remote.GetCampaign(
        rapi.GetCampaignRequest(id=MISSING), metadata=ALL + (("accept-language", "en-GB,zh;q=0.5"),)))
    assert said == f"en: campaign {MISSING} not found" and english in said
    _, _, said, status = await refused(stubs.directory.CreateClient(
        dapi.CreateClientRequest(client=client_pb2.Client(display_name="x")),
        metadata=ALL + EN))
    assert said.startswith("en: invalid argument: ")
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert all(v.localized_message.locale == "en"
               and v.localized_message.message == v.description for v in bad.field_violations)
    # Chinese first by quality: Chinese
    _, _, said, _ = await refused(stubs.vip.GetAdvisory(
        vapi.GetAdvisoryRequest(id=MISSING), metadata=ALL + (("accept-language", "en;q=0.3, zh"),)))
    assert said.startswith("zh-CN: 找不到咨询请求")
