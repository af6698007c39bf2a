"""branchctl remote: an agent's day and a supervisor's, against the running services."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from services.cli.branchctl import Ctl, build_parser
from tests.harness import found, token
from tests.remote.conftest import Env
from tests.remote.test_reports import load_history


async def run(ctl: Ctl, *argv: str) -> str:
    args = build_parser().parse_args(["remote", *argv])
    out = io.StringIO()
    ctl.console = Console(file=out, width=250)
    await args.func(args, ctl)
    return out.getvalue()


@pytest.fixture
def ctl_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("BRANCH_REMOTE_ADDR", f"127.0.0.1:{env.remote.port}")
    monkeypatch.setenv("BRANCH_DIRECTORY_ADDR", f"127.0.0.1:{env.directory.port}")
    return env


async def test_agent_and_supervisor_day(ctl_env: Env, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    env = ctl_env
    agent, _ = await env.agent()
    client = await env.client()
    await load_history(env, client.id)
    agent_ctl = Ctl(token=token(agent, "service_agent"))
    sup_ctl = Ctl(token=token("sup-1", "supervisor"))
    try:
        assert "on duty" in await run(agent_ctl, "duty", "--lines", "investment,technical")
        out = await run(sup_ctl, "campaign-create", "--name", "Check-in", "--start",
                        "2026-03-02", "--end", "2026-03-31", "--agents", agent, "--quota", "3")
        campaign_id = found(r"campaign (\S+):", out)
        assert "1 clients queued" in out
        assert "Check-in" in await run(sup_ctl, "campaigns")
        out = await run(agent_ctl, "next")
        target = found(r"record (\S+) reached", out)
        assert "13800000000" in out
        assert "reached" in await run(agent_ctl, "record", target, "reached", "--notes", "ok")
        assert "1/3" in await run(agent_ctl, "day")
        assert "1/3" in await run(sup_ctl, "campaign", campaign_id)
        out = await run(agent_ctl, "open", "--line", "technical", "--summary", "app crash",
                        "--phone", "13900000000", "--priority", "urgent")
        ticket = found(r"│ (\S{36}) │", out)
        assert "in-progress" in await run(agent_ctl, "respond", ticket, "looking")
        assert "waiting" in await run(agent_ctl, "pause", ticket, "--reason", "caller")
        assert "in-progress" in await run(agent_ctl, "resume", ticket)
        assert "it" in await run(agent_ctl, "transfer", ticket, "--department", "it")
        assert "resolved" in await run(agent_ctl, "resolve", ticket, "reinstalled")
        assert "closed" in await run(agent_ctl, "follow-up", ticket, "--satisfaction", "5")
        assert "in-progress" in await run(agent_ctl, "reopen", ticket, "crashes again")
        out = await run(agent_ctl, "ticket", ticket)
        assert "transferred" in out and "reopened" in out
        assert "app crash" in await run(agent_ctl, "tickets", "--mine")
        env.clock.advance(hours=30)
        from services.remote.server import check_sla

        await check_sla(env.remote.ctx)
        assert "BREACHED" in await run(sup_ctl, "breached")
        out = await run(sup_ctl, "stats", "--week-of", "2026-03-02")
        assert agent in out and "TOTAL" in out
        assert "gap" in await run(sup_ctl, "regulatory", "--year", "2026")
        assert "investment" in await run(sup_ctl, "agents")
        assert "1440" in await run(sup_ctl, "sla")
        out = await run(agent_ctl, "report-create", client.id, "--start", "2026-02-01",
                        "--end", "2026-02-28")
        assert "194.00" in out
        report = found(r"report (\S+)", out)
        agent_ctl.output = "json"  # a script's view: the id is in the rows, not only the title
        capsys.readouterr()
        await run(agent_ctl, "report-create", client.id, "--start", "2026-02-01",
                  "--end", "2026-02-28")
        [created] = json.loads(capsys.readouterr().out)
        assert created["id"] != report and "194.00" in created.values()
        agent_ctl.output = "table"
        assert "FIFO" in await run(agent_ctl, "report", report)
        assert "delivered by email" in await run(agent_ctl, "report-deliver", report,
                                                 "--channel", "email", "--to", "c@x.cn")
        assert "delivered" in await run(sup_ctl, "reports")
        assert "back" in await run(agent_ctl, "absent", "--back")
    finally:
        await agent_ctl.close()
        await sup_ctl.close()
