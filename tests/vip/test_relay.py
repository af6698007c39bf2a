from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from branch.directory.v1 import client_pb2
from branch.research.v1 import events_pb2 as research_events
from branch.research.v1 import note_enums_pb2 as notes
from branch.vip.v1 import events_pb2, relay_pb2
from branch.vip.v1 import vip_service_pb2 as api

from services.common.protos import ts
from services.vip.server import check_relays_overdue
from tests.harness import SUPERVISOR, auth, bad_fields, collect_events, eventually
from tests.vip.support import ROLE, Branch, broker, publish

R = relay_pb2


def note(note_id: str, *tickers: str, risk: int = client_pb2.RISK_LEVEL_R3,
         kind: int = notes.NOTE_KIND_STOCK, audience: int = notes.AUDIENCE_KEY_CLIENTS,
         revision: int = 1) -> research_events.NotePublished:
    return research_events.NotePublished(note_id=note_id, revision=revision,
                                         title=f"Note {note_id}", kind=notes.NoteKind.ValueType(kind),
                                         tickers=list(tickers), risk_level=client_pb2.RiskLevel.ValueType(risk),
                                         audience=notes.Audience.ValueType(audience), author_id="an-1",
                                         approved_by="co-1")


async def planned(b: Branch, count: int = 1) -> list[events_pb2.RelaysPlanned]:
    msgs = await collect_events(b.nats_url, "branch.vip.relay.planned", count=count)
    out = []
    for m in msgs:
        p = events_pb2.RelaysPlanned()
        p.ParseFromString(m.data)
        out.append(p)
    return out


async def relays_of(b: Branch, note_id: str) -> list[R.RelayTask]:
    res = await b.vip.ListRelays(api.ListRelaysRequest(note_id=note_id, page_size=1000),
                                 metadata=SUPERVISOR)
    return list(res.relays)


async def matched_branch(b: Branch) -> dict[str, str]:
    br1, br2 = await b.staff(ROLE.ROLE_BROKER), await b.staff(ROLE.ROLE_BROKER)
    c_ok = await b.key_client(br1, tolerance=client_pb2.RISK_TOLERANCE_C4)
    c_ok2 = await b.key_client(br2, tolerance=client_pb2.RISK_TOLERANCE_C3)
    c_low = await b.key_client(br1, tolerance=client_pb2.RISK_TOLERANCE_C2)
    c_expired = await b.key_client(br2, tolerance=client_pb2.RISK_TOLERANCE_C5,
                                   assessed_on="2024-01-05")
    c_no_hold = await b.key_client(br1)
    c_std = await b.client(broker_id=br1, tier=client_pb2.TIER_STANDARD)
    await b.holdings([(c_ok, "600519"), (c_ok2, "000001"), (c_ok2, "600519"),
                      (c_low, "600519"), (c_expired, "000001"), (c_std, "600519")])
    return dict(br1=br1, br2=br2, ok=c_ok, ok2=c_ok2, low=c_low, expired=c_expired,
                no_hold=c_no_hold, std=c_std)


async def test_note_matches_holders_and_withholds_for_suitability(b: Branch) -> None:
    c = await matched_branch(b)
    await publish(b.nats_url, "branch.research.note.published",
                  note("n1", "600519", "000001"))
    [plan] = await planned(b)
    assert (plan.note_id, plan.revision, plan.targeted, plan.withheld_for_suitability) == (
        "n1", 1, 2, 2)
    relays = {r.client_id: r for r in await relays_of(b, "n1")}
    assert set(relays) == {c["ok"], c["ok2"], c["low"], c["expired"]}
    assert relays[c["ok"]].state == R.RELAY_STATE_PENDING
    assert relays[c["ok"]].broker_id == c["br1"]
    assert list(relays[c["ok2"]].matched_tickers) == ["000001", "600519"]
    assert relays[c["low"]].state == R.RELAY_STATE_WITHHELD
    assert relays[c["low"]].reason == "risk R3 above the client's tolerance C2"
    assert relays[c["expired"]].state == R.RELAY_STATE_WITHHELD
    assert relays[c["expired"]].reason == "risk assessment expired (more than two years old)"
    # each broker's inbox holds only their own clients' relays
    inbox1, inbox2 = await b.inbox(c["br1"]), await b.inbox(c["br2"])
    assert [i.relay.client_id for i in inbox1.items] == [c["ok"]]
    assert [i.relay.client_id for i in inbox2.items] == [c["ok2"]]
    assert inbox1.items[0].next_action == "relay"
    mine = await b.vip.ListRelays(api.ListRelaysRequest(), metadata=broker(c["br2"]))
    assert {r.client_id for r in mine.relays} == {c["ok2"], c["expired"]}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.GetRelay(api.GetRelayRequest(id=relays[c["ok"]].id),
                             metadata=broker(c["br2"]))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # compliance reads the distribution record
    await b.vip.GetRelay(api.GetRelayRequest(id=relays[c["ok"]].id),
                         metadata=auth("co-1", "compliance"))


