"""The deployed suite survives what operators do to it: replicas on one database, a replica
killed mid-flow, a rolling restart (SIGTERM), a NATS restart. Driven through directory, which
every deployment has; the flows across services are in test_flows.py."""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator

import grpc
from branch.directory.v1 import client_pb2, holding_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.deploy.cluster import GRACE_SECONDS, Cluster, Replica, stream_messages, unsent_outbox
from tests.directory.factories import client_msg
from tests.harness import ADMIN, eventually, unique

CREATED = "branch.directory.client.created"


async def create_client(primary: Replica, fallback: Replica, request_id: str) -> str:
    """CreateClient on primary; when it is gone, retry the same request_id on fallback."""
    message = client_msg()
    for replica in (primary, fallback):
        async with grpc.aio.insecure_channel(replica.address) as ch:
            try:
                created = await DirectoryServiceStub(ch).CreateClient(
                    api.CreateClientRequest(client=message, request_id=request_id),
                    metadata=ADMIN, timeout=10,
                )
                return created.id
            except grpc.aio.AioRpcError as err:
                if replica is fallback or err.code() not in (
                    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                    grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN,
                ):
                    raise
    raise AssertionError("unreachable")


async def health(replica: Replica) -> str:
    async with grpc.aio.insecure_channel(replica.address) as ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.aio.AioRpcError as err:
            return err.code().name
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return name


async def created_events(cluster: Cluster) -> Counter[str]:
    """client id -> how many client.created events the stream holds for it."""
    msgs = await stream_messages(cluster.nats.url, CREATED)
    return Counter(m.headers["ce-subject"] for m in msgs)


async def all_published(cluster: Cluster, ids: list[str]) -> bool:
    counts = await created_events(cluster)
    return all(counts[i] >= 1 for i in ids)


async def assert_exactly_once(cluster: Cluster, ids: list[str]) -> None:
    await eventually(lambda: all_published(cluster, ids), timeout=30)
    counts = await created_events(cluster)
    assert {i: counts[i] for i in ids if counts[i] != 1} == {}
    db = cluster.database("directory")
    try:
        assert await unsent_outbox(db) == 0
    finally:
        await db.dispose()


async def test_replicas_share_one_database_and_publish_each_event_once(deployed: Cluster) -> None:
    a, b = deployed.replicas["directory"]
    ids = await asyncio.gather(*(
        create_client(a if i % 2 else b, a, unique("rq-")) for i in range(20)
    ))
    assert len(set(ids)) == 20
    async with grpc.aio.insecure_channel(b.address) as ch:
        stub = DirectoryServiceStub(ch)
        for client_id in ids:  # what one replica wrote, the other reads
            assert (await stub.GetClient(api.GetClientRequest(id=client_id),
                                         metadata=ADMIN)).id == client_id
    await assert_exactly_once(deployed, ids)


async def test_sigkill_mid_flow_loses_nothing(deployed: Cluster) -> None:
    survivor, victim = deployed.replicas["directory"]
    request_ids = [unique("kill-") for _ in range(40)]
    done: list[str] = []

    async def worker(chunk: list[str]) -> None:
        for request_id in chunk:
            done.append(await create_client(victim, survivor, request_id))

    work = asyncio.gather(*(worker(request_ids[i::4]) for i in range(4)))
    await eventually(lambda: len(done) >= 10, timeout=30)
    deployed.signal(victim, signal.SIGKILL)
    await work
    assert victim.proc is not None and victim.proc.wait(5) == -signal.SIGKILL
    # Every request became exactly one client (retries of a lost answer are idempotent) ...
    assert len(done) == 40 and len(set(done)) == 40
    # ... and every committed event is published once, by the survivor's relay if need be.
    await assert_exactly_once(deployed, done)
    await deployed.ensure_running()  # the killed replica restarts on the same database


async def test_sigterm_finishes_in_flight_calls_and_exits_within_grace(deployed: Cluster) -> None:
    other, leaving = deployed.replicas["directory"]
    sent = asyncio.Event()
    release = asyncio.Event()
    tickers = [f"T{unique()[:6].upper()}{i}" for i in range(6)]

    async def records() -> AsyncIterator[api.ImportTradesRequest]:
        for i, ticker in enumerate(tickers):
            if i == 3:
                sent.set()
                await release.wait()  # the call is in flight while the replica is told to stop
            yield api.ImportTradesRequest(security=holding_pb2.Security(
                ticker=ticker, name="Co", risk_level=client_pb2.RiskLevel.ValueType(2), last_price="10.5"))

    async with grpc.aio.insecure_channel(leaving.address) as ch:
        call = DirectoryServiceStub(ch).ImportTrades(records(), metadata=ADMIN, timeout=30)
        await asyncio.wait_for(sent.wait(), 10)
        deployed.signal(leaving, signal.SIGTERM)
        await asyncio.sleep(1.0)
        # told to stop: not ready for new work (probes take it out of the Service) ...
        assert await health(leaving) != "SERVING"
        release.set()  # ... while the call already in flight goes on to the end
        reply = await call
    assert reply.accepted == len(tickers)
    # exits by itself once drained: the grace, then the outbox flush (at most 5 s), no SIGKILL
    code = await deployed.wait_exit(leaving, GRACE_SECONDS + 10)
    assert code == 0, leaving.log_tail()
    async with grpc.aio.insecure_channel(other.address) as ch:
        listed = await DirectoryServiceStub(ch).ListSecurities(
            api.ListSecuritiesRequest(page_size=500), metadata=ADMIN)
    assert set(tickers) <= {s.ticker for s in listed.securities}


async def test_sigterm_stops_consumers_and_timers_within_grace(deployed: Cluster) -> None:
    """A rolling restart of every event-driven service: each replica told to stop exits
    cleanly within its grace, and the other replica carries on."""
    leaving = [rs[1] for name, rs in deployed.replicas.items() if name != "directory"]
    for replica in leaving:
        deployed.signal(replica, signal.SIGTERM)
    codes = await asyncio.gather(*(deployed.wait_exit(r, GRACE_SECONDS + 10) for r in leaving))
    assert {r.name: c for r, c in zip(leaving, codes, strict=True) if c != 0} == {}
    await deployed.ensure_running()


async def test_nats_restart_outbox_catches_up(deployed: Cluster) -> None:
    a, b = deployed.replicas["directory"]
    deployed.nats.stop()
    try:
        # NATS down: the services keep answering; events wait in the outbox.
        ids = await asyncio.gather(*(
            create_client(a if i % 2 else b, a, unique("nats-")) for i in range(10)
        ))
        db = deployed.database("directory")
        try:
            assert await unsent_outbox(db) >= 10
        finally:
            await db.dispose()
    finally:
        deployed.nats.start()
    await assert_exactly_once(deployed, list(ids))


async def test_metrics_are_exposed_on_the_metrics_port(deployed: Cluster) -> None:
    replica = deployed.replicas["directory"][0]
    await create_client(replica, replica, unique("m-"))

    def scrape() -> str:
        url = f"http://127.0.0.1:{replica.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            body: bytes = reply.read()
            return body.decode()

    async def sampled() -> str:
        text = await asyncio.to_thread(scrape)
        return text if "branch_outbox_backlog{" in text else ""

    text = await eventually(sampled, timeout=15)
    assert 'branch_rpc_total{code="OK",method="CreateClient",service="directory"}' in text
    assert 'branch_outbox_published_total{service="directory"}' in text
    assert "branch_outbox_oldest_age_seconds" in text
    assert "branch_sla_breaches_total" in text
