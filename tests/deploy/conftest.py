"""One deployed suite for the whole folder: our own nats-server, every committed service as
`branch serve` processes, two replicas each."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from services import registry
from services.common.nats_link import EmbeddedNats
from tests.deploy.cluster import Cluster, pick_port
from tests.deploy.suite import Suite
from tests.harness import POSTGRES_URL, create_postgres_databases, drop_postgres_databases

REPLICAS = 2


def deployed_services() -> list[str]:
    """Every service whose package is committed (DEPLOY_TEST_SERVICES narrows it)."""
    wanted = os.environ.get("DEPLOY_TEST_SERVICES", "")
    names = [s for s in wanted.split(",") if s] or list(registry.SERVICES)
    return [name for name in names if registry.spec(name) is not None]


@pytest.fixture(scope="package")  # stopped when this folder's tests are done
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    root = tmp_path_factory.mktemp("deploy")
    server = EmbeddedNats(root / "nats", port=pick_port(set()))
    server.start()
    database_url = ""
    suite: Cluster | None = None
    try:  # the NATS server stops even when making the databases fails
        if POSTGRES_URL:
            database_url = await create_postgres_databases()
        else:
            (root / "db").mkdir()
            database_url = f"sqlite+aiosqlite:///{root / 'db'}/{{service}}.db"
        suite = Cluster(root=root, nats=server, database_url=database_url)
        suite.plan({name: REPLICAS for name in deployed_services()})
        await suite.start_all()
        yield suite
    finally:
        if suite is not None:
            suite.stop_all()
        server.stop()
        if POSTGRES_URL and database_url:  # each run made its own; leave none behind
            await drop_postgres_databases(database_url)


@pytest.fixture
async def deployed(cluster: Cluster) -> Cluster:
    """The cluster with every replica up (an earlier test may have killed one)."""
    if cluster.nats.proc is None:
        cluster.nats.start()
    await cluster.ensure_running()
    return cluster


@pytest.fixture
async def suite(deployed: Cluster) -> AsyncIterator[Suite]:
    s = Suite(deployed)
    try:
        yield s
    finally:
        await s.close()
