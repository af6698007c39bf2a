"""The demo branch's key-client service: backup brokers on the roster, a 24/7 rota for the next
two weeks in the branch's time zone, advisories in every state, and relays of the demo notes
worked by brokers. Everything goes through vip's public API; the roster and the relay tasks
themselves come from the directory's and research's events, as in production."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from branch.directory.v1 import client_pb2
from branch.vip.v1 import advisory_pb2, relay_pb2, roster_pb2, rota_pb2
from branch.vip.v1 import vip_service_pb2 as api
from branch.vip.v1.vip_service_pb2_grpc import VipServiceStub
from google.protobuf.field_mask_pb2 import FieldMask

from services.common.protos import ts

if TYPE_CHECKING:
    from branch.vip.v1.vip_service_pb2_grpc import VipServiceAsyncStub

    from services.cli.demo import Demo

A = advisory_pb2
QUESTIONS = [
    ("Should I add to 600519 before the results?", ["600519"]),
    ("The bank shares fell 5% today: sell or hold?", ["600036", "000001"]),
    ("Is the new-energy sell-off overdone?", ["300750", "002594"]),
    ("Where should I park cash for three months?", []),
    ("What does the rate cut mean for my utilities?", ["600900"]),
    ("Is 688981 too risky for me now?", ["688981"]),
]


async def _wait_for_roster(stub: VipServiceAsyncStub, supervisor, expected: set[str]) -> int:  # type: ignore[no-untyped-def]
    """The roster fills from the directory's events; wait (bounded) until every expected
    client is on it (a count alone was met by key clients without a broker while one with
    a broker was still on its way, and the demo then asked about a client not on it)."""
    seen: set[str] = set()
    for _ in range(200):
        seen, token = set(), ""
        while True:
            page = await stub.ListRoster(api.ListRosterRequest(
                page_size=1000, page_token=token, status=roster_pb2.ROSTER_STATUS_ACTIVE),
                metadata=supervisor)
            seen.update(e.client_id for e in page.entries)
            token = page.next_page_token
            if not token:
                break
        if seen >= expected:
            break
        await asyncio.sleep(0.1)
    return len(seen)


def _local_day_start(day: datetime, hour: int, tz: ZoneInfo) -> datetime:
    return day.replace(hour=hour, minute=0, second=0, microsecond=0, tzinfo=tz)


async def _rota(demo: Demo, stub: VipServiceAsyncStub, supervisor) -> int:  # type: ignore[no-untyped-def]
    """Brokers in three eight-hour shifts, supervisors in two twelve-hour shifts, analysts on
    research duty 08-20; local wall-clock hours, so a daylight-saving change is covered."""
    tz = ZoneInfo(demo.settings.timezone)
    brokers = demo.staff.get("broker", [])
    supervisors = demo.staff.get("supervisor", [])
    analysts = demo.staff.get("analyst", [])
    today = demo.now.astimezone(tz).replace(tzinfo=None)
    plan = []
    for d in range(16):
        day = today + timedelta(days=d)
        for i, (start, hours) in enumerate(((0, 8), (8, 8), (16, 8))):
            if brokers:
                plan.append((brokers[(3 * d + i) % len(brokers)], rota_pb2.SHIFT_ROLE_BROKER,
                             day, start, hours))
        for i, (start, hours) in enumerate(((0, 12), (12, 12))):
            if supervisors:
                plan.append((supervisors[(d + i) % len(supervisors)],
                             rota_pb2.SHIFT_ROLE_SUPERVISOR, day, start, hours))
        if analysts:
            plan.append((analysts[d % len(analysts)], rota_pb2.SHIFT_ROLE_ANALYST, day, 8, 12))

    async def create(k: int, staff_id: str, role: rota_pb2.ShiftRole.ValueType,
                     day: datetime, start: int, hours: int) -> None:
        begin = _local_day_start(day, start, tz)
        end_naive = begin.replace(tzinfo=None) + timedelta(hours=hours)
        end = end_naive.replace(tzinfo=tz)
        await stub.CreateShift(api.CreateShiftRequest(shift=rota_pb2.Shift(
            staff_id=staff_id, role=role, start_time=ts(begin), end_time=ts(end),
            note="demo rota"), request_id=f"demo-shift-{k}"), metadata=supervisor)

    for i in range(0, len(plan), 20):
        await asyncio.gather(*(create(i + j, *p) for j, p in enumerate(plan[i:i + 20])))
    return len(plan)


async def _advisories(demo: Demo, stub: VipServiceAsyncStub, key_clients) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Advisories in every state, asked through each client's dedicated broker."""
    states: dict[str, int] = {}
    rng = demo.rng
    for k, client in enumerate(key_clients[:18]):
        question, tickers = QUESTIONS[k % len(QUESTIONS)]
        asker = demo.as_staff(client.broker_id, "broker")
        adv = await stub.CreateAdvisory(api.CreateAdvisoryRequest(advisory=A.Advisory(
            client_id=client.id, question=question, tickers=tickers,
            urgency=A.URGENCY_HIGH if k % 5 == 0 else A.URGENCY_NORMAL),
            request_id=f"demo-advisory-{k}"), metadata=asker)
        # the assignee works it: the dedicated broker if on shift, else the one on call
        worker = demo.as_staff(adv.assignee_id, "broker")
        step = k % 6
        if step >= 1 and adv.state == A.ADVISORY_STATE_OPEN:
            adv = await stub.AcknowledgeAdvisory(api.AcknowledgeAdvisoryRequest(id=adv.id),
                                                 metadata=worker)
        if step == 2 and adv.state == A.ADVISORY_STATE_ACKNOWLEDGED:
            adv = await stub.RequestAdvisoryResearch(api.RequestAdvisoryResearchRequest(
                id=adv.id), metadata=worker)
        if step in (3, 4) and adv.state == A.ADVISORY_STATE_ACKNOWLEDGED:
            tolerance = client.risk_tolerance or 1
            level = tolerance if step == 3 else min(5, tolerance + 1)
            override = "" if step == 3 or level == tolerance else \
                "client asked for the aggressive view; risks read back and recorded"
            try:
                adv = await stub.AnswerAdvisory(api.AnswerAdvisoryRequest(
                    id=adv.id, risk_level=client_pb2.RiskLevel.ValueType(level),
                    override_reason=override,
                    advice=rng.choice(["Hold; review after the results.",
                                       "Trim a third into strength.",
                                       "Keep the position; add only below cost."])),
                    metadata=worker)
            except Exception:  # an expired assessment: leave it for the broker
                pass
        if step == 5 and adv.state == A.ADVISORY_STATE_ACKNOWLEDGED:
            adv = await stub.CloseAdvisory(api.CloseAdvisoryRequest(
                id=adv.id, reason="client answered the question themselves"), metadata=worker)
        name = A.AdvisoryState.Name(adv.state).removeprefix("ADVISORY_STATE_").lower()
        states[name] = states.get(name, 0) + 1
    return states


