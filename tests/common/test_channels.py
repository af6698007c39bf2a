"""Peer channels between hosts (services/common/channels.py): a directory on a non-loopback
address answers onsite's own peer channel; TLS and mutual TLS on both ends with certificates
made here; the BRANCH_TLS_* checks at start-up; the default deadline; which reads retry."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from rich.console import Console

from services.cli.branchctl import Ctl, build_parser
from services.common import channels
from services.common.server import ServiceRunner
from services.common.settings import ConfigError, Settings, load_settings
from services.directory.server import SPEC as DIRECTORY
from services.onsite.directory_link import DirectoryLink
from services.onsite.server import SPEC as ONSITE
from services.remote.core import DirectoryPeer
from services.remote.server import SPEC as REMOTE
from tests.directory.factories import client_msg
from tests.harness import ADMIN, make_settings, running, token
from tests.tls import TestCA


def host_address() -> str:
    """An IPv4 address of this host that is not loopback (as a peer host would call it)."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        out = ""
    for line in out.splitlines():
        addr = line.split()[3].split("/")[0]
        if not addr.startswith("127."):
            return addr
    pytest.skip("this host has no non-loopback IPv4 address to bind the directory to")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def addr() -> str:
    return host_address()


async def create_client(settings: Settings, address: str) -> str:
    """A client created in the directory at address, over a channel made like branchctl's."""
    async with channels.aio_channel(settings, "directory", address=address) as ch:
        created = await DirectoryServiceStub(ch).CreateClient(
            api.CreateClientRequest(client=client_msg()), metadata=ADMIN)
    return created.id


@pytest.fixture
async def directory_plain(tmp_path: Path, nats_url: str, addr: str) -> AsyncIterator[ServiceRunner]:
    async with running(DIRECTORY, make_settings(tmp_path / "dir", nats_url, host=addr)) as d:
        yield d


async def test_onsite_reaches_a_directory_on_another_address(
        tmp_path: Path, nats_url: str, addr: str, directory_plain: ServiceRunner) -> None:
    """Local credentials refused this ("Endpoint is neither UDS or TCP loopback address")."""
    target = f"{addr}:{directory_plain.port}"
    client_id = await create_client(directory_plain.settings, target)
    settings = make_settings(tmp_path / "onsite", nats_url, directory_addr=target)
    async with running(ONSITE, settings, run_consumers=False) as onsite:
        link = DirectoryLink(lambda: onsite.ctx.channel("directory"))  # as onsite wires it
        got = await link.get_client(client_id)
    assert got.id == client_id  # reached, and onsite's own token was accepted


async def test_remote_streams_trades_from_a_directory_on_another_address(
        tmp_path: Path, nats_url: str, addr: str, directory_plain: ServiceRunner) -> None:
    """remote's blocking channel (trades read in a worker thread) reaches it too."""
    target = f"{addr}:{directory_plain.port}"
    client_id = await create_client(directory_plain.settings, target)
    settings = make_settings(tmp_path / "remote", nats_url, directory_addr=target)
    async with running(REMOTE, settings, run_consumers=False) as remote:
        peer = DirectoryPeer(remote.ctx)  # as remote wires it
        try:
            seen: list[object] = []
            await peer.fold_trades(client_id, datetime.now(UTC), seen.append)
        finally:
            peer.close()
    assert seen == []  # a new client has no trades; the stream ended cleanly


def tls_settings(root: Path, nats_url: str, ca: TestCA, *, cert: bool, **extra: Any) -> Settings:
    issued = ca.issue(root.name, dns=["localhost"], ips=["127.0.0.1", host_address()])
    files: dict[str, Any] = {"tls_ca_file": str(ca.ca_file)}
    if cert:
        files |= {"tls_cert_file": str(issued.cert), "tls_key_file": str(issued.key)}
    return make_settings(root, nats_url, **files, **extra)


async def test_tls_on_both_ends(tmp_path: Path, nats_url: str, ca: TestCA, addr: str) -> None:
    served = tls_settings(tmp_path / "dir", nats_url, ca, cert=True, host=addr)
    async with running(DIRECTORY, served) as directory:
        target = f"{addr}:{directory.port}"
        client_id = await create_client(served, target)
        onsite_settings = tls_settings(tmp_path / "onsite", nats_url, ca, cert=True,
                                       directory_addr=target)
        async with running(ONSITE, onsite_settings, run_consumers=False) as onsite:
            link = DirectoryLink(lambda: onsite.ctx.channel("directory"))
            assert (await link.get_client(client_id)).id == client_id
        # a plaintext client gets nowhere with a TLS server
        plain = make_settings(tmp_path / "plain", nats_url)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create_client(plain, target)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # nor does a client that trusts another CA
        other = TestCA(tmp_path / "other", "Someone Else's CA")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create_client(tls_settings(tmp_path / "wrong", nats_url, other, cert=False),
                                target)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def branchctl(monkeypatch: pytest.MonkeyPatch, settings: Settings, target: str,
                    *argv: str) -> str:
    """Run a branchctl command as an admin with settings' BRANCH_TLS_* in the environment."""
    with monkeypatch.context() as env:  # undone before the next Settings() reads it
        for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            env.setenv(f"BRANCH_{name.upper()}", getattr(settings, name))
        env.setenv("BRANCH_DIRECTORY_ADDR", target)
        ctl = Ctl(token=token("admin-1", "admin"), console=Console(record=True, width=250))
        try:
            args = build_parser().parse_args(list(argv))
            await args.func(args, ctl)
        finally:
            await ctl.close()
    return ctl.console.export_text()


