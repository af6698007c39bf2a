"""Parked events, as an operator meets them: a dependency that is down delays work rather
than losing it, and `branch replay-parked` publishes a parked event again so the flow
completes, exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from branch.vip.v1 import relay_pb2

from services import registry
from tests.deploy.cluster import REPO, Cluster, stream_messages
from tests.deploy.suite import Suite
from tests.harness import SUPERVISOR, eventually, unique

pytestmark = pytest.mark.skipif(
    not {"directory", "research", "vip"} <= {s for s in registry.SERVICES
                                              if registry.spec(s) is not None},
    reason="needs directory, research and vip",
)


def replay(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCH_")}
    env["BRANCH_NATS_URL"] = cluster.nats.url
    return subprocess.run([sys.executable, "-m", "services.cli.branch", "replay-parked", *args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


async def test_relays_wait_for_the_directory_instead_of_being_lost(suite: Suite) -> None:
    """vip matches a published note's clients through the directory; with the directory down
    the plan waits (nothing parked) and completes by itself once it is back."""
    from branch.directory.v1 import staff_pb2
    from branch.vip.v1 import vip_service_pb2 as vip

    cluster = suite.cluster
    br = await suite.staff(staff_pb2.ROLE_BROKER)
    clients = [await suite.client(broker_id=br) for _ in range(2)]
    ticker = f"6{unique()[:5].upper()}"
    await suite.holdings([(c, ticker) for c in clients])
    await asyncio.gather(*(suite.on_roster(c) for c in clients))

    for replica in cluster.replicas["directory"]:
        cluster.signal(replica, signal.SIGTERM)
    for replica in cluster.replicas["directory"]:
        assert await cluster.wait_exit(replica, 30) == 0
    note = await suite.publish_note(ticker)
    await asyncio.sleep(3)  # vip has the event and cannot match it yet
    await cluster.ensure_running()

    async def relays() -> list[relay_pb2.RelayTask] | None:
        res = await suite.vip.ListRelays(
            vip.ListRelaysRequest(note_id=note.id, page_size=100), metadata=SUPERVISOR)
        return list(res.relays) if len(res.relays) >= len(clients) else None

    tasks = await eventually(relays, timeout=45)
    assert sorted(t.client_id for t in tasks) == sorted(clients)
    parked = await stream_messages(cluster.nats.url, "branch.parked.vip.>")
    assert [m for m in parked if note.id.encode() in m.data] == []


async def test_parked_event_is_replayed_by_the_operator(suite: Suite) -> None:
    """An event parked on branch.parked.vip.notes (as the consumer parks one after its tries)
    is published again by `branch replay-parked`, applied once, and removed from the parked
    subject."""
    import nats
    from branch.common.v1 import event_pb2
    from branch.directory.v1 import client_pb2, staff_pb2
    from branch.research.v1 import events_pb2 as research_events
    from branch.research.v1 import note_enums_pb2 as enums
    from branch.vip.v1 import vip_service_pb2 as vip
    from google.protobuf.timestamp_pb2 import Timestamp

    from services.common.ids import new_id

    cluster = suite.cluster
    br = await suite.staff(staff_pb2.ROLE_BROKER)
    clients = [await suite.client(broker_id=br) for _ in range(2)]
    ticker = f"6{unique()[:5].upper()}"
    await suite.holdings([(c, ticker) for c in clients])
    await asyncio.gather(*(suite.on_roster(c) for c in clients))

    note_id, event_id = new_id(), new_id()
    now = Timestamp()
    now.GetCurrentTime()
    payload = research_events.NotePublished(
        note_id=note_id, revision=1, title="parked note", kind=enums.NOTE_KIND_STOCK,
        tickers=[ticker], risk_level=client_pb2.RISK_LEVEL_R1,
        audience=enums.AUDIENCE_ALL_CLIENTS, publish_time=now)
    payload.valid_until.FromSeconds(now.seconds + 30 * 86400)
    envelope = event_pb2.EventEnvelope(
        id=event_id, type="branch.research.note.published", source="/branch/research",
        subject=note_id, time=now, nats_subject="branch.research.note.published",
        data_schema=payload.DESCRIPTOR.full_name, data=payload.SerializeToString(),
        parked_reason="UNAVAILABLE: directory", parked_by="vip-notes", deliveries=5)
    nc = await nats.connect(cluster.nats.url)
    try:
        await nc.jetstream().publish("branch.parked.vip.notes", envelope.SerializeToString(),
                                     headers={"Nats-Msg-Id": f"parked:vip-notes:{event_id}"})
    finally:
        await nc.close()

    listed = replay(cluster, "vip", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert "would replay" in listed.stdout and "branch.research.note.published" in listed.stdout
    done = replay(cluster, "vip")
    assert done.returncode == 0, done.stderr
    assert "1 replayed, 0 left parked" in done.stdout

    async def relays() -> list[relay_pb2.RelayTask] | None:
        res = await suite.vip.ListRelays(
            vip.ListRelaysRequest(note_id=note_id, page_size=100), metadata=SUPERVISOR)
        return list(res.relays) if len(res.relays) >= len(clients) else None

    tasks = await eventually(relays, timeout=30)
    assert sorted(t.client_id for t in tasks) == sorted(clients)
    left = await stream_messages(cluster.nats.url, "branch.parked.vip.>")
    assert [m for m in left if event_id.encode() in m.data] == []
    again = replay(cluster, "vip")
    assert "0 replayed, 0 left parked" in again.stdout
