"""Insight tests run on their own NATS server each: the read model consumes every event of the
stream from the start, so another test's events must not be counted in a month's figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.nats_link import EmbeddedNats


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    yield server.url
    server.stop()
