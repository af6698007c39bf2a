"""Parked events, as an operator meets them: a dependency is down long enough that a
consumer parks an event; once it is back, `branch replay-parked` publishes the event again
and the flow completes, exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

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


def parked_total(cluster: Cluster, service: str) -> float:
    total = 0.0
    for replica in cluster.replicas[service]:
        url = f"http://127.0.0.1:{replica.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith("branch_events_parked_total{"):
                    total += float(line.rsplit(" ", 1)[1])
    return total


async def test_event_parked_while_directory_was_down_is_replayed(suite: Suite) -> None:
    from branch.directory.v1 import staff_pb2
    from branch.vip.v1 import vip_service_pb2 as vip

    cluster = suite.cluster
    br = await suite.staff(staff_pb2.ROLE_BROKER)
    clients = [await suite.client(broker_id=br) for _ in range(2)]
    ticker = f"6{unique()[:5].upper()}"
    await suite.holdings([(c, ticker) for c in clients])
    await asyncio.gather(*(suite.on_roster(c) for c in clients))

    # vip matches a published note's clients through directory: take directory away
    for replica in cluster.replicas["directory"]:
        cluster.signal(replica, signal.SIGTERM)
    for replica in cluster.replicas["directory"]:
        assert await cluster.wait_exit(replica, 30) == 0
    note = await suite.publish_note(ticker)

    async def parked() -> list:
        msgs = await stream_messages(cluster.nats.url, "branch.parked.vip.>")
        return [m for m in msgs if note.id.encode() in m.data]

    await eventually(parked, timeout=45)
    assert await asyncio.to_thread(parked_total, cluster, "vip") >= 1

    # the fault is fixed; the operator looks, then replays
    await cluster.ensure_running()
    listed = replay(cluster, "vip", "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert "would replay" in listed.stdout and "branch.research.note.published" in listed.stdout
    done = replay(cluster, "vip")
    assert done.returncode == 0, done.stderr
    assert "0 left parked" in done.stdout

    async def relays() -> list | None:
        res = await suite.stub("vip").ListRelays(
            vip.ListRelaysRequest(note_id=note.id, page_size=100), metadata=SUPERVISOR)
        return list(res.relays) if len(res.relays) >= len(clients) else None

    tasks = await eventually(relays, timeout=30)
    assert sorted(t.client_id for t in tasks) == sorted(clients)
    assert await parked() == []
