"""Autogenerate a migration for one service: ./dev migration SERVICE "message".

SERVICE `common` is the platform tables' branch (outbox, processed events, audit,
idempotency), shared by every service's database."""

from __future__ import annotations

import asyncio
import importlib
import sys
import tempfile
from pathlib import Path

from alembic import command

from services.common import migrations
from services.common.db import Database

ROOT = Path(__file__).resolve().parent.parent


async def main(service: str, message: str) -> None:
    importlib.import_module(f"services.{service}.models")
    versions = (migrations.COMMON_VERSIONS if service == "common"
                else ROOT / "services" / service / "migrations" / "versions")
    versions.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/m.db", service=service)
        await migrations.upgrade(db, versions)

        def _revise(sync_conn) -> None:  # type: ignore[no-untyped-def]
            from sqlmodel import SQLModel

            cfg = migrations.alembic_config(versions)
            cfg.attributes["connection"] = sync_conn
            cfg.attributes["target_metadata"] = SQLModel.metadata
            cfg.attributes["include_tables"] = migrations.service_tables(service)
            count = len([p for p in versions.glob("*.py") if p.name != "__init__.py"])
            # a service's first revision starts its own Alembic branch, after the platform's
            first = count == 0 and service != "common"
            command.revision(cfg, message=message, autogenerate=True,
                             rev_id=f"{service}_{count + 1:04d}",
                             head="base" if first else f"{service}@head",
                             branch_label=service if first else None,
                             depends_on="common_0001" if first else None,
                             version_path=str(versions))

        async with db.engine.begin() as conn:
            await conn.run_sync(_revise)
        await db.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit('usage: ./dev migration SERVICE "message"')
    asyncio.run(main(sys.argv[1], sys.argv[2]))
