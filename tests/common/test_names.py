"""services/common/names.py on a real database: the newer version of a name wins whatever
order the writes come in, and fill() puts names beside ids at any depth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from branch.directory.v1 import client_pb2
from branch.vip.v1 import advisory_pb2, relay_pb2
from branch.vip.v1 import vip_service_pb2 as api

from services.common import migrations, names
from services.common.db import Database
from services.common.protos import ts
from services.vip.models import PersonName
from services.vip.server import SPEC as VIP

T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path, database_url: str) -> AsyncIterator[Database]:
    url = database_url.format(service="vip") or f"sqlite+aiosqlite:///{tmp_path}/vip.db"
    database = Database(url, service="vip")
    await migrations.upgrade(database, VIP.migrations)
    yield database
    await database.dispose()


def client(name: str, updated: datetime) -> client_pb2.Client:
    return client_pb2.Client(id="c-1", display_name=name, create_time=ts(T0),
                             update_time=ts(updated))


async def test_an_older_version_never_undoes_a_rename(db: Database) -> None:
    async with db.transaction() as s:
        await names.remember_client(s, PersonName, client("李雷", T0 + timedelta(hours=1)), T0)
    async with db.transaction() as s:  # a late redelivery of the creation
        await names.remember_client(s, PersonName, client("李", T0), T0)
    async with db.read() as s:
        assert await names.lookup(s, PersonName, ["c-1", "nobody"]) == {"c-1": "李雷"}
    async with db.transaction() as s:
        await names.remember_client(s, PersonName, client("李雷雷", T0 + timedelta(hours=2)),
                                    T0)
    async with db.read() as s:
        assert await names.lookup(s, PersonName, ["c-1"]) == {"c-1": "李雷雷"}


async def test_fill_sets_names_inside_oneofs_and_lists(db: Database) -> None:
    async with db.transaction() as s:
        await names.remember_client(s, PersonName, client("韩梅梅", T0), T0)
    inbox = api.GetInboxResponse(broker_id="b-unknown", items=[
        api.InboxItem(advisory=advisory_pb2.Advisory(id="a-1", client_id="c-1")),
        api.InboxItem(relay=relay_pb2.RelayTask(id="r-1", client_id="c-1", broker_id="")),
    ])
    await names.fill(db, PersonName, inbox)
    assert inbox.items[0].advisory.client_display_name == "韩梅梅"
    assert inbox.items[1].relay.client_display_name == "韩梅梅"
    assert inbox.broker_display_name == "" and inbox.items[1].relay.broker_display_name == ""
