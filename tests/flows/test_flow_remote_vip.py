"""Flows 3 and 4 (DESIGN.md section 4), end to end on one real NATS server: the directory,
remote and vip services, asserted through their APIs."""

from __future__ import annotations

from pathlib import Path

from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.remote.v1 import campaign_pb2 as cpb
from branch.remote.v1 import remote_service_pb2 as rapi
from branch.remote.v1 import remote_service_pb2_grpc as rgrpc
from branch.remote.v1 import ticket_pb2 as tpb
from branch.vip.v1 import advisory_pb2, roster_pb2
from branch.vip.v1 import vip_service_pb2 as api

from services.remote.server import SPEC as REMOTE
from tests.harness import ADMIN, SUPERVISOR, auth, eventually
from tests.vip.support import ROLE, Branch, branch, broker


def remote(b: Branch) -> rgrpc.RemoteServiceAsyncStub:
    return rgrpc.RemoteServiceStub(b.channels["remote"])


async def test_flow3_hotline_caller_is_a_key_client(tmp_path: Path) -> None:
    async with branch(tmp_path, REMOTE) as b:
        br = await b.staff(ROLE.ROLE_BROKER)
        agent = await b.staff(ROLE.ROLE_SERVICE_AGENT)
        md = auth(agent, "service_agent")
        await remote(b).SetAgentDuty(rapi.SetAgentDutyRequest(
            staff_id=agent, lines=[tpb.LINE_INVESTMENT], on_duty=True), metadata=md)
        client_id = await b.key_client(br)
        ticket = await remote(b).OpenTicket(rapi.OpenTicketRequest(ticket=tpb.Ticket(
            line=tpb.LINE_INVESTMENT, client_id=client_id, caller_name="Caller",
            caller_phone="13900000000", category="market",
            summary="Asks whether to sell after the drop", priority=tpb.PRIORITY_URGENT)),
            metadata=md)

        async def advisory() -> advisory_pb2.Advisory | None:
            res = await b.vip.ListAdvisories(api.ListAdvisoriesRequest(
                source_ticket_id=ticket.id), metadata=SUPERVISOR)
            return res.advisories[0] if res.advisories else None

        adv: advisory_pb2.Advisory = await eventually(advisory)
        assert adv.client_id == client_id and adv.assignee_id == br
        assert adv.source == advisory_pb2.ADVISORY_SOURCE_TICKET
        assert adv.urgency == advisory_pb2.URGENCY_HIGH
        assert adv.question == "Asks whether to sell after the drop"
        inbox = await b.inbox(br)
        assert [i.advisory.id for i in inbox.items] == [adv.id]

        # the ticket shows the link back
        async def linked() -> bool:
            t = await remote(b).GetTicket(rapi.GetTicketRequest(id=ticket.id),
                                          metadata=SUPERVISOR)
            return t.vip_advisory_id == adv.id

        await eventually(linked)

        # a standard client's ticket opens nothing here
        std = await b.client(broker_id=br, tier=client_pb2.TIER_STANDARD)
        other = await remote(b).OpenTicket(rapi.OpenTicketRequest(ticket=tpb.Ticket(
            line=tpb.LINE_INVESTMENT, client_id=std, caller_name="Caller",
            caller_phone="13900000001", category="market", summary="General question",
            priority=tpb.PRIORITY_NORMAL)), metadata=md)
        marker = await remote(b).OpenTicket(rapi.OpenTicketRequest(ticket=tpb.Ticket(
            line=tpb.LINE_INVESTMENT, client_id=client_id, caller_name="Caller",
            caller_phone="13900000000", category="market", summary="Second call",
            priority=tpb.PRIORITY_NORMAL)), metadata=md)

        async def marker_seen() -> bool:
            res = await b.vip.ListAdvisories(api.ListAdvisoriesRequest(
                source_ticket_id=marker.id), metadata=SUPERVISOR)
            return bool(res.advisories)

        await eventually(marker_seen)
        res = await b.vip.ListAdvisories(api.ListAdvisoriesRequest(source_ticket_id=other.id),
                                         metadata=SUPERVISOR)
        assert list(res.advisories) == []
        # the broker answers; the ticket's advisory is done
        done = await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
            id=adv.id, advice="Hold; the drop is sector-wide.", risk_level=client_pb2.RiskLevel.ValueType(2)),
            metadata=broker(br))
        assert done.state == advisory_pb2.ADVISORY_STATE_ANSWERED


async def test_flow4_client_becomes_key(tmp_path: Path) -> None:
    async with branch(tmp_path, REMOTE) as b:
        br = await b.staff(ROLE.ROLE_BROKER)
        agent = await b.staff(ROLE.ROLE_SERVICE_AGENT)
        md = auth(agent, "service_agent")
        client_id = await b.client(broker_id=br, tier=client_pb2.TIER_STANDARD)
        campaign = await remote(b).CreateCampaign(rapi.CreateCampaignRequest(
            campaign=cpb.Campaign(
                name="Spring check-in", purpose="service review",
                kind=cpb.CAMPAIGN_KIND_GENERAL, start_date="2026-03-02",
                end_date="2026-03-31", agent_ids=[agent], daily_quota=5, max_attempts=3,
                retry_backoff_minutes=30)), metadata=SUPERVISOR)

        async def targeted() -> list[cpb.CallbackTarget]:
            t = await remote(b).ListTargets(rapi.ListTargetsRequest(campaign_id=campaign.id),
                                            metadata=SUPERVISOR)
            return [x for x in t.targets if x.client_id == client_id]

        [target] = await eventually(targeted)
        assert target.state == cpb.TARGET_STATE_PENDING

        await b.directory.ChangeClientTier(dir_api.ChangeClientTierRequest(
            id=client_id, tier=client_pb2.TIER_KEY, reason="pays key commission"),
            metadata=ADMIN)

        # vip puts the client on the roster with the dedicated broker
        entry = await b.on_roster(client_id)
        assert entry.status == roster_pb2.ROSTER_STATUS_ACTIVE and entry.broker_id == br
        listed = await b.vip.ListRoster(api.ListRosterRequest(), metadata=broker(br))
        assert [e.client_id for e in listed.entries] == [client_id]

        # remote stops queuing the client in general campaigns
        async def removed() -> cpb.CallbackTarget | None:
            t = await remote(b).ListTargets(rapi.ListTargetsRequest(campaign_id=campaign.id),
                                            metadata=SUPERVISOR)
            mine = [x for x in t.targets if x.client_id == client_id]
            return mine[0] if mine and mine[0].state == cpb.TARGET_STATE_REMOVED else None

        gone = await eventually(removed)
        assert gone.removed_reason == "became a key client"
        nxt = await remote(b).NextCallback(rapi.NextCallbackRequest(), metadata=md)
        assert nxt.target.client_id != client_id
