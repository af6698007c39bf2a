"""Flows 1 to 4 of DESIGN.md with every replica, the NATS server and the load on hosts of
their own (network namespaces on one switch, tests/deploy/netns.py), as compose and
Kubernetes run them: services bind 0.0.0.0 on their usual ports and call each other by name
(`directory:50051`, two addresses for the replicated ones), with TLS off and with mutual TLS.

The flow tests are test_flows.py's own, collected again here: this module's `cluster`
fixture (overriding the folder's) is what they run against. Skips with the reason when
namespaces cannot be made (not root, no iproute2); CI runs as root and runs it.
Databases are SQLite files shared through the filesystem (namespaces split only the network).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from branch.directory.v1 import client_pb2, staff_pb2

from services import registry
from services.common.nats_link import EmbeddedNats
from services.common.settings import SERVICE_PORTS
from tests.deploy import test_flows as flows
from tests.deploy.cluster import REPO, Cluster, Replica
from tests.deploy.conftest import deployed_services
from tests.deploy.netns import Host, NetnsUnavailable, Network
from tests.deploy.suite import Suite
from tests.harness import auth, eventually, unique
from tests.tls import TestCA

pytestmark = pytest.mark.skipif(
    not flows.FLOW_SERVICES <= {s for s in registry.SERVICES if registry.spec(s) is not None},
    reason="flows need directory, research, vip and remote",
)

# vip runs two replicas because flow 1 kills one; directory two, so that its name resolves
# to two hosts and callers spread over them.
REPLICAS = {"directory": 2, "vip": 2}
METRICS_PORT = 9464
NATS_PORT = 4222


@dataclass
class HostReplica(Replica):
    host: Host | None = None

    @property
    def address(self) -> str:
        assert self.host is not None
        return f"{self.host.address}:{self.port}"


@dataclass
class Tls:
    """Mutual TLS: a CA, a certificate per replica (its service name, its own name and
    address) and one for the load."""

    ca: TestCA
    load_cert: bytes
    load_key: bytes

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca.ca_file.read_bytes(), self.load_key,
                                            self.load_cert)


class HostsCluster(Cluster):
    """The suite with each replica on its own host; the test process is the load's host."""

    network: Network
    tls: Tls | None

    def plan_hosts(self, network: Network, counts: dict[str, int], tls: Tls | None) -> None:
        self.network, self.tls = network, tls
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        for service, count in counts.items():
            self.replicas[service] = [
                HostReplica(service, i, SERVICE_PORTS[service], METRICS_PORT,
                            self.root / "logs" / f"{service}-{i}.log",
                            host=network.add_host(f"{service}-{i}", service))
                for i in range(count)
            ]

    def peer_address(self, service: str) -> str:
        return f"{service}:{SERVICE_PORTS[service]}"  # as compose and Kubernetes name it

    def client_target(self, service: str) -> str:
        # The load's host has no hosts file of ours: it lists the addresses itself.
        return "ipv4:" + ",".join(r.address for r in self.replicas[service])

    def dial(self, target: str, service: str,
             options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
        if self.tls is None:
            return grpc.aio.insecure_channel(target, options=options)
        # the certificates name the service, not the addresses the load dials
        opts = [*(options or []), ("grpc.ssl_target_name_override", service)]
        return grpc.aio.secure_channel(target, self.tls.credentials(), options=opts)

    def launcher(self, replica: Replica) -> list[str]:
        assert isinstance(replica, HostReplica) and replica.host is not None
        return replica.host.exec_prefix()

    def env_for(self, replica: Replica) -> dict[str, str]:
        env = super().env_for(replica)
        env["BRANCH_HOST"] = "0.0.0.0"  # noqa: S104  (its own host, as in a container)
        if self.tls is not None:
            certs = self.root / "tls"
            env.update(
                BRANCH_TLS_CA_FILE=str(self.tls.ca.ca_file),
                BRANCH_TLS_CERT_FILE=str(certs / f"{replica.name}.pem"),
                BRANCH_TLS_KEY_FILE=str(certs / f"{replica.name}.key"),
                BRANCH_TLS_CLIENT_AUTH="true",
            )
        return env


def make_tls(root: Path, cluster: HostsCluster) -> Tls:
    ca = TestCA(root / "tls")
    for replicas in cluster.replicas.values():
        for r in replicas:
            assert isinstance(r, HostReplica) and r.host is not None
            ca.issue(r.name, dns=[r.service, r.name], ips=[r.host.address])
    load = ca.issue("load")
    return Tls(ca, load.cert.read_bytes(), load.key.read_bytes())


@pytest.fixture(scope="module", params=["plaintext", "mutual-tls"])
async def cluster(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """Overrides the folder's cluster: every replica and NATS on a host of its own."""
    root = tmp_path_factory.mktemp(f"hosts-{request.param}")
    network = Network()
    try:
        network.create()
    except NetnsUnavailable as exc:
        network.destroy()
        pytest.skip(f"multi-host deploy test skipped: cannot make network namespaces ({exc})")
    nats: EmbeddedNats | None = None
    suite: HostsCluster | None = None
    try:
        nats_host = network.add_host("nats", "nats")
        nats = EmbeddedNats(root / "nats", port=NATS_PORT, host=nats_host.address,
                            launcher=nats_host.exec_prefix())
        (root / "db").mkdir()
        suite = HostsCluster(root=root, nats=nats,
                             database_url=f"sqlite+aiosqlite:///{root / 'db'}/{{service}}.db")
        tls = None
        suite.plan_hosts(network, {s: REPLICAS.get(s, 1) for s in deployed_services()}, None)
        if request.param == "mutual-tls":
            tls = make_tls(root, suite)
            suite.tls = tls
        network.write_hosts()
        nats.start()
        await suite.start_all()
        yield suite
    finally:
        if suite is not None:
            suite.stop_all()
        if nats is not None:
            nats.stop()
        network.destroy()


# test_flows.py's tests, in their order, run against this module's cluster
test_flow1_research_reaches_key_clients_with_a_vip_replica_killed = (
    flows.test_flow1_research_reaches_key_clients_with_a_vip_replica_killed)
test_flow2_vip_question_needs_research = flows.test_flow2_vip_question_needs_research
test_flow3_hotline_caller_is_a_key_client = flows.test_flow3_hotline_caller_is_a_key_client
test_flow4_client_becomes_key_across_a_nats_restart = (
    flows.test_flow4_client_becomes_key_across_a_nats_restart)
test_every_event_was_handled_exactly_once_across_replicas = (
    flows.test_every_event_was_handled_exactly_once_across_replicas)


def _json_or_none(line: str) -> dict[str, Any] | None:
    """One structlog JSON line (however it is spaced), None for any other output."""
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


async def test_peers_spread_their_calls_over_every_directory_host(suite: Suite) -> None:
    """`directory:50051` names two hosts: the other services' calls (their own service
    tokens, `svc:*`) reach both, round robin, not only the first address.

    The test makes the peer calls itself (each ticket opened for a client makes the remote
    service read that client from the directory), so it does not depend on how many calls
    the earlier tests happened to make."""
    from branch.remote.v1 import remote_service_pb2 as rapi
    from branch.remote.v1 import ticket_pb2 as tpb

    agent = await suite.staff(staff_pb2.ROLE_SERVICE_AGENT)
    client_id = await suite.client(broker_id=await suite.staff(staff_pb2.ROLE_BROKER),
                                   tier=client_pb2.TIER_STANDARD)
    replicas = suite.cluster.replicas["directory"]

    def peer_calls(replica: Replica) -> int:
        return sum(1 for rec in map(_json_or_none, replica.log_path.read_text().splitlines())
                   if rec and rec.get("event") == "rpc"
                   and str(rec.get("staff_id", "")).startswith("svc:"))

    before = {r.name: peer_calls(r) for r in replicas}
    for _ in range(12):  # round robin over two ready hosts: six each
        await suite.remote.OpenTicket(rapi.OpenTicketRequest(ticket=tpb.Ticket(
            line=tpb.LINE_TECHNICAL, client_id=client_id, caller_name="Caller",
            caller_phone="13900000001", category="app", summary="cannot log in",
            priority=tpb.PRIORITY_NORMAL), request_id=unique("rr-")),
            metadata=auth(agent, "service_agent"))

    def served() -> dict[str, int]:
        return {r.name: peer_calls(r) - before[r.name] for r in replicas}

    try:  # a host logs its call just after answering it
        await eventually(lambda: all(served().values()), timeout=10)
    except AssertionError:
        raise AssertionError(f"peer calls served by each directory host: {served()}") from None


async def test_container_healthcheck_speaks_the_served_transport(deployed: Cluster) -> None:
    """The image's HEALTHCHECK, run on a replica's host with its environment, asks over
    plaintext or (mutual) TLS as the replica serves."""
    replica = deployed.replicas["directory"][0]
    done = subprocess.run(
        [*deployed.launcher(replica), sys.executable, str(REPO / "deploy" / "healthcheck.py"),
         "directory"],
        cwd=REPO, env=deployed.env_for(replica), capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "SERVING"), done.stdout + done.stderr
