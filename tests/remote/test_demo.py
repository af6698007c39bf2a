"""The remote demo loads through the public API and leaves tickets in every state."""

from __future__ import annotations

from branch.directory.v1 import client_pb2, staff_pb2
from branch.remote.v1 import remote_service_pb2 as api
from branch.remote.v1 import ticket_pb2 as tpb

from services.cli.demo import Demo, DemoClient
from services.remote import demo as remote_demo
from tests.harness import ADMIN, SIGNER, SUPERVISOR
from tests.remote.conftest import Env
from tests.remote.test_reports import load_history


async def test_demo_loads(env: Env) -> None:
    settings = env.settings.model_copy(update={"remote_addr": f"127.0.0.1:{env.remote.port}"})
    demo = Demo(settings=settings, admin_token=ADMIN[0][1].split()[1], now=env.clock.now(),
                signer=SIGNER)
    demo.staff["supervisor"] = [await env.staff(staff_pb2.ROLE_SUPERVISOR)]
    demo.staff["service_agent"] = [
        (await env.agent(demo.staff["supervisor"][0]))[0] for _ in range(8)]
    for i in range(12):
        tier = client_pb2.TIER_KEY if i == 0 else client_pb2.TIER_STANDARD
        c = await env.client(tier=tier, opened_on="2026-02-20" if i % 3 == 0 else "2024-05-06")
        if i == 1:
            await load_history(env, c.id)
        demo.clients.append(DemoClient(id=c.id, channel=c.channel, tier=c.tier,
                                       risk_tolerance=c.risk_tolerance, broker_id="",
                                       client_manager_id="", tickers=["AAA"] if i == 1 else []))
    try:
        await remote_demo.load(demo)
    finally:
        await demo.close()
    page = await env.stub.ListTickets(api.ListTicketsRequest(page_size=100),
                                      metadata=SUPERVISOR)
    states = {t.state for t in page.tickets}
    assert states == {tpb.TICKET_STATE_OPEN, tpb.TICKET_STATE_IN_PROGRESS,
                      tpb.TICKET_STATE_WAITING, tpb.TICKET_STATE_RESOLVED,
                      tpb.TICKET_STATE_CLOSED}
    assert any(t.reopen_count for t in page.tickets)
    assert any(t.handler_department for t in page.tickets)
    calls = await env.stub.ListCallbacks(api.ListCallbacksRequest(page_size=1000),
                                         metadata=SUPERVISOR)
    days = {c.call_time.ToDatetime().date() for c in calls.callbacks}
    assert len(days) >= 5  # spread over weeks
    reports = await env.stub.ListReports(api.ListReportsRequest(), metadata=SUPERVISOR)
    assert reports.reports and any(r.delivered_by for r in reports.reports)
