"""The six services for tests of branchctl run in-process (services/cli/branchctl.main in a
worker thread: it runs its own event loop while the services run in the test's)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from services.cli import branchctl, i18n
from services.common.server import ServiceRunner
from services.directory.server import SPEC as DIRECTORY
from services.insight.server import SPEC as INSIGHT
from services.onsite.server import SPEC as ONSITE
from services.remote.server import SPEC as REMOTE
from services.research.server import SPEC as RESEARCH
from services.vip.server import SPEC as VIP
from tests.harness import make_settings, running


@asynccontextmanager
async def six_services(tmp: Path, nats_url: str) -> AsyncIterator[dict[str, ServiceRunner]]:
    """All six services on SQLite files under `tmp`, each told the others' addresses."""
    runners: dict[str, ServiceRunner] = {}
    async with AsyncExitStack() as stack:
        for spec in (DIRECTORY, RESEARCH, VIP, ONSITE, REMOTE, INSIGHT):
            addresses = {f"{name}_addr": f"127.0.0.1:{r.port}" for name, r in runners.items()}
            runners[spec.name] = await stack.enter_async_context(running(
                spec, make_settings(tmp / spec.name, nats_url, **addresses)))
        yield runners


def point_at(monkeypatch: pytest.MonkeyPatch, runners: dict[str, ServiceRunner],
             tmp_path: Path) -> None:
    """branchctl's environment: the services' addresses, files and sign-ins under tmp."""
    for name, runner in runners.items():
        monkeypatch.setenv(f"BRANCH_{name.upper()}_ADDR", f"127.0.0.1:{runner.port}")
    monkeypatch.setenv("BRANCH_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(branchctl, "CONFIG_DIR", tmp_path / "config")


def run_main(argv: Sequence[str]) -> tuple[int, str]:
    """branchctl.main(argv) in this thread; the exit status and stdout+stderr together."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                branchctl.main(list(argv))
            except SystemExit as done:
                return (done.code if isinstance(done.code, int) else 1), out.getvalue()
        return 0, out.getvalue()
    finally:
        i18n.install("en")