async def test_market_note_goes_to_every_key_client_and_staff_notes_to_none(b: Branch) -> None:
    c = await matched_branch(b)
    await publish(b.nats_url, "branch.research.note.published",
                  note("staff", "600519", audience=notes.AUDIENCE_STAFF_ONLY))
    await publish(b.nats_url, "branch.research.note.published",
                  note("mkt", kind=notes.NOTE_KIND_MARKET, risk=client_pb2.RISK_LEVEL_R2))
    [plan] = await planned(b)
    assert plan.note_id == "mkt"
    assert (plan.targeted, plan.withheld_for_suitability) == (4, 1)
    relays = await relays_of(b, "mkt")
    assert {r.client_id for r in relays} == {c["ok"], c["ok2"], c["low"], c["expired"],
                                             c["no_hold"]}
    assert await relays_of(b, "staff") == []


async def test_redelivery_and_replay_create_no_second_task(b: Branch) -> None:
    c = await matched_branch(b)
    msg = note("n2", "600519")
    event_id = await publish(b.nats_url, "branch.research.note.published", msg)
    await publish(b.nats_url, "branch.research.note.published", msg, event_id=event_id,
                  msg_id="redelivered")
    await publish(b.nats_url, "branch.research.note.published", msg)  # replayed: new event id
    await publish(b.nats_url, "branch.research.note.published", note("marker", "000001"))
    plans = await planned(b, count=2)
    assert [p.note_id for p in plans] == ["n2", "marker"]
    relays = await relays_of(b, "n2")
    assert sorted(r.client_id for r in relays) == sorted([c["ok"], c["ok2"], c["low"]])


