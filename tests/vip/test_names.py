"""Names travel with ids (issue 13): vip keeps clients' and staff members' display names from
the directory's events; roster entries, advisories, relays, inbox and breaches carry them
beside the ids, and branchctl vip inbox/relays/breaches print them beside FULL ids."""

from __future__ import annotations

from pathlib import Path

from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.research.v1 import events_pb2 as research_events
from branch.research.v1 import note_enums_pb2 as notes
from branch.vip.v1 import vip_service_pb2 as api
from google.protobuf.field_mask_pb2 import FieldMask

from services.vip.server import check_advisory_sla
from tests.cli_process import branchctl, full_ids
from tests.harness import ADMIN, SUPERVISOR, eventually, token
from tests.vip.support import ROLE, Branch, broker, publish
from tests.vip.test_advisory import ask, setup_client


async def _name(b: Branch, person_id: str) -> str:
    try:
        return (await b.directory.GetClient(dir_api.GetClientRequest(id=person_id),
                                            metadata=ADMIN)).display_name
    except Exception:
        return (await b.directory.GetStaff(dir_api.GetStaffRequest(id=person_id),
                                           metadata=ADMIN)).display_name


async def test_roster_and_advisory_carry_names_and_a_rename_reaches_them(b: Branch) -> None:
    br, bk, client_id = await setup_client(b)
    entry = await b.vip.GetRosterEntry(api.GetRosterEntryRequest(client_id=client_id),
                                       metadata=SUPERVISOR)
    assert entry.client_display_name == await _name(b, client_id)
    assert entry.broker_display_name == await _name(b, br)
    assert entry.backup_broker_display_name == await _name(b, bk)
    adv = await ask(b, client_id, broker(br))
    assert adv.client_display_name == await _name(b, client_id)
    assert adv.dedicated_broker_display_name == await _name(b, br)

    await b.directory.UpdateClient(dir_api.UpdateClientRequest(
        client=client_pb2.Client(id=client_id, display_name="张伟"),
        update_mask=FieldMask(paths=["display_name"])), metadata=ADMIN)

    async def renamed() -> bool:
        got = await b.vip.GetAdvisory(api.GetAdvisoryRequest(id=adv.id), metadata=SUPERVISOR)
        listed = await b.vip.ListRoster(api.ListRosterRequest(), metadata=SUPERVISOR)
        return got.client_display_name == "张伟" and any(
            e.client_display_name == "张伟" for e in listed.entries)

    await eventually(renamed)


async def test_branchctl_inbox_relays_breaches_print_names_beside_full_ids(
        b: Branch, tmp_path: Path) -> None:
    br, bk, client_id = await setup_client(b)
    sup = await b.staff(ROLE.ROLE_SUPERVISOR)
    await b.directory.UpdateClient(dir_api.UpdateClientRequest(
        client=client_pb2.Client(id=client_id, display_name="诸葛孔明"),
        update_mask=FieldMask(paths=["display_name"])), metadata=ADMIN)
    adv = await ask(b, client_id, broker(br), question="Hold 600519 through earnings? " * 5)
    await publish(b.nats_url, "branch.research.note.published", research_events.NotePublished(
        note_id="names-note", revision=1, title="Market view", kind=notes.NOTE_KIND_MARKET,
        risk_level=client_pb2.RiskLevel.ValueType(1), audience=notes.AUDIENCE_KEY_CLIENTS))

    async def ready() -> bool:
        inbox = await b.inbox(br)
        return inbox.relay_count == 1 and all(
            (i.advisory.client_display_name or i.relay.client_display_name) == "诸葛孔明"
            for i in inbox.items)

    await eventually(ready)
    relay_id = next(i.relay.id for i in (await b.inbox(br)).items if i.relay.id)
    b.clock.advance(minutes=5, seconds=1)
    assert await check_advisory_sla(b.runners["vip"].ctx) >= 1  # acknowledge breach
    broker_name = await _name(b, br)
    ports = {"vip": b.runners["vip"].port, "directory": b.runners["directory"].port}

    out = await branchctl(tmp_path, token(br, "broker"), ports, "vip", "inbox")
    assert {adv.id, relay_id, client_id, br} <= full_ids(out), out
    assert "诸葛孔明" in out and broker_name in out
    assert "…" in out  # the long question is cut, not the ids

    out = await branchctl(tmp_path, token(sup, "supervisor"), ports, "vip", "relays")
    assert {relay_id, client_id, br} <= full_ids(out), out
    assert "诸葛孔明" in out and broker_name in out

    out = await branchctl(tmp_path, token(sup, "supervisor"), ports, "vip", "breaches")
    assert {adv.id, client_id, br, bk} <= full_ids(out), out
    assert "诸葛孔明" in out and broker_name in out and await _name(b, bk) in out
