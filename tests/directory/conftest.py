from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.common.server import ServiceRunner
from services.directory.server import SPEC
from tests.harness import channel, make_settings, running

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub


@pytest.fixture
async def directory(tmp_path: Path, nats_url: str) -> AsyncIterator[ServiceRunner]:
    async with running(SPEC, make_settings(tmp_path, nats_url)) as runner:
        yield runner


@pytest.fixture
async def stub(directory: ServiceRunner) -> AsyncIterator[DirectoryServiceAsyncStub]:
    async with channel(directory) as ch:
        yield DirectoryServiceStub(ch)