async def test_broker_records_explanation_and_acknowledgement(b: Branch) -> None:
    c = await matched_branch(b)
    await publish(b.nats_url, "branch.research.note.published", note("n3", "600519"))
    await planned(b)
    relay = next(r for r in await relays_of(b, "n3") if r.client_id == c["ok"])
    who = broker(c["br1"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.RecordRelayAcknowledgement(api.RecordRelayAcknowledgementRequest(
            id=relay.id), metadata=who)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(id=relay.id),
                                        metadata=who)
    assert bad_fields(err.value) == {"channel", "summary"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
            id=relay.id, channel=R.RELAY_CHANNEL_PHONE, summary="x"), metadata=broker(c["br2"]))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    b.clock.advance(minutes=30)
    done = await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
        id=relay.id, channel=R.RELAY_CHANNEL_PHONE, summary="Explained the valuation call."),
        metadata=who)
    assert done.state == R.RELAY_STATE_DELIVERED and done.channel == R.RELAY_CHANNEL_PHONE
    inbox = await b.inbox(c["br1"])
    assert inbox.items[0].next_action == "record acknowledgement"
    done = await b.vip.RecordRelayAcknowledgement(api.RecordRelayAcknowledgementRequest(
        id=relay.id, note="client confirmed by phone"), metadata=who)
    assert done.state == R.RELAY_STATE_ACKNOWLEDGED
    assert (await b.inbox(c["br1"])).relay_count == 0
    delivered = await collect_events(b.nats_url, "branch.vip.relay.delivered", count=1)
    d = events_pb2.RelayDelivered()
    d.ParseFromString(delivered[0].data)
    assert (d.relay_id, d.note_id, d.client_id, d.broker_id, d.channel) == (
        relay.id, "n3", c["ok"], c["br1"], "phone")
    acked = await collect_events(b.nats_url, "branch.vip.relay.acknowledged", count=1)
    assert acked[0].headers["ce-subject"] == relay.id
    # a withheld relay cannot be delivered
    withheld = next(r for r in await relays_of(b, "n3") if r.client_id == c["low"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
            id=withheld.id, channel=R.RELAY_CHANNEL_PHONE, summary="x"), metadata=who)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_withdrawn_note_cancels_open_relays(b: Branch) -> None:
    c = await matched_branch(b)
    await publish(b.nats_url, "branch.research.note.published", note("n4", "600519"))
    await planned(b)
    relays = {r.client_id: r for r in await relays_of(b, "n4")}
    await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
        id=relays[c["ok"]].id, channel=R.RELAY_CHANNEL_MEETING, summary="In person."),
        metadata=broker(c["br1"]))
    await publish(b.nats_url, "branch.research.note.withdrawn", research_events.NoteWithdrawn(
        note_id="n4", revision=1, reason="data error"))
    msgs = await collect_events(b.nats_url, "branch.vip.relay.cancelled", count=1)
    cancelled = events_pb2.RelaysCancelled()
    cancelled.ParseFromString(msgs[0].data)
    assert cancelled.cancelled == 1
    after = {r.client_id: r for r in await relays_of(b, "n4")}
    assert after[c["ok"]].state == R.RELAY_STATE_DELIVERED
    assert after[c["ok2"]].state == R.RELAY_STATE_CANCELLED
    assert after[c["ok2"]].reason == "note withdrawn: data error"
    assert after[c["low"]].state == R.RELAY_STATE_WITHHELD
    assert (await b.inbox(c["br2"])).relay_count == 0


async def test_overdue_relays_and_supervisor_view(b: Branch) -> None:
    c = await matched_branch(b)
    await publish(b.nats_url, "branch.research.note.published", note("n5", "600519"))
    await planned(b)
    ctx = b.runners["vip"].ctx
    relays = {r.client_id: r for r in await relays_of(b, "n5")}
    await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
        id=relays[c["ok"]].id, channel=R.RELAY_CHANNEL_MESSAGE, summary="Sent a summary."),
        metadata=broker(c["br1"]))
    assert await check_relays_overdue(ctx) == 0
    b.clock.advance(hours=24, seconds=1)
    assert await check_relays_overdue(ctx) == 1
    assert await check_relays_overdue(ctx) == 0
    got = await b.vip.GetRelay(api.GetRelayRequest(id=relays[c["ok2"]].id), metadata=SUPERVISOR)
    assert got.overdue
    breaches = await b.vip.ListBreaches(api.ListBreachesRequest(kind=api.BREACH_KIND_RELAY),
                                        metadata=SUPERVISOR)
    assert [x.resource_id for x in breaches.breaches] == [relays[c["ok2"]].id]
    report = await b.vip.GetSlaReport(api.GetSlaReportRequest(), metadata=SUPERVISOR)
    rows = {r.broker_id: r for r in report.rows}
    assert rows[c["br1"]].relays_targeted == 1 and rows[c["br1"]].relay_coverage == 1.0
    assert rows[c["br1"]].relays_withheld == 1
    assert rows[c["br2"]].relays_overdue == 1 and rows[c["br2"]].relay_coverage == 0.0
    assert report.time_zone == "Asia/Shanghai"
    assert rows[c["br1"]].week_start == "2026-03-02"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.GetSlaReport(api.GetSlaReportRequest(start_date="2026-13-01",
                                                         end_date="x"), metadata=SUPERVISOR)
    assert bad_fields(err.value) == {"start_date", "end_date"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await b.vip.ListBreaches(api.ListBreachesRequest(), metadata=broker(c["br1"]))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    since = await b.vip.ListBreaches(api.ListBreachesRequest(
        since_time=ts(b.clock.now() + timedelta(minutes=1))), metadata=SUPERVISOR)
    assert list(since.breaches) == []


async def test_sla_report_per_broker_per_week(b: Branch) -> None:
    from tests.vip.test_advisory import ask, setup_client

    br, _, client_id = await setup_client(b)
    on_time = await ask(b, client_id, broker(br))
    await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(id=on_time.id, advice="Hold.",
                                                         risk_level=client_pb2.RiskLevel.ValueType(1)), metadata=broker(br))
    await ask(b, client_id, broker(br))
    b.clock.advance(minutes=61)
    from services.vip.server import check_advisory_sla

    await check_advisory_sla(b.runners["vip"].ctx)
    b.clock.advance(days=7)
    await ask(b, client_id, broker(br))
    report = await b.vip.GetSlaReport(api.GetSlaReportRequest(broker_id=br),
                                      metadata=SUPERVISOR)
    weeks = [(r.week_start, r.advisories, r.acknowledge_breaches, r.answer_breaches,
              r.escalations, round(r.sla_compliance, 2)) for r in report.rows]
    assert weeks == [("2026-03-02", 2, 1, 1, 1, 0.5), ("2026-03-09", 1, 0, 0, 0, 1.0)]

    async def answered_count() -> bool:
        return report.rows[0].answered_in_time == 1

    assert await eventually(answered_count)