async def _relays(demo: Demo, stub: VipServiceAsyncStub, supervisor) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Wait for the relay tasks of the demo notes, then have brokers work some of them."""
    notes = demo.shared.get("research_notes") or []
    tasks: list[relay_pb2.RelayTask] = []
    previous = -1
    for _ in range(60 if notes else 0):
        tasks = []
        for note_id in notes:
            page = await stub.ListRelays(api.ListRelaysRequest(note_id=note_id, page_size=1000),
                                         metadata=supervisor)
            tasks += page.relays
        if tasks and len(tasks) == previous:
            break  # the relay consumer has caught up with the demo notes
        previous = len(tasks)
        await asyncio.sleep(0.25)
    pending = [t for t in tasks if t.state == relay_pb2.RELAY_STATE_PENDING]
    channels = [relay_pb2.RELAY_CHANNEL_PHONE, relay_pb2.RELAY_CHANNEL_MEETING,
                relay_pb2.RELAY_CHANNEL_MESSAGE]
    for k, task in enumerate(pending[: len(pending) * 2 // 5]):
        who = demo.as_staff(task.broker_id, "broker")
        await stub.RecordRelayDelivery(api.RecordRelayDeliveryRequest(
            id=task.id, channel=channels[k % 3],
            summary="Went through the note's view and its risks with the client."),
            metadata=who)
        if k % 2 == 0:
            await stub.RecordRelayAcknowledgement(api.RecordRelayAcknowledgementRequest(
                id=task.id, note="client confirmed"), metadata=who)
    counts: dict[str, int] = {}
    for note_id in notes:
        page = await stub.ListRelays(api.ListRelaysRequest(note_id=note_id, page_size=1000),
                                     metadata=supervisor)
        for t in page.relays:
            name = relay_pb2.RelayState.Name(t.state).removeprefix("RELAY_STATE_").lower()
            counts[name] = counts.get(name, 0) + 1
    return counts


async def load(demo: Demo) -> None:
    stub = VipServiceStub(demo.channel("vip"))
    if not demo.staff.get("supervisor") or not demo.staff.get("broker"):
        print("demo: vip skipped (no directory demo staff)", flush=True)
        return
    supervisor = demo.as_role("supervisor")
    key_clients = [c for c in demo.clients if c.tier == client_pb2.TIER_KEY and c.broker_id]
    on_roster = await _wait_for_roster(stub, supervisor, {c.id for c in key_clients})
    brokers = demo.staff["broker"]
    # backup brokers: the next broker along, never the dedicated one
    for i in range(0, len(key_clients), 25):
        await asyncio.gather(*(
            stub.UpdateRosterEntry(api.UpdateRosterEntryRequest(
                entry=roster_pb2.RosterEntry(
                    client_id=c.id,
                    backup_broker_id=brokers[(brokers.index(c.broker_id) + 1) % len(brokers)]
                    if c.broker_id in brokers else ""),
                update_mask=FieldMask(paths=["backup_broker_id"])), metadata=supervisor)
            for c in key_clients[i:i + 25] if len(brokers) > 1
        ))
    shifts = await _rota(demo, stub, supervisor)
    states = await _advisories(demo, stub, key_clients)
    relays = await _relays(demo, stub, supervisor)
    print(f"demo: vip {on_roster} key clients on the roster, {shifts} shifts over 16 days; "
          "advisories " + ", ".join(f"{v} {k}" for k, v in sorted(states.items()))
          + "; relays " + (", ".join(f"{v} {k}" for k, v in sorted(relays.items()))
                           or "none (no demo notes)"), flush=True)
