"""Flows 1 and 2 (DESIGN.md section 4), end to end on one real NATS server: the directory,
research and vip services, asserted through their APIs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from branch.directory.v1 import client_pb2
from branch.research.v1 import distribution_pb2, note_pb2
from branch.research.v1 import note_enums_pb2 as enums
from branch.research.v1 import research_request_pb2 as rr
from branch.research.v1 import research_service_pb2 as rapi
from branch.research.v1 import research_service_pb2_grpc as rgrpc
from branch.vip.v1 import advisory_pb2, relay_pb2, roster_pb2, rota_pb2
from branch.vip.v1 import vip_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from services.research.server import SPEC as RESEARCH
from services.vip.server import check_advisory_sla
from tests.harness import SUPERVISOR, auth, collect_events, eventually
from tests.vip.support import ROLE, Branch, branch, broker

ANALYST = auth("ana-1", "analyst")
COMPLIANCE = auth("comp-1", "compliance")


def research(b: Branch) -> rgrpc.ResearchServiceAsyncStub:
    return rgrpc.ResearchServiceStub(b.channels["research"])


async def publish_note(b: Branch, *tickers: str, risk: int = client_pb2.RISK_LEVEL_R3,
                       kind: int = enums.NOTE_KIND_STOCK) -> note_pb2.Note:
    stub = research(b)
    note = await stub.CreateNote(rapi.CreateNoteRequest(note=note_pb2.Note(
        title="Kweichow Moutai: margins hold", summary="Pricing power intact.",
        body="# Thesis\n\nSteady demand.", kind=enums.NoteKind.ValueType(kind),
        stances=[enums.TickerStance(ticker=t, stance=enums.STANCE_BUY) for t in tickers],
        risk_level=client_pb2.RiskLevel.ValueType(risk), valid_until="2026-03-31", audience=enums.AUDIENCE_ALL_CLIENTS)),
        metadata=ANALYST)
    await stub.SubmitNote(rapi.SubmitNoteRequest(id=note.id), metadata=ANALYST)
    await stub.ApproveNote(rapi.ApproveNoteRequest(id=note.id, revision=note.revision),
                           metadata=COMPLIANCE)
    return await stub.PublishNote(rapi.PublishNoteRequest(id=note.id), metadata=ANALYST)


async def test_flow1_research_reaches_key_clients_through_brokers(tmp_path: Path) -> None:
    async with branch(tmp_path, RESEARCH) as b:
        br1, br2 = await b.staff(ROLE.ROLE_BROKER), await b.staff(ROLE.ROLE_BROKER)
        c1 = await b.key_client(br1, tolerance=client_pb2.RISK_TOLERANCE_C4)
        c2 = await b.key_client(br2, tolerance=client_pb2.RISK_TOLERANCE_C3)
        c_low = await b.key_client(br1, tolerance=client_pb2.RISK_TOLERANCE_C1)
        c_std = await b.client(broker_id=br1, tier=client_pb2.TIER_STANDARD)
        await b.holdings([(c1, "600519"), (c2, "600519"), (c_low, "600519"),
                          (c_std, "600519")])

        note = await publish_note(b, "600519")

        async def relays() -> list[relay_pb2.RelayTask] | None:
            res = await b.vip.ListRelays(api.ListRelaysRequest(note_id=note.id),
                                         metadata=SUPERVISOR)
            return list(res.relays) if len(res.relays) == 3 else None

        tasks = {r.client_id: r for r in await eventually(relays)}
        assert tasks[c_low].state == relay_pb2.RELAY_STATE_WITHHELD
        assert c_std not in tasks
        # one task per matched client, in that client's broker's inbox only
        inbox1 = await b.inbox(br1)
        assert [i.relay.client_id for i in inbox1.items] == [c1]
        inbox2 = await b.inbox(br2)
        assert [i.relay.client_id for i in inbox2.items] == [c2]
        relay = inbox1.items[0].relay
        b.clock.advance(minutes=40)
        await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
            id=relay.id, channel=relay_pb2.RELAY_CHANNEL_PHONE,
            summary="Walked the client through the margin thesis."), metadata=broker(br1))
        await b.vip.RecordRelayAcknowledgement(api.RecordRelayAcknowledgementRequest(
            id=relay.id, note="understood"), metadata=broker(br1))

        async def reach() -> distribution_pb2.NoteReach | None:
            r = await research(b).GetNoteReach(rapi.GetNoteReachRequest(note_id=note.id),
                                               metadata=SUPERVISOR)
            return r if r.acknowledged == 1 else None

        r = await eventually(reach)
        assert (r.targeted, r.relayed, r.acknowledged, r.withheld_for_suitability) == (2, 1, 1, 1)
        assert r.relayed_by_brokers == 1
        assert r.median_time_to_relay.seconds == 40 * 60

        # withdrawing the note cancels the relay still open
        await research(b).WithdrawNote(rapi.WithdrawNoteRequest(id=note.id, reason="stale"),
                                       metadata=ANALYST)

        async def cancelled() -> bool:
            t = await b.vip.GetRelay(api.GetRelayRequest(id=tasks[c2].id), metadata=SUPERVISOR)
            return t.state == relay_pb2.RELAY_STATE_CANCELLED

        await eventually(cancelled)
        assert (await b.inbox(br2)).relay_count == 0


async def test_flow2_vip_question_needs_research(tmp_path: Path) -> None:
    async with branch(tmp_path, RESEARCH) as b:
        br, backup = await b.staff(ROLE.ROLE_BROKER), await b.staff(ROLE.ROLE_BROKER)
        sup = await b.staff(ROLE.ROLE_SUPERVISOR)
        client_id = await b.key_client(br, tolerance=client_pb2.RISK_TOLERANCE_C4)
        await b.holdings([(client_id, "600519")])
        await b.vip.UpdateRosterEntry(api.UpdateRosterEntryRequest(
            entry=roster_pb2.RosterEntry(client_id=client_id, backup_broker_id=backup),
            update_mask=FieldMask(paths=["backup_broker_id"])), metadata=SUPERVISOR)
        now = b.clock.now()
        await b.shift(br, now - timedelta(hours=1), now + timedelta(hours=7))
        await b.shift(sup, now - timedelta(hours=1), now + timedelta(hours=7),
                      role=rota_pb2.SHIFT_ROLE_SUPERVISOR)
        adv = await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(
            advisory=advisory_pb2.Advisory(client_id=client_id, tickers=["600519"],
                                           question="Will the new excise tax hit margins?")),
            metadata=broker(br))
        assert adv.assignee_id == br
        b.clock.advance(minutes=3)
        adv = await b.vip.RequestAdvisoryResearch(api.RequestAdvisoryResearchRequest(
            id=adv.id), metadata=broker(br))
        assert adv.state == advisory_pb2.ADVISORY_STATE_AWAITING_RESEARCH

        # research queues it for the analysts, due when the advisory's answer is due
        async def queued() -> list[rr.ResearchRequest]:
            res = await research(b).ListResearchRequests(rapi.ListResearchRequestsRequest(),
                                                         metadata=ANALYST)
            return [q for q in res.research_requests if q.advisory_id == adv.id]

        [question] = await eventually(queued)
        assert question.source == rr.RESEARCH_REQUEST_SOURCE_VIP_ADVISORY
        assert question.due_time == adv.answer_due_time
        assert list(question.tickers) == ["600519"]

        # the analysts are slow: the SLA clock keeps running and escalation fires
        b.clock.advance(minutes=58)
        ctx = b.runners["vip"].ctx
        assert await check_advisory_sla(ctx) == 2  # answer breach, step 1 to the backup
        got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=SUPERVISOR)
        assert got.answer_breached and got.escalated_to_id == backup
        assert (await b.inbox(backup)).advisory_count == 1

        # the answer is a note: published, then the analyst answers with it
        note = await publish_note(b, "600519")
        await research(b).ClaimResearchRequest(rapi.ClaimResearchRequestRequest(
            id=question.id), metadata=ANALYST)
        await research(b).AnswerResearchRequest(rapi.AnswerResearchRequestRequest(
            id=question.id, answer="Limited impact; see note.", note_id=note.id),
            metadata=ANALYST)

        async def answered() -> advisory_pb2.Advisory | None:
            a = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=broker(br))
            return a if a.research_answer else None

        got = await eventually(answered)
        assert got.research_note_id == note.id
        assert got.state == advisory_pb2.ADVISORY_STATE_ACKNOWLEDGED
        inbox = await b.inbox(br)
        kinds = {i.WhichOneof("item"): i for i in inbox.items}
        assert kinds["advisory"].next_action == "answer (research answer in)"
        assert kinds["relay"].relay.note_id == note.id  # the note itself, to relay

        # step 2 fires while the broker is still on it
        b.clock.advance(minutes=6)
        assert await check_advisory_sla(ctx) == 1
        got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=SUPERVISOR)
        assert got.escalation_level == 2 and got.escalated_to_id == sup

        # the broker relays the answer and the note
        done = await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(
            id=adv.id, advice="Limited impact; keep the position.",
            risk_level=client_pb2.RISK_LEVEL_R3), metadata=broker(br))
        assert done.state == advisory_pb2.ADVISORY_STATE_ANSWERED
        await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
            id=kinds["relay"].relay.id, channel=relay_pb2.RELAY_CHANNEL_PHONE,
            summary="Explained the research answer."), metadata=broker(br))
        events = await collect_events(b.nats_url, "branch.vip.advisory.answered", count=1)
        assert events[0].headers["ce-subject"] == adv.id
        report = await b.vip.GetSlaReport(api.GetSlaReportRequest(broker_id=br),
                                          metadata=SUPERVISOR)
        assert report.rows[0].answer_breaches == 1 and report.rows[0].escalations == 1
