from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.vip.support import Branch, branch


@pytest.fixture
async def b(tmp_path: Path) -> AsyncIterator[Branch]:
    async with branch(tmp_path) as env:
        yield env
