"""branchctl vip against in-process services: a broker works the inbox, a supervisor reads the
rota gaps and breaches. Runs the real command in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

from branch.directory.v1 import client_pb2
from branch.research.v1 import events_pb2 as research_events
from branch.research.v1 import note_enums_pb2 as notes

from tests.harness import token
from tests.vip.support import ROLE, Branch, publish


async def branchctl(b: Branch, tmp_path: Path, staff_id: str, role: str, *args: str) -> tuple[int, str]:
    env = dict(os.environ, BRANCH_VIP_ADDR=f"127.0.0.1:{b.runners['vip'].port}",
               BRANCH_TOKEN=token(staff_id, role), BRANCHCTL_HOME=str(tmp_path / "ctl"),
               COLUMNS="200", BRANCH_TIMEZONE="Asia/Shanghai")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli.branchctl", "vip", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_broker_and_supervisor_commands(b: Branch, tmp_path: Path) -> None:
    br = await b.staff(ROLE.ROLE_BROKER)
    sup = await b.staff(ROLE.ROLE_SUPERVISOR)
    client_id = await b.key_client(br, tolerance=client_pb2.RISK_TOLERANCE_C2)
    now = b.clock.now()
    await b.shift(br, now - timedelta(hours=1), now + timedelta(hours=7))
    code, out = await branchctl(b, tmp_path, br, "broker", "ask", client_id, "Sell 600519?",
                                "--ticker", "600519")
    assert code == 0, out
    adv_id = next(line.split()[-1] for line in out.splitlines() if "advisory " in line)
    code, out = await branchctl(b, tmp_path, br, "broker", "inbox")
    assert code == 0 and adv_id in out and "acknowledge" in out, out
    code, out = await branchctl(b, tmp_path, br, "broker", "answer", adv_id, "Add more",
                                "--risk", "R4")
    assert code == 19 and "FAILED_PRECONDITION" in out and "--override" in out, out
    from branch.vip.v1 import vip_service_pb2 as api

    from tests.vip.support import broker
    await b.vip.AnswerAdvisory(api.AnswerAdvisoryRequest(id=adv_id, advice="Hold",
                                                         risk_level=client_pb2.RiskLevel.ValueType(2)), metadata=broker(br))

    await publish(b.nats_url, "branch.research.note.published", research_events.NotePublished(
        note_id="cli-note", revision=1, title="Market view", kind=notes.NOTE_KIND_MARKET,
        risk_level=client_pb2.RiskLevel.ValueType(1), audience=notes.AUDIENCE_KEY_CLIENTS))
    for _ in range(100):
        if (await b.inbox(br)).relay_count:
            break
        await asyncio.sleep(0.05)
    relay_id = (await b.inbox(br)).items[0].relay.id
    code, out = await branchctl(b, tmp_path, br, "broker", "relay", relay_id, "--channel",
                                "phone", "--summary", "Explained the market view")
    assert code == 0 and "delivered" in out, out
    code, out = await branchctl(b, tmp_path, br, "broker", "client-ack", relay_id)
    assert code == 0 and "acknowledged" in out, out

    code, out = await branchctl(b, tmp_path, sup, "supervisor", "gaps", "--days", "1")
    assert code == 0 and "Asia/Shanghai" in out, out
    code, out = await branchctl(b, tmp_path, sup, "supervisor", "report")
    assert code == 0 and br[-6:] in out.replace("\n", ""), out
    code, out = await branchctl(b, tmp_path, br, "broker", "gaps")
    assert code == 17 and "PERMISSION_DENIED" in out, out
