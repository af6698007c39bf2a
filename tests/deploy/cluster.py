"""The suite deployed as the manifests deploy it, with processes instead of containers.

Each replica is `python -m services.cli.branch serve SERVICE` configured by environment only
(as a Deployment's ConfigMap and Secret would), against one nats-server of our own and one
database per service (SQLite files shared by a service's replicas, or PostgreSQL). A peer's
address lists every replica of that peer, as a Kubernetes Service spreads calls over its pods.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import nats
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlmodel import col, select

from services.common.db import Database
from services.common.identity import service_credential
from services.common.models import OutboxEvent, ProcessedEvent
from services.common.nats_link import STREAM, EmbeddedNats
from tests.harness import SERVICE_KEY, TRUSTED_KEYS

REPO = Path(__file__).resolve().parents[2]
GRACE_SECONDS = 4.0


def _die_with_parent() -> None:
    """A test run that is itself killed leaves no replicas behind (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def branch_command() -> list[str]:
    """The `branch` console script beside this interpreter, as the image runs it."""
    script = Path(sys.executable).parent / "branch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "services.cli.branch"]


def _port_range(low: int = 20000, high: int = 32000) -> tuple[int, int]:
    """This process's share of [low, high): under pytest-xdist each worker picks from a slice
    of its own, so two workers never plan the same port before either has bound it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or not worker[2:].isdigit() or count <= 1:
        return low, high
    size = (high - low) // count
    start = low + (int(worker[2:]) % count) * size
    return start, start + size


def pick_port(taken: set[int]) -> int:
    """A free loopback port below the kernel's ephemeral range, so that the port 0 binds of
    other processes cannot take it between planning and starting; a restarted replica binds
    its port again, as a pod keeps its container port."""
    rng = random.Random()
    low, high = _port_range()
    while True:
        port = rng.randrange(low, high)
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port


@dataclass
class Replica:
    service: str
    index: int
    port: int
    metrics_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Cluster:
    root: Path
    nats: EmbeddedNats
    database_url: str  # with {service}
    replicas: dict[str, list[Replica]] = field(default_factory=dict)

    def plan(self, counts: dict[str, int]) -> None:
        """Choose ports for every replica before any starts, so peers know each other."""
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        for service, count in counts.items():
            self.replicas[service] = [
                Replica(service, i, pick_port(taken), pick_port(taken),
                        self.root / "logs" / f"{service}-{i}.log")
                for i in range(count)
            ]

    def peer_address(self, service: str) -> str:
        """Every replica of a service, as one gRPC target (fails over like a Service)."""
        ports = [r.address for r in self.replicas.get(service, [])]
        return "ipv4:" + ",".join(ports) if len(ports) > 1 else (ports[0] if ports else "")

    def client_target(self, service: str) -> str:
        """The target the test (the load) calls a service by."""
        return self.peer_address(service)

    def dial(self, target: str, service: str,
             options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
        """A channel from the test to target (one replica or all of a service's)."""
        return grpc.aio.insecure_channel(target, options=options)

    def launcher(self, replica: Replica) -> list[str]:
        """What a replica's command runs under (e.g. `ip netns exec NS`); nothing here."""
        return []

    def env_for(self, replica: Replica) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCH_")}
        env.update(
            BRANCH_NATS_URL=self.nats.url,
            BRANCH_DATABASE_URL=self.database_url,
            # the harness's test tokens are trusted besides the directory's own keys
            BRANCH_TRUSTED_KEYS=TRUSTED_KEYS,
            BRANCH_HOST="127.0.0.1",
            BRANCH_DATA_DIR=str(self.root / "data" / replica.name),
            BRANCH_METRICS_PORT=str(replica.metrics_port),
            BRANCH_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
            BRANCH_OUTBOX_POLL_SECONDS="0.5",
            # a killed replica's unacknowledged events come back to the survivor quickly
            BRANCH_CONSUMER_ACK_WAIT_SECONDS="3",
            BRANCH_CONSUMER_MAX_DELIVER="3",
            BRANCH_LOG_LEVEL="info",
            # a dozen replicas share the test PostgreSQL server with the other workers
            BRANCH_DATABASE_POOL_SIZE="2",
            PYTHONUNBUFFERED="1",
        )
        env[f"BRANCH_{replica.service.upper()}_PORT"] = str(replica.port)
        # as on separate hosts: only the directory holds the service key; every other
        # service gets its own credential
        if replica.service == "directory":
            env["BRANCH_SERVICE_KEY"] = SERVICE_KEY
        else:
            env["BRANCH_SERVICE_CREDENTIAL"] = service_credential(SERVICE_KEY, replica.service)
        for peer in self.replicas:
            if peer != replica.service:
                env[f"BRANCH_{peer.upper()}_ADDR"] = self.peer_address(peer)
        return env

    def spawn(self, replica: Replica) -> None:
        log = replica.log_path.open("ab")
        replica.proc = subprocess.Popen(
            [*self.launcher(replica), *branch_command(), "serve", replica.service],
            env=self.env_for(replica),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()

    async def start(self, replica: Replica, timeout: float = 60.0) -> None:
        self.spawn(replica)
        await self.wait_serving(replica, timeout)

    async def start_all(self, timeout: float = 90.0) -> None:
        everyone = [r for rs in self.replicas.values() for r in rs]
        for replica in everyone:
            self.spawn(replica)
        await asyncio.gather(*(self.wait_serving(r, timeout) for r in everyone))

    async def wait_serving(self, replica: Replica, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self.dial(replica.address, replica.service) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                if not replica.alive:
                    raise AssertionError(
                        f"{replica.name} exited ({replica.proc and replica.proc.returncode}):\n"
                        + replica.log_tail()
                    )
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if loop.time() > deadline:
                    raise AssertionError(f"{replica.name} not serving:\n" + replica.log_tail())
                await asyncio.sleep(0.2)

    def signal(self, replica: Replica, sig: signal.Signals) -> None:
        assert replica.proc is not None
        replica.proc.send_signal(sig)

    async def wait_exit(self, replica: Replica, timeout: float) -> int | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        assert replica.proc is not None
        while replica.proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return replica.proc.poll()

    async def ensure_running(self) -> None:
        """Bring back replicas an earlier test killed, as a Deployment would."""
        down = [r for rs in self.replicas.values() for r in rs if not r.alive]
        for replica in down:
            self.spawn(replica)
        await asyncio.gather(*(self.wait_serving(r, 60) for r in down))

    def stop_all(self) -> None:
        everyone = [r for rs in self.replicas.values() for r in rs if r.alive]
        procs = [r.proc for r in everyone if r.proc is not None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=GRACE_SECONDS + 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def channel(self, service: str) -> grpc.aio.Channel:
        """A client channel over every replica of a service."""
        return self.dial(self.client_target(service), service)

    def database(self, service: str) -> Database:
        return Database(self.database_url.replace("{service}", service), service=service)


# ---- what the stream and the databases hold ---------------------------------------------


async def stream_messages(nats_url: str, subject: str = "branch.>") -> list[Any]:
    """Every message in the BRANCH stream on subject, read with an ephemeral pull consumer."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            subject, stream=STREAM,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
        )
        out: list[Any] = []
        while True:
            info = await sub.consumer_info()
            if not info.num_pending:
                break
            try:
                out.extend(await sub.fetch(min(info.num_pending, 256), timeout=2))
            except (TimeoutError, nats.errors.TimeoutError):
                break
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def durable_consumers(nats_url: str) -> dict[str, list[str]]:
    """Durable consumer name -> its filter subjects."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        out: dict[str, list[str]] = {}
        for info in await js.consumers_info(STREAM):
            cfg = info.config
            if not cfg.durable_name:
                continue
            subjects = list(cfg.filter_subjects or [])
            if cfg.filter_subject:
                subjects.append(cfg.filter_subject)
            out[cfg.durable_name] = subjects
        return out
    finally:
        await nc.close()


def subject_matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


async def unsent_outbox(db: Database) -> int:
    async with db.read() as session:
        rows = await session.exec(select(OutboxEvent.seq).where(col(OutboxEvent.sent_at).is_(None)))
        return len(rows.all())


async def processed(db: Database, consumer: str) -> list[str]:
    async with db.read() as session:
        rows = await session.exec(
            select(ProcessedEvent.event_id).where(ProcessedEvent.consumer == consumer)
        )
        return list(rows.all())
