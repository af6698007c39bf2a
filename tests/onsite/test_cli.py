"""branchctl onsite against the running stack: a manager's day, a consultant's form, meetings."""

from __future__ import annotations

import argparse

import pytest
from rich.console import Console

from services.cli.branchctl import Ctl
from services.onsite import cli
from tests.harness import token
from tests.onsite.conftest import World


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branchctl")
    cli.add_commands(parser.add_subparsers(dest="group", required=True))
    return parser


async def run(world: World, staff_id: str, role: str, *argv: str,
              monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BRANCH_ONSITE_ADDR", f"127.0.0.1:{world.s.runner.port}")
    ctl = Ctl(token=token(staff_id, role), console=Console(record=True, width=250))
    try:
        args = _parser().parse_args(["onsite", *argv])
        await args.func(args, ctl)
    finally:
        await ctl.close()
    return ctl.console.export_text()


async def test_a_day_through_branchctl(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    a, old = w.client_a, w.client_old

    async def cm(*argv: str) -> str:
        return await run(w, w.cm1, "client_manager", *argv, monkeypatch=monkeypatch)

    async def cons(*argv: str) -> str:
        return await run(w, w.cons1, "consultant", *argv, monkeypatch=monkeypatch)

    async def sup(*argv: str) -> str:
        return await run(w, w.sup, "supervisor", *argv, monkeypatch=monkeypatch)

    assert "plan" in await cm("plan", "--visit", f"{a}:asked about dividends", "--visit", old,
                              "--room", "Room 1", "--room", "Room 2", "--consult", a)
    assert "recorded" in await cm("visit", a, "--room", "Room 1", "--topic", "dividends",
                                  "--follow-up", "send the note")
    assert "recorded" in await cm("patrol", "Room 1", "--obs", "quiet")
    out = await cm("day")
    assert "asked about dividends" in out and "visits 1/10" in out and "rooms 1/3" in out
    out = await cm("raise", a, "--consultant", w.cons1, "--note", "concentration")
    form_id = out.split()[1]
    assert "600519" in out
    assert form_id in await cons("forms", "--inbox")
    out = await cons("analyse", form_id, "--analysis", "two names", "--advice", "trim",
                     "--risk", "R2", "--note-id", "note-1")
    assert "ANALYSED" in out and "note-1" in out
    out = await cm("deliver", form_id, "--ack", "client signed")
    assert "DELIVERED" in out and "client signed" in out
    assert w.cm1 in await cm("compliance", "--week")
    assert "quotas" in await sup("quota", "--visits", "12", "--rooms", "3")
    assert "24 hours" in await sup("settings")
    assert "overdue forms: 0" in await sup("overdue")
    out = await sup("schedule", "--topic", "Rates", "--start", "2099-01-02 15:00", "--room",
                    "Room 1", "--capacity", "1")
    meeting_id = out.split()[1]
    assert "confirmed" in await sup("register", meeting_id, a)
    assert "#1 on the waiting list" in await sup("register", meeting_id, old)
    out = await sup("meeting", meeting_id)
    assert "waitlisted" in out
    reg_id = next(line.split("│")[1].strip() for line in out.splitlines()
                  if a in line and "confirmed" in line)
    assert "cancelled" in await sup("unregister", reg_id)
    assert "Rates" in await sup("meetings", "--past", "1")
    assert "series" in await sup("series", "--title", "Weekly", "--weekday", "5", "--time",
                                 "15:00", "--room", "Room 1", "--weeks", "2")
