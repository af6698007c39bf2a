"""branchctl against a running directory, as a person would use it (a real subprocess)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as api

from services.common.server import ServiceRunner
from tests.directory.factories import make_client, make_staff
from tests.harness import ADMIN, token

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub

BRANCHCTL = str(Path(sys.executable).parent / "branchctl")


async def ctl(runner: ServiceRunner, home: Path, *args: str, tok: str = "") -> tuple[int, str]:
    env = {**os.environ, "BRANCHCTL_HOME": str(home),
           "BRANCH_DIRECTORY_ADDR": f"127.0.0.1:{runner.port}"}
    if tok:
        env["BRANCH_TOKEN"] = tok
    proc = await asyncio.create_subprocess_exec(
        BRANCHCTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_login_list_show_and_import(directory: ServiceRunner, stub: DirectoryServiceAsyncStub, tmp_path: Path) -> None:
    home = tmp_path / "ctl"
    admin_tok = token("admin-1", "admin")
    (tmp_path / "admin.token").write_text(admin_tok)
    broker = await make_staff(stub, "broker", display_name="Broker One")
    client = await make_client(stub, tier=client_pb2.TIER_KEY, broker_id=broker.id)

    code, out = await ctl(directory, home, "login", "--as", broker.id, "--into", "broker",
                          tok=admin_tok)
    assert code == 0 and "roles: broker" in out
    code, out = await ctl(directory, home, "--profile", "broker", "directory", "clients",
                          "--tier", "key")
    assert code == 0 and client.id in out and "(1 match)" in out  # the broker's own only

    csv = tmp_path / "trades.csv"
    csv.write_text(
        "trade_id,client_id,ticker,side,quantity,price,fee,trade_time\n"
        f"X1,{client.id},600519,buy,100,1500,1.2,2026-03-02T09:31:00+08:00\n"
        f"X2,{client.id},600519,sell,50,1550,1.2,2026-03-05T10:00:00+08:00\n"
        f"X3,{client.id},600519,hold,50,1550,1.2,2026-03-05T10:00:00+08:00\n"
    )
    code, out = await ctl(directory, home, "directory", "import", str(csv), tok=admin_tok)
    assert code == 0 and "accepted 2, duplicate 0, rejected 1" in out
    assert "row 4: trade.side" in out
    code, out = await ctl(directory, home, "directory", "import", str(csv), tok=admin_tok)
    assert "accepted 0, duplicate 2, rejected 1" in out

    code, out = await ctl(directory, home, "directory", "staff", "--role", "broker",
                          tok=admin_tok)
    assert code == 0 and broker.employee_no in out


async def test_errors_are_reported_not_tracebacks(directory: ServiceRunner, stub: DirectoryServiceAsyncStub, tmp_path: Path) -> None:
    home = tmp_path / "ctl"
    code, out = await ctl(directory, home, "directory", "client", "nope",
                          tok=token("b1", "broker"))
    # what was typed is looked up first (services/cli/people.py): nobody answers to it
    assert code == 1 and "no client matches 'nope'" in out and "Traceback" not in out
    code, out = await ctl(directory, home, "directory", "clients")
    assert code != 0 and "not signed in" in out
    other = await make_client(stub)
    code, out = await ctl(directory, home, "directory", "client", other.id,
                          tok=token("b1", "broker"))
    assert code == 17 and "PERMISSION_DENIED" in out
    # the command changed nothing
    got = await stub.GetClient(api.GetClientRequest(id=other.id), metadata=ADMIN)
    assert got == other


async def test_password_sign_in_with_two_profiles_side_by_side(
    directory: ServiceRunner, stub: DirectoryServiceAsyncStub, tmp_path: Path
) -> None:
    """The bootstrap admin signs in with the generated first password (changing it), an
    admin-reset broker signs in beside it in another profile; logging one out leaves the
    other signed in."""
    home = tmp_path / "ctl"
    first = (tmp_path / "admin.password").read_text().strip()
    assert (tmp_path / "admin.password").stat().st_mode & 0o777 == 0o600
    env = {"BRANCH_PASSWORD": first, "BRANCH_NEW_PASSWORD": "admin-chosen-pass-1"}
    code, out = await ctl_env(directory, home, env, "--profile", "admin", "login", "ADMIN")
    assert code == 0 and "password changed" in out and "roles: admin" in out, out
    profile = home / "profiles" / "admin.json"
    assert profile.stat().st_mode & 0o777 == 0o600
    assert first not in profile.read_text() and "admin-chosen-pass-1" not in profile.read_text()

    broker = await make_staff(stub, "broker")
    code, out = await ctl_env(directory, home, {}, "--profile", "admin", "directory",
                              "reset-password", broker.id)
    assert code == 0 and "temporary password" in out, out
    temporary = out.strip().split()[-1]
    env = {"BRANCH_EMPLOYEE_NO": broker.employee_no, "BRANCH_PASSWORD": temporary,
           "BRANCH_NEW_PASSWORD": "broker-own-pass-1"}
    code, out = await ctl_env(directory, home, env, "--profile", "me", "login")
    assert code == 0 and "roles: broker" in out, out

    code, out = await ctl_env(directory, home, {}, "--profile", "admin", "directory", "staff")
    assert code == 0 and broker.employee_no in out
    code, out = await ctl_env(directory, home, {}, "profiles")
    assert "admin" in out and "me" in out
    code, out = await ctl_env(directory, home, {}, "--profile", "me", "logout")
    assert code == 0 and not (home / "profiles" / "me.json").exists()
    code, out = await ctl_env(directory, home, {}, "--profile", "me", "whoami")
    assert code != 0 and "not signed in" in out
    code, out = await ctl_env(directory, home, {}, "--profile", "admin", "whoami")
    assert code == 0 and "ADMIN" in out


async def ctl_env(runner: ServiceRunner, home: Path, extra: dict[str, str], *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCH")}
    env.update(BRANCHCTL_HOME=str(home), BRANCH_DIRECTORY_ADDR=f"127.0.0.1:{runner.port}",
               **extra)
    proc = await asyncio.create_subprocess_exec(
        BRANCHCTL, *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_expiring_sign_in_is_refreshed_once_by_concurrent_commands(
    tmp_path: Path, nats_url: str
) -> None:
    """Access tokens shorter than branchctl's refresh margin: every command refreshes. Two
    commands at once take turns (the refresh token is single use; spending it twice would
    end the sign-in as a theft)."""
    from services.directory.server import SPEC
    from tests.harness import make_settings, running

    settings = make_settings(tmp_path, nats_url, token_ttl_seconds=20,
                             admin_password="first-admin-pass")
    async with running(SPEC, settings) as d:
        home = tmp_path / "ctl"
        env = {"BRANCH_PASSWORD": "first-admin-pass", "BRANCH_NEW_PASSWORD": "admin-pass-002"}
        code, out = await ctl_env(d, home, env, "login", "ADMIN")
        assert code == 0, out
        before = (home / "profiles" / "default.json").read_text()
        results = await asyncio.gather(*(ctl_env(d, home, {}, "whoami") for _ in range(2)))
        assert all(c == 0 and "ADMIN" in o for c, o in results), results
        assert (home / "profiles" / "default.json").read_text() != before  # refreshed
        code, out = await ctl_env(d, home, {}, "directory", "staff")
        assert code == 0 and "ADMIN" in out, out
