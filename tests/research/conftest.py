from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from branch.research.v1.research_service_pb2_grpc import ResearchServiceStub

from services.common.clock import FakeClock
from services.common.server import ServiceRunner
from services.research.server import SPEC
from tests.harness import channel, make_settings, running

if TYPE_CHECKING:
    from branch.research.v1.research_service_pb2_grpc import ResearchServiceAsyncStub


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def research(tmp_path: Path, nats_url: str, clock: FakeClock) -> AsyncIterator[ServiceRunner]:
    async with running(SPEC, make_settings(tmp_path, nats_url), clock=clock) as runner:
        yield runner


@pytest.fixture
async def stub(research: ServiceRunner) -> AsyncIterator[ResearchServiceAsyncStub]:
    async with channel(research) as ch:
        yield ResearchServiceStub(ch)
