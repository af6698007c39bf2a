"""Flows 1 to 4 of DESIGN.md through the gRPC APIs of the deployed suite (separate processes,
two replicas of each service, real clock), with a vip replica killed in flow 1 and the NATS
server restarted in flow 4; then every event is checked to have been handled exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dir_api

from services import registry
from tests.deploy.cluster import (
    Cluster,
    durable_consumers,
    processed,
    stream_messages,
    subject_matches,
    unsent_outbox,
)
from tests.deploy.suite import ANALYST, Suite, broker, today
from tests.harness import ADMIN, SUPERVISOR, auth, eventually, unique

FLOW_SERVICES = {"directory", "research", "vip", "remote"}

pytestmark = pytest.mark.skipif(
    not FLOW_SERVICES <= {s for s in registry.SERVICES if registry.spec(s) is not None},
    reason="flows need directory, research, vip and remote",
)


async def test_flow1_research_reaches_key_clients_with_a_vip_replica_killed(suite: Suite) -> None:
    from branch.research.v1 import research_service_pb2 as rapi
    from branch.vip.v1 import relay_pb2
    from branch.vip.v1 import vip_service_pb2 as vip

    br1, br2 = await suite.staff(staff_pb2.ROLE_BROKER), await suite.staff(staff_pb2.ROLE_BROKER)
    clients = await asyncio.gather(*(
        suite.client(broker_id=br1 if i % 2 else br2) for i in range(10)
    ))
    ticker = f"6{unique()[:5].upper()}"
    await suite.holdings([(c, ticker) for c in clients])
    await asyncio.gather(*(suite.on_roster(c) for c in clients))

    note = await suite.publish_note(ticker)
    # Mid-flow: the note's event is on its way to vip, whose second replica dies now.
    victim = suite.cluster.replicas["vip"][1]
    suite.cluster.signal(victim, signal.SIGKILL)

    async def relays() -> Any:
        res = await suite.vip.ListRelays(
            vip.ListRelaysRequest(note_id=note.id, page_size=100), metadata=SUPERVISOR)
        return list(res.relays) if len(res.relays) >= len(clients) else None

    tasks = await eventually(relays, timeout=45)
    # one relay per matched client, none twice, each in its own broker's inbox
    assert sorted(t.client_id for t in tasks) == sorted(clients)
    inbox = await suite.vip.GetInbox(vip.GetInboxRequest(page_size=100),
                                             metadata=broker(br1))
    mine = [i.relay for i in inbox.items if i.WhichOneof("item") == "relay"
            and i.relay.note_id == note.id]
    assert sorted(r.client_id for r in mine) == sorted(clients[1::2])
    relay = mine[0]
    await suite.vip.RecordRelayDelivery(vip.RecordRelayDeliveryRequest(
        id=relay.id, channel=relay_pb2.RELAY_CHANNEL_PHONE, summary="Explained the thesis."),
        metadata=broker(br1))
    await suite.vip.RecordRelayAcknowledgement(vip.RecordRelayAcknowledgementRequest(
        id=relay.id, note="understood"), metadata=broker(br1))

    async def reach() -> Any:
        r = await suite.research.GetNoteReach(
            rapi.GetNoteReachRequest(note_id=note.id), metadata=SUPERVISOR)
        # replicas apply delivered and acknowledged concurrently: wait for both
        return r if (r.relayed, r.acknowledged) == (1, 1) else None

    r = await eventually(reach, timeout=30)
    assert (r.targeted, r.relayed, r.acknowledged) == (len(clients), 1, 1)
    await suite.cluster.ensure_running()


async def test_flow2_vip_question_needs_research(suite: Suite) -> None:
    from branch.research.v1 import research_service_pb2 as rapi
    from branch.vip.v1 import advisory_pb2
    from branch.vip.v1 import vip_service_pb2 as vip

    br = await suite.staff(staff_pb2.ROLE_BROKER)
    client_id = await suite.client(broker_id=br)
    ticker = f"6{unique()[:5].upper()}"
    await suite.holdings([(client_id, ticker)])
    await suite.on_roster(client_id)
    await suite.on_shift(br)
    adv = await suite.vip.CreateAdvisory(vip.CreateAdvisoryRequest(
        advisory=advisory_pb2.Advisory(client_id=client_id, tickers=[ticker],
                                       question="Will the new excise tax hit margins?"),
        request_id=unique("adv-")), metadata=broker(br))
    adv = await suite.vip.RequestAdvisoryResearch(
        vip.RequestAdvisoryResearchRequest(id=adv.id), metadata=broker(br))
    assert adv.state == advisory_pb2.ADVISORY_STATE_AWAITING_RESEARCH
    assert adv.answer_due_time.seconds > 0  # the SLA clock runs throughout

    async def queued() -> Any:
        res = await suite.research.ListResearchRequests(
            rapi.ListResearchRequestsRequest(page_size=100), metadata=ANALYST)
        return [q for q in res.research_requests if q.advisory_id == adv.id]

    [question] = await eventually(queued, timeout=30)
    assert question.due_time == adv.answer_due_time
    note = await suite.publish_note(ticker)
    await suite.research.ClaimResearchRequest(
        rapi.ClaimResearchRequestRequest(id=question.id), metadata=ANALYST)
    await suite.research.AnswerResearchRequest(rapi.AnswerResearchRequestRequest(
        id=question.id, answer="Limited impact; see note.", note_id=note.id), metadata=ANALYST)

    async def answered() -> Any:
        a = await suite.vip.GetAdvisory(vip.GetAdvisoryRequest(id=adv.id),
                                                metadata=broker(br))
        return a if a.research_answer else None

    got = await eventually(answered, timeout=30)
    assert got.research_note_id == note.id
    done = await suite.vip.AnswerAdvisory(vip.AnswerAdvisoryRequest(
        id=adv.id, advice="Limited impact; keep the position.",
        risk_level=client_pb2.RISK_LEVEL_R3), metadata=broker(br))
    assert done.state == advisory_pb2.ADVISORY_STATE_ANSWERED


async def test_flow3_hotline_caller_is_a_key_client(suite: Suite) -> None:
    from branch.remote.v1 import remote_service_pb2 as rapi
    from branch.remote.v1 import ticket_pb2 as tpb
    from branch.vip.v1 import advisory_pb2
    from branch.vip.v1 import vip_service_pb2 as vip

    br = await suite.staff(staff_pb2.ROLE_BROKER)
    agent = await suite.staff(staff_pb2.ROLE_SERVICE_AGENT)
    md = auth(agent, "service_agent")
    await suite.remote.SetAgentDuty(rapi.SetAgentDutyRequest(
        staff_id=agent, lines=[tpb.LINE_INVESTMENT], on_duty=True), metadata=md)
    client_id = await suite.client(broker_id=br)
    await suite.on_roster(client_id)
    await suite.on_shift(br)  # else the advisory goes to whoever is on call
    ticket = await suite.remote.OpenTicket(rapi.OpenTicketRequest(ticket=tpb.Ticket(
        line=tpb.LINE_INVESTMENT, client_id=client_id, caller_name="Caller",
        caller_phone="13900000000", category="market",
        summary="Asks whether to sell after the drop", priority=tpb.PRIORITY_URGENT),
        request_id=unique("tk-")), metadata=md)

    async def advisory() -> list[advisory_pb2.Advisory] | None:
        res = await suite.vip.ListAdvisories(vip.ListAdvisoriesRequest(
            source_ticket_id=ticket.id), metadata=SUPERVISOR)
        return list(res.advisories) or None

    adv: advisory_pb2.Advisory
    [adv] = await eventually(advisory, timeout=30)
    assert adv.client_id == client_id and adv.assignee_id == br
    assert adv.source == advisory_pb2.ADVISORY_SOURCE_TICKET

    async def linked() -> bool:
        t = await suite.remote.GetTicket(rapi.GetTicketRequest(id=ticket.id),
                                                 metadata=SUPERVISOR)
        return t.vip_advisory_id == adv.id

    await eventually(linked, timeout=30)


async def test_flow4_client_becomes_key_across_a_nats_restart(suite: Suite) -> None:
    from branch.remote.v1 import campaign_pb2 as cpb
    from branch.remote.v1 import remote_service_pb2 as rapi
    from branch.vip.v1 import roster_pb2

    br = await suite.staff(staff_pb2.ROLE_BROKER)
    agent = await suite.staff(staff_pb2.ROLE_SERVICE_AGENT)
    client_id = await suite.client(broker_id=br, tier=client_pb2.TIER_STANDARD)
    campaign = await suite.remote.CreateCampaign(rapi.CreateCampaignRequest(
        campaign=cpb.Campaign(
            name="Check-in", purpose="service review", kind=cpb.CAMPAIGN_KIND_GENERAL,
            start_date=today().isoformat(), end_date=(today() + timedelta(days=29)).isoformat(),
            agent_ids=[agent], daily_quota=5, max_attempts=3, retry_backoff_minutes=30),
        request_id=unique("cmp-")), metadata=SUPERVISOR)

    async def target() -> Any:
        t = await suite.remote.ListTargets(rapi.ListTargetsRequest(
            campaign_id=campaign.id, page_size=1000), metadata=SUPERVISOR)
        mine = [x for x in t.targets if x.client_id == client_id]
        return mine[0] if mine else None

    assert (await eventually(target, timeout=30)).state == cpb.TARGET_STATE_PENDING

    # NATS goes down mid-flow: the tier change commits, its event waits in the outbox ...
    nats = suite.cluster.nats
    nats.stop()
    try:
        await suite.directory.ChangeClientTier(dir_api.ChangeClientTierRequest(
            id=client_id, tier=client_pb2.TIER_KEY, reason="pays key commission"),
            metadata=ADMIN)
        db = suite.cluster.database("directory")
        try:
            assert await unsent_outbox(db) >= 1
        finally:
            await db.dispose()
        await asyncio.sleep(1.0)
    finally:
        nats.start()
    # ... and is published when NATS is back: vip and remote react.
    entry = await suite.on_roster(client_id, timeout=60)
    assert entry.status == roster_pb2.ROSTER_STATUS_ACTIVE and entry.broker_id == br

    async def removed() -> Any:
        t = await target()
        return t if t and t.state == cpb.TARGET_STATE_REMOVED else None

    assert (await eventually(removed, timeout=60)).removed_reason == "became a key client"


async def test_every_event_was_handled_exactly_once_across_replicas(deployed: Cluster) -> None:
    """Each durable consumer (shared by a service's replicas) recorded every event on its
    subjects once, in the same transaction as the effect; nothing is parked or unsent."""
    consumers = await durable_consumers(deployed.nats.url)
    assert consumers, "no durable consumers: the event-driven services did not start"
    events = [m for m in await stream_messages(deployed.nats.url)
              if not m.subject.startswith("branch.parked.")]

    async def caught_up() -> bool:
        for durable, subjects in consumers.items():
            service = durable.split("-", 1)[0]
            wanted = {m.headers["ce-id"] for m in events
                      if any(subject_matches(s, m.subject) for s in subjects)}
            db = deployed.database(service)
            try:
                seen = await processed(db, durable)
            finally:
                await db.dispose()
            duplicates = [e for e, n in Counter(seen).items() if n > 1]
            assert duplicates == [], f"{durable} applied {duplicates} more than once"
            if not wanted <= set(seen):
                return False
        return True

    await eventually(caught_up, timeout=45)
    parked = await stream_messages(deployed.nats.url, "branch.parked.>")
    assert [m.subject for m in parked] == []

    async def drained() -> bool:
        for service in deployed.replicas:
            db = deployed.database(service)
            try:
                if await unsent_outbox(db):
                    return False
            finally:
                await db.dispose()
        return True

    await eventually(drained, timeout=15)