async def test_relay_planning_on_each_backend(tmp_path: Path, database_url: str) -> None:
    """Storage-heavy path (bulk insert, conditional updates, views) on SQLite and PostgreSQL."""
    from tests.vip.support import branch

    async with branch(tmp_path, database_url=database_url) as b:
        c = await matched_branch(b)
        await publish(b.nats_url, "branch.research.note.published", note("pg", "600519"))
        [plan] = await planned(b)
        assert (plan.targeted, plan.withheld_for_suitability) == (2, 1)
        relays = {r.client_id: r for r in await relays_of(b, "pg")}
        await b.vip.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
            id=relays[c["ok"]].id, channel=R.RELAY_CHANNEL_PHONE, summary="Explained."),
            metadata=broker(c["br1"]))
        b.clock.advance(hours=25)
        assert await check_relays_overdue(b.runners["vip"].ctx) == 1
        report = await b.vip.GetSlaReport(api.GetSlaReportRequest(), metadata=SUPERVISOR)
        assert sum(r.relays_delivered for r in report.rows) == 1
        inbox = await b.inbox(c["br2"])
        assert inbox.items[0].overdue


async def test_inbox_orders_by_deadline_and_pages(b: Branch) -> None:
    from branch.vip.v1 import advisory_pb2

    c = await matched_branch(b)
    for n in ("p1", "p2", "p3"):
        await publish(b.nats_url, "branch.research.note.published", note(n, "600519"))
        await planned(b, count=int(n[1]))
        b.clock.advance(minutes=1)
    adv = await b.vip.CreateAdvisory(api.CreateAdvisoryRequest(
        advisory=advisory_pb2.Advisory(client_id=c["ok"], question="Q?")),
        metadata=broker(c["br1"]))
    seen, token = [], ""
    while True:
        page = await b.vip.GetInbox(api.GetInboxRequest(page_size=2, page_token=token),
                                    metadata=broker(c["br1"]))
        seen += list(page.items)
        token = page.next_page_token
        if not token:
            break
    assert page.advisory_count == 1 and page.relay_count == 3
    assert seen[0].advisory.id == adv.id
    assert [i.relay.note_id for i in seen[1:]] == ["p1", "p2", "p3"]
    deadlines = [i.deadline.ToDatetime() for i in seen]
    assert deadlines == sorted(deadlines)
    # a supervisor may open any broker's inbox
    sup = await b.vip.GetInbox(api.GetInboxRequest(broker_id=c["br1"]), metadata=SUPERVISOR)
    assert len(sup.items) == 4
