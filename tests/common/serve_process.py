"""One `branch serve SERVICE` child process configured by environment only, as a container
runs it, for the tests of shutdown, health and start-up errors."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.deploy.cluster import REPO, branch_command, pick_port
from tests.harness import SERVICE_KEY, TRUSTED_KEYS


def serve_env(data_dir: Path, nats_url: str, database_url: str = "",
              **extra: str) -> dict[str, str]:
    """The environment of one replica: every BRANCH_ variable of the caller dropped first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCH_")}
    env.update(
        BRANCH_NATS_URL=nats_url,
        BRANCH_TRUSTED_KEYS=TRUSTED_KEYS,
        BRANCH_SERVICE_KEY=SERVICE_KEY,
        BRANCH_DATA_DIR=str(data_dir),
        BRANCH_HOST="127.0.0.1",
        BRANCH_LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
    )
    if database_url:
        env["BRANCH_DATABASE_URL"] = database_url
    env.update(extra)
    return env


async def health_of(address: str, service: str = "") -> str:
    """SERVING, NOT_SERVING, or the status code of a failed Check."""
    async with grpc.aio.insecure_channel(address) as ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1)
        except grpc.aio.AioRpcError as err:
            return err.code().name
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return name


@asynccontextmanager
async def serving(service: str, env: dict[str, str], log: Path,
                  timeout: float = 60) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Start `branch serve SERVICE` on a free port; yield it with its address once SERVING."""
    port = pick_port(set())
    env = {**env, f"BRANCH_{service.upper()}_PORT": str(port)}
    address = f"127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *branch_command(), "serve", service, env=env, cwd=REPO,
            stdout=out, stderr=subprocess.STDOUT)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await health_of(address) != "SERVING":
            if proc.returncode is not None or loop.time() > deadline:
                raise AssertionError(f"{service} did not start:\n" + log.read_text())
            await asyncio.sleep(0.2)
        yield proc, address
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