async def test_mutual_tls_refuses_clients_without_a_good_certificate(
        tmp_path: Path, nats_url: str, ca: TestCA, addr: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    served = tls_settings(tmp_path / "dir", nats_url, ca, cert=True, host=addr,
                          tls_client_auth=True)
    async with running(DIRECTORY, served) as directory:
        target = f"{addr}:{directory.port}"
        client_id = await create_client(served, target)  # its own certificate: admitted
        # a peer with a certificate from the CA calls as usual
        onsite_settings = tls_settings(tmp_path / "onsite", nats_url, ca, cert=True,
                                       directory_addr=target)
        async with running(ONSITE, onsite_settings, run_consumers=False) as onsite:
            link = DirectoryLink(lambda: onsite.ctx.channel("directory"))
            assert (await link.get_client(client_id)).id == client_id
        # branchctl with the same settings (its own certificate) is admitted too
        out = await branchctl(monkeypatch, tls_settings(tmp_path / "ctl", nats_url, ca,
                                                        cert=True),
                              target, "directory", "client", client_id)
        assert client_id in out
        # no client certificate: the handshake is refused
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create_client(tls_settings(tmp_path / "nocert", nats_url, ca, cert=False),
                                target)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # a certificate from another CA (trusting the right one for the server): refused
        other = TestCA(tmp_path / "other", "Someone Else's CA")
        stranger = other.issue("stranger", dns=["localhost"])
        wrong = make_settings(tmp_path / "stranger", nats_url, tls_ca_file=str(ca.ca_file),
                              tls_cert_file=str(stranger.cert), tls_key_file=str(stranger.key))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create_client(wrong, target)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_settings_are_checked_at_start_up(tmp_path: Path, ca: TestCA,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    issued = ca.issue("svc")
    for name in list(__import__("os").environ):
        if name.startswith("BRANCH_"):
            monkeypatch.delenv(name)

    def error(**env: str) -> str:
        for key, value in env.items():
            monkeypatch.setenv(f"BRANCH_{key.upper()}", value)
        try:
            with pytest.raises(ConfigError) as err:
                load_settings()
            return str(err.value)
        finally:
            for key in env:
                monkeypatch.delenv(f"BRANCH_{key.upper()}")

    missing = str(tmp_path / "nope.pem")
    assert "BRANCH_TLS_CA_FILE: cannot read" in error(tls_ca_file=missing)
    not_pem = tmp_path / "x.pem"
    not_pem.write_text("hello")
    assert "BRANCH_TLS_CERT_FILE: " in error(
        tls_cert_file=str(not_pem), tls_key_file=str(issued.key), tls_ca_file=str(ca.ca_file))
    assert "BRANCH_TLS_KEY_FILE: required with BRANCH_TLS_CERT_FILE" in error(
        tls_cert_file=str(issued.cert), tls_ca_file=str(ca.ca_file))
    assert "BRANCH_TLS_KEY_FILE: needs BRANCH_TLS_CERT_FILE" in error(
        tls_key_file=str(issued.key))
    assert "BRANCH_TLS_CA_FILE: required with BRANCH_TLS_CERT_FILE" in error(
        tls_cert_file=str(issued.cert), tls_key_file=str(issued.key))
    stranger = ca.issue("stranger")
    assert "BRANCH_TLS_KEY_FILE: is not the key of BRANCH_TLS_CERT_FILE" in error(
        tls_cert_file=str(issued.cert), tls_key_file=str(stranger.key),
        tls_ca_file=str(ca.ca_file))
    assert "BRANCH_TLS_CA_FILE: holds no usable CA certificate" in error(
        tls_ca_file=str(issued.key))
    assert "BRANCH_TLS_CLIENT_AUTH: needs" in error(
        tls_client_auth="true", tls_ca_file=str(ca.ca_file))
    monkeypatch.setenv("BRANCH_TLS_CA_FILE", str(ca.ca_file))
    assert load_settings().tls_ca_file == str(ca.ca_file)  # a client needs only the CA


async def test_a_call_without_a_timeout_gets_the_default_deadline(tmp_path: Path) -> None:
    """A peer that accepts the connection and never answers does not hang the caller."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        settings = Settings(data_dir=tmp_path)
        async with channels.aio_channel(settings, "directory", address=target,
                                        deadline=0.5) as ch:
            call = DirectoryServiceStub(ch).GetClient(api.GetClientRequest(id="c1"))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(call, timeout=10)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_reads_retry_and_writes_do_not() -> None:
    config = channels.service_config("directory")
    [method_config] = config["methodConfig"]
    retried = {(n["service"], n["method"]) for n in method_config["name"]}
    svc = "branch.directory.v1.DirectoryService"
    assert {(svc, "GetClient"), (svc, "ListHoldings"), (svc, "StreamTrades"),
            (svc, "FindClientsByTickers"), ("grpc.health.v1.Health", "Check")} <= retried
    assert not {m for s, m in retried if m.startswith(("Create", "Import", "Change"))}
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    json.dumps(config)
    assert channels.peer_target("directory:50051") == "dns:///directory:50051"
    assert channels.peer_target("ipv4:10.0.0.2:1,10.0.0.3:1") == "ipv4:10.0.0.2:1,10.0.0.3:1"
