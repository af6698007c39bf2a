"""Every branchctl command, found by walking the argparse tree, run with well-shaped values
while no service answers, and with bad dates, bad numbers and bad choices: each stops with a
short message and a documented non-zero status, and no traceback reaches the person.

In-process main() calls (no subprocess per command); the services' addresses point at a port
nobody listens on, so each call fails UNAVAILABLE at once.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.cli import argtypes, branchctl, errors, when

SOME_ID = "0e4f5b7a-1111-4222-8333-944455556666"
GLOBAL = {"help", "output", "debug", "version", "lang"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def no_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every service's address refuses connections; a token is set; files land in tmp."""
    port = _closed_port()
    for service in ("directory", "research", "onsite", "remote", "vip"):
        monkeypatch.setenv(f"BRANCH_{service.upper()}_ADDR", f"127.0.0.1:{port}")
    monkeypatch.setenv("BRANCH_TOKEN", "not-a-real-token")
    monkeypatch.setenv("BRANCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(branchctl, "CONFIG_DIR", tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _good(action: argparse.Action) -> str:
    if action.choices:
        return str(next(iter(action.choices)))
    if action.type is when.moment:
        return "tomorrow 10am"
    if action.type is when.day:
        return "2026-12-01"
    if action.type in (int, float) or isinstance(action.type, argtypes.Count):
        return "1"
    if action.dest in ("file", "token_file", "body_file", "html", "out"):
        return "missing-file.csv"
    return SOME_ID


def _argv(path: tuple[str, ...], parser: argparse.ArgumentParser,
          override: dict[str, str] | None = None) -> list[str]:
    """A command line giving every option of `parser` a well-shaped value (first choice, a
    date, 1, an id), only one of each mutually exclusive group."""
    override = override or {}
    skip: set[str] = set()
    for group in parser._mutually_exclusive_groups:
        skip |= {a.dest for a in group._group_actions[1:]}
    argv = list(path)
    for action in parser._actions:
        if action.dest in GLOBAL or action.dest in skip or action.dest == argparse.SUPPRESS:
            continue
        value = override.get(action.dest, _good(action))
        if not action.option_strings:
            argv.append(value)
        elif action.nargs == 0:
            argv.append(action.option_strings[0])
        else:
            argv += [action.option_strings[0], value]
    return argv


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        branchctl.main(argv)
        code: object = 0
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    if isinstance(code, str):  # SystemExit("message"): Python prints it and exits 1
        err, code = err + code, 1
    assert code is None or isinstance(code, int), code
    return int(code or 0), err


COMMANDS = branchctl.leaves(branchctl.build_parser())


def test_the_walk_finds_every_group() -> None:
    groups = {path[0] for path, _ in COMMANDS}
    assert {"directory", "research", "onsite", "remote", "vip", "login", "calendar"} <= groups
    assert len(COMMANDS) > 60


# commands that need no service: ending a sign-in and listing the saved ones
LOCAL_ONLY = {("logout",), ("profiles",)}


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_every_command_without_the_suite_says_what_to_check(
        path: tuple[str, ...], no_suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = dict(COMMANDS)[path]
    code, err = _run(_argv(path, parser), capsys)
    assert "Traceback" not in err
    assert code != errors.BUG, err
    if path in LOCAL_ONLY:  # they touch only this machine's saved sign-ins
        assert code == 0, err
        return
    assert code != 0 and err.strip(), f"{path}: exit {code}, said {err!r}"
    if code == errors.exit_code(__import__("grpc").StatusCode.UNAVAILABLE):
        assert "is the suite running?" in err


BAD = [(path, action) for path, parser in COMMANDS for action in parser._actions
       if action.dest not in GLOBAL and (action.type in (when.moment, when.day)
                                         or isinstance(action.type, argtypes.Count)
                                         or (action.choices and action.option_strings))]


@pytest.mark.parametrize("path,action", BAD,
                         ids=[" ".join(p) + " " + (a.option_strings or [a.dest])[0]
                              for p, a in BAD])
def test_a_bad_value_names_the_flag(path: tuple[str, ...], action: argparse.Action,
                                    no_suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = "2026-13-01" if action.type in (when.moment, when.day) else "-5" \
        if isinstance(action.type, argtypes.Count) else "bogus"
    argv = _argv(path, dict(COMMANDS)[path], {action.dest: bad})
    code, err = _run(argv, capsys)
    assert code == errors.USAGE and "Traceback" not in err
    flag = action.option_strings[0] if action.option_strings else str(action.metavar or action.dest)
    last = err.strip().splitlines()[-1]
    assert f"argument {flag}" in last or f"argument {'/'.join(action.option_strings)}" in last \
        or flag.lower() in last.lower(), last


@pytest.mark.parametrize("argv,flag", [
    (["directory", "staff", "--role", "brokers"], "--role"),
    (["onsite", "visit", SOME_ID, "--at", "2026-12-01 25:00"], "--at"),
    (["vip", "gaps", "--days", "0"], "--days"),
    (["research", "ledger", "--from", "2026-13-01", "--to", "2026-12-01"], "--from"),
    (["research", "ledger", "--from", "2026-12-02", "--to", "2026-12-01"], "--from"),
    (["vip", "answer", SOME_ID, "advice", "--risk", "R9"], "--risk"),
])
def test_the_issue_cases_are_usage_errors(argv: list[str], flag: str, no_suite: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(argv, capsys)
    assert code == errors.USAGE and flag in err.strip().splitlines()[-1], err


@pytest.mark.parametrize("argv", [
    ["onsite", "visit", SOME_ID, "--at", "yesterday"],
    ["onsite", "patrol", "Hall", "--at", "12:00"],
    ["remote", "record", SOME_ID, "call-back-later", "--callback-at", "tomorrow 10am"],
    ["remote", "record", SOME_ID, "reached", "--called-at", "now"],
    ["vip", "on-call", "--at", "tomorrow"],
    ["research", "notes", "--since", "yesterday"],
])
def test_the_issue_cases_reach_the_service(argv: list[str], no_suite: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Relative times are read; the call is made (and finds no suite running)."""
    code, err = _run(argv, capsys)
    assert code == 24 and "is the suite running?" in err and "Traceback" not in err, err


def test_version_and_shell_completion(capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import subprocess
    import sys

    with pytest.raises(SystemExit) as stop:
        branchctl.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("branchctl ")
    # what bash's completion hook (register-python-argcomplete branchctl) asks and gets
    exe = str(Path(sys.executable).parent / "branchctl")
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": " ",
           "COMP_LINE": "branchctl vip ga", "COMP_POINT": "16"}
    done = subprocess.run(["bash", "-c", f"'{exe}' 8>&1 9>/dev/null"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["gaps"], done


def test_refusals_name_the_flags_not_the_api_fields() -> None:
    options = dict(COMMANDS)[("onsite", "analyse")].get_default("_options")
    text = ("unsuitable advice: risk R4 above tolerance C2; record suitability_override_reason "
            "to override")
    assert errors.with_flags(text, "onsite analyse", options).endswith("record --override "
                                                                      "to override")
    assert errors.flag_for("suitability_override_reason", "onsite analyse", options) == \
        "--override"
    assert errors.flag_for("analysis", "onsite analyse", options) == "--analysis"
    visit = dict(COMMANDS)[("onsite", "visit")].get_default("_options")
    assert errors.flag_for("visit.visit_time", "onsite visit", visit) == "--at"
    assert errors.flag_for("visit.room", "onsite visit", visit) == "--room"
    assert errors.flag_for("something_else", "onsite visit", visit) == "something_else"


@pytest.mark.parametrize("details", ["Stream removed (Socket closed)", "Socket closed",
                                     "failed to connect to all addresses"])
def test_a_connection_lost_mid_call_says_what_to_check(
        details: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A suite killed during an import drops the stream: UNAVAILABLE from the transport,
    with no status of a service's. It gets the unreachable line, not gRPC's words."""
    import grpc

    err = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                               grpc.aio.Metadata(), details)
    args = argparse.Namespace(_command="directory import", _options={})
    ctl = branchctl.Ctl(token="", last_service="directory")
    code = branchctl._report_rpc(err, args, ctl)
    said = capsys.readouterr().err
    assert code == errors.exit_code(grpc.StatusCode.UNAVAILABLE)
    assert "is the suite running?" in said and details not in said


def test_a_service_that_is_up_but_unavailable_gets_its_own_words(
        capsys: pytest.CaptureFixture[str]) -> None:
    """UNAVAILABLE with a service's status (its database is down) is not 'is the suite
    running?': the service answered, and its words are shown."""
    import grpc
    from google.rpc import code_pb2, status_pb2

    status = status_pb2.Status(code=code_pb2.UNAVAILABLE,
                               message="database unavailable; retry shortly")
    err = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString())),
        status.message)
    args = argparse.Namespace(_command="directory clients", _options={})
    code = branchctl._report_rpc(err, args, branchctl.Ctl(token="", last_service="directory"))
    said = capsys.readouterr().err
    assert code == errors.exit_code(grpc.StatusCode.UNAVAILABLE)
    assert "retry shortly" in said and "is the suite running?" not in said
