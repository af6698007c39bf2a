"""`branch up`: the embedded suite starts every service and its own NATS, and Ctrl-C stops
all of it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services import registry
from services.cli.demo import load_demo
from services.common.nats_link import free_port
from tests.harness import SIGNER, make_settings

BRANCH = str(Path(sys.executable).parent / "branch")
REPO = Path(__file__).resolve().parents[2]


async def test_up_serves_every_service_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in registry.SERVICES}
    console_port = free_port()
    env = {**os.environ, **{f"BRANCH_{n.upper()}_PORT": str(p) for n, p in ports.items()},
           "BRANCH_CONSOLE_PORT": str(console_port)}
    env.pop("BRANCH_NATS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        BRANCH, "up", "--data-dir", str(tmp_path / "data"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    banner: list[str] = []
    try:
        assert proc.stdout is not None
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=90)).decode()
            assert line, "branch up exited early:\n" + "".join(banner)
            banner.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(banner)
        assert "NATS      nats://127.0.0.1:" in text
        # the bootstrap admin signs in with a password kept for the operator only
        password = tmp_path / "data" / "admin.password"
        assert password.stat().st_mode & 0o777 == 0o600
        assert "branchctl login" in text and str(password) in text
        assert not (tmp_path / "data" / "admin.token").exists()
        for name, port in ports.items():
            assert f"{name:<9} 127.0.0.1:{port}" in text
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
                assert resp.status == health_pb2.HealthCheckResponse.SERVING
        # the staff console too, printed with the others, ready once the directory answers
        assert f"console   http://127.0.0.1:{console_port}/" in text
        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{console_port}/healthz")
        assert (status, body) == (200, "ok")
        assert await _container_healthcheck(console_port) == (0, "ok")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    for port in [*ports.values(), console_port]:  # every server is gone
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            raise AssertionError(f"port {port} still open")
        except OSError:
            pass


async def _container_healthcheck(console_port: int) -> tuple[int, str]:
    """deploy/healthcheck.py console, as the container's HEALTHCHECK runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCH_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "deploy" / "healthcheck.py"), "console", cwd=REPO,
        env={**env, "BRANCH_CONSOLE_PORT": str(console_port)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode().strip()


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read().decode()


async def test_demo_loads_once_per_data_dir(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "nats://127.0.0.1:1")
    (tmp_path / "demo.loaded").write_text("2026-11-27T00:00:00+00:00\n")
    assert await load_demo(settings, "unused", SIGNER) is None


async def test_serve_console_alone_says_not_ready_without_the_directory(
        tmp_path: Path, nats_url: str) -> None:
    """`branch serve console`: the console by itself (containers); its readiness follows the
    directory (nothing listens at BRANCH_DIRECTORY_ADDR here), SIGTERM stops it."""
    port = free_port()
    env = {**os.environ, "BRANCH_NATS_URL": nats_url, "BRANCH_CONSOLE_PORT": str(port),
           "BRANCH_DIRECTORY_ADDR": f"127.0.0.1:{free_port()}",
           "BRANCH_DATA_DIR": str(tmp_path / "unused")}
    proc = await asyncio.create_subprocess_exec(
        BRANCH, "serve", "console", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("console   http" in line for line in lines):
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
            assert line, "branch serve console exited early:\n" + "".join(lines)
            lines.append(line)
        try:
            await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
            raise AssertionError("ready without a directory")
        except urllib.error.HTTPError as err:
            assert err.code == 503
            assert err.read().decode().startswith("directory: ")
        code, said = await _container_healthcheck(port)
        assert code == 1 and said.startswith("unhealthy: 503 directory: ")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
