"""branchctl against a running directory, as a person would use it (a real subprocess)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from branch.directory.v1 import client_pb2
from branch.directory.v1 import directory_service_pb2 as api

from tests.directory.factories import make_client, make_staff
from tests.harness import ADMIN, token

BRANCHCTL = str(Path(sys.executable).parent / "branchctl")


async def ctl(runner, home: Path, *args: str, tok: str = "") -> tuple[int, str]:
    env = {**os.environ, "BRANCHCTL_HOME": str(home),
           "BRANCH_DIRECTORY_ADDR": f"127.0.0.1:{runner.port}"}
    if tok:
        env["BRANCH_TOKEN"] = tok
    proc = await asyncio.create_subprocess_exec(
        BRANCHCTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_login_list_show_and_import(directory, stub, tmp_path: Path) -> None:
    home = tmp_path / "ctl"
    admin_tok = token("admin-1", "admin")
    (tmp_path / "admin.token").write_text(admin_tok)
    broker = await make_staff(stub, "broker", display_name="Broker One")
    client = await make_client(stub, tier=client_pb2.TIER_KEY, broker_id=broker.id)

    code, out = await ctl(directory, home, "login", "--as", broker.id, tok=admin_tok)
    assert code == 0 and "roles: broker" in out
    code, out = await ctl(directory, home, "directory", "clients", "--tier", "key")
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


async def test_errors_are_reported_not_tracebacks(directory, stub, tmp_path: Path) -> None:
    home = tmp_path / "ctl"
    code, out = await ctl(directory, home, "directory", "client", "nope",
                          tok=token("b1", "broker"))
    # what was typed is looked up first (services/cli/people.py): nobody answers to it
    assert code == 1 and "no client matches 'nope'" in out and "Traceback" not in out
    code, out = await ctl(directory, home, "directory", "clients")
    assert code != 0 and "not logged in" in out
    other = await make_client(stub)
    code, out = await ctl(directory, home, "directory", "client", other.id,
                          tok=token("b1", "broker"))
    assert code == 17 and "PERMISSION_DENIED" in out
    # the command changed nothing
    got = await stub.GetClient(api.GetClientRequest(id=other.id), metadata=ADMIN)
    assert got == other
