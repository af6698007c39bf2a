from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from services.common import migrations
from services.common.db import Database
from services.directory.models import Staff
from services.directory.server import SPEC


async def test_database_errors_carry_no_personal_data(tmp_path: Path, database_url: str) -> None:
    """Exception text reaches logs and parked-event reasons: no SQL parameters in it."""
    url = (database_url.replace("{service}", "directory") if database_url
           else f"sqlite+aiosqlite:///{tmp_path}/d.db")
    db = Database(url, service="directory")
    await migrations.upgrade(db, SPEC.migrations)
    now = datetime.now(UTC)
    async with db.transaction() as session:
        session.add(Staff(id="s1", employee_no="E1", display_name="Zhang San", roles="broker",
                          created_at=now))
    with pytest.raises(IntegrityError) as err:
        async with db.transaction() as session:
            session.add(Staff(id="s2", employee_no="E1", display_name="Li Si Private",
                              roles="broker", created_at=now))
    assert "Li Si Private" not in str(err.value)
    async with db.read() as session:
        assert (await session.get(Staff, "s2")) is None  # nothing half-written
    await db.dispose()
