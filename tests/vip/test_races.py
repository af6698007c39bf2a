"""Two replicas putting the same new key client on the roster at once (SQLite, and
PostgreSQL when configured): the roster entry was read, found missing and inserted by both;
the loser's duplicate key made the consumer drop its event. Now the entry is inserted-if-
missing in one statement, the loser finds it and the client joins once."""

from __future__ import annotations

from pathlib import Path

from branch.directory.v1 import directory_service_pb2 as dir_api
from branch.directory.v1 import staff_pb2
from sqlalchemy import delete
from sqlmodel import col, select

from services.common.db import Database
from services.common.models import OutboxEvent
from services.vip.models import RosterEntry
from services.vip.roster import ACTIVE, apply_client
from services.vip.server import vip_of
from tests.harness import ADMIN, overlapped
from tests.vip.support import branch


async def test_two_replicas_put_a_new_key_client_on_the_roster(tmp_path: Path, database_url: str) -> None:
    async with branch(tmp_path, database_url=database_url) as b:
        client_id = await b.key_client(await b.staff(staff_pb2.ROLE_BROKER))
        client = await b.directory.GetClient(dir_api.GetClientRequest(id=client_id),
                                             metadata=ADMIN)
        runner = b.runners["vip"]
        vip = vip_of(runner.ctx)
        db = Database(runner.settings.database_url_for("vip"), service="vip")
        try:
            async with db.transaction() as s:  # as if the directory's event had not come
                await s.exec(delete(RosterEntry).where(
                    col(RosterEntry.client_id) == client_id))
                await s.exec(delete(OutboxEvent).where(
                    col(OutboxEvent.ce_subject) == client_id))
            await overlapped(db, lambda s: apply_client(vip, s, client))
            async with db.read() as s:
                rows = (await s.exec(select(RosterEntry).where(
                    RosterEntry.client_id == client_id))).all()
                joined = (await s.exec(select(OutboxEvent).where(
                    OutboxEvent.ce_subject == client_id,
                    OutboxEvent.subject == "branch.vip.roster.joined"))).all()
        finally:
            await db.dispose()
        assert [r.status for r in rows] == [ACTIVE]
        assert rows[0].broker_id == client.broker_id
        assert len(joined) == 1
