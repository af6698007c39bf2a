"""Flow 5 (DESIGN.md section 4): deadlines are kept. Overdue items of every service raise an
event, show in the supervisor's view and count in the KPIs. All five services run against one
real NATS server and one fake clock; each service's timer pass runs once the clock moves."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.onsite.v1 import consultation_pb2
from branch.onsite.v1 import onsite_service_pb2 as oapi
from branch.onsite.v1 import onsite_service_pb2_grpc as ogrpc
from branch.remote.v1 import remote_service_pb2 as rapi
from branch.remote.v1 import remote_service_pb2_grpc as rgrpc
from branch.remote.v1 import ticket_pb2 as tpb
from branch.research.v1 import note_enums_pb2 as notes
from branch.research.v1 import research_request_pb2
from branch.research.v1 import research_service_pb2 as research_api
from branch.research.v1 import research_service_pb2_grpc as research_grpc
from branch.vip.v1 import advisory_pb2
from branch.vip.v1 import vip_service_pb2 as api

from services.onsite.server import SPEC as ONSITE
from services.onsite.server import check_overdue as onsite_check_overdue
from services.remote.server import SPEC as REMOTE
from services.remote.server import check_sla as remote_check_sla
from services.research.server import SPEC as RESEARCH
from services.vip.server import check_advisory_sla, check_relays_overdue
from tests.harness import ADMIN, SUPERVISOR, auth, collect_events, eventually
from tests.vip.support import ROLE, branch, broker


async def test_flow5_overdue_items_from_every_service_reach_the_supervisor(tmp_path: Path) -> None:
    async with branch(tmp_path, RESEARCH, ONSITE, REMOTE) as b:
        onsite = ogrpc.OnsiteServiceStub(b.channels["onsite"])
        remote = rgrpc.RemoteServiceStub(b.channels["remote"])
        # on site: a consultation form due in 24 hours
        cm = await b.staff(ROLE.ROLE_CLIENT_MANAGER)
        consultant = await b.staff(ROLE.ROLE_CONSULTANT)
        onsite_client = await b.directory.CreateClient(dir_api.CreateClientRequest(
            client=client_pb2.Client(
                account_no="A-ONSITE-1", display_name="Onsite client",
                channel=client_pb2.CHANNEL_ONSITE, risk_tolerance=client_pb2.RiskTolerance.ValueType(3),
                risk_assessed_on="2026-01-05", commission_rate="0.0005",
                client_manager_id=cm)), metadata=ADMIN)

        async def raised() -> consultation_pb2.ConsultationForm | None:
            try:
                return await onsite.RaiseConsultationForm(oapi.RaiseConsultationFormRequest(
                    client_id=onsite_client.id, consultant_id=consultant,
                    request_note="worried about liquor stocks"),
                    metadata=auth(cm, "client_manager"))
            except Exception:
                return None

        form = await eventually(raised)
        # remote: an urgent hotline ticket nobody answers
        agent = await b.staff(ROLE.ROLE_SERVICE_AGENT)
        md = auth(agent, "service_agent")
        await remote.SetAgentDuty(rapi.SetAgentDutyRequest(
            staff_id=agent, lines=[tpb.LINE_TECHNICAL], on_duty=True), metadata=md)
        ticket = await remote.OpenTicket(rapi.OpenTicketRequest(ticket=tpb.Ticket(
            line=tpb.LINE_TECHNICAL, caller_name="Caller", caller_phone="13900000002",
            category="login", summary="cannot log in", priority=tpb.PRIORITY_URGENT)),
            metadata=md)
        # vip: an advisory request and a relay task nobody works
        br = await b.staff(ROLE.ROLE_BROKER)
        key = await b.key_client(br)
        adv = await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(
            advisory=advisory_pb2.Advisory(client_id=key, question="Sell now?")),
            metadata=broker(br))
        # ... and a second one sent to research, which nobody answers either
        adv2 = await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(
            advisory=advisory_pb2.Advisory(client_id=key, question="Dividend safe?",
                                           tickers=["600036"])), metadata=broker(br))
        await b.vip.RequestAdvisoryResearch(api.RequestAdvisoryResearchRequest(id=adv2.id),
                                            metadata=broker(br))
        rstub = research_grpc.ResearchServiceStub(b.channels["research"])

        async def queued() -> list[research_request_pb2.ResearchRequest]:
            res = await rstub.ListResearchRequests(research_api.ListResearchRequestsRequest(),
                                                   metadata=SUPERVISOR)
            return [q for q in res.research_requests if q.advisory_id == adv2.id]

        await eventually(queued)
        from branch.research.v1 import events_pb2 as research_events

        from tests.vip.support import publish
        await publish(b.nats_url, "branch.research.note.published",
                      research_events.NotePublished(note_id="mkt-1", revision=1,
                                                    kind=notes.NOTE_KIND_MARKET, risk_level=client_pb2.RiskLevel.ValueType(1),
                                                    audience=notes.AUDIENCE_KEY_CLIENTS))

        async def relay_exists() -> bool:
            return (await b.inbox(br)).relay_count == 1

        await eventually(relay_exists)

        b.clock.advance(hours=25)
        assert await onsite_check_overdue(b.runners["onsite"].ctx) >= 1
        assert await remote_check_sla(b.runners["remote"].ctx) >= 1
        # both advisory breaches and escalation step 1 at once; step 2 one window later
        assert await check_advisory_sla(b.runners["vip"].ctx) == 5  # 3 + 2 (acked in time)
        assert await check_relays_overdue(b.runners["vip"].ctx) == 1

        b.clock.advance(timedelta(minutes=6))
        assert await check_advisory_sla(b.runners["vip"].ctx) == 2

        # each raised an event
        for subject in ("branch.onsite.consultation.overdue", "branch.remote.ticket.escalated",
                        "branch.vip.advisory.overdue", "branch.vip.relay.overdue"):
            assert await collect_events(b.nats_url, subject, count=1), subject

        # each shows in the supervisor's view and is counted
        forms = await onsite.ListConsultationForms(oapi.ListConsultationFormsRequest(
            overdue_only=True), metadata=SUPERVISOR)
        assert [f.id for f in forms.forms] == [form.id]
        summary = await onsite.SummarizeOverdueForms(oapi.SummarizeOverdueFormsRequest(),
                                                     metadata=SUPERVISOR)
        assert summary.overdue_total == 1
        tickets = await remote.ListTickets(rapi.ListTicketsRequest(breached_only=True),
                                           metadata=SUPERVISOR)
        assert ticket.id in [t.id for t in tickets.tickets]
        breaches = await b.vip.ListBreaches(api.ListBreachesRequest(), metadata=SUPERVISOR)
        assert {(x.kind, x.resource_id) for x in breaches.breaches} >= {
            (api.BREACH_KIND_ADVISORY_ACKNOWLEDGE, adv.id),
            (api.BREACH_KIND_ADVISORY_ANSWER, adv.id)}
        assert api.BREACH_KIND_RELAY in {x.kind for x in breaches.breaches}
        [late] = await queued()
        assert late.overdue  # research shows the question it owes as overdue
        report = await b.vip.GetSlaReport(api.GetSlaReportRequest(broker_id=br),
                                          metadata=SUPERVISOR)
        row = report.rows[0]
        # the research-pending advisory was acknowledged in time: only its answer breached
        assert (row.advisories, row.acknowledge_breaches, row.answer_breaches,
                row.escalations, row.relays_overdue) == (2, 1, 2, 2, 1)
        assert row.sla_compliance == 0.0
